//! `just bench scale`: the lists and the search at a million tasks and a
//! million audit records, for one user who owns them and for a project of
//! 20 members that holds as many; and what the indexes that keep them fast
//! cost the creates.
//!
//! The rows are seeded in bulk into the services' own tables (tasks, the
//! access rule's tables, audit records), with the ids, shapes and spread
//! that the services write; the requests go through the edge as a client's
//! would.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::report::{Goal, Report};
use crate::system::BenchSystem;

/// Tasks of the one user, and again of the project; as many audit records.
const ROWS: i64 = 1_000_000;
/// Members of the project, its owner included.
const MEMBERS: usize = 20;
/// Requests per list, one after another.
const SAMPLES: usize = 50;
/// Of each million, this many are pending and urgent and have "needle" in
/// their title.
const RARE: i64 = 20;

/// The indexes the lists' filters and the search need beyond those the
/// tasks table had: what the creates are measured with and without.
const FILTER_INDEXES: [(&str, &str); 5] = [
    (
        "tasks_by_status",
        "CREATE INDEX tasks_by_status ON tasks (status, id DESC)",
    ),
    (
        "tasks_by_priority",
        "CREATE INDEX tasks_by_priority ON tasks (priority, id DESC)",
    ),
    (
        "tasks_by_due_date",
        "CREATE INDEX tasks_by_due_date ON tasks (due_date) WHERE due_date IS NOT NULL",
    ),
    (
        "tasks_by_title_trigrams",
        "CREATE INDEX tasks_by_title_trigrams ON tasks USING GIN (title gin_trgm_ops)",
    ),
    (
        "tasks_by_description_trigrams",
        "CREATE INDEX tasks_by_description_trigrams ON tasks USING GIN (description gin_trgm_ops)",
    ),
];

/// A task id like the services make (UUID v7: time first, so ids sort by
/// creation), `i` milliseconds apart from `$1`, the first one's time.
const SEEDED_ID: &str = "(lpad(to_hex($1::bigint + i), 12, '0') || '7' || lpad(to_hex(i % 4096), 3, '0') \
     || '8' || lpad(to_hex(i), 15, '0'))::uuid";

pub async fn run(
    system: &BenchSystem,
    http: &reqwest::Client,
    report: &mut Report,
) -> anyhow::Result<()> {
    println!();
    println!(
        "Lists at scale: {ROWS} tasks and audit records of one user, as many of a project of {MEMBERS}"
    );
    let alone = system.register("Alone").await;
    let owner = system.register("Owner").await;
    let project = system
        .call(
            reqwest::Method::POST,
            "/api/v1/projects",
            Some(&owner.token),
            Some(json!({"name": "At scale"})),
        )
        .await;
    anyhow::ensure!(project.status.is_success(), "the project: {}", project.body);
    let project: Uuid = project.body["id"].as_str().unwrap_or_default().parse()?;
    let mut members = Vec::new();
    for n in 1..MEMBERS {
        members.push(system.register(&format!("Member{n}")).await);
    }
    // The projects service knows users from their events.
    system.settle_directories().await;
    for user in &members {
        let added = system
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/members"),
                Some(&owner.token),
                Some(json!({"user_id": user.id, "role": "member"})),
            )
            .await;
        anyhow::ensure!(added.status.is_success(), "a member: {}", added.body);
    }
    let member = members.swap_remove(0);
    system.settle_directories().await;

    let first_ms = (chrono::Utc::now() - chrono::Duration::days(30)).timestamp_millis();
    let started = Instant::now();
    seed_tasks(system.pool("tasks"), first_ms, alone.id, owner.id, project).await?;
    seed_audit(system.pool("audit"), first_ms, alone.id, owner.id, project).await?;
    println!(
        "  seeded {} tasks and {} audit records in {:.0} s",
        2 * ROWS,
        2 * ROWS,
        started.elapsed().as_secs_f64()
    );

    let some_task = seeded_id(system.pool("tasks"), first_ms, ROWS / 2).await?;
    let lists = [
        (
            "tasks, first page of 50",
            "/api/v1/tasks?limit=50".to_owned(),
            Goal::Below(20.0),
        ),
        (
            "tasks, a page of 200",
            "/api/v1/tasks?limit=200".to_owned(),
            Goal::Below(20.0),
        ),
        (
            "tasks pending and urgent (20 match)",
            "/api/v1/tasks?status=pending&priority=urgent".to_owned(),
            Goal::Below(20.0),
        ),
        (
            "tasks due before 2030 (none match)",
            "/api/v1/tasks?due_before=2030-01-01T00:00:00Z".to_owned(),
            Goal::Below(20.0),
        ),
        (
            "tasks searched for `needle` (20 match)",
            "/api/v1/tasks?q=needle".to_owned(),
            Goal::Below(50.0),
        ),
        (
            "tasks searched for `zzzznomatch`",
            "/api/v1/tasks?q=zzzznomatch".to_owned(),
            Goal::Below(50.0),
        ),
        (
            "audit, first page",
            "/api/v1/audit?limit=50".to_owned(),
            Goal::Below(20.0),
        ),
        (
            "audit of task.completed (none match)",
            "/api/v1/audit?event_type=task.completed".to_owned(),
            Goal::Below(20.0),
        ),
        (
            "audit of one task",
            format!("/api/v1/audit?task_id={some_task}"),
            Goal::Below(20.0),
        ),
    ];
    println!(
        "{:<44} {:>22} {:>22}",
        "", "the user (own tasks)", "a project member"
    );
    for (what, path, goal) in lists {
        let mut cells = Vec::new();
        for (who, token) in [
            ("the user", &alone.token),
            ("a project member", &member.token),
        ] {
            let (p50, p99) = timed(system, http, token, &path).await?;
            let next = next_page(system, http, token, &path).await?;
            cells.push(format!("{p50:>6.2} / {p99:>6.2} ms"));
            report.add(
                format!("{what}, {who}, p99 at {ROWS} rows"),
                p99,
                "ms",
                None,
                Some(goal),
            );
            if let Some(next) = next {
                let (_, next_p99) = timed(system, http, token, &next).await?;
                report.add(
                    format!("{what}, its next page, {who}, p99 at {ROWS} rows"),
                    next_p99,
                    "ms",
                    None,
                    Some(goal),
                );
            }
        }
        println!("{what:<44} {:>22} {:>22}", cells[0], cells[1]);
    }

    let (with, without) = create_cost(system, http, &alone.token).await?;
    println!(
        "  HTTP creates, 16 clients, into the seeded table: {with:.0}/s with the filter and search indexes, {without:.0}/s without them ({:.1} % lost)",
        100.0 * (1.0 - with / without)
    );
    report.add(
        format!(
            "HTTP creates/s, 16 clients, at {} tasks, with the filter and search indexes",
            2 * ROWS
        ),
        with,
        "/s",
        Some(("the same without them", without)),
        Some(Goal::RatioAtLeast(0.9)),
    );
    Ok(())
}

async fn seed_tasks(
    pool: &PgPool,
    first_ms: i64,
    alone: Uuid,
    owner: Uuid,
    project: Uuid,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    seed_table(&mut tx, first_ms, alone, owner, project).await?;
    sqlx::raw_sql(
        "INSERT INTO tasks (id, project_id, title, description, status, priority, creator_id, \
           version, created_at, updated_at, due_date) \
         SELECT id, project_id, \
           'Seeded task ' || i || CASE WHEN rare THEN ' needle' ELSE '' END, \
           CASE WHEN i % 3 = 0 THEN 'What needs doing for seeded task ' || i END, \
           CASE WHEN rare THEN 'pending' WHEN i % 2 = 0 THEN 'complete' ELSE 'in_progress' END, \
           CASE WHEN rare THEN 'urgent' WHEN i % 3 = 0 THEN 'high' ELSE 'medium' END, \
           creator_id, 1, now(), now(), \
           CASE WHEN i % 4 = 0 THEN '2031-01-01T09:00:00Z'::timestamptz END \
         FROM seed; \
         INSERT INTO access_tasks (task_id, project_id, version) SELECT id, project_id, 1 FROM seed; \
         INSERT INTO access_named (user_id, task_id) SELECT creator_id, id FROM seed \
           WHERE project_id IS NULL;",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::raw_sql("ANALYZE").execute(pool).await?;
    Ok(())
}

async fn seed_audit(
    pool: &PgPool,
    first_ms: i64,
    alone: Uuid,
    owner: Uuid,
    project: Uuid,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    seed_table(&mut tx, first_ms, alone, owner, project).await?;
    sqlx::raw_sql(
        "INSERT INTO audit_records (id, event_id, event_type, task_id, actor_id, correlation_id, \
           changes, payload, occurred_at, stream, stream_seq) \
         SELECT gen_random_uuid(), gen_random_uuid(), 'task.created', id, creator_id, \
           'seed-' || i, '[]', jsonb_build_object('task', jsonb_build_object('id', id, 'title', \
           'Seeded task ' || i)), now() - interval '30 days' + (i || ' milliseconds')::interval, \
           'TASKS', i \
         FROM seed; \
         INSERT INTO access_tasks (task_id, project_id, version) SELECT id, project_id, 1 FROM seed; \
         INSERT INTO access_named (user_id, task_id) SELECT creator_id, id FROM seed \
           WHERE project_id IS NULL;",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::raw_sql("ANALYZE").execute(pool).await?;
    Ok(())
}

/// `seed`, for this transaction: the `2 * ROWS` tasks to seed, the first
/// half `alone`'s own, the second half `project`'s (made by `owner`), with
/// [`RARE`] of each half marked.
async fn seed_table(
    tx: &mut sqlx::PgConnection,
    first_ms: i64,
    alone: Uuid,
    owner: Uuid,
    project: Uuid,
) -> anyhow::Result<()> {
    let seed = format!(
        "CREATE TEMPORARY TABLE seed ON COMMIT DROP AS \
         SELECT i, {SEEDED_ID} AS id, \
           CASE WHEN i > $2 THEN $4::uuid END AS project_id, \
           CASE WHEN i > $2 THEN $5::uuid ELSE $3::uuid END AS creator_id, \
           i % $2 < $6 AS rare \
         FROM generate_series(1, 2 * $2::bigint) i"
    );
    sqlx::query(sqlx::AssertSqlSafe(seed))
        .bind(first_ms)
        .bind(ROWS)
        .bind(alone)
        .bind(project)
        .bind(owner)
        .bind(RARE)
        .execute(tx)
        .await?;
    Ok(())
}

/// The id of the `n`th seeded task.
async fn seeded_id(pool: &PgPool, first_ms: i64, n: i64) -> anyhow::Result<Uuid> {
    let sql = format!("SELECT {SEEDED_ID} FROM (SELECT $2::bigint AS i) one");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(first_ms)
        .bind(n)
        .fetch_one(pool)
        .await?)
}

/// p50 and p99 of [`SAMPLES`] requests of `path`, one after another, in ms.
async fn timed(
    system: &BenchSystem,
    http: &reqwest::Client,
    token: &str,
    path: &str,
) -> anyhow::Result<(f64, f64)> {
    let url = format!("{}{path}", system.base_url);
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES + 3 {
        let started = Instant::now();
        let response = http.get(&url).bearer_auth(token).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.bytes().await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    // The first few warm the edge's and the services' connections.
    let mut samples = samples.split_off(3);
    Ok(crate::percentiles(&mut samples))
}

/// The path of the page after the first, if there is one.
async fn next_page(
    system: &BenchSystem,
    http: &reqwest::Client,
    token: &str,
    path: &str,
) -> anyhow::Result<Option<String>> {
    let url = format!("{}{path}", system.base_url);
    let page: serde_json::Value = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let separator = if path.contains('?') { '&' } else { '?' };
    Ok(page["next_cursor"]
        .as_str()
        .map(|cursor| format!("{path}{separator}cursor={cursor}")))
}

/// HTTP creates/s at 16 clients with the filter and search indexes, and
/// without them (dropped for the figure, then made again).
async fn create_cost(
    system: &BenchSystem,
    http: &reqwest::Client,
    token: &str,
) -> anyhow::Result<(f64, f64)> {
    let pool = system.pool("tasks");
    crate::settle_outbox_and_consumers(system).await;
    let with = crate::http_creates(system, http, token, 16).await.rate;
    crate::settle_outbox_and_consumers(system).await;
    for (name, _) in FILTER_INDEXES {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(pool)
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let without = crate::http_creates(system, http, token, 16).await.rate;
    crate::settle_outbox_and_consumers(system).await;
    for (_, create) in FILTER_INDEXES {
        sqlx::query(create).execute(pool).await?;
    }
    Ok((with, without))
}
