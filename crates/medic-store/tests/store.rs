//! The SQLite store against real database files in a temporary directory.

use std::time::Duration;

use medic_core::{HealthState, MetricSample, TargetId, Timestamp};
use medic_store::{HealthTransition, JournalEntry, OpenOptions, SCHEMA_VERSION, Store, StoreError};
use serde_json::json;

fn sample(
    target: &str,
    name: &str,
    labels: &[(&str, &str)],
    at_s: u64,
    value: f64,
) -> MetricSample {
    MetricSample {
        target: TargetId::new(target),
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        value,
        at: Timestamp::from_secs(at_s),
    }
}

fn ts(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn all_time() -> std::ops::Range<Timestamp> {
    Timestamp::ZERO..Timestamp::from_millis(u64::MAX)
}

fn entry(target: &str, kind: &str, key: Option<&str>, n: u64) -> JournalEntry {
    JournalEntry {
        at: ts(n),
        target: TargetId::new(target),
        kind: kind.to_owned(),
        idempotency_key: key.map(str::to_owned),
        payload: json!({ "n": n, "strategy": "restart" }),
    }
}

#[test]
fn samples_are_written_and_read_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.db");
    {
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let batch = vec![
            sample("a", "rss", &[], 10, 100.0),
            sample("a", "rss", &[], 11, 110.0),
            sample("a", "lat_bucket", &[("le", "0.1"), ("path", "/")], 10, 3.0),
            // Same series with labels in another order: must land in the same series.
            sample("a", "lat_bucket", &[("path", "/"), ("le", "0.1")], 11, 4.0),
            sample("a", "odd", &[], 10, f64::NAN),
            sample("a", "odd", &[], 11, f64::INFINITY),
            sample("a", "odd", &[], 12, f64::NEG_INFINITY),
            sample("b", "rss", &[], 10, 7.0),
        ];
        assert_eq!(store.insert_samples(&batch).unwrap(), batch.len());
        // Rewriting an existing (series, ts) replaces the value.
        store
            .insert_samples(&[sample("a", "rss", &[], 11, 111.0)])
            .unwrap();
        assert_eq!(store.insert_samples(&[]).unwrap(), 0);
    }
    let store = Store::open(&path).unwrap();
    store.check_integrity().unwrap();

    let rss = store.samples("a", "rss", all_time()).unwrap();
    assert_eq!(
        rss.iter().map(|s| (s.at, s.value)).collect::<Vec<_>>(),
        [(ts(10), 100.0), (ts(11), 111.0)]
    );
    assert_eq!(rss[0].target, TargetId::new("a"));
    assert!(rss[0].labels.is_empty());

    let lat = store.samples("a", "lat_bucket", all_time()).unwrap();
    assert_eq!(lat.len(), 2);
    let sorted = vec![
        ("le".to_owned(), "0.1".to_owned()),
        ("path".to_owned(), "/".to_owned()),
    ];
    assert!(lat.iter().all(|s| s.labels == sorted));
    assert_eq!(store.series("a").unwrap().len(), 3);

    let odd = store.samples("a", "odd", all_time()).unwrap();
    assert!(odd[0].value.is_nan());
    assert_eq!(odd[1].value, f64::INFINITY);
    assert_eq!(odd[2].value, f64::NEG_INFINITY);

    // The range is start-inclusive, end-exclusive.
    let window = store.samples("a", "rss", ts(10)..ts(11)).unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(
        store.sample_targets().unwrap(),
        [TargetId::new("a"), TargetId::new("b")]
    );
}

#[test]
fn transitions_and_incidents_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.db");
    let mut store = Store::open(&path).unwrap();
    let tr = |target: &str, at: u64, from, to| HealthTransition {
        target: TargetId::new(target),
        at: ts(at),
        from,
        to,
        reason: format!("probe at {at}"),
    };
    use HealthState::*;
    store
        .record_transition(&tr("a", 1, Unknown, Healthy))
        .unwrap();
    store
        .record_transition(&tr("b", 2, Unknown, Healthy))
        .unwrap();
    store
        .record_transition(&tr("a", 3, Healthy, Unhealthy))
        .unwrap();
    let a = store.transitions(Some("a"), all_time()).unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[1], tr("a", 3, Healthy, Unhealthy));
    assert_eq!(store.transitions(None, ts(2)..ts(10)).unwrap().len(), 2);
    let latest = store.latest_transitions().unwrap();
    assert_eq!(
        latest
            .iter()
            .map(|t| (t.target.as_str(), t.to))
            .collect::<Vec<_>>(),
        [("a", Unhealthy), ("b", Healthy)]
    );

    let target = TargetId::new("a");
    let id = store
        .open_incident(&target, ts(3), &json!({"kind": "crash"}), &json!({}))
        .unwrap();
    store
        .update_incident(id, &json!({"actions": ["restart"]}))
        .unwrap();
    assert_eq!(store.open_incidents().unwrap().len(), 1);
    store
        .close_incident(id, ts(5), &json!({"actions": ["restart"], "healed": true}))
        .unwrap();
    assert!(store.open_incidents().unwrap().is_empty());
    let err = store.close_incident(id, ts(6), &json!({})).unwrap_err();
    assert!(matches!(err, StoreError::NoSuchIncident { .. }), "{err}");
    drop(store);

    let store = Store::open(&path).unwrap();
    let inc = store.incident(id).unwrap().unwrap();
    assert_eq!(inc.closed_at, Some(ts(5)));
    assert_eq!(inc.signature, json!({"kind": "crash"}));
    assert_eq!(inc.summary["healed"], true);
    assert_eq!(store.incidents(Some("a"), all_time()).unwrap().len(), 1);
    assert!(store.incidents(Some("b"), all_time()).unwrap().is_empty());
}

#[test]
fn journal_is_ordered_and_found_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.db");
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.last_journal_seq().unwrap(), None);
    let s1 = store
        .append_journal(&entry("a", "intent", Some("a#1"), 1))
        .unwrap();
    let s2 = store
        .append_journal(&entry("b", "intent", None, 2))
        .unwrap();
    let s3 = store
        .append_journal(&entry("a", "outcome", Some("a#1"), 3))
        .unwrap();
    assert!(s1 < s2 && s2 < s3);
    drop(store);

    let store = Store::open(&path).unwrap();
    let all = store.journal_all().unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [s1, s2, s3]);
    assert_eq!(all[0].entry, entry("a", "intent", Some("a#1"), 1));
    assert_eq!(store.journal_since(s1).unwrap().len(), 2);
    let by_key = store.journal_by_key("a#1").unwrap();
    assert_eq!(
        by_key
            .iter()
            .map(|r| r.entry.kind.as_str())
            .collect::<Vec<_>>(),
        ["intent", "outcome"]
    );
    assert_eq!(store.journal_for_target("b", 0).unwrap().len(), 1);
    assert_eq!(store.last_journal_seq().unwrap(), Some(s3));
}

#[test]
fn prune_deletes_old_samples_and_transitions_and_keeps_journal_and_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("medic.db")).unwrap();
    let batch: Vec<_> = (0..100)
        .map(|i| sample("a", "rss", &[], i, i as f64))
        .collect();
    store.insert_samples(&batch).unwrap();
    for i in 0..10 {
        store
            .record_transition(&HealthTransition {
                target: TargetId::new("a"),
                at: ts(i * 10),
                from: HealthState::Healthy,
                to: HealthState::Degraded,
                reason: String::new(),
            })
            .unwrap();
    }
    store
        .append_journal(&entry("a", "intent", Some("k"), 1))
        .unwrap();
    store
        .open_incident(&TargetId::new("a"), ts(1), &json!({}), &json!({}))
        .unwrap();

    let report = store.prune(ts(60)).unwrap();
    assert_eq!(report.samples, 60);
    assert_eq!(report.transitions, 6);
    let left = store.samples("a", "rss", all_time()).unwrap();
    assert_eq!(left.first().map(|s| s.at), Some(ts(60)));
    assert_eq!(left.len(), 40);
    assert_eq!(store.transitions(None, all_time()).unwrap().len(), 4);
    assert_eq!(store.journal_all().unwrap().len(), 1);
    assert_eq!(store.open_incidents().unwrap().len(), 1);
    // Writing after a prune still works (the series catalogue is kept).
    store
        .insert_samples(&[sample("a", "rss", &[], 200, 1.0)])
        .unwrap();
    assert_eq!(store.samples("a", "rss", all_time()).unwrap().len(), 41);
}

/// The v1 schema exactly as it shipped, frozen here so that the migration is tested against
/// what real old files contain rather than against the current code's idea of v1.
const V1_SCHEMA: &str = r#"
    CREATE TABLE series (
        id      INTEGER PRIMARY KEY,
        target  TEXT NOT NULL,
        metric  TEXT NOT NULL,
        labels  TEXT NOT NULL,
        UNIQUE (target, metric, labels)
    );
    CREATE TABLE samples (
        series_id INTEGER NOT NULL,
        ts        INTEGER NOT NULL,
        value     REAL,
        PRIMARY KEY (series_id, ts)
    ) WITHOUT ROWID;
    CREATE TABLE health_transitions (
        id         INTEGER PRIMARY KEY,
        target     TEXT NOT NULL,
        ts         INTEGER NOT NULL,
        from_state TEXT NOT NULL,
        to_state   TEXT NOT NULL,
        reason     TEXT NOT NULL
    );
    CREATE INDEX health_transitions_target_ts ON health_transitions (target, ts);
    CREATE INDEX health_transitions_ts ON health_transitions (ts);
    PRAGMA user_version = 1;
"#;

#[test]
fn a_v1_database_is_migrated_keeping_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(V1_SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO series (id, target, metric, labels) VALUES (1, 'a', 'rss', '{}');
             INSERT INTO samples VALUES (1, 5000, 42.0);
             INSERT INTO health_transitions (target, ts, from_state, to_state, reason)
                 VALUES ('a', 5000, 'unknown', 'healthy', 'first probe');",
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let s = store.samples("a", "rss", all_time()).unwrap();
    assert_eq!((s[0].at, s[0].value), (ts(5), 42.0));
    assert_eq!(
        store.transitions(Some("a"), all_time()).unwrap()[0].to,
        HealthState::Healthy
    );
    // The tables v2 added work.
    let seq = store
        .append_journal(&entry("a", "intent", None, 1))
        .unwrap();
    assert_eq!(store.journal_all().unwrap()[0].seq, seq);
    // New samples of the old series reuse it.
    store
        .insert_samples(&[sample("a", "rss", &[], 6, 43.0)])
        .unwrap();
    assert_eq!(store.series("a").unwrap().len(), 1);
    store.check_integrity().unwrap();
}

#[test]
fn a_database_from_a_newer_medic_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
    }
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "unexpected error: {err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("new.db") && msg.contains("newer"), "{msg}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[test]
fn a_garbage_file_gives_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NotADatabase { .. }),
        "unexpected error: {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("garbage.db"), "{msg}");
    assert!(msg.contains("not a database"), "{msg}");
    // The file is not modified by the failed open.
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn a_damaged_database_is_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    {
        let mut store = Store::open(&path).unwrap();
        let batch: Vec<_> = (0..5000)
            .map(|i| sample("a", "rss", &[("k", "some label value")], i, i as f64))
            .collect();
        store.insert_samples(&batch).unwrap();
    }
    // Fold the WAL into the main file, then overwrite every page after the first.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192);
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    let outcome = Store::open(&path).and_then(|s| {
        s.check_integrity()?;
        s.samples("a", "rss", all_time()).map(|_| ())
    });
    let err = outcome.expect_err("a damaged database must not read as healthy");
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. }
        ),
        "unexpected error: {err:?}"
    );
    assert!(err.to_string().contains("damaged.db"), "{err}");
}

#[test]
fn a_database_locked_by_another_process_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let mut store = Store::open_with(
        &path,
        &OpenOptions {
            busy_timeout: Duration::from_millis(100),
        },
    )
    .unwrap();

    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO journal (ts, target, kind, payload) VALUES (0, 'x', 'held', '{}');")
        .unwrap();

    let opts = OpenOptions {
        busy_timeout: Duration::from_millis(100),
    };
    let err = Store::open_with(&path, &opts).unwrap_err();
    assert!(
        matches!(err, StoreError::Locked { .. }),
        "unexpected error: {err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("locked.db") && msg.contains("database is locked by another process"),
        "{msg}"
    );

    // An already open store gets the same error on write, and keeps working afterwards.
    let err = store
        .append_journal(&entry("a", "intent", None, 1))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Locked { .. }),
        "unexpected error: {err:?}"
    );
    let err = store
        .insert_samples(&[sample("a", "rss", &[], 1, 1.0)])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Locked { .. }),
        "unexpected error: {err:?}"
    );

    other.execute_batch("COMMIT").unwrap();
    drop(other);
    let seq = store
        .append_journal(&entry("a", "intent", None, 1))
        .unwrap();
    store
        .insert_samples(&[sample("a", "rss", &[], 1, 1.0)])
        .unwrap();
    let journal = store.journal_all().unwrap();
    assert_eq!(journal.last().map(|r| r.seq), Some(seq));
    assert_eq!(journal.len(), 2);
    assert_eq!(store.samples("a", "rss", all_time()).unwrap().len(), 1);
}

#[test]
fn a_directory_path_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains(&*dir.path().to_string_lossy()),
        "{err}"
    );
}

#[test]
fn a_data_dir_is_created_and_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let mut store = Store::open_data_dir(&data).unwrap();
    store
        .append_journal(&entry("a", "intent", None, 1))
        .unwrap();
    drop(store);
    assert!(data.join(medic_store::DB_FILE).is_file());
    assert_eq!(
        Store::open_data_dir(&data)
            .unwrap()
            .journal_all()
            .unwrap()
            .len(),
        1
    );

    // A data dir path that is a file: a clear error naming it.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open_data_dir(&file).unwrap_err();
    assert!(matches!(err, StoreError::DataDir { .. }), "{err:?}");
    assert!(err.to_string().contains("file"), "{err}");
}

#[test]
fn two_handles_on_one_file_append_without_losing_or_reusing_seqs() {
    // The daemon and a one-shot `medic heal` share the data directory.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.db");
    Store::open(&path).unwrap();
    let writers: Vec<_> = ["daemon", "heal"]
        .into_iter()
        .map(|who| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                (0..50)
                    .map(|i| {
                        store
                            .append_journal(&entry(who, "intent", None, i))
                            .unwrap()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 100);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store
            .journal_all()
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        seqs
    );
}

#[test]
fn store_can_move_to_another_thread() {
    fn is_send<T: Send>() {}
    is_send::<Store>();
    is_send::<medic_store::Windows>();
}

#[test]
fn runs_from_two_connections_get_distinct_increasing_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.db");
    let mut daemon = Store::open(&path).unwrap();
    let mut heal = Store::open(&path).unwrap();
    let a = daemon.begin_run(ts(1), "daemon").unwrap();
    let b = heal.begin_run(ts(2), "heal").unwrap();
    let c = daemon.begin_run(ts(3), "daemon").unwrap();
    assert!(a >= 1 && a < b && b < c, "{a} {b} {c}");
    drop((daemon, heal));
    // Reopened: still never handed out again.
    let mut again = Store::open(&path).unwrap();
    assert!(again.begin_run(ts(4), "heal").unwrap() > c);
}

#[test]
fn a_version_2_database_gets_the_runs_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.db");
    {
        let mut store = Store::open(&path).unwrap();
        store
            .append_journal(&entry("a", "intent", None, 1))
            .unwrap();
        // As medic before runs existed left it.
        store.begin_run(ts(1), "daemon").unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE runs; PRAGMA user_version = 2;")
            .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(store.begin_run(ts(2), "heal").unwrap() >= 1);
    assert_eq!(store.journal_all().unwrap().len(), 1);
}

#[test]
fn a_read_only_store_reads_what_a_writer_appends_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.db");
    // Missing: refused, not created.
    assert!(Store::open_read_only(&path).is_err());
    assert!(!path.exists());

    let mut writer = Store::open(&path).unwrap();
    writer
        .insert_samples(&[sample("a", "rss", &[], 10, 1.0)])
        .unwrap();
    writer
        .append_journal(&entry("a", "intent", None, 1))
        .unwrap();
    let mut reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.journal_all().unwrap().len(), 1);
    writer
        .append_journal(&entry("a", "acted", None, 2))
        .unwrap();
    assert_eq!(
        reader.journal_all().unwrap().len(),
        2,
        "sees the writer's new entries"
    );
    assert_eq!(reader.samples("a", "rss", all_time()).unwrap().len(), 1);
    assert!(
        reader
            .append_journal(&entry("a", "intent", None, 3))
            .is_err()
    );
    assert!(reader.begin_run(ts(3), "heal").is_err());
    assert_eq!(writer.journal_all().unwrap().len(), 2);
    // With no writer left (its -wal and -shm files are gone) it still reads.
    drop(reader);
    drop(writer);
    let before = std::fs::read(&path).unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.journal_all().unwrap().len(), 2);
    drop(reader);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the database file is unchanged"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["medic.db"], "no -wal or -shm file was left");
}

#[test]
fn a_read_only_store_opens_paths_with_uri_characters() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a?b%20c#d");
    std::fs::create_dir_all(&sub).unwrap();
    let path = sub.join("medic.db");
    {
        let mut writer = Store::open(&path).unwrap();
        writer
            .append_journal(&entry("a", "intent", None, 1))
            .unwrap();
    }
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.journal_all().unwrap().len(), 1);
}
