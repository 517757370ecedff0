//! The actor that takes a service's commands off NATS and hands them to its
//! workers: one per service, under its supervisor, ending when the NATS
//! service stops.

use futures::StreamExt;
use futures::stream::BoxStream;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::pool::KeyedPool;
use super::workers::dispatch_to;
use crate::bus::endpoints::Job;

pub(crate) struct CommandListener;

pub(crate) struct ListenerArgs {
    pub service: &'static str,
    pub jobs: BoxStream<'static, Job>,
    pub workers: KeyedPool<Job>,
}

/// Take the next request.
pub(crate) struct Next;

impl Actor for CommandListener {
    type Msg = Next;
    type State = ListenerArgs;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Next>,
        args: ListenerArgs,
    ) -> Result<ListenerArgs, ActorProcessingErr> {
        myself.cast(Next)?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Next>,
        Next: Next,
        state: &mut ListenerArgs,
    ) -> Result<(), ActorProcessingErr> {
        match state.jobs.next().await {
            Some(job) => {
                dispatch_to(&state.workers, state.service, job);
                // Refused only while stopping, when no more are wanted.
                let _ = myself.cast(Next);
            }
            None => myself.stop(Some("the NATS service stopped".into())),
        }
        Ok(())
    }
}
