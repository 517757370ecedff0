//! The list of services (`taskflow::SERVICES`) is the only one: every other
//! place that names services (the workspace, the binaries, the migrations,
//! `compose.yaml`, the `Dockerfile`) must agree with it, so a service left
//! out of one of them fails here rather than on a user's machine.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// Binaries that are not services of the list: the edge, the live feed on
/// its own, and the all-in-one process.
const OTHER_BINARIES: [&str; 3] = ["taskflow-edge", "taskflow-livefeed", "taskflow"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// `compose.yaml`'s services: name → its lines, indented as written.
fn compose_services() -> Vec<(String, Vec<String>)> {
    let compose = read("compose.yaml");
    let mut services = Vec::new();
    let mut inside = false;
    for line in compose.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            inside = line.trim_end() == "services:";
            continue;
        }
        if !inside {
            continue;
        }
        let is_service = line.starts_with("  ") && !line.starts_with("   ");
        match line.trim_end().strip_suffix(':') {
            Some(name) if is_service => services.push((name.trim().to_owned(), Vec::new())),
            _ => {
                if let Some((_, lines)) = services.last_mut() {
                    lines.push(line.to_owned());
                }
            }
        }
    }
    services
}

/// The TaskFlow binary a compose service runs (`command: ["taskflow-tasks"]`).
fn command_of(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|line| {
        let rest = line.trim().strip_prefix("command:")?;
        let binary = rest.trim().trim_start_matches('[').split(',').next()?;
        let binary = binary.trim().trim_matches(['"', ']']);
        binary.starts_with("taskflow").then(|| binary.to_owned())
    })
}

/// The port of `TASKFLOW_OPS_ADDR` a compose service sets.
fn ops_port_of(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|line| {
        let addr = line.trim().strip_prefix("TASKFLOW_OPS_ADDR:")?;
        Some(addr.trim().rsplit(':').next()?.to_owned())
    })
}

#[test]
fn compose_runs_every_service_of_the_list_on_its_ops_port_and_nothing_else() {
    let compose = compose_services();
    let mut seen = BTreeSet::new();
    for service in taskflow::SERVICES {
        let binary = format!("taskflow-{}", service.name());
        let (name, lines) = compose
            .iter()
            .find(|(_, lines)| command_of(lines).as_deref() == Some(binary.as_str()))
            .unwrap_or_else(|| panic!("compose.yaml runs no container of {binary}"));
        let port = service.ops_addr().rsplit(':').next().expect("a port");
        assert_eq!(
            ops_port_of(lines).as_deref(),
            Some(port),
            "compose.yaml's {name} serves its operations on another port than {}",
            service.ops_addr()
        );
        seen.insert(binary);
    }
    for (name, lines) in &compose {
        if let Some(binary) = command_of(lines) {
            assert!(
                seen.contains(&binary) || OTHER_BINARIES.contains(&binary.as_str()),
                "compose.yaml's {name} runs {binary}, which is not in taskflow::SERVICES"
            );
        }
    }
}

#[test]
fn the_dockerfile_the_workspace_and_the_migrations_hold_every_service_of_the_list() {
    let dockerfile = read("Dockerfile");
    let workspace = read("Cargo.toml");
    let copied: BTreeSet<&str> = dockerfile
        .split(|c: char| c.is_whitespace() || c == '\\')
        .filter_map(|word| word.strip_prefix("/src/target/release/"))
        .collect();
    let mut expected: BTreeSet<String> = OTHER_BINARIES.iter().map(|b| b.to_string()).collect();
    for service in taskflow::SERVICES {
        let name = service.name();
        let binary = format!("taskflow-{name}");
        for member in [format!("\"actors/{name}\""), format!("\"bins/{binary}\"")] {
            assert!(
                workspace.contains(&member),
                "the workspace has no member {member}"
            );
        }
        let main = read(&format!("bins/{binary}/src/main.rs"));
        assert!(
            main.contains(&format!("taskflow_{name}::SERVICE")),
            "bins/{binary} does not run taskflow_{name}::SERVICE"
        );
        assert!(
            root().join("migrations").join(name).is_dir(),
            "migrations/{name} is missing"
        );
        expected.insert(binary);
    }
    let copied: BTreeSet<String> = copied.into_iter().map(str::to_owned).collect();
    assert_eq!(
        copied, expected,
        "the Dockerfile copies other binaries than the list's and the edge's"
    );
}

#[test]
fn every_service_serves_its_operations_on_a_port_of_its_own() {
    let mut ports = BTreeSet::new();
    for service in taskflow::SERVICES {
        assert!(
            ports.insert(service.ops_addr()),
            "{} shares its ops address {}",
            service.name(),
            service.ops_addr()
        );
    }
}
