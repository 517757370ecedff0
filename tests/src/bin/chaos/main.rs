//! `just chaos [DURATION] [SEED]`: the system as separate processes (two
//! instances of every service binary and two edges, one nats-server, one
//! Postgres) under a workload of creates, changes, completions (some
//! recurring), reminders falling due and deletes, while the harness kills
//! processes with SIGKILL at random moments drawn from a printed seed and
//! starts them again: service instances and edges, nats-server, nats-server
//! as after a power loss (its store put back as it was some seconds
//! before, so the acknowledged tail is gone), and Postgres (an immediate
//! stop, then a start). It injects poison on consumed subjects as it goes.
//! Afterwards it lets the
//! system settle and checks every promise from the databases and the
//! streams, printing each invariant's count. A failing run prints its seed;
//! `just chaos DURATION SEED` replays the same choices.

mod checks;
mod poison;
mod rng;
mod watchers;
mod workload;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::rng::Rng;
use crate::workload::{Acknowledged, Workload};
use taskflow_system_tests::cluster::{Cluster, Database, Topology};

/// Clients working at once.
const CLIENTS: usize = 8;
/// Of those, the ones whose live feed a resuming WebSocket client follows.
const WATCHED: usize = 4;

#[tokio::main]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let duration = arguments
        .first()
        .map(|text| parse_duration(text))
        .unwrap_or(Some(Duration::from_secs(120)));
    let Some(duration) = duration else {
        eprintln!("usage: chaos [DURATION like 2m, 90s, 30m] [SEED]");
        return ExitCode::from(2);
    };
    let seed = arguments
        .get(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| uuid::Uuid::now_v7().as_u64_pair().1);
    println!("chaos: {} s, seed {seed}", duration.as_secs());
    match run(duration, seed).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!(
                "chaos: FAILED; replay with: just chaos {}s {seed}",
                duration.as_secs()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            println!("chaos: could not run ({error:#}); seed {seed}");
            ExitCode::FAILURE
        }
    }
}

/// How often a process that stopped by itself is looked for.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);

/// Starts again every process that stopped by itself (crash-only: a live
/// feed that saw its stream lose its tail, say), as a supervisor would.
fn restart_exited(cluster: &mut Cluster, kills: &mut BTreeMap<String, usize>) {
    for instance in &mut cluster.instances {
        if instance.exited() {
            instance.start();
            *kills.entry("exited, restarted".to_owned()).or_default() += 1;
        }
    }
}

async fn run(duration: Duration, seed: u64) -> anyhow::Result<bool> {
    let logs = std::env::temp_dir().join(format!("taskflow-chaos-{seed}"));
    std::fs::create_dir_all(&logs)?;
    let topology = Topology {
        copies: 2,
        database: Database::Own,
        prefix: "tfc_",
        log_level: "warn",
        env: Vec::new(),
    };
    let mut cluster = Cluster::start(&logs, topology).await;
    println!(
        "chaos: {} processes up; logs in {}",
        cluster.instances.len() + 2,
        logs.display()
    );
    let workload = Workload::new(cluster.edges.clone());
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        clients.push(workload.register(&format!("chaos{n}")).await);
    }
    let visitor = workload.register("visitor").await;
    workload
        .form_team(&clients[0], &clients[1..], visitor)
        .await;
    let (stop_watching, watching) = tokio::sync::watch::channel(false);
    let edges = std::sync::Arc::new(cluster.edges.clone());
    let watchers: Vec<_> = clients
        .iter()
        .take(WATCHED)
        .enumerate()
        .map(|(n, client)| {
            let seed = seed ^ ((n as u64) << 8);
            let watch = watchers::watch(client.clone(), edges.clone(), seed, watching.clone());
            tokio::spawn(watch)
        })
        .collect();
    let until = Instant::now() + duration;
    let runs: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, client)| tokio::spawn(workload.clone().run(client, seed ^ n as u64, until)))
        .chain([tokio::spawn(workload.clone().churn(seed, until))])
        .collect();

    // Kills: about one every 10 s (at least a dozen in the short form).
    let mut rng = Rng::new(seed);
    let kills_planned = (duration.as_secs() / 10).max(12);
    let gap = duration / (kills_planned as u32 + 1);
    let mut kills: BTreeMap<String, usize> = BTreeMap::new();
    let injector = async_nats::jetstream::new(async_nats::connect(cluster.nats.url()).await?);
    let mut injected = poison::Injected::default();
    // The store as it was at the last kill: what a power loss puts back.
    let mut older_store: Option<std::path::PathBuf> = None;
    let mut tick = 0;
    while Instant::now() + gap < until {
        let jitter = Duration::from_millis(rng.below(gap.as_millis() as u64 / 2 + 1));
        let next_kill = Instant::now() + gap / 2 + jitter;
        while Instant::now() < next_kill {
            tokio::time::sleep(SUPERVISE_EVERY).await;
            restart_exited(&mut cluster, &mut kills);
        }
        poison::inject(&injector, &mut rng, &mut injected).await;
        let down_for = Duration::from_millis(200 + rng.below(1_500));
        // One kill in eight takes nats-server, one takes it as a power loss
        // would, one Postgres, the rest one of the sixteen processes: each
        // long run kills every kind often, and the short form has at least
        // one power loss (halfway).
        tick += 1;
        let no_power_loss_yet = !kills.contains_key("nats-server power loss");
        let kind = if tick == kills_planned / 2 && no_power_loss_yet {
            1
        } else {
            rng.below(8)
        };
        let name = match (kind, older_store.take()) {
            (1, Some(older)) => {
                cluster.nats.kill();
                cluster.nats.restore_store(&older);
                tokio::time::sleep(down_for).await;
                cluster.nats.resume().await;
                "nats-server power loss".to_owned()
            }
            (0 | 1, older) => {
                older_store = older;
                cluster.nats.kill();
                tokio::time::sleep(down_for).await;
                cluster.nats.resume().await;
                "nats-server".to_owned()
            }
            (2, older) => {
                older_store = older;
                cluster.own_postgres().crash();
                tokio::time::sleep(down_for).await;
                cluster.own_postgres().start_again();
                "postgres".to_owned()
            }
            (_, older) => {
                older_store = older;
                let target = rng.below(cluster.instances.len() as u64) as usize;
                let instance = &mut cluster.instances[target];
                instance.kill();
                tokio::time::sleep(down_for).await;
                instance.start();
                instance
                    .name
                    .split('-')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        *kills.entry(name).or_default() += 1;
        if let Some(unused) = older_store.replace(cluster.nats.copy_store()) {
            let _ = std::fs::remove_dir_all(unused);
        }
    }
    if let Some(unused) = older_store {
        let _ = std::fs::remove_dir_all(unused);
    }
    // The last kill may stop a process after the loop above last looked:
    // the supervisor goes on while the clients finish what they started.
    let mut runs = futures::future::join_all(runs);
    loop {
        tokio::select! {
            finished = &mut runs => {
                for run in finished {
                    run?;
                }
                break;
            }
            () = tokio::time::sleep(SUPERVISE_EVERY) => restart_exited(&mut cluster, &mut kills),
        }
    }
    cluster.heal().await;
    let acknowledged = std::mem::take(&mut *workload.acknowledged.lock().await);
    let total: usize = kills
        .iter()
        .filter(|(name, _)| name.as_str() != "exited, restarted")
        .map(|(_, count)| count)
        .sum();
    println!(
        "chaos: {} operations acknowledged ({} creates, {} in the project, {} changes, {} completions, {} deletes, {} membership changes), {} unanswered",
        acknowledged.operations(),
        acknowledged.created.len(),
        acknowledged.project_tasks.len(),
        acknowledged.updates,
        acknowledged.completions,
        acknowledged.deleted.len(),
        acknowledged.membership_changes,
        acknowledged.unanswered
    );
    println!("chaos: {total} kills: {kills:?}");
    println!("chaos: {} poison messages injected", injected.bodies.len());

    let nats = async_nats::connect(cluster.nats.url()).await?;
    let js = async_nats::jetstream::new(nats);
    let settling = Instant::now();
    checks::settle(&cluster, &js).await?;
    println!(
        "chaos: settled in {:.1} s",
        settling.elapsed().as_secs_f64()
    );
    stop_watching.send(true)?;
    let mut watched = Vec::new();
    for watcher in watchers {
        watched.push(watcher.await?);
    }
    let resumes: usize = watched.iter().map(|watcher| watcher.resumes).sum();
    let resyncs: usize = watched.iter().map(|watcher| watcher.resyncs.len()).sum();
    println!(
        "chaos: {WATCHED} feed clients, {resumes} connections and resumes, {resyncs} asked to resync"
    );
    workload.read_history_as_removed().await;
    let removed = std::mem::take(&mut *workload.acknowledged.lock().await);
    let acknowledged = Acknowledged {
        reads_after_removal: acknowledged.reads_after_removal + removed.reads_after_removal,
        read_after_removal: [
            acknowledged.read_after_removal.clone(),
            removed.read_after_removal,
        ]
        .concat(),
        ..acknowledged
    };
    let invariants = checks::run(&cluster, &js, &acknowledged, &watched, &injected).await?;
    let mut held = acknowledged.unanswered == 0;
    for invariant in &invariants {
        let verdict = if invariant.broken.is_empty() {
            "ok"
        } else {
            "BROKEN"
        };
        println!(
            "  {verdict:>6}  {:<60} {} checked",
            invariant.name, invariant.checked
        );
        for broken in &invariant.broken {
            println!("          {broken}");
        }
        held &= invariant.broken.is_empty();
    }
    if held {
        let _ = std::fs::remove_dir_all(&logs);
    }
    Ok(held)
}

fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let number: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number * 60)),
        "h" => Some(Duration::from_secs(number * 3600)),
        _ => None,
    }
}
