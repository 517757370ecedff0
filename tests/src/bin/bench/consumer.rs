//! The audit consumer: how fast it records events, against the raw insert of
//! the same rows, and how soon its lag is back to zero after a burst.

use std::time::{Duration, Instant};

use taskflow_runtime::consumer::{ConsumedEvent, EventHandler};
use taskflow_schemas::EventEnvelope;
use taskflow_system_tests::fixtures;

use crate::cpu::{CpuClock, CpuUse};
use crate::profile::Profiler;
use crate::system::BenchSystem;
use uuid::Uuid;

/// `count` task events of `owner`, as the tasks service would publish them.
pub fn events(owner: Uuid, count: usize) -> Vec<EventEnvelope> {
    (0..count)
        .map(|n| fixtures::task_created(owner, &format!("burst {n}"), &format!("burst-{n}")))
        .collect()
}

/// Publishes the events pipelined on `TASKS`; returns when all are stored.
pub async fn publish(system: &BenchSystem, events: &[EventEnvelope]) -> anyhow::Result<()> {
    let js = &system.jetstream;
    for chunk in events.chunks(512) {
        let mut acks = Vec::with_capacity(chunk.len());
        for event in chunk {
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(serde_json::to_vec(event)?.into())
                .message_id(event.event_id.to_string());
            acks.push(
                js.send_publish(fixtures::subject_of(event), message)
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
    }
    Ok(())
}

/// How long until the audit's consumers have nothing pending, asked every
/// few milliseconds (a growing pause would add its own length to the figure).
pub async fn wait_for_no_lag(system: &BenchSystem) -> Duration {
    let started = Instant::now();
    while system.consumer_lag("audit").await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the audit did not catch up in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Waits until every service's consumers have caught up, so that one
/// figure's backlog does not load the next.
pub async fn wait_for_every_consumer(system: &BenchSystem) {
    taskflow_system_tests::wait_until(
        "every consumer to catch up",
        Duration::from_secs(300),
        || async { (system.consumer_lag("").await == 0).then_some(()) },
    )
    .await;
}

/// Records/s of the audit consumer catching up on `count` events, and the
/// CPU it took, the restart of its process included (with `perf` sampling
/// it when asked: see [`Profiler`]).
pub async fn catch_up_rate(
    system: &mut BenchSystem,
    owner: Uuid,
    count: usize,
) -> anyhow::Result<(f64, CpuUse)> {
    system.terminate("audit");
    let burst = events(owner, count);
    publish(system, &burst).await?;
    wait_for_every_consumer_but_audit(system).await;
    let clock = CpuClock::start(system);
    let profiler = Profiler::start_if_asked()?;
    system.set_running("audit", true).await;
    wait_for_no_lag(system).await;
    let cpu = clock.stop(system);
    let ids: Vec<Uuid> = burst.iter().map(|event| event.event_id).collect();
    let rate = recording_rate(system, &ids).await?;
    if let Some(profiler) = profiler {
        profiler.finish(system)?;
    }
    Ok((rate, cpu))
}

/// Records/s while the audit recorded `ids`, from the start of its first
/// transaction to the start of its last (`recorded_at` is the transaction's
/// time), the records of the last one left out: the process's own start is
/// not part of the figure.
async fn recording_rate(system: &BenchSystem, ids: &[Uuid]) -> anyhow::Result<f64> {
    let transactions: Vec<(chrono::DateTime<chrono::Utc>, i64)> = sqlx::query_as(
        "SELECT recorded_at, count(*) FROM audit_records WHERE event_id = ANY($1) \
         GROUP BY recorded_at ORDER BY recorded_at",
    )
    .bind(ids)
    .fetch_all(system.pool("audit"))
    .await?;
    let (Some((first, _)), Some((last, in_last))) = (transactions.first(), transactions.last())
    else {
        anyhow::bail!("the audit recorded none of the burst");
    };
    let span = (*last - *first).num_microseconds().unwrap_or(0) as f64 / 1e6;
    anyhow::ensure!(span > 0.0, "the burst was recorded in one transaction");
    Ok((ids.len() as i64 - in_last) as f64 / span)
}

/// The other services are done with the events before the audit starts on
/// them, so the figure measures the audit alone.
async fn wait_for_every_consumer_but_audit(system: &BenchSystem) {
    for service in taskflow_system_tests::cluster::service_names() {
        if service == "audit" {
            continue;
        }
        taskflow_system_tests::wait_until(
            &format!("{service}'s consumers to catch up"),
            Duration::from_secs(120),
            || async { (system.consumer_lag(service).await == 0).then_some(()) },
        )
        .await;
    }
}

/// Records/s of the same work straight from sqlx: the same rows in
/// transactions of the consumer's group size (ids recorded, then the
/// handler's multi-row statements), without NATS.
pub async fn raw_rate(system: &BenchSystem, owner: Uuid, count: usize) -> anyhow::Result<f64> {
    let settings = system.settings();
    let pool = taskflow_runtime::store::postgres::connect(
        &settings,
        "bench_raw_audit",
        &taskflow_audit::MIGRATOR,
    )
    .await?;
    let events: Vec<ConsumedEvent> = events(owner, count)
        .into_iter()
        .enumerate()
        .map(|(seq, envelope)| ConsumedEvent {
            envelope,
            subject: "tasks.created.raw".into(),
            stream: "TASKS".into(),
            stream_seq: seq as u64,
        })
        .collect();
    let started = Instant::now();
    for group in events.chunks(128) {
        let mut tx = pool.begin().await?;
        let ids: Vec<Uuid> = group.iter().map(|event| event.envelope.event_id).collect();
        sqlx::query("INSERT INTO consumed_events (consumer, event_id) SELECT 'raw', unnest($1::uuid[]) ON CONFLICT DO NOTHING")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        let group: Vec<&ConsumedEvent> = group.iter().collect();
        taskflow_audit::recorder::AuditRecorder
            .apply_batch(&mut tx, &group)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        tx.commit().await?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Seconds from the end of a burst of `count` events to no lag.
pub async fn lag_after_burst(
    system: &BenchSystem,
    owner: Uuid,
    count: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let events = events(owner, count);
    let started = Instant::now();
    publish(system, &events).await?;
    let burst = started.elapsed();
    Ok((burst, wait_for_no_lag(system).await))
}

/// From the death of an instance holding `count` of the audit's messages
/// (pulled, kept from redelivery with in-progress acks, nothing acked) to
/// their records, written by the instance still running: the takeover a
/// `kill -9` costs.
pub async fn takeover(
    system: &mut BenchSystem,
    owner: Uuid,
    count: usize,
) -> anyhow::Result<Duration> {
    use futures::StreamExt;
    system.terminate("audit");
    let burst = events(owner, count);
    publish(system, &burst).await?;
    wait_for_every_consumer_but_audit(system).await;
    let doomed = async_nats::connect(system.nats_url.as_str()).await?;
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        async_nats::jetstream::new(doomed.clone())
            .get_consumer_from_stream("audit-tasks", "TASKS")
            .await?;
    let mut held = Vec::with_capacity(count);
    let mut fetched = consumer.fetch().max_messages(count).messages().await?;
    while let Some(message) = fetched.next().await {
        held.push(message.map_err(|error| anyhow::anyhow!("{error}"))?);
    }
    anyhow::ensure!(held.len() == count, "the doomed instance holds the burst");
    let working = tokio::spawn({
        let doomed = doomed.clone();
        let replies: Vec<_> = held.iter().filter_map(|m| m.reply.clone()).collect();
        async move {
            loop {
                for reply in &replies {
                    let _ = doomed.publish(reply.clone(), "+WPI".into()).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    // The survivor is up, its pull request waiting for work.
    system.set_running("audit", true).await;
    let survivor: async_nats::jetstream::consumer::PullConsumer = system
        .jetstream
        .get_consumer_from_stream("audit-tasks", "TASKS")
        .await?;
    taskflow_system_tests::wait_until(
        "the survivor's pull request",
        Duration::from_secs(30),
        || {
            let mut survivor = survivor.clone();
            async move {
                let info = survivor.info().await.ok()?;
                (info.num_waiting > 0).then_some(())
            }
        },
    )
    .await;
    working.abort();
    drop(held);
    drop(doomed);
    let killed = Instant::now();
    let ids: Vec<Uuid> = burst.iter().map(|event| event.event_id).collect();
    let pool = system.pool("audit").clone();
    taskflow_system_tests::wait_until(
        "the survivor to record what the dead instance held",
        Duration::from_secs(60),
        || async {
            let recorded: i64 =
                sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE event_id = ANY($1)")
                    .bind(&ids)
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0);
            (recorded as usize == count).then_some(())
        },
    )
    .await;
    Ok(killed.elapsed())
}
