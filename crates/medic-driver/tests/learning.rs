//! The daemon learns from verified outcomes: a restart that keeps failing verification sinks
//! behind another option on that failure's signature, the plan says why, a restarted daemon
//! over the same SQLite journal starts with what was learned, older journals still load, and
//! an outcome model that cannot be used is refused or left out, never half-used.
//!
//! Real parts: the daemon with its brain thread, probes and actions that are real child
//! processes (`test`, `true`, `rm`) on a marker file, the SQLite store, the HTTP API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_core::{Strategy, TargetId, Timestamp};
use medic_driver::daemon::{self, DaemonHandle, DaemonOptions, DaemonSnapshot};
use medic_orchestrator::{ActKind, ActionId, JournalEntry};
use medic_strategy::AttemptResult;

/// One tier whose rules are "liveness failing → restart (0.6)", then "→ reset (0.55)": in
/// policy order restart comes first until learning sinks it. Short verification, no backoff
/// to speak of, no cooldown, no crash loop (the most attempts and crashes the policy allows,
/// 32), no approvals: the test is about ranking.
const TIERS: &str = r#"healing_policies:
  default:
    max_restart_attempts: 32
    restart_cooldown: 1ms
    scale_threshold: 0.8
    circuit_break_duration: 60s
    attempt_window: 1h
    backoff: { initial: 1ms, max: 2ms, multiplier: 2, reset_after: 10m }
    crash_loop: { restarts: 32, window: 1m }
    max_group_unavailable: 1.0
    auto_approve_risk: medium
    confidence_threshold: 0.1
    approval_timeout: 15m
    verify_deadline: 1s
    scaling: { tolerance: 0.1, scale_down_stabilization: 300s }
    rules:
      - { name: unresponsive, when: { failing: [liveness] }, then: restart, confidence: 0.6 }
      - { name: reset_it, when: { failing: [liveness] }, then: reset, confidence: 0.55 }
"#;

/// The key the daemon learns `svc`'s failures under: no diagnosis, no anomaly, no features,
/// liveness failing, tier default.
const KEY: &str = "sig:-|-|-|liveness|default";

/// The key of its outcomes chosen after a restart had failed in the incident.
const AFTER_RESTART: &str = "sig:-|-|-|liveness|default|after:restart";

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    broken: PathBuf,
}

/// `svc` is alive while `broken` does not exist; restart (`true`) changes nothing, reset
/// removes the marker.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let policies = root.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("tiers.yaml"), TIERS).unwrap();
    let broken = root.join("broken");
    let b = broken.display();
    std::fs::write(
        root.join("fleet.yaml"),
        format!(
            "targets:\n  - name: svc\n    probes:\n      liveness: {{ exec: [\"test\", \"!\", \"-e\", \"{b}\"], every: 100ms, failure_threshold: 1 }}\n    \
             startup_delay: 1ms\n    actions:\n      restart: {{ exec: [\"true\"] }}\n      reset: {{ exec: [\"rm\", \"-f\", \"{b}\"] }}\n"
        ),
    )
    .unwrap();
    Setup {
        _dir: dir,
        root,
        broken,
    }
}

fn options(s: &Setup) -> DaemonOptions {
    let mut o = DaemonOptions::new(
        s.root.join("fleet.yaml"),
        s.root.join("policies"),
        s.root.join("data"),
    );
    o.tick = Duration::from_millis(20);
    o.models = Some(s.root.join("models"));
    o
}

async fn start(o: DaemonOptions) -> DaemonHandle {
    let fleet = daemon::load_fleet(&o).expect("a valid fleet");
    daemon::start(o, fleet).await.expect("the daemon starts")
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
        h.snapshot()
    );
}

fn rate(s: &DaemonSnapshot, key: &str, strategy: Strategy) -> Option<(u32, u32)> {
    s.learned
        .rates
        .iter()
        .find(|r| r.key == key && r.strategy == strategy)
        .map(|r| (r.successes, r.attempts))
}

/// A closed action whose verification said it healed (before it closes, the outcome is the
/// actuator's: `true` "succeeds" without healing anything).
fn healed(a: &daemon::ActionRecord) -> bool {
    a.finished_at.is_some() && a.outcome.as_deref() == Some("success")
}

/// Breaks `svc` and waits until an action healed it; the actions of that incident, in order
/// (kind, outcome, reason).
async fn break_and_heal(h: &DaemonHandle, s: &Setup) -> Vec<(String, String, String)> {
    let before = h.snapshot().actions.len();
    std::fs::write(&s.broken, "x").unwrap();
    let snap = wait_for(h, "healed by an action", |snap| {
        snap.actions[before.min(snap.actions.len())..]
            .iter()
            .any(healed)
    })
    .await;
    snap.actions[before..]
        .iter()
        .map(|a| {
            (
                a.kind.clone(),
                a.outcome.clone().unwrap_or_default(),
                a.reason.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_keeps_failing_sinks_and_a_restarted_daemon_remembers() {
    let s = setup();
    let h = start(options(&s)).await;
    wait_for(&h, "first snapshot", |snap| !snap.targets.is_empty()).await;
    assert!(
        h.snapshot().learned.source.contains("no outcome model"),
        "{:?}",
        h.snapshot().learned
    );
    // Three incidents: restart (policy order) fails verification, the ladder's reset heals
    // (learned as chosen after restart had failed).
    for round in 1..=3u32 {
        let acts = break_and_heal(&h, &s).await;
        let kinds: Vec<&str> = acts.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(kinds, ["restart", "reset"], "round {round}: {acts:?}");
        assert_eq!(acts[0].1, "failure", "round {round}: {acts:?}");
        assert_eq!(acts[1].1, "success", "round {round}: {acts:?}");
        let snap = h.snapshot();
        assert_eq!(rate(&snap, KEY, Strategy::Restart), Some((0, round)));
        assert_eq!(rate(&snap, KEY, Strategy::Reset), None);
        assert_eq!(
            rate(&snap, AFTER_RESTART, Strategy::Reset),
            Some((round, round))
        );
    }
    // Restart's posterior (4·0.6 + 0) / (4 + 3) = 0.34 after 3 attempts: sunk, passed over
    // for its next rung. The next plan puts reset first and says why.
    let acts = break_and_heal(&h, &s).await;
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0].0, "reset", "{acts:?}");
    assert!(
        acts[0]
            .2
            .contains("learned: 0/3 succeeded on this signature, confidence 0.60 → 0.34"),
        "{acts:?}"
    );
    assert!(acts[0].2.contains("next rung reset"), "{acts:?}");
    let learned = h.snapshot().learned;
    assert_eq!(learned.observed, 7);
    h.shutdown(Duration::from_secs(5)).await;

    // A new daemon (a new brain, engine and learner) over the same SQLite journal, with the
    // API: it starts with exactly what the first one had learned.
    let mut o = options(&s);
    o.listen = Some("127.0.0.1:0".parse().unwrap());
    let h = start(o).await;
    let snap = wait_for(&h, "first snapshot", |snap| !snap.targets.is_empty()).await;
    assert_eq!(snap.learned.rates, learned.rates);
    assert!(
        snap.learned
            .source
            .contains("7 verified outcomes replayed from the journal"),
        "{}",
        snap.learned.source
    );
    let addr = h.api_addr().unwrap();
    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let api = get("/api/v1/learned").await;
    let restart = api["rates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == KEY && r["strategy"] == "restart")
        .expect("restart's record on the signature");
    assert_eq!(
        (restart["successes"].as_u64(), restart["attempts"].as_u64()),
        (Some(0), Some(3))
    );
    // Its first plan already knows: reset first, no restart tried.
    std::fs::write(&s.broken, "x").unwrap();
    let snap = wait_for(&h, "healed after the restart", |snap| {
        snap.actions.iter().any(healed)
    })
    .await;
    assert_eq!(snap.actions[0].kind, "reset", "{:?}", snap.actions);
    assert!(
        snap.actions[0]
            .reason
            .contains("learned: 0/3 succeeded on this signature"),
        "{:?}",
        snap.actions[0]
    );
    // The target's view names its signature and what was learned on it while it fails.
    std::fs::write(&s.broken, "x").unwrap();
    let mut seen = None;
    for _ in 0..400 {
        let t = get("/api/v1/targets/svc").await;
        if t["signature"] == KEY {
            seen = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = seen.expect("the failing target's view names its signature");
    assert!(
        t["learned"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["strategy"] == "restart" && r["attempts"].as_u64() == Some(3)),
        "{t}"
    );
    h.shutdown(Duration::from_secs(5)).await;
}

/// Rows of a journal written by a medic before incidents recorded their anomaly fields.
fn write_old_journal(data: &Path) {
    append_failed_restarts(data, 0..3);
}

/// Appends, per id in `ids`, an incident of `svc` (in the older format, without the anomaly
/// fields) whose restart failed verification.
fn append_failed_restarts(data: &Path, ids: std::ops::Range<u64>) {
    let mut store = medic_store::Store::open_data_dir(data).unwrap();
    let at = Timestamp::from_secs(1_790_000_000);
    let mut rows: Vec<(Option<String>, serde_json::Value)> = Vec::new();
    for i in ids {
        let opened = JournalEntry::IncidentOpened {
            at,
            target: TargetId::new("svc"),
            health: medic_core::HealthState::Unhealthy,
            summary: "unhealthy (critical); failing liveness".into(),
            anomaly: None,
            top_features: Vec::new(),
        };
        let mut v = serde_json::to_value(&opened).unwrap();
        // As the older medic wrote it: the two fields did not exist.
        let obj = v.as_object_mut().unwrap();
        obj.remove("anomaly");
        obj.remove("top_features");
        assert_eq!(obj.len(), 5, "{v}");
        rows.push((None, v));
        let id = ActionId(i + 1);
        let key = format!("svc/{id}");
        for e in [
            JournalEntry::Intent {
                at,
                action: id,
                target: TargetId::new("svc"),
                kind: ActKind::Heal(Strategy::Restart),
                replicas: None,
                key: key.clone(),
                dry_run: false,
                reason: "rule unresponsive".into(),
            },
            JournalEntry::Closed {
                at,
                action: id,
                result: AttemptResult::Failure,
            },
        ] {
            rows.push((Some(key.clone()), serde_json::to_value(&e).unwrap()));
        }
    }
    for (key, payload) in rows {
        let kind = payload["entry"].as_str().unwrap().to_owned();
        store
            .append_journal(&medic_store::JournalEntry {
                at,
                target: TargetId::new("svc"),
                kind,
                idempotency_key: key,
                payload,
            })
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_journal_loads_and_its_outcomes_are_learned() {
    let s = setup();
    write_old_journal(&s.root.join("data"));
    let mut o = options(&s);
    o.dry_run = true;
    let h = start(o).await;
    let snap = wait_for(&h, "first snapshot", |snap| !snap.targets.is_empty()).await;
    assert_eq!(
        rate(&snap, KEY, Strategy::Restart),
        Some((0, 3)),
        "{:?}",
        snap.learned
    );
    assert_eq!(snap.learned.observed, 3);
    h.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_outcome_model_is_refused_or_left_out_with_the_reason() {
    let s = setup();
    // Given explicitly: the start fails and says which file and why.
    let bad = s.root.join("bad.json");
    std::fs::write(
        &bad,
        "{\"format\": \"medic-outcome-signatures\", \"version\": 1",
    )
    .unwrap();
    let mut o = options(&s);
    o.signatures = Some(bad.clone());
    let fleet = daemon::load_fleet(&o).unwrap();
    let err = match daemon::start(o, fleet).await {
        Ok(_) => panic!("a corrupt --signatures file was accepted"),
        Err(e) => medic_driver::error_text(&e),
    };
    assert!(
        err.contains("outcome model") && err.contains("bad.json"),
        "{err}"
    );
    // A valid model trained on tiers this fleet does not use: refused as well.
    let records: Vec<_> = (0..3)
        .map(|i| medic_detect::diagnosis::outcomes::IncidentRecord {
            target: format!("crewai-{i}"),
            signature: medic_strategy::IncidentSignature {
                failing: vec![medic_core::ProbeLevel::Liveness],
                tier: "critical_agents".into(),
                ..Default::default()
            },
            attempts: vec![(Strategy::Restart, true)],
        })
        .collect();
    let other = medic_detect::diagnosis::outcomes::train(
        &records,
        medic_detect::diagnosis::outcomes::Method::KMeans { k: 1, n_runs: 1 },
        "another fleet",
    )
    .unwrap();
    let (other_path, _) = other.save(&s.root.join("other")).unwrap();
    let mut o = options(&s);
    o.signatures = Some(other_path);
    let fleet = daemon::load_fleet(&o).unwrap();
    let err = match daemon::start(o, fleet).await {
        Ok(_) => panic!("a model of another fleet's tiers was accepted"),
        Err(e) => medic_driver::error_text(&e),
    };
    assert!(
        err.contains("critical_agents") && err.contains("default"),
        "{err}"
    );
    // Found in the data directory: the daemon runs without it and says so.
    let data = s.root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(&bad, data.join("outcome_signatures.json")).unwrap();
    let mut o = options(&s);
    o.dry_run = true;
    let h = start(o).await;
    let snap = wait_for(&h, "first snapshot", |snap| !snap.targets.is_empty()).await;
    assert!(
        snap.learned.source.contains("refused"),
        "{:?}",
        snap.learned
    );
    assert!(snap.learned.rates.is_empty());
    h.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_trained_on_this_store_is_not_counted_twice() {
    use medic_detect::diagnosis::outcomes;
    let s = setup();
    let data = s.root.join("data");
    write_old_journal(&data);
    // `medic train signatures` on this store: one cluster, restart 0/3, read through the
    // journal's last row.
    let store = medic_store::Store::open_data_dir(&data).unwrap();
    let rows = store.journal_all().unwrap();
    drop(store);
    let (entries, skipped) = outcomes::journal_entries(rows.iter().map(|r| &r.entry.payload));
    assert_eq!(skipped, 0);
    let read = outcomes::records_from_journal(&entries, &|_| "default".to_owned());
    let model = outcomes::train(
        &read.records,
        outcomes::Method::KMeans { k: 1, n_runs: 1 },
        "test",
    )
    .unwrap()
    .with_journal(outcomes::TrainedJournal::new(
        &data,
        rows.last().unwrap().seq,
    ));
    model.save(&data).unwrap();
    // One more failed restart after the training.
    append_failed_restarts(&data, 3..4);
    let mut o = options(&s);
    o.dry_run = true;
    let h = start(o).await;
    let snap = wait_for(&h, "first snapshot", |snap| !snap.targets.is_empty()).await;
    // 3 from the model plus the 1 replayed, under the cluster's key: not 3 + 4.
    let restart: Vec<(String, u32, u32)> = snap
        .learned
        .rates
        .iter()
        .filter(|r| r.strategy == Strategy::Restart)
        .map(|r| (r.key.clone(), r.successes, r.attempts))
        .collect();
    assert_eq!(
        restart,
        [("cluster:0".to_owned(), 0, 4)],
        "{:?}",
        snap.learned
    );
    assert!(
        snap.learned.source.contains("1 verified outcomes replayed")
            && snap.learned.source.contains("3 already in the model"),
        "{}",
        snap.learned.source
    );
    h.shutdown(Duration::from_secs(5)).await;
}
