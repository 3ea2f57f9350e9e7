//! The dependencies level in `medic run`: a target whose dependency is down is degraded with
//! the dependencies level failing (the level the strategy selection reads to blame the
//! dependency instead of the target), and healthy again when the dependency comes back.
//! Real listeners on loopback; the daemon runs in dry-run so nothing is acted on.

use std::path::PathBuf;
use std::time::Duration;

use medic_driver::daemon::{self, DaemonHandle, DaemonOptions, DaemonSnapshot, TargetRecord};

fn record<'a>(s: &'a DaemonSnapshot, name: &str) -> &'a TargetRecord {
    s.targets
        .iter()
        .find(|t| t.name.as_str() == name)
        .expect("a target of the fleet")
}

/// The target's state; `None` before the daemon published its first snapshot.
fn state(s: &DaemonSnapshot, name: &str) -> Option<&'static str> {
    s.targets
        .iter()
        .find(|t| t.name.as_str() == name)
        .map(|t| t.state.as_str())
}

/// Polls the snapshot until `done` holds (bounded: a regression fails, it does not hang).
async fn wait_for(
    h: &DaemonHandle,
    what: &str,
    done: impl Fn(&DaemonSnapshot) -> bool,
) -> DaemonSnapshot {
    for _ in 0..600 {
        let s = h.snapshot();
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{what}: not within 15 s; last snapshot: {:#?}",
        h.snapshot().targets
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_down_fails_the_dependents_dependencies_level_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let app_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app_addr = app_listener.local_addr().unwrap();
    // db's port, closed for now.
    let db_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let probe = |addr| {
        format!(
            "{{ tcp: {{ addr: \"{addr}\" }}, every: 100ms, timeout: 1s, failure_threshold: 1 }}"
        )
    };
    let fleet_path = dir.path().join("fleet.yaml");
    std::fs::write(
        &fleet_path,
        format!(
            "targets:\n  - name: db\n    probes:\n      liveness: {}\n  - name: app\n    depends_on: [db]\n    probes:\n      liveness: {}\n",
            probe(db_addr),
            probe(app_addr)
        ),
    )
    .unwrap();
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut options = DaemonOptions::new(fleet_path, policies, dir.path().join("data"));
    options.dry_run = true;
    options.tick = Duration::from_millis(20);
    let fleet = daemon::load_fleet(&options).expect("a valid fleet");
    let h = daemon::start(options, fleet)
        .await
        .expect("the daemon starts");

    let s = wait_for(&h, "app degraded by its dependency", |s| {
        state(s, "db") == Some("unhealthy") && state(s, "app") == Some("degraded")
    })
    .await;
    let app = record(&s, "app");
    assert_eq!(app.failing, ["dependencies"], "{app:#?}");
    assert_eq!(
        app.last_finding.as_deref(),
        Some("dependencies: dependency unhealthy: db"),
        "{app:#?}"
    );

    // db comes back: app's dependencies level passes again.
    let _db = std::net::TcpListener::bind(db_addr).expect("db's port is free again");
    let s = wait_for(&h, "both healthy", |s| {
        state(s, "db") == Some("healthy") && state(s, "app") == Some("healthy")
    })
    .await;
    assert!(record(&s, "app").failing.is_empty());
    drop(app_listener);
    h.shutdown(Duration::from_secs(5)).await;
}
