//! What authorization costs: creates and lists for a user in no project and
//! for one in 50 projects, each with 10,000 tasks to read, in one run; and
//! how long a membership change takes to change access, on REST and on an
//! open WebSocket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_system_tests::ws::FeedClient;
use taskflow_system_tests::{User, id_of};

use crate::system::BenchSystem;

use crate::{Figures, closed_loop, percentiles};

/// Projects the member belongs to.
const PROJECTS: usize = 50;
/// Tasks each user may read.
const VISIBLE: usize = 10_000;
/// Membership changes timed.
const CHANGES: usize = 50;

pub async fn run(system: &BenchSystem, http: &reqwest::Client) -> anyhow::Result<()> {
    let solo = system.register("Solo").await;
    let member = system.register("Member").await;
    let owner = system.register("Owner").await;
    let mut projects = Vec::with_capacity(PROJECTS);
    for n in 0..PROJECTS {
        let project = new_project(system, &owner, &format!("bench {n}")).await?;
        add_member(system, &owner, &project, &member).await?;
        projects.push(project);
    }
    system.settle_directories().await;
    let private: Vec<Value> = (0..VISIBLE)
        .map(|n| json!({"title": format!("private {n}")}))
        .collect();
    let shared: Vec<Value> = (0..VISIBLE)
        .map(|n| json!({"title": format!("shared {n}"), "project_id": projects[n % PROJECTS]}))
        .collect();
    populate(system, http, &solo, private).await;
    populate(system, http, &owner, shared).await;
    crate::consumer::wait_for_every_consumer(system).await;

    println!();
    println!("Authorization: 16 clients, each user reading {VISIBLE} tasks (creates add more)");
    println!(
        "{:>22} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8}",
        "", "creates/s", "p50 ms", "p99 ms", "lists/s", "p50 ms", "p99 ms"
    );
    let projects = Arc::new(projects);
    for (label, user, in_projects) in [
        ("in no project", &solo, false),
        (&*format!("in {PROJECTS} projects") as &str, &member, true),
    ] {
        let creates = creates(system, http, user, in_projects.then(|| projects.clone())).await;
        crate::consumer::wait_for_every_consumer(system).await;
        let lists = lists(system, http, user).await;
        println!(
            "{label:>22} | {:>9.0} {:>8.2} {:>8.2} | {:>9.0} {:>8.2} {:>8.2}",
            creates.rate, creates.p50, creates.p99, lists.rate, lists.p50, lists.p99
        );
        crate::consumer::wait_for_every_consumer(system).await;
    }
    membership_changes(system, http, &owner).await
}

async fn call(
    system: &BenchSystem,
    user: &User,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let reply = system.call(method, path, Some(&user.token), body).await;
    anyhow::ensure!(
        reply.status.is_success(),
        "{path}: {} {}",
        reply.status,
        reply.body
    );
    Ok(reply.body)
}

async fn new_project(system: &BenchSystem, owner: &User, name: &str) -> anyhow::Result<String> {
    let body = call(
        system,
        owner,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": name})),
    )
    .await?;
    Ok(body["id"].as_str().unwrap_or_default().to_owned())
}

async fn add_member(
    system: &BenchSystem,
    owner: &User,
    project: &str,
    user: &User,
) -> anyhow::Result<()> {
    let body = json!({"user_id": user.id, "role": "member"});
    call(
        system,
        owner,
        Method::POST,
        &format!("/api/v1/projects/{project}/members"),
        Some(body),
    )
    .await?;
    Ok(())
}

async fn remove_member(
    system: &BenchSystem,
    owner: &User,
    project: &str,
    user: &User,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/projects/{project}/members/{}", user.id);
    let reply = system
        .call(Method::DELETE, &path, Some(&owner.token), None)
        .await;
    anyhow::ensure!(
        reply.status == StatusCode::NO_CONTENT,
        "{path}: {}",
        reply.status
    );
    Ok(())
}

/// Creates the tasks over HTTP, 32 at a time.
async fn populate(system: &BenchSystem, http: &reqwest::Client, user: &User, bodies: Vec<Value>) {
    let url = format!("{}/api/v1/tasks", system.base_url);
    futures::stream::iter(bodies)
        .for_each_concurrent(32, |body| {
            let request = http.post(&url).bearer_auth(&user.token).json(&body);
            async move {
                let response = request.send().await.expect("the edge answers");
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        })
        .await;
}

async fn creates(
    system: &BenchSystem,
    http: &reqwest::Client,
    user: &User,
    projects: Option<Arc<Vec<String>>>,
) -> Figures {
    let url = Arc::new(format!("{}/api/v1/tasks", system.base_url));
    let token = Arc::new(user.token.clone());
    let http = http.clone();
    closed_loop(16, move |client, n| {
        let (http, url, token, projects) =
            (http.clone(), url.clone(), token.clone(), projects.clone());
        async move {
            let mut body = json!({"title": format!("authz {client}-{n}")});
            if let Some(projects) = projects {
                body["project_id"] = json!(projects[(client + n as usize) % projects.len()]);
            }
            let response = http
                .post(&*url)
                .bearer_auth(&*token)
                .json(&body)
                .send()
                .await
                .expect("the edge answers");
            assert_eq!(response.status(), StatusCode::CREATED);
            let _ = response.bytes().await;
        }
    })
    .await
}

async fn lists(system: &BenchSystem, http: &reqwest::Client, user: &User) -> Figures {
    let url = Arc::new(format!("{}/api/v1/tasks?limit=50", system.base_url));
    let token = Arc::new(user.token.clone());
    let http = http.clone();
    closed_loop(16, move |_, _| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let response = http
                .get(&*url)
                .bearer_auth(&*token)
                .send()
                .await
                .expect("the edge answers");
            assert_eq!(response.status(), StatusCode::OK);
            let page: Value = response.json().await.expect("a page");
            assert_eq!(page["items"].as_array().map(Vec::len), Some(50));
        }
    })
    .await
}

/// Adds a user to a project and takes them out again, [`CHANGES`] times:
/// from each reply to the first read that the change lets through (REST,
/// read as fast as the edge answers) and, for a removal, to the `revoked`
/// frame on the user's open WebSocket.
async fn membership_changes(
    system: &BenchSystem,
    http: &reqwest::Client,
    owner: &User,
) -> anyhow::Result<()> {
    let joiner = system.register("Joiner").await;
    let project = new_project(system, owner, "revolving door").await?;
    let task = call(
        system,
        owner,
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"title": "door", "project_id": project})),
    )
    .await?;
    let path = format!("{}/api/v1/tasks/{}", system.base_url, id_of(&task));
    system.settle_directories().await;
    let mut feed = FeedClient::connect(&system.base_url, &format!("?token={}", joiner.token)).await;
    feed.until("ready", Duration::from_secs(5)).await;
    let (mut granted, mut revoked_rest, mut revoked_ws) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..CHANGES {
        add_member(system, owner, &project, &joiner).await?;
        let added = Instant::now();
        until_status(http, &path, &joiner, StatusCode::OK).await;
        granted.push(added.elapsed().as_secs_f64() * 1000.0);

        remove_member(system, owner, &project, &joiner).await?;
        let removed = Instant::now();
        let rest = async {
            until_status(http, &path, &joiner, StatusCode::NOT_FOUND).await;
            removed.elapsed().as_secs_f64() * 1000.0
        };
        let ws = async {
            let (_, frame) = feed.until("revoked", Duration::from_secs(10)).await;
            assert_eq!(frame["task_id"], task["id"]);
            removed.elapsed().as_secs_f64() * 1000.0
        };
        let (rest, ws) = tokio::join!(rest, ws);
        revoked_rest.push(rest);
        revoked_ws.push(ws);
    }
    println!("Membership change → access change, {CHANGES} times each (from the change's reply)");
    for (what, samples) in [
        ("added → task readable over REST", &mut granted),
        ("removed → task 404 over REST", &mut revoked_rest),
        ("removed → revoked frame on the WebSocket", &mut revoked_ws),
    ] {
        let (p50, p99) = percentiles(samples);
        println!("  {what:<42} p50 {p50:.2} ms, p99 {p99:.2} ms");
    }
    Ok(())
}

/// Reads `path` as `user` until it answers `status`.
async fn until_status(http: &reqwest::Client, path: &str, user: &User, status: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http
            .get(path)
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("the edge answers");
        if response.status() == status {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never answered {status}");
    }
}
