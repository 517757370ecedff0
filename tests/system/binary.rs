//! The real `taskflow` binary, as `just up` runs it: settings, start, serve,
//! and a clean stop on SIGTERM.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use taskflow_system_tests::{NatsServer, wait_until};

/// `target/<profile>/taskflow`, built by `just test` before the tests.
fn taskflow_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile_dir.join("taskflow");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `just test` (it builds the binaries)",
        binary.display()
    );
    binary
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_taskflow_binary_serves_and_stops_cleanly_on_sigterm() {
    let nats = NatsServer::start().await;
    let port = free_port();
    let prefix = format!("tfb_{}_", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let mut child = Command::new(taskflow_binary())
        .env("NATS_URL", nats.url())
        .env("TASKFLOW_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("TASKFLOW_DATABASE_PREFIX", &prefix)
        .env("TASKFLOW_DATABASE_MAX_CONNECTIONS", "4")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("taskflow starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until("the binary to be ready", Duration::from_secs(60), || {
        let request = http.get(format!("{base}/health/ready"));
        async move { (request.send().await.ok()?.status() == StatusCode::OK).then_some(()) }
    })
    .await;

    let registered = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "bin@example.com", "name": "Bin", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let token = registered.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = http
        .post(format!("{base}/api/v1/tasks"))
        .bearer_auth(&token)
        .json(&json!({"title": "from the binary"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    assert!(taskflow_system_tests::signal(child.id(), "TERM"));
    let status = wait_until("the binary to exit", Duration::from_secs(30), || {
        let exited = child.try_wait().expect("the child's status");
        async move { exited }
    })
    .await;
    assert!(status.success(), "a clean stop exits 0, got {status}");

    let admin = sqlx::PgPool::connect_with(
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| taskflow_runtime::platform::settings::DEFAULT_DATABASE_URL.into())
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .database("postgres"),
    )
    .await
    .unwrap();
    for service in taskflow::SERVICES.iter().map(|service| service.name()) {
        let drop = format!("DROP DATABASE IF EXISTS \"{prefix}{service}\" WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&admin)
            .await
            .unwrap();
    }
}

#[test]
fn a_bad_setting_stops_the_binary_with_one_line_naming_it() {
    let output = Command::new(taskflow_binary())
        .env("TASKFLOW_HTTP_ADDR", "eight")
        .output()
        .expect("taskflow runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TASKFLOW_HTTP_ADDR"), "{stderr}");
}

#[test]
fn a_missing_creds_file_exits_with_the_configuration_code_naming_it() {
    let output = Command::new(taskflow_binary())
        .env("NATS_CREDS_FILE", "/nonexistent/taskflow.creds")
        .env("NATS_URL", "nats://127.0.0.1:1")
        .output()
        .expect("taskflow runs");
    // sysexits' EX_CONFIG: a restart cannot help, the operator must act.
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NATS_CREDS_FILE"), "{stderr}");
}

/// `target/<profile>/<name>`, beside the `taskflow` binary.
fn sibling_binary(name: &str) -> PathBuf {
    taskflow_binary().with_file_name(name)
}

#[tokio::test]
async fn make_admin_answers_once_every_service_decides_with_the_role() {
    let system = taskflow_system_tests::TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let output = tokio::process::Command::new(sibling_binary("taskflow-identity"))
        .args(["make-admin", &ada.email])
        .env("NATS_URL", system.nats.url())
        .env("DATABASE_URL", &system.settings.database_url)
        .env("TASKFLOW_DATABASE_PREFIX", &system.settings.database_prefix)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the command runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("in every service"));
    // At once: every service that keeps a directory has Ada as an admin.
    for service in &system.services {
        if service.name == "identity" {
            continue;
        }
        let admin: Option<bool> =
            sqlx::query_scalar("SELECT is_admin FROM directory_users WHERE user_id = $1")
                .bind(ada.id)
                .fetch_optional(&service.pool)
                .await
                .expect("the directory reads");
        assert_eq!(
            admin,
            Some(true),
            "{} applied the role before the answer",
            service.name
        );
    }
    system.stop().await;
}
