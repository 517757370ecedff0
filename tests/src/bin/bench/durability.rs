//! What `sync_interval: always` would cost: the same publishes to a file
//! stream on a server that fsyncs every 2 minutes (the product's setting,
//! `nats/nats-server.conf`) and on one that fsyncs before every ack, in one
//! run. The product keeps the first and lets the outbox publish again what
//! an OS crash took (README: Durability).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use taskflow_system_tests::NatsServer;

use crate::{Figures, closed_loop, percentiles};

/// Messages in the pipelined figure.
const PIPELINED: usize = 20_000;

pub async fn run() -> anyhow::Result<()> {
    println!();
    println!("JetStream durability: a 1 KiB task event to a file stream");
    println!(
        "{:>16} | {:>12} {:>8} {:>8} | {:>14} {:>10}",
        "sync_interval", "awaited/s", "p50 ms", "p99 ms", "pipelined/s", "p99 ms"
    );
    for sync in ["2m", "always"] {
        let config = std::env::temp_dir().join(format!("taskflow-sync-{sync}.conf"));
        std::fs::write(
            &config,
            format!("jetstream {{ sync_interval: \"{sync}\" }}\n"),
        )?;
        let server = NatsServer::start_with(&["-c", config.to_str().unwrap_or_default()]).await;
        let js = jetstream::new(async_nats::connect(server.url()).await?);
        js.create_stream(jetstream::stream::Config {
            name: "DURABILITY".into(),
            subjects: vec!["durability.>".into()],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
        let payload = vec![b'x'; 1024];
        let awaited = awaited(&js, &payload).await;
        let (pipelined, p99) = pipelined(&js, &payload).await?;
        println!(
            "{sync:>16} | {:>12.0} {:>8.2} {:>8.2} | {pipelined:>14.0} {p99:>10.2}",
            awaited.rate, awaited.p50, awaited.p99
        );
    }
    Ok(())
}

/// 16 publishers, each waiting for its ack before the next.
async fn awaited(js: &jetstream::Context, payload: &[u8]) -> Figures {
    let (js, payload) = (js.clone(), payload.to_vec());
    closed_loop(16, move |client, n| {
        let (js, payload) = (js.clone(), payload.clone());
        async move {
            js.publish(format!("durability.{client}.{n}"), payload.into())
                .await
                .expect("the server takes it")
                .await
                .expect("the stream acknowledges it");
        }
    })
    .await
}

/// [`PIPELINED`] publishes, a thousand in flight at a time (the context
/// lets at most 5,000 acks wait): the rate, and the p99 of publish → ack.
async fn pipelined(js: &jetstream::Context, payload: &[u8]) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(PIPELINED);
    for chunk in (0..PIPELINED).collect::<Vec<_>>().chunks(1_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for n in chunk {
            let sent = Instant::now();
            let ack = js
                .publish(format!("durability.pipelined.{n}"), payload.to_vec().into())
                .await?;
            acks.push((sent, ack));
        }
        for (sent, ack) in acks {
            tokio::time::timeout(Duration::from_secs(30), ack).await??;
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let rate = PIPELINED as f64 / started.elapsed().as_secs_f64();
    let (_, p99) = percentiles(&mut latencies);
    Ok((rate, p99))
}
