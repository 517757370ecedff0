//! What users do while the harness kills things: creates (some recurring,
//! some with a reminder due during the run, some in the team's project),
//! changes, completions and deletes over HTTP, each retried with the same
//! `Idempotency-Key` until the system answers, as a careful client would;
//! and the project's owner adding and removing a visitor, who reads the
//! project's tasks at once after each removal. What was acknowledged is
//! kept for the checks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::rng::Rng;

/// How long one operation is retried before it counts as unanswered.
const GIVE_UP: Duration = Duration::from_secs(180);
/// Between two operations of one client: the load of a busy team rather
/// than a flood (the benches measure floods).
const THINK: Duration = Duration::from_millis(150);

#[derive(Debug, Clone)]
pub struct Client {
    pub id: Uuid,
    pub token: String,
}

/// What the clients were told.
#[derive(Debug, Default)]
pub struct Acknowledged {
    /// Task → its creator, for every create answered 201.
    pub created: HashMap<Uuid, Uuid>,
    /// Every delete answered 204 (or 404 after a retry: done before).
    pub deleted: Vec<Uuid>,
    pub updates: usize,
    pub completions: usize,
    /// Operations the system never answered within [`GIVE_UP`].
    pub unanswered: usize,
    /// The team's project, and the tasks created in it.
    pub project: Option<Uuid>,
    pub project_tasks: Vec<Uuid>,
    /// The visitor added or removed (answered).
    pub membership_changes: usize,
    /// Reads by the visitor right after a removal answered, and what they
    /// saw that they should not have.
    pub reads_after_removal: usize,
    pub read_after_removal: Vec<String>,
}

impl Acknowledged {
    pub fn operations(&self) -> usize {
        self.created.len()
            + self.deleted.len()
            + self.updates
            + self.completions
            + self.membership_changes
    }
}

/// A project its owner and the other clients are members of, and a visitor
/// the owner keeps adding and removing.
#[derive(Debug, Clone)]
pub struct Team {
    pub project: Uuid,
    pub owner: Client,
    pub members: Vec<Uuid>,
    pub visitor: Client,
}

pub struct Workload {
    http: reqwest::Client,
    edges: Vec<String>,
    pub acknowledged: Mutex<Acknowledged>,
    /// Each client's tasks that are neither deleted nor complete.
    open: Mutex<HashMap<Uuid, Vec<Uuid>>>,
    pub team: Mutex<Option<Team>>,
}

impl Workload {
    pub fn new(edges: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .expect("a client"),
            edges,
            acknowledged: Mutex::default(),
            open: Mutex::default(),
            team: Mutex::default(),
        })
    }

    /// `owner`'s project with `members` in it, and `visitor` outside.
    pub async fn form_team(&self, owner: &Client, members: &[Client], visitor: Client) {
        let (status, reply) = self
            .send(
                Method::POST,
                "/api/v1/projects",
                Some(owner),
                Some(json!({"name": "chaos team"})),
                None,
            )
            .await
            .expect("the project is made");
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        let project: Uuid = reply["id"].as_str().unwrap().parse().unwrap();
        for member in members {
            self.membership(owner, project, member.id, Some("member"))
                .await;
        }
        self.acknowledged.lock().await.project = Some(project);
        *self.team.lock().await = Some(Team {
            project,
            owner: owner.clone(),
            members: members.iter().map(|member| member.id).collect(),
            visitor,
        });
    }

    /// Adds `user` to `project` with `role`, or removes them (`None`).
    async fn membership(&self, owner: &Client, project: Uuid, user: Uuid, role: Option<&str>) {
        let members = format!("/api/v1/projects/{project}/members");
        let answer = match role {
            Some(role) => {
                let body = json!({"user_id": user, "role": role});
                self.send(Method::POST, &members, Some(owner), Some(body), None)
                    .await
            }
            None => {
                let path = format!("{members}/{user}");
                self.send(Method::DELETE, &path, Some(owner), None, None)
                    .await
            }
        };
        if let Some((status, reply)) = answer {
            // 404 on removal: a retry of a removal that went through.
            assert!(
                matches!(
                    status,
                    StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND
                ),
                "membership: {status} {reply}"
            );
            self.acknowledged.lock().await.membership_changes += 1;
        }
    }

    /// The owner adds the visitor as a viewer and removes them again until
    /// `until`; after each removal the visitor reads the project's tasks at
    /// once, and must see none.
    pub async fn churn(self: Arc<Self>, seed: u64, until: Instant) {
        let Some(team) = self.team.lock().await.clone() else {
            return;
        };
        let mut rng = Rng::new(seed);
        while Instant::now() < until {
            let (owner, visitor) = (&team.owner, &team.visitor);
            self.membership(owner, team.project, visitor.id, Some("viewer"))
                .await;
            tokio::time::sleep(THINK * (1 + rng.below(6) as u32)).await;
            self.membership(owner, team.project, visitor.id, None).await;
            self.read_as_removed(&team).await;
            tokio::time::sleep(THINK * (1 + rng.below(6) as u32)).await;
        }
    }

    /// What the removed visitor reads of the project: nothing.
    pub async fn read_as_removed(&self, team: &Team) {
        let path = format!("/api/v1/tasks?project_id={}", team.project);
        let Some((status, reply)) = self
            .send(Method::GET, &path, Some(&team.visitor), None, None)
            .await
        else {
            return;
        };
        let seen = reply["items"].as_array().map_or(0, Vec::len);
        let mut acknowledged = self.acknowledged.lock().await;
        acknowledged.reads_after_removal += 1;
        if status == StatusCode::OK && seen > 0 {
            acknowledged.read_after_removal.push(format!(
                "the visitor, removed, listed {seen} of the project's tasks ({status})"
            ));
        }
    }

    pub async fn register(&self, name: &str) -> Client {
        let email = format!("{name}-{}@example.com", Uuid::now_v7().simple());
        let body = json!({"email": email, "name": name, "password": "correct horse battery"});
        let (status, reply) = self
            .send(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(body),
                None,
            )
            .await
            .expect("registration is answered");
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        Client {
            id: reply["id"].as_str().unwrap().parse().unwrap(),
            token: reply["token"].as_str().unwrap().to_owned(),
        }
    }

    /// One client's loop until `until`.
    pub async fn run(self: Arc<Self>, client: Client, seed: u64, until: Instant) {
        let mut rng = Rng::new(seed);
        while Instant::now() < until {
            tokio::time::sleep(THINK).await;
            let open = self
                .open
                .lock()
                .await
                .get(&client.id)
                .cloned()
                .unwrap_or_default();
            let pick = rng.below(100);
            if open.is_empty() || pick < 45 {
                self.create(&client, &mut rng).await;
                continue;
            }
            let task = open[rng.below(open.len() as u64) as usize];
            match pick {
                45..=69 => self.update(&client, task, &mut rng).await,
                70..=89 => self.complete(&client, task).await,
                _ => self.delete(&client, task).await,
            }
        }
    }

    /// After the run, the removed visitor's audit and schedules: none of
    /// the project's tasks.
    pub async fn read_history_as_removed(&self) {
        let Some(team) = self.team.lock().await.clone() else {
            return;
        };
        self.read_as_removed(&team).await;
        let project_tasks = self.acknowledged.lock().await.project_tasks.clone();
        for list in ["/api/v1/audit?limit=200", "/api/v1/schedules?limit=200"] {
            let Some((_, reply)) = self
                .send(Method::GET, list, Some(&team.visitor), None, None)
                .await
            else {
                continue;
            };
            let items = reply["items"].as_array().cloned().unwrap_or_default();
            let seen = items
                .iter()
                .filter_map(|item| item["task_id"].as_str()?.parse::<Uuid>().ok())
                .filter(|task| project_tasks.contains(task))
                .count();
            let mut acknowledged = self.acknowledged.lock().await;
            acknowledged.reads_after_removal += 1;
            if seen > 0 {
                acknowledged.read_after_removal.push(format!(
                    "the visitor, removed, reads {seen} of the project's tasks in {list}"
                ));
            }
        }
    }

    async fn create(&self, client: &Client, rng: &mut Rng) {
        let mut body = json!({"title": format!("chaos {}", rng.below(1_000_000))});
        let project = self
            .team
            .lock()
            .await
            .as_ref()
            .filter(|team| team.owner.id == client.id || team.members.contains(&client.id))
            .map(|team| team.project);
        let in_project = project.filter(|_| rng.below(3) == 0);
        if let Some(project) = in_project {
            body["project_id"] = json!(project);
        }
        match rng.below(10) {
            0 | 1 => {
                body["due_date"] = json!(Utc::now() + chrono::Duration::days(1));
                body["recurrence"] = json!({"frequency": "daily"});
            }
            2 | 3 => {
                let seconds = 2 + rng.below(20) as i64;
                body["reminder_time"] = json!(Utc::now() + chrono::Duration::seconds(seconds));
            }
            _ => {}
        }
        let key = Uuid::now_v7().to_string();
        let Some((status, reply)) = self
            .send(
                Method::POST,
                "/api/v1/tasks",
                Some(client),
                Some(body),
                Some(&key),
            )
            .await
        else {
            return;
        };
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        let task: Uuid = reply["id"].as_str().unwrap().parse().unwrap();
        let mut acknowledged = self.acknowledged.lock().await;
        acknowledged.created.insert(task, client.id);
        if in_project.is_some() {
            acknowledged.project_tasks.push(task);
        }
        drop(acknowledged);
        self.open
            .lock()
            .await
            .entry(client.id)
            .or_default()
            .push(task);
    }

    async fn update(&self, client: &Client, task: Uuid, rng: &mut Rng) {
        let body = json!({"title": format!("changed {}", rng.below(1_000_000))});
        let path = format!("/api/v1/tasks/{task}");
        if let Some((status, reply)) = self
            .send(Method::PATCH, &path, Some(client), Some(body), None)
            .await
        {
            assert!(status == StatusCode::OK, "update: {status} {reply}");
            self.acknowledged.lock().await.updates += 1;
        }
    }

    async fn complete(&self, client: &Client, task: Uuid) {
        let path = format!("/api/v1/tasks/{task}/complete");
        if let Some((status, reply)) = self
            .send(Method::POST, &path, Some(client), None, None)
            .await
        {
            assert!(status == StatusCode::OK, "complete: {status} {reply}");
            self.acknowledged.lock().await.completions += 1;
            self.close(client, task).await;
        }
    }

    async fn delete(&self, client: &Client, task: Uuid) {
        let path = format!("/api/v1/tasks/{task}");
        if let Some((status, reply)) = self
            .send(Method::DELETE, &path, Some(client), None, None)
            .await
        {
            // 404: a retry of a delete that went through the first time.
            assert!(
                matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_FOUND),
                "delete: {status} {reply}"
            );
            self.acknowledged.lock().await.deleted.push(task);
            self.close(client, task).await;
        }
    }

    async fn close(&self, client: &Client, task: Uuid) {
        if let Some(open) = self.open.lock().await.get_mut(&client.id) {
            open.retain(|open| *open != task);
        }
    }

    /// Sends until the system gives an answer that is not "try again"
    /// (a transport error, 409 in flight, 429, 5xx), on either edge; `None`
    /// when it never does within [`GIVE_UP`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        client: Option<&Client>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Option<(StatusCode, Value)> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut edge = Uuid::now_v7().as_u128() as usize;
        while started.elapsed() < GIVE_UP {
            edge += 1;
            let url = format!("{}{path}", self.edges[edge % self.edges.len()]);
            let mut request = self.http.request(method.clone(), url);
            if let Some(client) = client {
                request = request.bearer_auth(&client.token);
            }
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            if let Ok(response) = request.send().await {
                let status = response.status();
                let retry = status.is_server_error()
                    || status == StatusCode::CONFLICT
                    || status == StatusCode::TOO_MANY_REQUESTS;
                if !retry {
                    let reply = response.json().await.unwrap_or(Value::Null);
                    return Some((status, reply));
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        self.acknowledged.lock().await.unanswered += 1;
        None
    }
}
