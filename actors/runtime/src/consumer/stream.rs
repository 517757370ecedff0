//! The actor that owns a durable pull consumer: it pulls, splits what it
//! pulled by task over its workers, waits for them, and pulls again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use futures::{FutureExt, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use sqlx::PgPool;

use super::applier::{Applied, GroupApplier, Prepared};
use super::{ConsumerSpec, EventHandler};
use crate::Platform;

/// A message not acked by then (its consumer died) is delivered again, to
/// another instance: a crashed process holds its messages this long. Work
/// that takes longer says so (in-progress acks every [`PROGRESS_EVERY`]).
pub const ACK_WAIT: Duration = Duration::from_millis(1500);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Messages per pull request, and how long one waits for them.
const BATCH: usize = 1024;
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

pub struct ConsumerState<H> {
    durable: String,
    /// Decodes and acks here; the workers apply.
    applier: Arc<GroupApplier<H>>,
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
    type State = ConsumerState<H>;
    type Arguments = ConsumerArgs<H>;

    async fn pre_start(
        &self,
        myself: ActorRef<ConsumerMessage>,
        args: ConsumerArgs<H>,
    ) -> Result<ConsumerState<H>, ActorProcessingErr> {
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
            applier,
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
        state: &mut ConsumerState<H>,
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
        state: &mut ConsumerState<H>,
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

impl<H: EventHandler> ConsumerState<H> {
    /// One pull request at a time: the server deals messages round-robin
    /// over a consumer's waiting requests, and each batch has an inbox of
    /// its own, so a second request made ahead would reorder the stream.
    ///
    /// Groups go through as a pipeline, in order: while group N is applied,
    /// group N+1 is decoded and what arrives next is taken in; once N has
    /// committed, N+1 goes to the workers and N is acked. Every message
    /// held (applying, decoded or waiting) is kept from redelivery with
    /// in-progress acks.
    async fn pull_batch(&mut self) -> Result<(), async_nats::Error> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(BATCH)
            .expires(PULL_EXPIRES)
            .messages()
            .await?;
        let mut arrivals = Arrivals::default();
        let mut in_flight: Option<InFlight> = None;
        loop {
            if arrivals.waiting.is_empty() && in_flight.is_none() {
                arrivals.wait_for_one(&mut batch).await;
            }
            arrivals.take_ready(&mut batch);
            let next = match arrivals.waiting.len().min(GROUP) {
                0 => Vec::new(),
                size => {
                    let group: Vec<Message> = arrivals.waiting.drain(..size).collect();
                    self.applier.prepare_all(group).await
                }
            };
            let Some(flight) = in_flight.take() else {
                if next.is_empty() && arrivals.waiting.is_empty() && arrivals.ended {
                    // A broken batch ends once what it brought is applied.
                    return arrivals.failure.map_or(Ok(()), Err);
                }
                in_flight = (!next.is_empty()).then(|| self.dispatch(next));
                continue;
            };
            let applied = self.finish(flight, &next, &mut arrivals, &mut batch).await;
            in_flight = (!next.is_empty()).then(|| self.dispatch(next));
            self.applier.acknowledge(applied).await;
        }
    }

    /// Hands a decoded group to the workers, split by task over as many as
    /// its size is worth, each part in stream order.
    fn dispatch(&self, group: Vec<Prepared>) -> InFlight {
        let used = workers_for(group.len(), self.workers.len());
        let held = group
            .iter()
            .filter_map(|prepared| prepared.message().reply.clone())
            .collect();
        let mut parts: Vec<Vec<Prepared>> = (0..used).map(|_| Vec::new()).collect();
        for prepared in group {
            parts[worker_for(&prepared.message().subject, used)].push(prepared);
        }
        let mut results = Vec::with_capacity(used);
        for (worker, part) in self.workers.iter().zip(parts) {
            if part.is_empty() {
                continue;
            }
            let (done, result) = ractor::concurrency::oneshot();
            if worker.cast(Work(part, done.into())).is_ok() {
                results.push(result);
            } else {
                // The worker is gone: its messages stay unacked and come back.
                tracing::error!(consumer = %self.durable, "a consumer worker is gone");
            }
        }
        InFlight { held, results }
    }

    /// Waits until every part of the group in flight is done, keeping what
    /// is held from redelivery and taking in what arrives meanwhile.
    async fn finish(
        &self,
        flight: InFlight,
        next: &[Prepared],
        arrivals: &mut Arrivals,
        batch: &mut pull::Batch,
    ) -> Vec<Applied> {
        let InFlight { held, results } = flight;
        let done = futures::future::join_all(results);
        tokio::pin!(done);
        let mut progress =
            tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        loop {
            tokio::select! {
                results = &mut done => {
                    return results.into_iter().flat_map(|result| match result {
                        Ok(applied) => applied,
                        Err(_) => {
                            tracing::error!(consumer = %self.durable, "a consumer worker is gone");
                            Vec::new()
                        }
                    }).collect();
                }
                _ = progress.tick() => {
                    let decoded = next.iter().filter_map(|prepared| prepared.message().reply.as_ref());
                    let waiting = arrivals.waiting.iter().filter_map(|m| m.reply.as_ref());
                    for reply in held.iter().chain(decoded).chain(waiting) {
                        let _ = self.client.publish(reply.clone(), "+WPI".into()).await;
                    }
                }
                next = batch.next(), if !arrivals.ended => arrivals.arrived(next),
            }
        }
    }

    async fn lag(&mut self) -> Result<u64, async_nats::Error> {
        let info = self.consumer.info().await?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}

/// A group the workers are applying: the reply subjects of its messages and
/// where each part's outcome comes.
struct InFlight {
    held: Vec<async_nats::Subject>,
    results: Vec<ractor::concurrency::OneshotReceiver<Vec<Applied>>>,
}

/// What a pull request has brought and nobody has taken yet.
#[derive(Default)]
struct Arrivals {
    waiting: Vec<Message>,
    ended: bool,
    failure: Option<async_nats::Error>,
}

impl Arrivals {
    async fn wait_for_one(&mut self, batch: &mut pull::Batch) {
        if !self.ended {
            let next = batch.next().await;
            self.arrived(next);
        }
    }

    /// What has arrived already, up to a group.
    fn take_ready(&mut self, batch: &mut pull::Batch) {
        while self.waiting.len() < GROUP && !self.ended {
            match batch.next().now_or_never() {
                Some(next) => self.arrived(next),
                None => break,
            }
        }
    }

    fn arrived(&mut self, next: Option<Result<Message, async_nats::Error>>) {
        match next {
            Some(Ok(message)) => self.waiting.push(message),
            Some(Err(error)) => {
                self.failure = Some(error);
                self.ended = true;
            }
            None => self.ended = true,
        }
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

/// A part of a group for one worker, and where to hand back what it
/// committed.
pub(super) struct Work(Vec<Prepared>, RpcReplyPort<Vec<Applied>>);

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
        Work(part, done): Work,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = done.send(self.0.apply(part).await);
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
