//! Routes each command subject to its [`IdentityCommands`] method.

use taskflow_runtime::commands::CommandRequest;
use taskflow_runtime::service::CommandHandler;
use taskflow_schemas::commands::{Credentials, ProfilePatch, Registration, UserRef};
use taskflow_schemas::subjects::commands::identity;

use tracing::Instrument;

use crate::commands::IdentityCommands;
use crate::passwords;

impl CommandHandler for IdentityCommands {
    async fn handle(&self, request: CommandRequest) {
        let request = match request.subject {
            identity::REGISTER | identity::LOGIN => return self.sign_in(request).await,
            _ => &request,
        };
        match request.subject {
            identity::GET_PROFILE => {
                request
                    .run(|body: UserRef| self.profile(body.user_id))
                    .await
            }
            identity::UPDATE_PROFILE => {
                request
                    .run_as_actor(|actor, body: ProfilePatch| self.update_profile(actor.id, body))
                    .await
            }
            identity::GET_PUBLIC_PROFILE => {
                request.run(|body: UserRef| self.public_profile(body)).await
            }
            other => tracing::error!(subject = other, "no handler for this subject"),
        }
    }
}

impl IdentityCommands {
    /// Register and login hash a password: each takes a place in the hashing
    /// pool first (refused at once when none is left) and then runs on a
    /// task of its own, so the worker goes on with the commands behind it.
    async fn sign_in(&self, request: CommandRequest) {
        let slot = match passwords::admit() {
            Ok(slot) => slot,
            Err(busy) => return request.reply::<()>(Err(busy.into())).await,
        };
        let commands = self.clone();
        tokio::spawn(
            async move {
                let request = &request;
                if request.subject == identity::REGISTER {
                    request
                        .run(|body: Registration| {
                            commands.register(&request.request_id, request.deadline, slot, body)
                        })
                        .await
                } else {
                    request
                        .run(|body: Credentials| commands.login(slot, body))
                        .await
                }
            }
            .in_current_span(),
        );
    }
}
