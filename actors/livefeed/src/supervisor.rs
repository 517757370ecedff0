//! The feed's root actor: it starts the hub as its child and applies the
//! product's crash-only policy to it, so a hub that dies (its stream follower
//! ended, say) stops the feed and the process rather than leaving every
//! client connected to a feed that no longer moves.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use taskflow_runtime::Platform;
use taskflow_runtime::service::crash_only;

use crate::directory::SharedDirectory;
use crate::hub::{FeedHub, HubMessage};

pub enum FeedMessage {
    Hub(RpcReplyPort<ActorRef<HubMessage>>),
    /// Stops the hub; its sessions close.
    Stop(RpcReplyPort<()>),
}

pub struct FeedSupervisor;

pub struct FeedSupervisorState {
    hub: ActorRef<HubMessage>,
    stopping: bool,
}

impl Actor for FeedSupervisor {
    type Msg = FeedMessage;
    type State = FeedSupervisorState;
    type Arguments = (Platform, SharedDirectory);

    async fn pre_start(
        &self,
        myself: ActorRef<FeedMessage>,
        arguments: (Platform, SharedDirectory),
    ) -> Result<FeedSupervisorState, ActorProcessingErr> {
        let (hub, _) = Actor::spawn_linked(None, FeedHub, arguments, myself.get_cell()).await?;
        Ok(FeedSupervisorState {
            hub,
            stopping: false,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<FeedMessage>,
        message: FeedMessage,
        state: &mut FeedSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            FeedMessage::Hub(reply) => {
                let _ = reply.send(state.hub.clone());
            }
            FeedMessage::Stop(reply) => {
                state.stopping = true;
                let _ = state.hub.stop_and_wait(None, None).await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<FeedMessage>,
        event: SupervisionEvent,
        state: &mut FeedSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        crash_only("livefeed", &myself.get_cell(), &event, state.stopping);
        Ok(())
    }
}
