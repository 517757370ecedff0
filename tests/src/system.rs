//! `TestSystem`: the whole product on a private nats-server and private
//! databases, with typed helpers for HTTP and the streams.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_livefeed::LiveFeed;
use taskflow_runtime::http::ops::Readiness;
use taskflow_runtime::service::RunningService;
use taskflow_runtime::{Platform, Settings, Shutdown};
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::events;
use taskflow_schemas::subjects::audit_subject;
use taskflow_schemas::user::Role;
use uuid::Uuid;

use crate::NatsServer;
use crate::api::{Api, Reply, User};

/// Instances of each service a system runs: `TASKFLOW_TEST_INSTANCES`
/// (default 1). With 2, every service runs twice against the same database
/// and streams, as two processes would: shared durable consumers, one relay
/// publishing at a time, each reminder fired once.
pub fn instances() -> usize {
    std::env::var("TASKFLOW_TEST_INSTANCES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// How the edge reaches the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// As in the all-in-one `taskflow` binary: straight to the co-located workers.
    InProcess,
    /// As with a separate `taskflow-edge`: NATS request-reply only.
    Nats,
}

pub struct TestSystem {
    pub nats: NatsServer,
    pub settings: Settings,
    pub platform: Platform,
    /// The running services, in the order of `taskflow::SERVICES`.
    pub services: Vec<RunningService>,
    pub feed: Option<LiveFeed>,
    pub base_url: String,
    pub http: reqwest::Client,
    transport: Transport,
    edge_addr: SocketAddr,
    edge: Option<(Shutdown, tokio::task::JoinHandle<()>)>,
}

/// One message read back from a stream.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub request_id: Option<String>,
    pub envelope: EventEnvelope,
}

impl TestSystem {
    pub async fn spawn() -> Self {
        Self::spawn_with(Transport::InProcess).await
    }

    pub async fn spawn_with(transport: Transport) -> Self {
        // Two tests run at once; Postgres allows 100 connections.
        Self::spawn_tuned(transport, 8 / instances() as u32).await
    }

    /// With `connections` per service database (the product's default is 24).
    pub async fn spawn_tuned(transport: Transport, connections: u32) -> Self {
        Self::spawn_configured(transport, connections, &[]).await
    }

    /// With `settings` (environment variable, value) on top of the test's own.
    /// Tests write in bulk from one address and one user, so the general
    /// rate limits are off unless a test sets them; login and register keep
    /// the product's.
    pub async fn spawn_configured(
        transport: Transport,
        connections: u32,
        settings: &[(&str, &str)],
    ) -> Self {
        taskflow_runtime::platform::telemetry::init();
        let nats = NatsServer::start().await;
        let prefix = format!("tft_{}_", &Uuid::now_v7().simple().to_string()[20..]);
        let mut pairs: Vec<(String, String)> = settings
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        pairs.extend([
            ("NATS_URL".into(), nats.url()),
            ("TASKFLOW_DATABASE_PREFIX".into(), prefix),
            (
                "TASKFLOW_DATABASE_MAX_CONNECTIONS".into(),
                connections.to_string(),
            ),
            (
                "DATABASE_URL".into(),
                std::env::var("DATABASE_URL").unwrap_or_default(),
            ),
            ("TASKFLOW_RATE_LIMIT_IP".into(), "off".into()),
            ("TASKFLOW_RATE_LIMIT_USER".into(), "off".into()),
        ]);
        // The first value of a name wins: the test's own come first.
        let settings = Settings::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
        .expect("test settings are valid");
        let platform = Platform::connect(settings.clone(), "taskflow-test", Shutdown::new())
            .await
            .expect("nats connects");
        let edge_addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let mut system = Self {
            nats,
            settings,
            platform,
            services: Vec::new(),
            feed: None,
            base_url: String::new(),
            // The edge restarts in some tests; pooled connections to the old one would fail.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("a client"),
            transport,
            edge_addr,
            edge: None,
        };
        system.feed = Some(
            LiveFeed::start(&system.platform)
                .await
                .expect("the live feed starts"),
        );
        for _ in 0..instances() {
            let running = taskflow_runtime::platform::process::start_all(
                &system.platform,
                taskflow::SERVICES,
            )
            .await
            .expect("the services start");
            system.services.extend(running);
        }
        system.restart_edge().await;
        system
    }

    /// Starts the service `name` of `taskflow::SERVICES` again, as many
    /// instances of it as the system runs.
    pub async fn start_service(&mut self, name: &str) {
        let definition = taskflow::SERVICES
            .iter()
            .find(|service| service.name() == name)
            .unwrap_or_else(|| panic!("no service {name}"));
        for _ in 0..instances() {
            let running = definition
                .start(&self.platform)
                .await
                .unwrap_or_else(|error| panic!("{name} starts: {error}"));
            self.services.push(running);
        }
        let order = |running: &RunningService| {
            taskflow::SERVICES
                .iter()
                .position(|service| service.name() == running.name)
        };
        self.services.sort_by_key(order);
        self.restart_edge().await;
    }

    /// Drains every instance of the service `name` and stops it (relay and
    /// consumers included).
    pub async fn stop_service(&mut self, name: &str) {
        while let Some(index) = self.services.iter().position(|s| s.name == name) {
            self.services.remove(index).stop().await;
        }
        self.restart_edge().await;
    }

    /// The running service `name` (its first instance).
    pub fn service(&self, name: &str) -> &RunningService {
        self.services
            .iter()
            .find(|service| service.name == name)
            .unwrap_or_else(|| panic!("the {name} service runs"))
    }

    pub async fn start_tasks(&mut self) {
        self.start_service("tasks").await
    }

    pub async fn stop_tasks(&mut self) {
        self.stop_service("tasks").await
    }

    pub fn tasks(&self) -> &RunningService {
        self.service("tasks")
    }

    pub async fn start_audit(&mut self) {
        self.start_service("audit").await
    }

    pub async fn stop_audit(&mut self) {
        self.stop_service("audit").await
    }

    pub fn audit(&self) -> &RunningService {
        self.service("audit")
    }

    /// Swaps in another live feed (other keepalive timings, say).
    pub async fn replace_feed(&mut self, feed: LiveFeed) {
        if let Some(old) = self.feed.replace(feed) {
            old.stop().await;
        }
        self.restart_edge().await;
    }

    /// (Re)starts the edge on the same address, wired to the running services.
    async fn restart_edge(&mut self) {
        if let Some((shutdown, server)) = self.edge.take() {
            shutdown.cancel();
            let _ = server.await;
        }
        let local = match self.transport {
            Transport::Nats => Vec::new(),
            Transport::InProcess => self.services.iter().map(|s| s.local.clone()).collect(),
        };
        let readiness = Readiness::of("taskflow", &self.platform, &self.services);
        let shutdown = Shutdown::new();
        let feed = self.feed.as_ref().expect("the live feed runs");
        let live = taskflow_edge::LiveFeedRoutes {
            routes: taskflow_livefeed::router(feed, &self.platform, shutdown.clone()),
            connections: feed.counter(),
        };
        let edge = taskflow_edge::EdgeSettings::read(&self.settings).expect("edge settings");
        let app = taskflow_edge::app(&self.platform, &edge, readiness, local, live);
        let (bound, server) = taskflow_edge::serve(self.edge_addr, app, shutdown.clone())
            .await
            .expect("the edge binds");
        self.edge_addr = bound;
        self.base_url = format!("http://{bound}");
        self.edge = Some((shutdown, server));
    }

    /// Stops everything and drops the test's databases.
    pub async fn stop(mut self) {
        if let Some((shutdown, server)) = self.edge.take() {
            shutdown.cancel();
            let _ = server.await;
        }
        for service in self.services.drain(..) {
            service.stop().await;
        }
        if let Some(feed) = self.feed.take() {
            feed.stop().await;
        }
        drop_databases(&self.settings).await;
    }

    // ---- HTTP ----

    /// The edge's API as a client reaches it.
    pub fn api(&self) -> Api {
        Api {
            http: self.http.clone(),
            base_url: self.base_url.clone(),
        }
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        self.api().request(method, path, token)
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Reply {
        self.api().send(builder).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.api().call(method, path, token, body).await
    }

    pub async fn register(&self, name: &str) -> User {
        self.api().register(name).await
    }

    /// Logs the user in again and returns their new token.
    pub async fn login(&self, user: &User) -> String {
        self.api().login(user).await
    }

    /// Grants the user the admin role (`make-admin`), waits until every
    /// service knows, and returns them with the token of a fresh login,
    /// which carries the role.
    pub async fn make_admin(&self, user: User) -> User {
        self.set_role(&user, Role::Admin).await;
        User {
            token: self.login(&user).await,
            ..user
        }
    }

    /// Takes the admin role back (`revoke-admin`) and waits until every
    /// service knows; the user keeps the token they had.
    pub async fn revoke_admin(&self, user: &User) {
        self.set_role(user, Role::Member).await;
    }

    async fn set_role(&self, user: &User, role: Role) {
        let identity = &self.service("identity").pool;
        taskflow_identity::service::set_role(identity, &user.email, role)
            .await
            .expect("the user exists");
        self.settle_directories().await;
    }

    /// Waits until every user, role and project change made so far reached
    /// the directory of every running service: identity's and projects'
    /// outboxes are published, and no `<service>-directory` consumer has
    /// anything pending.
    pub async fn settle_directories(&self) {
        crate::wait_until(
            "the directories to settle",
            Duration::from_secs(10),
            || async {
                for service in &self.services {
                    let unpublished: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                    )
                    .fetch_one(&service.pool)
                    .await
                    .ok()?;
                    if unpublished > 0 && service.publishes_directory {
                        return None;
                    }
                }
                let audit = self.platform.jetstream.get_stream("AUDIT").await.ok()?;
                for service in &self.services {
                    let durable = format!("{}-directory", service.name);
                    let Ok(mut consumer) = audit
                        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&durable)
                        .await
                    else {
                        continue;
                    };
                    let info = consumer.info().await.ok()?;
                    if info.num_pending > 0 || info.num_ack_pending > 0 {
                        return None;
                    }
                }
                // The live feed's directory, in memory: the last change it applied.
                let Some(feed) = &self.feed else {
                    return Some(());
                };
                let mut last = 0;
                for event_type in [
                    events::PROJECT_CREATED,
                    events::PROJECT_UPDATED,
                    events::PROJECT_DELETED,
                    events::PROJECT_MEMBER_ADDED,
                    events::PROJECT_MEMBER_ROLE_CHANGED,
                    events::PROJECT_MEMBER_REMOVED,
                    events::USER_ROLE_CHANGED,
                ] {
                    if let Ok(message) = audit
                        .get_last_raw_message_by_subject(&audit_subject(event_type))
                        .await
                    {
                        last = last.max(message.sequence);
                    }
                }
                (feed.directory_applied() >= last).then_some(())
            },
        )
        .await;
    }

    /// The edge's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.base_url))
            .send()
            .await
            .expect("the edge answers");
        response.text().await.expect("a text body")
    }

    /// Creates `count` tasks titled `<prefix> <n>` over HTTP, `concurrency`
    /// at a time, asserting 201 for each.
    pub async fn create_tasks(&self, user: &User, prefix: &str, count: usize, concurrency: usize) {
        use futures::StreamExt;
        let url = format!("{}/api/v1/tasks", self.base_url);
        futures::stream::iter(0..count)
            .for_each_concurrent(concurrency, |n| {
                let request = self
                    .http
                    .post(&url)
                    .bearer_auth(&user.token)
                    .json(&json!({"title": format!("{prefix} {n}")}));
                async move {
                    assert_eq!(
                        request.send().await.expect("the edge answers").status(),
                        StatusCode::CREATED
                    )
                }
            })
            .await;
    }

    /// Creates a task and returns it, asserting 201.
    pub async fn create_task(&self, user: &User, body: Value) -> Value {
        let reply = self
            .call(Method::POST, "/api/v1/tasks", Some(&user.token), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    // ---- streams ----

    /// Publishes `payload` on `subject` as an outside client would (the
    /// nats CLI's `pub -H Nats-Msg-Id:<msg_id>`), and waits for the stream's ack.
    pub async fn inject(&self, subject: String, payload: Vec<u8>, msg_id: &str) {
        let message = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(msg_id);
        self.platform
            .jetstream
            .send_publish(subject, message)
            .await
            .expect("the server takes the publish")
            .await
            .expect("the stream acknowledges it");
    }

    /// Every message the stream holds, in order, as stored.
    pub async fn raw_messages(
        &self,
        stream: &str,
    ) -> Vec<async_nats::jetstream::message::StreamMessage> {
        let mut handle = self
            .platform
            .jetstream
            .get_stream(stream)
            .await
            .expect("the stream exists");
        let state = handle.info().await.expect("stream info").state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for seq in state.first_sequence..=state.last_sequence {
            if let Ok(message) = handle.get_raw_message(seq).await {
                messages.push(message);
            }
        }
        messages
    }

    /// Every event the stream holds, in order (injected messages that are
    /// no envelope left out).
    pub async fn stream_events(&self, stream: &str) -> Vec<StoredEvent> {
        self.raw_messages(stream)
            .await
            .into_iter()
            .filter_map(|message| {
                let header = |name: &str| {
                    message
                        .headers
                        .get(name)
                        .map(|value| value.as_str().to_owned())
                };
                Some(StoredEvent {
                    seq: message.sequence,
                    subject: message.subject.to_string(),
                    msg_id: header("Nats-Msg-Id"),
                    request_id: header("X-Request-Id"),
                    envelope: serde_json::from_slice(&message.payload).ok()?,
                })
            })
            .collect()
    }

    /// What `consumer` parked in the DLQ (`dlq.<consumer>`), in order.
    pub async fn dlq_of(
        &self,
        consumer: &str,
    ) -> Vec<async_nats::jetstream::message::StreamMessage> {
        let subject = format!("dlq.{consumer}");
        let mut parked = self.raw_messages("DLQ").await;
        parked.retain(|message| message.subject.as_str() == subject);
        parked
    }

    /// Waits until `consumer` has parked a message in the DLQ, then returns
    /// every one it parked.
    pub async fn wait_for_dlq(
        &self,
        consumer: &str,
        limit: Duration,
    ) -> Vec<async_nats::jetstream::message::StreamMessage> {
        crate::wait_until(
            &format!("a message of {consumer} in the DLQ"),
            limit,
            || async {
                let parked = self.dlq_of(consumer).await;
                (!parked.is_empty()).then_some(parked)
            },
        )
        .await
    }

    /// Waits until the stream holds at least `count` messages, then returns them all.
    pub async fn wait_for_events(&self, stream: &str, count: usize) -> Vec<StoredEvent> {
        let js = self.platform.jetstream.clone();
        let stream_name = stream.to_owned();
        crate::wait_until(
            &format!("{count} messages on {stream}"),
            Duration::from_secs(10),
            || {
                let js = js.clone();
                let stream_name = stream_name.clone();
                async move {
                    let mut handle = js.get_stream(&stream_name).await.ok()?;
                    let messages = handle.info().await.ok()?.state.messages;
                    (messages as usize >= count).then_some(())
                }
            },
        )
        .await;
        self.stream_events(stream).await
    }

    /// The events of one task on `TASKS`, in stream order.
    pub async fn task_events(&self, task_id: Uuid) -> Vec<StoredEvent> {
        self.stream_events("TASKS")
            .await
            .into_iter()
            .filter(|event| event.envelope.task_id == Some(task_id))
            .collect()
    }
}

/// Drops the databases of `settings`' prefix.
pub async fn drop_databases(settings: &Settings) {
    let server: sqlx::postgres::PgConnectOptions =
        settings.database_url.parse().expect("a valid DATABASE_URL");
    if let Ok(pool) = sqlx::PgPool::connect_with(server.database("postgres")).await {
        let ours: Vec<String> =
            sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
                .bind(&settings.database_prefix)
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
        for database in ours {
            let drop = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
        }
    }
}

/// The `id` of a task body, as a UUID.
pub fn id_of(task: &Value) -> Uuid {
    task["id"].as_str().expect("an id").parse().expect("a uuid")
}
