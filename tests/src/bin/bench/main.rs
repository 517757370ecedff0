//! `just bench`: throughput and latency of the write path, each figure next
//! to the ceiling it is compared with, measured in the same run. The system
//! runs as separate processes, as `compose.yaml` runs it (see [`system`]);
//! this process is only its client. The figures go to
//! `target/bench/report.md` and `report.json`, with `load.svg` (see
//! [`report`]).
//!
//! 1. HTTP create-task throughput at 1, 16 and 64 concurrent clients, with
//!    p50/p99 latency, beside the raw rate of the same write (task row and
//!    outbox row, the statement the tasks service runs) straight from sqlx
//!    at the same concurrency, and their ratio.
//! 2. Commit → event-on-stream latency: creates paced at half the 16-client
//!    rate; from the envelope's `occurred_at` (stamped just before the commit)
//!    to its arrival at a subscriber of `tasks.>`.
//! 3. The live feed, the audit, and what acts on time: reminder lateness,
//!    completion → next task, assignment → email accepted by SMTP.
//! 4. What authorization costs: creates and lists for a user in no project
//!    and in 50, and membership change → access change; sign-ins at 8, 32
//!    and 128 at once.
//! 5. What `sync_interval: always` would cost against the chosen setting.
//! 6. Lists and search at a million tasks and audit records (`bench scale`).
//!
//! Beside the 16-client creates, the raw write, the fan-out and the audit
//! catching up, the CPU time each process spent per operation (see [`cpu`]):
//! what bounds a figure on 2 cores.

mod authz;
mod consumer;
mod cpu;
mod durability;
mod fanout;
mod memory;
mod profile;
mod report;
mod scale;
mod signins;
mod system;
mod timing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use taskflow_runtime::outbox::OutboxRecord;
use taskflow_schemas::EventEnvelope;
use taskflow_system_tests::{SmtpCatcher, User};

use crate::cpu::CpuClock;
use crate::profile::Profiler;
use crate::report::{Goal, LoadStep, Report};
use crate::system::BenchSystem;
use tokio::sync::Mutex;

const RUN_FOR: Duration = Duration::from_secs(5);
/// Run before a latency is measured, and not counted.
const WARM_UP: Duration = Duration::from_secs(1);
const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Live-feed clients connected while REST → WebSocket latency is measured.
const FEED_CLIENTS: usize = 100;
/// Events in the audit consumer's catch-up and burst figures.
const BURST: usize = 10_000;
/// Events a killed audit instance holds in the takeover figure.
const TAKEN_OVER: usize = 256;
/// Reminders due within [`REMINDER_SPREAD`], for their lateness.
const REMINDERS: usize = 10_000;
const REMINDER_SPREAD: Duration = Duration::from_secs(60);
/// How the measured system runs, for the report.
const LAYOUT: &str = "The system as `compose.yaml` lays it out: one process of each service binary and one edge, \
    release build, logs at `info` to files, its own nats-server, the machine's Postgres 15; \
    the load from the bench's own process, on the same 2 cores.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The fan-out and memory figures connect their feeds as one user.
    let feeds = FEED_CLIENTS.max(memory::FEED_CLIENTS).to_string();
    let catcher = SmtpCatcher::start().await;
    let smtp = catcher.url();
    // Six services and the edge at 10 connections each, and the raw pool's
    // 28, stay under Postgres's 100.
    let logs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/logs");
    let mut system = system::BenchSystem::start(
        &logs,
        vec![
            ("TASKFLOW_WS_MAX_PER_USER", feeds),
            ("TASKFLOW_SMTP_URL", smtp),
            ("TASKFLOW_DATABASE_MAX_CONNECTIONS", "10".to_owned()),
        ],
    )
    .await?;
    println!("(the system's logs: {})", logs.display());
    let user = system.register("Bench").await;
    // Only the email figure's recipient gets mail.
    let quiet = system
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&user.token),
            Some(json!({"email_notifications": false})),
        )
        .await;
    anyhow::ensure!(quiet.status.is_success(), "email off for the bench user");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    // For a profiler: `bench http [CLIENTS]` runs only the HTTP figure (16
    // clients by default), `bench audit` only the audit catching up,
    // `bench paced [RATE]` only the commit → stream latency (default 1000/s).
    match std::env::args().nth(1).as_deref() {
        Some("http") => {
            let clients = std::env::args()
                .nth(2)
                .map_or(Ok(16), |clients| clients.parse())?;
            let clock = CpuClock::start(&system);
            let profiler = Profiler::start_if_asked()?;
            let figures = http_creates(&system, &http, &user.token, clients).await;
            settle_outbox_and_consumers(&system).await;
            let cpu = clock.stop(&system);
            if let Some(profiler) = profiler {
                profiler.finish(&system)?;
            }
            println!(
                "{:.0} creates/s, p50 {:.2} ms, p99 {:.2} ms",
                figures.rate, figures.p50, figures.p99
            );
            println!(
                "CPU per create, the consumers' work included (ms): {}; {:.2} cores busy",
                cpu.by_part(figures.count),
                cpu.cores_busy
            );
            system.stop().await?;
            return Ok(());
        }
        Some("audit") => {
            let raw_pool = raw_database(&system).await?;
            let mut report = Report::default();
            audit_figures(&mut system, &raw_pool, user.id, &mut report).await?;
            system.stop().await?;
            println!();
            println!("{}", report.markdown(LAYOUT));
            return Ok(());
        }
        Some("signins") => {
            let mut report = Report::default();
            signins::run(&system, &http, &mut report).await?;
            system.stop().await?;
            println!();
            println!("{}", report.markdown(LAYOUT));
            return Ok(());
        }
        Some("timing") => {
            timing_figures(&system, &catcher, &user).await?;
            system.stop().await?;
            return Ok(());
        }
        Some("memory") => {
            memory_figures(&mut system, &mut Report::default()).await?;
            system.stop().await?;
            return Ok(());
        }
        Some("authz") => {
            authz::run(&system, &http).await?;
            system.stop().await?;
            return Ok(());
        }
        Some("durability") => {
            durability::run().await?;
            system.stop().await?;
            return Ok(());
        }
        Some("scale") => {
            let mut report = Report::default();
            scale::run(&system, &http, &mut report).await?;
            system.stop().await?;
            println!();
            println!("{}", report.markdown(LAYOUT));
            return Ok(());
        }
        Some("paced") => {
            let rate = std::env::args()
                .nth(2)
                .and_then(|r| r.parse().ok())
                .unwrap_or(1000.0);
            let (count, p50, p99) = commit_to_stream(&system, &http, &user.token, rate).await?;
            println!(
                "{count} creates at {rate:.0}/s: commit → stream p50 {p50:.2} ms, p99 {p99:.2} ms"
            );
            system.stop().await?;
            return Ok(());
        }
        _ => {}
    }

    let raw_pool = raw_database(&system).await?;
    println!(
        "TaskFlow bench: {} s per figure, release build, everything on this machine",
        RUN_FOR.as_secs()
    );
    println!();
    println!(
        "Create a task: HTTP through the edge and tasks service, against the same write straight from sqlx"
    );
    println!(
        "{:>8} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>6}",
        "clients", "HTTP/s", "p50 ms", "p99 ms", "raw SQL/s", "p50 ms", "p99 ms", "ratio"
    );
    let mut report = Report::default();
    let mut rate_at_16 = 0.0;
    for clients in CONCURRENCY {
        settle(&system, &raw_pool).await;
        let clock = CpuClock::start(&system);
        let http = http_creates(&system, &http, &user.token, clients).await;
        settle_outbox_and_consumers(&system).await;
        let cpu = clock.stop(&system);
        settle(&system, &raw_pool).await;
        let clock = CpuClock::start(&system);
        let raw = raw_writes(&raw_pool, clients).await;
        let raw_cpu = clock.stop(&system);
        if clients == 16 {
            rate_at_16 = http.rate;
            report.add_cpu(
                "an HTTP create, 16 clients, with every consumer's work it causes",
                http.count,
                cpu,
            );
            report.add_cpu(
                "the same write straight from sqlx, 16 clients",
                raw.count,
                raw_cpu,
            );
        }
        report.add(
            format!("HTTP creates/s, {clients} clients"),
            http.rate,
            "/s",
            Some(("the same write straight from sqlx", raw.rate)),
            (clients == 16).then_some(Goal::RatioAtLeast(0.8)),
        );
        report.add(
            format!("HTTP create p99, {clients} clients"),
            http.p99,
            "ms",
            Some(("the raw write's p99", raw.p99)),
            None,
        );
        println!(
            "{clients:>8} | {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>6.2}",
            http.rate,
            http.p50,
            http.p99,
            raw.rate,
            raw.p50,
            raw.p99,
            http.rate / raw.rate
        );
    }

    settle(&system, &raw_pool).await;
    let paced = rate_at_16 / 2.0;
    let (count, p50, p99) = commit_to_stream(&system, &http, &user.token, paced).await?;
    let (raw_p50, raw_p99) = raw_publish_acks(&system.jetstream, paced).await?;
    println!();
    println!(
        "Commit → event on TASKS, {count} creates paced at {paced:.0}/s (half the 16-client rate)"
    );
    println!("  p50 {p50:.2} ms, p99 {p99:.2} ms");
    println!(
        "  a raw 1 KiB publish to a file stream on the same server, acked: p50 {raw_p50:.2} ms, p99 {raw_p99:.2} ms"
    );
    report.add(
        format!("commit → event on TASKS p99, {paced:.0} creates/s"),
        p99,
        "ms",
        Some(("raw publish-ack p99", raw_p99)),
        Some(Goal::Below(10.0)),
    );

    settle(&system, &raw_pool).await;
    println!();
    println!(
        "HTTP creates against offered load (open loop, {} s a step)",
        RUN_FOR.as_secs()
    );
    println!(
        "{:>10} {:>10} {:>8} {:>8} {:>8}",
        "offered/s", "taken/s", "503s", "p50 ms", "p99 ms"
    );
    for share in [0.25, 0.5, 0.75, 1.0, 1.25] {
        settle(&system, &raw_pool).await;
        let step = paced_creates(&system, &http, &user.token, rate_at_16 * share).await;
        println!(
            "{:>10.0} {:>10.0} {:>8} {:>8.2} {:>8.2}",
            step.offered, step.achieved, step.shed, step.p50, step.p99
        );
        report.add_load_step(step);
    }

    settle(&system, &raw_pool).await;
    let clock = CpuClock::start(&system);
    let fan = fanout::run(&system, &user.token, FEED_CLIENTS, paced).await?;
    settle_outbox_and_consumers(&system).await;
    report.add_cpu(
        format!("a create paced at {paced:.0}/s, fanned out to {FEED_CLIENTS} WebSocket clients"),
        fan.sent,
        clock.stop(&system),
    );
    println!();
    println!(
        "Live feed and audit: {FEED_CLIENTS} WebSocket clients, {} creates paced at {paced:.0}/s, {} deliveries",
        fan.creates, fan.deliveries
    );
    println!(
        "  REST → WebSocket frame  p50 {:.2} ms, p99 {:.2} ms",
        fan.ws.0, fan.ws.1
    );
    println!(
        "  REST → audit record     p50 {:.2} ms, p99 {:.2} ms",
        fan.audit.0, fan.audit.1
    );
    report.add(
        format!("REST → WebSocket frame p99, {FEED_CLIENTS} clients"),
        fan.ws.1,
        "ms",
        None,
        Some(Goal::Below(20.0)),
    );
    report.add(
        "REST → audit record p99",
        fan.audit.1,
        "ms",
        None,
        Some(Goal::Below(30.0)),
    );

    audit_figures(&mut system, &raw_pool, user.id, &mut report).await?;
    settle(&system, &raw_pool).await;
    let lateness = timing_figures(&system, &catcher, &user).await?;
    report.add(
        format!("reminder lateness p99, {REMINDERS} due within a minute"),
        lateness,
        "ms",
        None,
        Some(Goal::Below(50.0)),
    );
    settle(&system, &raw_pool).await;
    authz::run(&system, &http).await?;
    settle(&system, &raw_pool).await;
    signins::run(&system, &http, &mut report).await?;
    settle(&system, &raw_pool).await;
    memory_figures(&mut system, &mut report).await?;
    settle(&system, &raw_pool).await;
    scale::run(&system, &http, &mut report).await?;
    durability::run().await?;
    system.stop().await?;
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    report.write(&folder, LAYOUT)?;
    println!();
    println!("{}", report.markdown(LAYOUT));
    println!(
        "(written to {}: report.md, report.json, load.svg)",
        folder.display()
    );
    Ok(())
}

/// The audit consumer: catching up on a backlog beside the same rows
/// straight from sqlx, its lag after a burst, and the takeover after an
/// instance dies holding messages.
async fn audit_figures(
    system: &mut BenchSystem,
    raw_pool: &sqlx::PgPool,
    owner: uuid::Uuid,
    report: &mut Report,
) -> anyhow::Result<()> {
    settle(system, raw_pool).await;
    let (consumed, consumed_cpu) = consumer::catch_up_rate(system, owner, BURST).await?;
    report.add_cpu(
        format!("an audit record, catching up on {BURST} events"),
        BURST,
        consumed_cpu,
    );
    settle(system, raw_pool).await;
    let raw = consumer::raw_rate(system, owner, BURST).await?;
    println!();
    println!("Audit consumer catching up on {BURST} events: {consumed:.0} records/s");
    println!(
        "  the same rows straight from sqlx (same transactions, no NATS): {raw:.0} records/s, ratio {:.2}",
        consumed / raw
    );
    settle(system, raw_pool).await;
    let (burst, lag) = consumer::lag_after_burst(system, owner, BURST).await?;
    println!(
        "  a burst of {BURST} events published in {:.2} s; lag back to 0 {:.2} s after it ended",
        burst.as_secs_f64(),
        lag.as_secs_f64()
    );
    report.add(
        format!("audit consumer catching up on {BURST} events"),
        consumed,
        "records/s",
        Some(("the same rows straight from sqlx", raw)),
        Some(Goal::RatioAtLeast(0.7)),
    );
    report.add(
        format!("audit lag back to 0 after a {BURST}-event burst"),
        lag.as_secs_f64(),
        "s",
        None,
        Some(Goal::Below(0.5)),
    );
    settle(system, raw_pool).await;
    let takeover = consumer::takeover(system, owner, TAKEN_OVER).await?;
    println!(
        "  an instance killed holding {TAKEN_OVER} events: the other recorded them {:.2} s later",
        takeover.as_secs_f64()
    );
    report.add(
        format!("consumer takeover: an instance killed holding {TAKEN_OVER} events → recorded by another"),
        takeover.as_secs_f64(),
        "s",
        None,
        Some(Goal::Below(2.0)),
    );
    Ok(())
}

/// The scheduler's and the notifier's figures; returns the reminders'
/// lateness p99 (due time → `reminder.due` on the stream).
async fn timing_figures(
    system: &BenchSystem,
    catcher: &SmtpCatcher,
    user: &User,
) -> anyhow::Result<f64> {
    println!();
    println!(
        "Reminders: {REMINDERS} due within {} s (each notifies in-app too)",
        REMINDER_SPREAD.as_secs()
    );
    let (seen, fired) = timing::reminder_lateness(system, user, REMINDERS, REMINDER_SPREAD).await?;
    for (what, (p50, p99, max)) in [
        ("due time → fired in the scheduler's database", fired),
        ("due time → reminder.due on REMINDERS", seen),
    ] {
        println!("  {what:<46} p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    }
    consumer::wait_for_every_consumer(system).await;
    let (p50, p99) = timing::next_instance(system, user, 200, 20.0).await?;
    println!("Recurring tasks: 200 completions at 20/s");
    println!("  completion committed → next task on TASKS  p50 {p50:.2} ms, p99 {p99:.2} ms");
    consumer::wait_for_every_consumer(system).await;
    let recipient = system.register("Mailbox").await;
    wait_for_recipient(system, &recipient).await;
    let (p50, p99) =
        timing::notification_to_email(system, catcher, user, &recipient, 200, 20.0).await?;
    println!("Email: 200 assignments at 20/s to a user who wants email");
    println!("  assignment request → email accepted by SMTP  p50 {p50:.2} ms, p99 {p99:.2} ms");
    Ok(seen.1)
}

/// Waits until the notifier knows `user`'s address.
async fn wait_for_recipient(system: &BenchSystem, user: &User) {
    taskflow_system_tests::wait_until(
        "the notifier knows the recipient",
        Duration::from_secs(10),
        || async {
            let known: Option<bool> =
                sqlx::query_scalar("SELECT email_notifications FROM recipients WHERE user_id = $1")
                    .bind(user.id)
                    .fetch_optional(system.pool("notifier"))
                    .await
                    .ok()
                    .flatten();
            known.map(|_| ())
        },
    )
    .await;
}

struct Figures {
    /// Operations done.
    count: usize,
    rate: f64,
    p50: f64,
    p99: f64,
}

impl Figures {
    fn from_samples(mut samples: Vec<f64>, elapsed: Duration) -> Self {
        let count = samples.len();
        let rate = count as f64 / elapsed.as_secs_f64();
        let (p50, p99) = percentiles(&mut samples);
        Self {
            count,
            rate,
            p50,
            p99,
        }
    }
}

/// Runs `one` in `clients` loops for `RUN_FOR`; latencies in milliseconds.
async fn closed_loop<F, Fut>(clients: usize, one: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let loops = (0..clients).map(|client| {
        let one = one.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            while started.elapsed() < RUN_FOR {
                let sent = Instant::now();
                one(client, n).await;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                n += 1;
            }
            latencies
        })
    });
    let samples = futures::future::join_all(loops)
        .await
        .into_iter()
        .flat_map(|run| run.expect("a client loop"))
        .collect();
    Figures::from_samples(samples, started.elapsed())
}

async fn create(http: &reqwest::Client, url: &str, token: &str, title: String) {
    let status = try_create(http, url, token, title).await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
}

/// A create, and how it was answered: past its capacity the system sheds
/// load with 503 rather than queueing without end.
async fn try_create(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    title: String,
) -> reqwest::StatusCode {
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({"title": title, "priority": "high"}))
        .send()
        .await
        .expect("the edge answers");
    let status = response.status();
    assert!(
        status == reqwest::StatusCode::CREATED
            || status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "a create answered {status}"
    );
    let _ = response.bytes().await;
    status
}

async fn http_creates(
    system: &BenchSystem,
    http: &reqwest::Client,
    token: &str,
    clients: usize,
) -> Figures {
    let url = Arc::new(format!("{}/api/v1/tasks", system.base_url));
    let token = Arc::new(token.to_owned());
    let http = http.clone();
    closed_loop(clients, move |client, n| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move { create(&http, &url, &token, format!("bench {client}-{n}")).await }
    })
    .await
}

/// Lets the previous figure's work finish and its writes reach the disk, so
/// that neither lands in the next figure.
async fn settle(system: &BenchSystem, pool: &sqlx::PgPool) {
    // Every consumer catches up with what the last figure wrote before the next one.
    consumer::wait_for_every_consumer(system).await;
    if let Err(error) = sqlx::query("CHECKPOINT").execute(pool).await {
        eprintln!("(no CHECKPOINT between figures: {error})");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Waits until the creates of a figure are published and every consumer
/// has applied them, so their CPU is counted with the figure.
async fn settle_outbox_and_consumers(system: &BenchSystem) {
    taskflow_system_tests::wait_until(
        "the tasks outbox to be published",
        Duration::from_secs(60),
        || async {
            let unpublished: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(system.pool("tasks"))
                    .await
                    .ok()?;
            (unpublished == 0).then_some(())
        },
    )
    .await;
    consumer::wait_for_every_consumer(system).await;
}

/// A database with the tasks schema and no relay, for the raw rate.
async fn raw_database(system: &BenchSystem) -> anyhow::Result<sqlx::PgPool> {
    let mut settings = system.settings();
    settings.database_max_connections = 28;
    Ok(taskflow_runtime::store::postgres::connect(
        &settings,
        "bench_raw",
        &taskflow_tasks::MIGRATOR,
    )
    .await?)
}

/// The tasks service's write, straight from sqlx.
async fn raw_writes(pool: &sqlx::PgPool, clients: usize) -> Figures {
    let pool = pool.clone();
    closed_loop(clients, move |_, _| {
        let pool = pool.clone();
        async move {
            let actor = uuid::Uuid::now_v7();
            let new = taskflow_schemas::commands::NewTask {
                title: "raw".into(),
                ..Default::default()
            };
            let task =
                taskflow_tasks::rules::new_task(uuid::Uuid::now_v7(), actor, Utc::now(), new)
                    .expect("valid");
            let event = EventEnvelope::new(
                "task.created",
                Some(task.id),
                Some(actor),
                "bench",
                json!({"task": task}),
            );
            let record = OutboxRecord::new(format!("tasks.created.{}", task.id), &event)
                .expect("a small event");
            taskflow_tasks::store::insert_with_event(&pool, &task, &record, None)
                .await
                .expect("a write");
        }
    })
    .await
}

/// Creates at `rate` per second for `WARM_UP` and then `RUN_FOR`, while a
/// subscriber times each event from its commit to its arrival; the warm-up's
/// events (new connections on every side) are not counted.
/// Returns (events counted, p50, p99).
async fn commit_to_stream(
    system: &BenchSystem,
    http: &reqwest::Client,
    token: &str,
    rate: f64,
) -> anyhow::Result<(usize, f64, f64)> {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    // A connection of its own, like any other consumer of the stream's subjects.
    let subscriber = async_nats::connect(system.nats_url.as_str()).await?;
    let mut subscription = subscriber.subscribe("tasks.>").await?;
    let listener = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let arrived = Utc::now();
                if let Ok(event) = serde_json::from_slice::<EventEnvelope>(&message.payload) {
                    arrivals.lock().await.push((event.occurred_at, arrived));
                }
            }
        })
    };
    let url = format!("{}/api/v1/tasks", system.base_url);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let counted_from = Utc::now() + WARM_UP;
    let mut sent = Vec::new();
    while started.elapsed() < WARM_UP + RUN_FOR {
        ticks.tick().await;
        let (http, url, token) = (http.clone(), url.clone(), token.to_owned());
        let n = sent.len();
        sent.push(tokio::spawn(async move {
            create(&http, &url, &token, format!("paced {n}")).await
        }));
    }
    let expected = sent.len();
    futures::future::join_all(sent).await;
    taskflow_system_tests::wait_until("every paced event", Duration::from_secs(10), || {
        let arrivals = arrivals.clone();
        async move { (arrivals.lock().await.len() >= expected).then_some(()) }
    })
    .await;
    listener.abort();
    let mut samples: Vec<f64> = arrivals
        .lock()
        .await
        .iter()
        .filter(|(committed, _)| *committed >= counted_from)
        .map(|(committed, arrived)| {
            (*arrived - *committed).num_microseconds().unwrap_or(0) as f64 / 1000.0
        })
        .collect();
    let (p50, p99) = percentiles(&mut samples);
    Ok((samples.len(), p50, p99))
}

/// (p50, p99) of the samples; zeros when there are none.
fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

/// Creates offered at `rate` per second whatever the answers take (open
/// loop), for `RUN_FOR` after `WARM_UP`: the rate taken and the latency.
async fn paced_creates(
    system: &BenchSystem,
    http: &reqwest::Client,
    token: &str,
    rate: f64,
) -> LoadStep {
    let url = Arc::new(format!("{}/api/v1/tasks", system.base_url));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sent = Vec::new();
    while started.elapsed() < WARM_UP + RUN_FOR {
        ticks.tick().await;
        let counted = started.elapsed() >= WARM_UP;
        let (http, url, token) = (http.clone(), url.clone(), token.to_owned());
        let n = sent.len();
        sent.push(tokio::spawn(async move {
            let begun = Instant::now();
            let status = try_create(&http, &url, &token, format!("offered {n}")).await;
            let taken = status == reqwest::StatusCode::CREATED;
            let latency = begun.elapsed().as_secs_f64() * 1000.0;
            (counted, taken, latency, Instant::now())
        }));
    }
    let mut samples = Vec::new();
    let mut shed = 0;
    let mut last = started;
    for done in futures::future::join_all(sent).await {
        let (counted, taken, latency, at) = done.expect("a create");
        if counted && taken {
            samples.push(latency);
            last = last.max(at);
        } else if counted {
            shed += 1;
        }
    }
    let elapsed = last
        .saturating_duration_since(started + WARM_UP)
        .as_secs_f64()
        .max(0.001);
    let achieved = samples.len() as f64 / elapsed;
    let (p50, p99) = percentiles(&mut samples);
    LoadStep {
        offered: rate,
        achieved,
        shed,
        p50,
        p99,
    }
}

/// The machine's limit for commit → stream: a 1 KiB publish to a file
/// stream of the same server, at `rate` per second, from send to ack.
async fn raw_publish_acks(
    js: &async_nats::jetstream::Context,
    rate: f64,
) -> anyhow::Result<(f64, f64)> {
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw.>".into()],
            ..Default::default()
        })
        .await?;
    let payload = vec![b'x'; 1024];
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut sent = Vec::new();
    while started.elapsed() < WARM_UP + RUN_FOR {
        ticks.tick().await;
        let counted = started.elapsed() >= WARM_UP;
        let (js, payload) = (js.clone(), payload.clone());
        let n = sent.len();
        sent.push(tokio::spawn(async move {
            let begun = Instant::now();
            let ack = js.publish(format!("bench.raw.{n}"), payload.into()).await?;
            ack.await?;
            anyhow::Ok((counted, begun.elapsed().as_secs_f64() * 1000.0))
        }));
    }
    let mut samples = Vec::new();
    for done in futures::future::join_all(sent).await {
        let (counted, latency) = done??;
        if counted {
            samples.push(latency);
        }
    }
    js.delete_stream(&stream.cached_info().config.name).await?;
    Ok(percentiles(&mut samples))
}

/// Memory per 1,000 live-feed clients and per 100,000 pending reminders.
async fn memory_figures(system: &mut BenchSystem, report: &mut Report) -> anyhow::Result<()> {
    let user = system.register("Memory").await;
    let clients = memory::per_thousand_clients(system, &user).await?;
    let reminders = memory::per_hundred_thousand_reminders(system, &user).await?;
    println!();
    println!("Memory (resident, of the process that holds them)");
    println!(
        "  the edge, per 1,000 live-feed clients: {:.0} KiB",
        clients
    );
    println!(
        "  the scheduler, per 100,000 pending reminders (measured with {}): {:.0} KiB",
        memory::REMINDERS,
        reminders
    );
    report.add(
        "edge memory per 1,000 live-feed clients",
        clients,
        "KiB",
        None,
        None,
    );
    report.add(
        "scheduler memory per 100,000 pending reminders",
        reminders,
        "KiB",
        None,
        None,
    );
    Ok(())
}
