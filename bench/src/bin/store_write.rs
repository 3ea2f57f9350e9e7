//! medic-store write paths against the raw SQLite they sit on, side by side in one run.
//!
//! - sample batches: `Store::insert_samples` (series lookup, label canonicalisation, one
//!   transaction per batch, WAL + synchronous=FULL) against a bare prepared INSERT of
//!   (series_id, ts, value) rows in one transaction on the same settings: the floor SQLite
//!   itself sets;
//! - journal appends: `Store::append_journal` (each durable on return) against a bare
//!   single-row INSERT with synchronous=FULL, p50/p99 latency;
//! - hot windows: `Windows::push` (by name) and `Windows::push_to` (by handle) against a `HashMap<String, VecDeque>` keyed by a
//!   `format!`-built series name, the obvious naive version.
//!
//! `cargo run --release -p medic-bench --bin store_write [-- N_BATCHES]`
#![allow(clippy::disallowed_methods)] // a benchmark measures wall time

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use medic_core::{MetricSample, TargetId, Timestamp};
use medic_store::{JournalEntry, Store, Windows};

const TARGETS: usize = 100;
const METRICS: usize = 10;
const BATCH: usize = TARGETS * METRICS; // one scrape round of 100 targets x 10 series

fn batch(round: usize, targets: &[TargetId]) -> Vec<MetricSample> {
    let mut out = Vec::with_capacity(BATCH);
    for t in targets {
        for m in 0..METRICS {
            out.push(MetricSample {
                target: t.clone(),
                name: format!("metric_{m}"),
                labels: vec![("instance".to_owned(), t.to_string())],
                value: (round * 7 + m) as f64,
                at: Timestamp::from_secs(round as u64 * 15),
            });
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let n_batches: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("temp dir");
    let targets: Vec<TargetId> = (0..TARGETS)
        .map(|i| TargetId::new(format!("agent-{i}")))
        .collect();
    let batches: Vec<Vec<MetricSample>> = (0..n_batches).map(|r| batch(r, &targets)).collect();

    // ---- sample batches ----
    let mut store = Store::open(dir.path().join("store.db")).expect("open store");
    let t0 = Instant::now();
    for b in &batches {
        store.insert_samples(b).expect("insert");
    }
    let store_secs = t0.elapsed().as_secs_f64();

    let raw = rusqlite::Connection::open(dir.path().join("raw.db")).expect("open raw");
    raw.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE samples (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL,
                               PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
         CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER, target TEXT,
                               kind TEXT, idempotency_key TEXT, payload TEXT);",
    )
    .expect("raw schema");
    let mut raw = raw;
    let t0 = Instant::now();
    for (r, b) in batches.iter().enumerate() {
        let tx = raw.transaction().expect("tx");
        {
            let mut st = tx
                .prepare_cached("INSERT OR REPLACE INTO samples VALUES (?1, ?2, ?3)")
                .expect("prepare");
            for (i, s) in b.iter().enumerate() {
                st.execute(rusqlite::params![i as i64, (r * 15_000) as i64, s.value])
                    .expect("raw insert");
            }
        }
        tx.commit().expect("commit");
    }
    let raw_secs = t0.elapsed().as_secs_f64();
    let n = (n_batches * BATCH) as f64;
    println!(
        "samples ({n_batches} batches of {BATCH}): medic-store {:.0}/s, raw rusqlite {:.0}/s, ratio {:.2}x of raw",
        n / store_secs,
        n / raw_secs,
        raw_secs / store_secs
    );

    // ---- journal appends ----
    let n_appends = 200;
    let mut store_lat = Vec::with_capacity(n_appends);
    for i in 0..n_appends {
        let e = JournalEntry {
            at: Timestamp::from_secs(i as u64),
            target: targets[i % TARGETS].clone(),
            kind: "intent".to_owned(),
            idempotency_key: Some(format!("k{i}")),
            payload: serde_json::json!({ "strategy": "restart", "attempt": i }),
        };
        let t = Instant::now();
        store.append_journal(&e).expect("append");
        store_lat.push(t.elapsed());
    }
    let mut raw_lat = Vec::with_capacity(n_appends);
    for i in 0..n_appends {
        let t = Instant::now();
        raw.prepare_cached("INSERT INTO journal (ts, target, kind, idempotency_key, payload) VALUES (?1, ?2, ?3, ?4, ?5)")
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    i as i64,
                    targets[i % TARGETS].as_str(),
                    "intent",
                    format!("k{i}"),
                    serde_json::json!({ "strategy": "restart", "attempt": i }).to_string()
                ])
            })
            .expect("raw append");
        raw_lat.push(t.elapsed());
    }
    store_lat.sort();
    raw_lat.sort();
    println!(
        "journal append (durable, {n_appends}x): medic-store p50 {:?} p99 {:?}; raw rusqlite p50 {:?} p99 {:?}; p50 ratio {:.2}x of raw",
        percentile(&store_lat, 0.5),
        percentile(&store_lat, 0.99),
        percentile(&raw_lat, 0.5),
        percentile(&raw_lat, 0.99),
        percentile(&raw_lat, 0.5).as_secs_f64() / percentile(&store_lat, 0.5).as_secs_f64()
    );

    // ---- hot windows ----
    let rounds = 2000;
    let names: Vec<String> = (0..METRICS).map(|m| format!("metric_{m}")).collect();
    let mut win = Windows::new(NonZeroUsize::new(360).expect("nonzero"), TARGETS * METRICS);
    let t0 = Instant::now();
    for r in 0..rounds {
        for t in &targets {
            for name in &names {
                win.push(t, name, Timestamp::from_secs(r), r as f64)
                    .expect("push");
            }
        }
    }
    let win_secs = t0.elapsed().as_secs_f64();
    // The driver's fast path: series handles resolved once, then pushed by handle.
    let ids: Vec<_> = targets
        .iter()
        .flat_map(|t| {
            names
                .iter()
                .map(|n| win.find(t.as_str(), n).expect("registered"))
        })
        .collect();
    let t0 = Instant::now();
    for r in rounds..2 * rounds {
        for id in &ids {
            win.push_to(*id, Timestamp::from_secs(r), r as f64);
        }
    }
    let by_id_secs = t0.elapsed().as_secs_f64();
    let mut naive: HashMap<String, VecDeque<(Timestamp, f64)>> = HashMap::new();
    let t0 = Instant::now();
    for r in 0..rounds {
        for t in &targets {
            for name in &names {
                let q = naive.entry(format!("{t}/{name}")).or_default();
                if q.len() == 360 {
                    q.pop_front();
                }
                q.push_back((Timestamp::from_secs(r), r as f64));
            }
        }
    }
    let naive_secs = t0.elapsed().as_secs_f64();
    let pushes = (rounds as usize * TARGETS * METRICS) as f64;
    println!(
        "window push ({pushes} samples, capacity 360): Windows::push {:.1} ns/sample, Windows::push_to {:.1} ns/sample, naive HashMap<String, VecDeque> {:.1} ns/sample; ratios {:.2}x and {:.2}x faster",
        win_secs * 1e9 / pushes,
        by_id_secs * 1e9 / pushes,
        naive_secs * 1e9 / pushes,
        naive_secs / win_secs,
        naive_secs / by_id_secs
    );
    std::hint::black_box(&naive);
}
