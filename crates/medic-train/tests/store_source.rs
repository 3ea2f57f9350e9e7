//! The store source on a real SQLite store written through medic-store's API, with journal
//! entries serialized from the engine's own `JournalEntry` type exactly as the daemon writes
//! them: columns resampled, failures from incidents and the journal, preemptive actions into
//! `preemptive_actions`, and the dataset labelling the windows before them *averted*.

use std::time::Duration;

use medic_core::{HealthState, MetricSample, Strategy, TargetId, Timestamp};
use medic_detect::features::{Aggregation, FeatureSpec, SeriesSpec};
use medic_detect::predict::dataset::{AvertedRule, WindowLabel};
use medic_detect::predict::{DatasetConfig, build};
use medic_orchestrator::{ActKind, ActionId, JournalEntry};
use medic_store::Store;
use medic_train::store::{StoreColumn, StoreSource, read};
use serde_json::json;

const T0: u64 = 1_767_225_600_000; // 2026-01-01, a multiple of 60 s
const MIN: u64 = 60_000;

fn sample(target: &str, name: &str, labels: &[(&str, &str)], at: u64, value: f64) -> MetricSample {
    MetricSample {
        target: TargetId::new(target),
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        value,
        at: Timestamp::from_millis(at),
    }
}

/// Journals an engine entry the way the daemon's brain does (kind = the `entry` tag).
fn journal(store: &mut Store, at: u64, record_target: &str, entry: &JournalEntry) {
    let payload = serde_json::to_value(entry).unwrap();
    let kind = payload["entry"].as_str().unwrap().to_owned();
    store
        .append_journal(&medic_store::JournalEntry {
            at: Timestamp::from_millis(at),
            target: TargetId::new(record_target),
            kind,
            idempotency_key: None,
            payload,
        })
        .unwrap();
}

fn intent(at: u64, target: &str, id: u64, dry_run: bool) -> JournalEntry {
    JournalEntry::Intent {
        at: Timestamp::from_millis(at),
        action: ActionId(id),
        target: TargetId::new(target),
        kind: ActKind::Heal(Strategy::Restart),
        replicas: None,
        key: format!("{target}/{id}"),
        dry_run,
        reason: "test".into(),
    }
}

fn opened(at: u64, target: &str, health: HealthState) -> JournalEntry {
    JournalEntry::IncidentOpened {
        at: Timestamp::from_millis(at),
        target: TargetId::new(target),
        health,
        summary: "test".into(),
        anomaly: None,
        top_features: Vec::new(),
    }
}

/// 40 minutes of scrapes every 15 s for `api` and `worker`; `worker` is silent in minutes
/// 10..13. Returns the store's directory.
fn write_store(dir: &std::path::Path) {
    let mut store = Store::open_data_dir(dir).unwrap();
    let mut batch = Vec::new();
    for target in ["api", "worker"] {
        for i in 0..(40 * 4) {
            let at = T0 + 15_000 + i * 15_000; // (T0, T0 + 40 min]
            let minute = (at - T0 - 1) / MIN; // the step (ending at a whole minute) it falls in
            if target == "worker" && (10..13).contains(&minute) {
                continue;
            }
            let rss = 100.0 + minute as f64 + if target == "worker" { 1000.0 } else { 0.0 };
            batch.push(sample(
                target,
                "process_resident_memory_bytes",
                &[],
                at,
                rss * 1_048_576.0,
            ));
            // 0.5 CPU seconds per scrape: 2 per minute, i.e. a rate of 1/30 per second.
            batch.push(sample(
                target,
                "process_cpu_seconds_total",
                &[],
                at,
                0.5 * (i + 1) as f64,
            ));
            // Two label sets summed; one more set that the matcher excludes.
            batch.push(sample(
                target,
                "queue",
                &[("shard", "a"), ("kind", "work")],
                at,
                3.0,
            ));
            batch.push(sample(
                target,
                "queue",
                &[("kind", "work"), ("shard", "b")],
                at,
                4.0,
            ));
            batch.push(sample(target, "queue", &[("kind", "other")], at, 1000.0));
        }
    }
    // An unrelated target without the columns' metrics.
    batch.push(sample("lonely", "something_else", &[], T0 + MIN, 1.0));
    store.insert_samples(&batch).unwrap();

    // api: a predicted failure at minute 25, acted on preemptively at 25:05 (by the daemon)
    // and at 32:00 (by `medic heal --preemptive`, whose journal records carry no target).
    // A dry-run intent at 33:00 changes nothing.
    let api_open = T0 + 25 * MIN;
    store
        .open_incident(
            &TargetId::new("api"),
            Timestamp::from_millis(api_open),
            &json!({"detected_by": "prediction", "summary": "memory rising"}),
            &json!({}),
        )
        .unwrap();
    journal(
        &mut store,
        api_open,
        "api",
        &opened(api_open, "api", HealthState::Healthy),
    );
    journal(
        &mut store,
        api_open + 5_000,
        "api",
        &intent(api_open + 5_000, "api", 1, false),
    );
    let heal = T0 + 32 * MIN;
    journal(
        &mut store,
        heal,
        "",
        &opened(heal, "api", HealthState::Healthy),
    );
    journal(&mut store, heal, "", &intent(heal, "api", 2, false));
    journal(
        &mut store,
        heal + MIN,
        "",
        &intent(heal + MIN, "api", 3, true),
    );

    // worker: crashed at minute 30 (incident at the first failed probe, journal entry 30 s
    // later: one failure), healed by a restart that is not preemptive.
    let crash = T0 + 30 * MIN;
    store
        .open_incident(
            &TargetId::new("worker"),
            Timestamp::from_millis(crash),
            &json!({"detected_by": "probe:liveness", "summary": "connection refused"}),
            &json!({}),
        )
        .unwrap();
    journal(
        &mut store,
        crash + 30_000,
        "worker",
        &opened(crash + 30_000, "worker", HealthState::Unhealthy),
    );
    journal(
        &mut store,
        crash + 31_000,
        "worker",
        &intent(crash + 31_000, "worker", 4, false),
    );
    // And a degraded spell at minute 37 (well apart): a second failure.
    let degraded = T0 + 37 * MIN;
    journal(
        &mut store,
        degraded,
        "worker",
        &opened(degraded, "worker", HealthState::Degraded),
    );
}

fn columns() -> Vec<StoreColumn> {
    [
        "rss_mb=process_resident_memory_bytes/1048576",
        "cpu=rate(process_cpu_seconds_total)",
        "queue_depth=queue{kind=\"work\"}",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

#[test]
fn store_history_becomes_series_with_failures_and_preemptive_actions() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    // Read through a fresh open, as `medic train --from store DIR` does.
    let store = Store::open_data_dir(dir.path()).unwrap();
    let src = StoreSource {
        columns: columns(),
        step: Duration::from_secs(60),
        range: StoreSource::all_time(),
        targets: None,
    };
    let (series, report) = read(&store, &src).unwrap();
    let names: Vec<&str> = series.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(names, ["api", "worker"]);
    assert_eq!(report.targets_without_samples, 1);
    for s in &series {
        s.validate().unwrap();
        // Steps end at T0+1min … T0+40min.
        assert_eq!(s.start, Timestamp::from_millis(T0 + MIN));
        assert_eq!(s.len(), 40);
        let cols: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cols, ["rss_mb", "cpu", "queue_depth"]);
    }
    let (api, worker) = (&series[0], &series[1]);
    for k in 0..40 {
        assert_eq!(
            api.column("rss_mb").unwrap()[k],
            100.0 + k as f32,
            "step {k}"
        );
        assert_eq!(api.column("queue_depth").unwrap()[k], 7.0);
    }
    // The first step has no previous step for the rate; the others see 2 CPU-seconds a minute.
    let cpu = api.column("cpu").unwrap();
    assert!(cpu[0].is_nan());
    for &v in &cpu[1..] {
        assert!((v - 1.0 / 30.0).abs() < 1e-6, "{v}");
    }
    // worker's silent minutes are dark; the rate needs the step before as well.
    for k in 0..40 {
        let dark = (10..13).contains(&k);
        assert_eq!(
            worker.column("rss_mb").unwrap()[k].is_nan(),
            dark,
            "step {k}"
        );
        assert_eq!(worker.column("queue_depth").unwrap()[k].is_nan(), dark);
        let rate_missing = k == 0 || (10..14).contains(&k);
        assert_eq!(
            worker.column("cpu").unwrap()[k].is_nan(),
            rate_missing,
            "step {k}"
        );
    }
    assert_eq!(report.dark_rows, 3);

    // Failures: worker's crash once (incident and journal merged) and its degraded spell; a
    // predicted incident is not a failure.
    assert!(api.failures.is_empty(), "{:?}", api.failures);
    let at: Vec<u64> = worker.failures.iter().map(|f| f.at.as_millis()).collect();
    assert_eq!(at, [T0 + 30 * MIN, T0 + 37 * MIN]);
    assert_eq!(worker.failures[0].kind, "probe:liveness");
    assert!(worker.failures.iter().all(|f| f.predictable));
    // Preemptive actions: the daemon's and `medic heal`'s, not the dry run, not worker's.
    let acts: Vec<u64> = api
        .preemptive_actions
        .iter()
        .map(|t| t.as_millis())
        .collect();
    assert_eq!(acts, [T0 + 25 * MIN + 5_000, T0 + 32 * MIN]);
    assert!(worker.preemptive_actions.is_empty());
    assert_eq!((report.failures, report.preemptive_actions), (2, 2));

    // The dataset labels the windows before a preemptive action averted (excluded by default)
    // and the windows before worker's failures positive.
    let spec = FeatureSpec::new(
        ["rss_mb", "cpu", "queue_depth"]
            .iter()
            .map(|n| SeriesSpec {
                name: (*n).to_owned(),
                aggregations: vec![Aggregation::Last],
            })
            .collect(),
        0.3,
    )
    .unwrap();
    let horizon = Duration::from_secs(5 * 60);
    let cfg = DatasetConfig {
        seq_len: 3,
        horizon,
        feature_spec: spec,
        feature_window: 2,
        val_fraction: 0.0,
        test_fraction: 0.0,
        test_agent_every: 0,
        averted: AvertedRule::Exclude,
        ..DatasetConfig::default()
    };
    let ds = build(&series, &cfg).unwrap();
    let mut averted = 0;
    for (i, info) in ds.info.iter().enumerate() {
        let s = &series[info.agent as usize];
        let within = |t: Timestamp| t > info.end && t <= info.end + horizon;
        let expected = if s.failures.iter().any(|f| within(f.at)) {
            WindowLabel::Positive
        } else if s.preemptive_actions.iter().any(|&t| within(t)) {
            WindowLabel::Averted
        } else {
            WindowLabel::Negative
        };
        assert_eq!(
            info.label, expected,
            "{} window ending {}",
            s.agent, info.end
        );
        if info.label == WindowLabel::Averted {
            averted += 1;
            assert_eq!(ds.weight[i], 0.0);
            assert_eq!(info.agent, 0);
        }
    }
    // Windows ending 20:05..25:00 and 27:05..32:00, whole minutes: 5 + 5 (api only).
    assert_eq!(averted, 10);
    assert_eq!(ds.counts.train.averted, 10);
    assert_eq!(ds.counts.dark, 3);
}

#[test]
fn a_range_and_target_subset_and_bad_specs() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let store = Store::open_data_dir(dir.path()).unwrap();
    let src = StoreSource {
        columns: columns(),
        step: Duration::from_secs(60),
        // Minutes (20, 30]: worker's crash at 30:00 is in, its journal entry at 30:30 is not.
        range: Timestamp::from_millis(T0 + 20 * MIN + 1)..Timestamp::from_millis(T0 + 30 * MIN + 1),
        targets: Some(vec!["worker".into()]),
    };
    let (series, _) = read(&store, &src).unwrap();
    assert_eq!(series.len(), 1);
    let w = &series[0];
    assert_eq!(w.start, Timestamp::from_millis(T0 + 21 * MIN));
    assert_eq!(w.len(), 10);
    assert_eq!(w.failures.len(), 1);
    assert!(w.preemptive_actions.is_empty());

    let dup = StoreSource {
        columns: vec![columns()[0].clone(), columns()[0].clone()],
        step: Duration::from_secs(60),
        range: StoreSource::all_time(),
        targets: None,
    };
    assert!(read(&store, &dup).is_err());
    let zero = StoreSource {
        columns: columns(),
        step: Duration::ZERO,
        range: StoreSource::all_time(),
        targets: None,
    };
    assert!(read(&store, &zero).is_err());
}
