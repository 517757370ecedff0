//! Routes each command subject to its [`IdentityCommands`] method.

use taskflow_runtime::commands::CommandRequest;
use taskflow_runtime::service::CommandHandler;
use taskflow_schemas::commands::{Credentials, ProfilePatch, Registration, UserRef};
use taskflow_schemas::subjects::commands::identity;

use crate::commands::IdentityCommands;

impl CommandHandler for IdentityCommands {
    async fn handle(&self, request: &CommandRequest) {
        match request.subject {
            identity::REGISTER => {
                request
                    .run(|body: Registration| async move {
                        self.register(&request.request_id, body).await
                    })
                    .await
            }
            identity::LOGIN => request.run(|body: Credentials| self.login(body)).await,
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
