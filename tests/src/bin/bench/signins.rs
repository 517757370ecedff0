//! Sign-ins under a burst: 8, 32 and 128 people signing in at once, each
//! with their own account (the per-account and per-address limits are off
//! in the bench), in a closed loop. A sign-in is an Argon2 hash: the
//! figure is the hashing pool's, and the 503s say how many could not start
//! within the queue's deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use taskflow_system_tests::User;

use crate::report::Report;
use crate::system::BenchSystem;
use crate::{Figures, closed_loop};

pub const CLIENTS: [usize; 3] = [8, 32, 128];

pub async fn run(
    system: &BenchSystem,
    http: &reqwest::Client,
    report: &mut Report,
) -> anyhow::Result<()> {
    let most = CLIENTS.iter().copied().max().unwrap_or(0);
    let mut people = Vec::with_capacity(most);
    for n in 0..most {
        people.push(system.register(&format!("Signer{n}")).await);
    }
    let people = Arc::new(people);
    println!();
    println!("Sign-ins: each client one account, signing in again and again");
    println!(
        "{:>8} | {:>11} {:>8} {:>8} | {:>6}",
        "clients", "sign-ins/s", "p50 ms", "p99 ms", "503s"
    );
    for clients in CLIENTS {
        let (figures, refused) = sign_ins(system, http, &people, clients).await;
        let signed_in =
            figures.rate * (figures.count - refused) as f64 / figures.count.max(1) as f64;
        println!(
            "{clients:>8} | {signed_in:>11.1} {:>8.1} {:>8.1} | {refused:>6}",
            figures.p50, figures.p99
        );
        report.add(
            format!("sign-ins/s, {clients} at once"),
            signed_in,
            "/s",
            None,
            None,
        );
        report.add(
            format!("sign-in p99, {clients} at once ({refused} answered 503)"),
            figures.p99,
            "ms",
            None,
            None,
        );
    }
    Ok(())
}

/// Sign-ins of `clients` people at once for the bench's run time (every
/// answer's latency), and how many were answered 503.
async fn sign_ins(
    system: &BenchSystem,
    http: &reqwest::Client,
    people: &Arc<Vec<User>>,
    clients: usize,
) -> (Figures, usize) {
    let url = format!("{}/api/v1/auth/login", system.base_url);
    let refused = Arc::new(AtomicUsize::new(0));
    let figures = closed_loop(clients, {
        let (http, people, refused) = (http.clone(), people.clone(), refused.clone());
        move |client, _| {
            let (http, url, refused) = (http.clone(), url.clone(), refused.clone());
            let email = people[client].email.clone();
            async move {
                let body = json!({"email": email, "password": "correct horse battery"});
                let reply = http.post(&url).json(&body).send().await.expect("an answer");
                match reply.status() {
                    reqwest::StatusCode::OK => {}
                    reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("a sign-in answered {other}"),
                }
            }
        }
    })
    .await;
    (figures, refused.load(Ordering::Relaxed))
}
