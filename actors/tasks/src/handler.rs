//! Routes each command subject to its [`TaskCommands`] method.

use taskflow_runtime::commands::CommandRequest;
use taskflow_runtime::service::CommandHandler;
use taskflow_schemas::commands::{NewTask, Principal, TaskQuery, TaskRef, UpdateTask};
use taskflow_schemas::subjects::commands::tasks;

use crate::commands::{Caller, TaskCommands};

impl CommandHandler for TaskCommands {
    async fn handle(&self, request: CommandRequest) {
        let request = &request;
        let caller = |actor: Principal| Caller {
            actor_id: actor.id,
            is_admin: actor.is_admin(),
            request_id: request.request_id.clone(),
            deadline: request.deadline,
        };
        match request.subject {
            tasks::CREATE => {
                request
                    .run_as_actor(|actor, body: NewTask| async move {
                        self.create(&caller(actor), body).await
                    })
                    .await
            }
            tasks::GET => {
                request
                    .run_as_actor(|actor, body: TaskRef| async move {
                        self.get(&caller(actor), body).await
                    })
                    .await
            }
            tasks::LIST => {
                request
                    .run_as_actor(|actor, body: TaskQuery| async move {
                        self.list(&caller(actor), body).await
                    })
                    .await
            }
            tasks::UPDATE => {
                request
                    .run_as_actor(|actor, body: UpdateTask| async move {
                        self.update(&caller(actor), body).await
                    })
                    .await
            }
            tasks::COMPLETE => {
                request
                    .run_as_actor(|actor, body: TaskRef| async move {
                        self.complete(&caller(actor), body).await
                    })
                    .await
            }
            tasks::DELETE => {
                request
                    .run_as_actor(|actor, body: TaskRef| async move {
                        self.delete(&caller(actor), body).await
                    })
                    .await
            }
            other => tracing::error!(subject = other, "no handler for this subject"),
        }
    }
}
