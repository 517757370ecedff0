//! The OpenAPI document against the running edge, by schemathesis (PyPI):
//! every status a route answers is documented, every request the document
//! allows is taken (or refused by a documented rule), every request it
//! forbids is refused, and nothing answers 5xx.

use std::process::Stdio;
use std::time::Duration;

use taskflow_system_tests::{TestSystem, Transport};

/// Cases per operation in `just test`; `just fuzz` sets
/// `TASKFLOW_FUZZ_EXAMPLES` for more.
const EXAMPLES: &str = "20";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_its_openapi_document_says() {
    let system = TestSystem::spawn_configured(
        Transport::InProcess,
        8,
        &[
            ("TASKFLOW_RATE_LIMIT_AUTH_IP", "off"),
            ("TASKFLOW_RATE_LIMIT_AUTH_ACCOUNT", "off"),
        ],
    )
    .await;
    let fuzz = system.register("Fuzz").await;
    let schemathesis = std::env::var("SCHEMATHESIS_BIN").unwrap_or_else(|_| "schemathesis".into());
    let examples = std::env::var("TASKFLOW_FUZZ_EXAMPLES").unwrap_or_else(|_| EXAMPLES.into());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemathesis.toml");
    let run = tokio::process::Command::new(&schemathesis)
        .args(["--config-file", config, "run"])
        .arg(format!("{}/api/v1/openapi.json", system.base_url))
        // Not the stateful phase: its inferred links carry a task's null
        // `project_id` into `/projects/{id}` as the text `None`, a request
        // the document forbids, and report our 400 as a failure.
        // `just api-fuzz` still runs every phase.
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--checks",
            "all",
            "--max-examples",
            &examples,
            "--seed",
            "20261203",
        ])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", fuzz.token))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(3600), run)
        .await
        .expect("schemathesis finishes within an hour")
        .unwrap_or_else(|error| {
            panic!("cannot run {schemathesis} ({error}): run the tests with `just test`, or set SCHEMATHESIS_BIN")
        });
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    // Its summary, for `just fuzz` and the CI log (nextest shows it with
    // --no-capture).
    let summary: Vec<&str> = report
        .lines()
        .skip_while(|line| !line.contains("SUMMARY"))
        .collect();
    println!("{}", summary.join("\n"));
    system.stop().await;
}
