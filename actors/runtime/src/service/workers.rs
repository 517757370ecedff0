//! The command workers of a service: a fixed set of actors, each running
//! one command at a time, fed through a bounded [`KeyedPool`].

use ractor::{Actor, ActorProcessingErr, ActorRef};
use taskflow_schemas::{ErrorBody, ErrorCode};
use tracing::Instrument;

use super::pool::{KeyedPool, Queued, Refused};
use crate::bus::endpoints::Job;

/// Commands waiting per worker, at most; more are refused as overloaded.
pub(crate) const MAILBOX_BOUND: usize = 64;

/// Hands the job to its worker; a worker with a full mailbox has the job
/// answered as overloaded at once. `false` when the workers are gone.
pub(crate) fn dispatch_to(workers: &KeyedPool<Job>, service: &'static str, job: Job) -> bool {
    match workers.try_send(job.key, job) {
        Ok(()) => true,
        Err(Refused::Full(job)) => {
            metrics::counter!("taskflow_commands_refused_total", "service" => service, "reason" => "overloaded")
                .increment(1);
            let overloaded = ErrorBody::new(
                ErrorCode::ServiceUnavailable,
                format!("the {service} service is overloaded, try again shortly"),
            );
            tokio::spawn(job.refuse(overloaded));
            true
        }
        Err(Refused::Gone) => {
            tracing::error!(service, "the command workers are gone");
            false
        }
    }
}

/// Runs one command at a time and answers it.
pub(crate) struct CommandWorker {
    pub service: &'static str,
    /// Counted down after each command, so the pool knows the mailbox's length.
    pub queued: Queued,
}

impl Actor for CommandWorker {
    type Msg = Job;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Job>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Job>,
        job: Job,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let span = tracing::info_span!(
            "command",
            service = self.service,
            subject = job.subject,
            request_id = %job.context.request_id
        );
        if job.context.expired() {
            // Its caller already answered its client (503): running it now
            // would be a write nobody was told about.
            metrics::counter!("taskflow_commands_refused_total", "service" => self.service, "reason" => "expired")
                .increment(1);
            span.in_scope(|| tracing::warn!("command dropped: its caller gave up waiting"));
        } else {
            job.run().instrument(span).await;
        }
        self.queued.done();
        Ok(())
    }
}
