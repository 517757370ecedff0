//! The actor that owns a durable pull consumer: it pulls, splits what it
//! pulled by task over its workers, waits for them, and pulls again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use futures::{FutureExt, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use sqlx::PgPool;

use super::applier::GroupApplier;
use super::{ConsumerSpec, EventHandler};
use crate::Platform;

/// A message not acked by then (its consumer died) is delivered again, to
/// another instance: a crashed process holds its messages this long. Work
/// that takes longer says so (in-progress acks every [`PROGRESS_EVERY`]).
pub const ACK_WAIT: Duration = Duration::from_millis(1500);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Messages per pull request, and how long one waits for them.
const BATCH: usize = 256;
/// Events applied in one transaction, at most.
const GROUP: usize = 128;
/// Events in a group before another worker (another transaction) takes a part.
const EVENTS_PER_WORKER: usize = 16;
const PULL_EXPIRES: Duration = Duration::from_millis(500);
/// How often the lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(1);

pub struct StreamConsumer<H>(std::marker::PhantomData<fn() -> H>);

impl<H> Default for StreamConsumer<H> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

pub struct ConsumerArgs<H> {
    pub spec: ConsumerSpec,
    pub platform: Platform,
    pub pool: PgPool,
    pub handler: H,
}

pub struct ConsumerState {
    durable: String,
    consumer: PullConsumer,
    /// For in-progress acks.
    client: async_nats::Client,
    workers: Vec<ActorRef<Work>>,
    lag_checked: Instant,
}

pub enum ConsumerMessage {
    /// Pull the next batch and process it.
    Pull,
    /// Messages in the stream not yet acked by this consumer.
    Lag(RpcReplyPort<u64>),
}

impl<H: EventHandler> Actor for StreamConsumer<H> {
    type Msg = ConsumerMessage;
    type State = ConsumerState;
    type Arguments = ConsumerArgs<H>;

    async fn pre_start(
        &self,
        myself: ActorRef<ConsumerMessage>,
        args: ConsumerArgs<H>,
    ) -> Result<ConsumerState, ActorProcessingErr> {
        let spec = args.spec;
        let stream = args.platform.jetstream.get_stream(spec.stream).await?;
        let config = pull::Config {
            durable_name: Some(spec.durable.clone()),
            description: Some(format!("{} service", spec.service)),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            // The server never gives up on a message by itself: this runtime
            // counts deliveries and parks a message in the DLQ after
            // MAX_DELIVER, and one whose DLQ publish failed stays pending.
            max_deliver: -1,
            filter_subjects: spec.subjects.clone(),
            max_ack_pending: 10_000,
            ..Default::default()
        };
        // Create or update, so a changed setting reaches an existing consumer.
        let consumer: PullConsumer = stream.create_consumer(config).await?;
        tracing::info!(service = spec.service, consumer = %spec.durable, stream = spec.stream, workers = spec.workers, "consuming");
        let durable = spec.durable.clone();
        let count = spec.workers.max(1);
        let applier = Arc::new(GroupApplier {
            spec,
            jetstream: args.platform.jetstream.clone(),
            pool: args.pool,
            handler: Arc::new(args.handler),
        });
        let mut workers = Vec::with_capacity(count);
        for _ in 0..count {
            let worker = ConsumerWorker(applier.clone());
            let (worker, _) = Actor::spawn_linked(None, worker, (), myself.get_cell()).await?;
            workers.push(worker);
        }
        myself.cast(ConsumerMessage::Pull)?;
        Ok(ConsumerState {
            durable,
            consumer,
            client: args.platform.nats.clone(),
            workers,
            lag_checked: Instant::now(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ConsumerMessage>,
        message: ConsumerMessage,
        state: &mut ConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConsumerMessage::Pull => {
                if let Err(error) = state.pull_batch().await {
                    tracing::warn!(consumer = %state.durable, %error, "pull failed; retrying");
                    myself.send_after(Duration::from_millis(500), || ConsumerMessage::Pull);
                } else {
                    // Refused only while draining, when no more pulls are wanted.
                    let _ = myself.cast(ConsumerMessage::Pull);
                }
                if state.lag_checked.elapsed() >= LAG_EVERY {
                    state.lag_checked = Instant::now();
                    if let Ok(lag) = state.lag().await {
                        metrics::gauge!("taskflow_consumer_lag", "consumer" => state.durable.clone()).set(lag as f64);
                    }
                }
            }
            ConsumerMessage::Lag(reply) => {
                let _ = reply.send(state.lag().await.unwrap_or(u64::MAX));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<ConsumerMessage>,
        event: SupervisionEvent,
        state: &mut ConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        // A worker that died leaves its events unacked: the consumer fails
        // with it, and the service's supervisor decides.
        match event {
            SupervisionEvent::ActorFailed(_, error) => {
                Err(format!("a worker of {} failed: {error}", state.durable).into())
            }
            _ => Ok(()),
        }
    }
}

impl ConsumerState {
    /// One pull request at a time: the server deals messages round-robin
    /// over a consumer's waiting requests, and each batch has an inbox of
    /// its own, so a second request made ahead would reorder the stream.
    ///
    /// Whatever has arrived together is applied in one pass; while a group
    /// is applied, what arrives next is taken in, and every message held
    /// (applying or waiting) is kept from redelivery with in-progress acks.
    async fn pull_batch(&mut self) -> Result<(), async_nats::Error> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(BATCH)
            .expires(PULL_EXPIRES)
            .messages()
            .await?;
        let mut waiting: Vec<Message> = Vec::new();
        let mut ended = false;
        let mut failure = None;
        loop {
            if waiting.is_empty() && !ended {
                match batch.next().await {
                    Some(message) => waiting.push(message?),
                    None => ended = true,
                }
            }
            while waiting.len() < GROUP && !ended {
                match batch.next().now_or_never() {
                    Some(Some(message)) => waiting.push(message?),
                    Some(None) => ended = true,
                    None => break,
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            let group: Vec<Message> = waiting.drain(..waiting.len().min(GROUP)).collect();
            let applying: Vec<_> = group.iter().filter_map(|m| m.reply.clone()).collect();
            let apply = self.apply_group(group);
            tokio::pin!(apply);
            let mut progress = tokio::time::interval_at(
                tokio::time::Instant::now() + PROGRESS_EVERY,
                PROGRESS_EVERY,
            );
            loop {
                tokio::select! {
                    () = &mut apply => break,
                    _ = progress.tick() => {
                        let held = applying.iter().chain(waiting.iter().filter_map(|m| m.reply.as_ref()));
                        for reply in held {
                            let _ = self.client.publish(reply.clone(), "+WPI".into()).await;
                        }
                    }
                    // A broken batch ends once the group in hand is applied.
                    next = batch.next(), if !ended => match next {
                        Some(Ok(message)) => waiting.push(message),
                        Some(Err(error)) => {
                            failure = Some(error);
                            ended = true;
                        }
                        None => ended = true,
                    },
                }
            }
            if let Some(error) = failure.take() {
                return Err(error);
            }
        }
    }

    /// Splits the group by task over as many workers as its size is worth,
    /// each part in stream order, and waits until every part is done.
    async fn apply_group(&self, group: Vec<Message>) {
        let used = workers_for(group.len(), self.workers.len());
        let mut parts: Vec<Vec<Message>> = vec![Vec::new(); used];
        for message in group {
            parts[worker_for(&message.subject, used)].push(message);
        }
        let calls = self
            .workers
            .iter()
            .zip(parts)
            .filter(|(_, part)| !part.is_empty())
            .map(|(worker, part)| worker.call(|done| Work(part, done), None));
        for outcome in futures::future::join_all(calls).await {
            if outcome.is_err() {
                // The worker is gone: its messages stay unacked and come back.
                tracing::error!(consumer = %self.durable, "a consumer worker is gone");
            }
        }
    }

    async fn lag(&mut self) -> Result<u64, async_nats::Error> {
        let info = self.consumer.info().await?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}

/// Workers for a group of `events`: a transaction each, so a few events
/// share one (a commit costs more than applying them), and a big group is
/// spread over all of them.
fn workers_for(events: usize, workers: usize) -> usize {
    events.div_ceil(EVENTS_PER_WORKER).clamp(1, workers)
}

/// The worker for a subject: the last token is the task id on `tasks.*` and
/// `reminders.*`, so one task's events always reach the same worker.
fn worker_for(subject: &str, workers: usize) -> usize {
    if workers == 1 {
        return 0;
    }
    let key = subject.rsplit('.').next().unwrap_or(subject);
    crate::service::pool::shard(&key, workers)
}

/// A part of a group for one worker, and where to say it is done.
pub struct Work(Vec<Message>, RpcReplyPort<()>);

/// Applies the parts it is given, one at a time.
struct ConsumerWorker<H>(Arc<GroupApplier<H>>);

impl<H: EventHandler> Actor for ConsumerWorker<H> {
    type Msg = Work;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Work>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Work>,
        Work(messages, done): Work,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.0.process(messages).await;
        let _ = done.send(());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{worker_for, workers_for};

    #[test]
    fn a_small_group_is_one_transaction_and_a_big_one_uses_every_worker() {
        assert_eq!(workers_for(1, 4), 1);
        assert_eq!(workers_for(16, 4), 1);
        assert_eq!(workers_for(17, 4), 2);
        assert_eq!(workers_for(128, 4), 4);
        assert_eq!(workers_for(128, 1), 1);
    }

    #[test]
    fn one_tasks_events_reach_one_worker() {
        let task = "0190b6a0-0000-7000-8000-000000000001";
        let created = worker_for(&format!("tasks.created.{task}"), 8);
        assert_eq!(worker_for(&format!("tasks.completed.{task}"), 8), created);
        assert_eq!(worker_for(&format!("reminders.due.{task}"), 8), created);
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|n| worker_for(&format!("tasks.created.{n}"), 8))
            .collect();
        assert!(
            spread.len() > 4,
            "tasks spread over the workers: {spread:?}"
        );
    }
}
