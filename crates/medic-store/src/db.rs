//! The SQLite history: samples, health transitions, incidents and the action journal.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_core::{HealthState, MetricSample, TargetId, Timestamp};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StoreError;

/// The schema, one migration per version: `MIGRATIONS[i]` takes a database from version `i`
/// to version `i + 1`. Append only; never edit a shipped migration.
const MIGRATIONS: &[&str] = &[
    // v1: samples and health transitions.
    r#"
    CREATE TABLE series (
        id      INTEGER PRIMARY KEY,
        target  TEXT NOT NULL,
        metric  TEXT NOT NULL,
        labels  TEXT NOT NULL,            -- JSON object, keys sorted
        UNIQUE (target, metric, labels)
    );
    CREATE TABLE samples (
        series_id INTEGER NOT NULL,
        ts        INTEGER NOT NULL,       -- ms since the epoch
        value     REAL,                   -- NULL stands for NaN (SQLite stores NaN as NULL)
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
    "#,
    // v2: incidents and the action journal.
    r#"
    CREATE TABLE incidents (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        target    TEXT NOT NULL,
        opened_at INTEGER NOT NULL,
        closed_at INTEGER,
        signature TEXT NOT NULL,          -- JSON
        summary   TEXT NOT NULL           -- JSON
    );
    CREATE INDEX incidents_target ON incidents (target, opened_at);
    CREATE INDEX incidents_opened ON incidents (opened_at);
    CREATE TABLE journal (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        ts              INTEGER NOT NULL,
        target          TEXT NOT NULL,
        kind            TEXT NOT NULL,
        idempotency_key TEXT,
        payload         TEXT NOT NULL     -- JSON
    );
    CREATE INDEX journal_key ON journal (idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX journal_target ON journal (target, seq);
    "#,
    // v3: runs, so processes sharing the journal (the daemon, `medic heal`) number their
    // actions apart. AUTOINCREMENT: a number is never handed out twice, even after the
    // highest row is deleted.
    r#"
    CREATE TABLE runs (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at INTEGER NOT NULL,
        kind       TEXT NOT NULL
    );
    "#,
];

/// The database's file name inside a data directory (see [`Store::open_data_dir`]).
pub const DB_FILE: &str = "medic.db";

/// The schema version this code writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How to open a [`Store`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// How long to wait for a lock held by another connection before failing with
    /// [`StoreError::Locked`]. The daemon and a one-shot `medic heal` share one file, so this
    /// should cover the other side's longest transaction.
    pub busy_timeout: Duration,
}

impl OpenOptions {
    /// Five seconds of patience for locks.
    pub const DEFAULT: OpenOptions = OpenOptions {
        busy_timeout: Duration::from_secs(5),
    };
}

/// A change of a target's combined health state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthTransition {
    /// The target.
    pub target: TargetId,
    /// When the new state was decided.
    pub at: Timestamp,
    /// The state before.
    pub from: HealthState,
    /// The state after.
    pub to: HealthState,
    /// Why, e.g. "liveness failed 3 times: connection refused".
    pub reason: String,
}

/// The row id of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub i64);

/// An incident: a stretch of time a target needed attention, with what it looked like.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The row id.
    pub id: IncidentId,
    /// The target.
    pub target: TargetId,
    /// When it was opened.
    pub opened_at: Timestamp,
    /// When it was closed; `None` while open.
    pub closed_at: Option<Timestamp>,
    /// The failure signature (features, diagnosis…), as the caller defined it.
    pub signature: Value,
    /// The summary (actions, outcome…), as the caller defined it.
    pub summary: Value,
}

/// An entry to append to the action journal. The store does not interpret `kind` or `payload`;
/// the engine defines them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// When the entry was made.
    pub at: Timestamp,
    /// The target acted on.
    pub target: TargetId,
    /// The entry's kind, e.g. `intent` or `outcome`.
    pub kind: String,
    /// Ties the entries of one action together and lets a restarted daemon find them.
    pub idempotency_key: Option<String>,
    /// The engine's payload.
    pub payload: Value,
}

/// A journal entry as stored, with its sequence number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// Position in the journal; strictly increasing, never reused.
    pub seq: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: JournalEntry,
}

/// What [`Store::prune`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Samples deleted.
    pub samples: usize,
    /// Health transitions deleted.
    pub transitions: usize,
}

/// One stored series: a metric name with one label set, of one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The metric name.
    pub metric: String,
    /// The labels, sorted by name.
    pub labels: Vec<(String, String)>,
}

/// The history database of one medic data directory.
///
/// Opened in WAL mode with `synchronous=FULL` for every transaction: a write that returned `Ok`
/// survives a crash of the process (SIGKILL) and of the machine. Sample writes are batched, so
/// the cost of the sync is paid once per batch, not per sample. Several processes (the daemon
/// and a one-shot `medic heal`) may open the same file; writers wait up to
/// [`OpenOptions::busy_timeout`] for each other.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    busy_timeout: Duration,
    /// `target \0 metric \0 labels-json` → series id, so repeated series cost no query.
    series_ids: HashMap<String, i64>,
    key_buf: String,
    labels_buf: String,
    order_buf: Vec<usize>,
}

impl Store {
    /// Opens (creating if missing) the database at `path` with [`OpenOptions::DEFAULT`] and
    /// migrates it to [`SCHEMA_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, &OpenOptions::DEFAULT)
    }

    /// Opens the database [`DB_FILE`] of a data directory (`--data-dir`), creating the
    /// directory if missing, with [`OpenOptions::DEFAULT`].
    pub fn open_data_dir(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Store::open(dir.join(DB_FILE))
    }

    /// Opens an existing database read-only: nothing is created, migrated or written (a
    /// dry run reads the history and journal a running daemon writes). A database of an
    /// older schema is read as it is; one from a newer medic is refused
    /// ([`StoreError::TooNew`]). Writes through the returned store fail.
    ///
    /// While a writer has the database open (its `-wal` file exists) it is read through
    /// SQLite's shared-memory index, so the writer's latest commits are seen. Without a
    /// `-wal` file every commit is in the main file, which is then opened `immutable`: SQLite
    /// would otherwise create `-wal` and `-shm` files next to it. A writer that starts
    /// meanwhile writes to its own `-wal`, so such a reader sees the database as it was
    /// when it opened.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let immutable = !Path::new(&wal).exists();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let opened = match path.to_str() {
            Some(p) if immutable => {
                // A URI; `%`, `?` and `#` in the path would be read as URI syntax.
                let escaped = p
                    .replace('%', "%25")
                    .replace('?', "%3f")
                    .replace('#', "%23");
                Connection::open_with_flags(
                    format!("file:{escaped}?immutable=1"),
                    flags | OpenFlags::SQLITE_OPEN_URI,
                )
            }
            _ => Connection::open_with_flags(&path, flags),
        };
        let conn = opened.map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            op: "opening the database read-only",
            source,
        })?;
        let store = Store::from_conn(conn, path, OpenOptions::DEFAULT.busy_timeout)?;
        let found = store.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: store.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(store)
    }

    /// A store on an open connection: every query of the store is prepared once and kept
    /// (there are about twenty), and a lock is waited for up to `busy_timeout`.
    fn from_conn(
        conn: Connection,
        path: PathBuf,
        busy_timeout: Duration,
    ) -> Result<Store, StoreError> {
        let store = Store {
            conn,
            path,
            busy_timeout,
            series_ids: HashMap::new(),
            key_buf: String::new(),
            labels_buf: String::new(),
            order_buf: Vec::new(),
        };
        store.conn.set_prepared_statement_cache_capacity(64);
        store
            .conn
            .busy_timeout(busy_timeout)
            .map_err(|e| store.err("setting the busy timeout", e))?;
        Ok(store)
    }

    /// Opens (creating if missing) the database at `path` and migrates it to
    /// [`SCHEMA_VERSION`].
    ///
    /// Fails with [`StoreError::NotADatabase`] for a file that is not SQLite,
    /// [`StoreError::Locked`] when another process holds the lock past the busy timeout, and
    /// [`StoreError::TooNew`] for a database from a newer medic (which is left untouched).
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                op: "opening the database",
                source,
            })?;
        let mut store = Store::from_conn(conn, path, opts.busy_timeout)?;
        // The header is first read here, so a garbage file fails on this statement.
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| store.err("switching to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(StoreError::NoWal {
                path: store.path.clone(),
                mode,
            });
        }
        store
            .conn
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(|e| store.err("setting synchronous=FULL", e))?;
        store.migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (always [`SCHEMA_VERSION`] after open).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err("reading the schema version", e))
    }

    /// Runs SQLite's integrity check; [`StoreError::Corrupt`] lists what it found.
    pub fn check_integrity(&self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.err("checking integrity", e))?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("checking integrity", e))?;
        if lines.len() == 1 && lines[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                source: None,
                details: lines,
            })
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock up front, so two processes opening a fresh file do
        // not both try to create the schema.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&self.path, self.busy_timeout, "starting the migration", e))?;
        let found: u32 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| {
                classify(
                    &self.path,
                    self.busy_timeout,
                    "reading the schema version",
                    e,
                )
            })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let to = i as u32 + 1;
            tx.execute_batch(sql)
                .and_then(|()| tx.execute_batch(&format!("PRAGMA user_version = {to}")))
                .map_err(|source| StoreError::Migration {
                    path: self.path.clone(),
                    from: found,
                    to,
                    source,
                })?;
        }
        tx.commit()
            .map_err(|e| classify(&self.path, self.busy_timeout, "committing the migration", e))
    }

    // ---- samples ----

    /// Stores a batch of samples in one transaction (one sync for the whole batch); returns
    /// how many were written. A sample with the same target, metric, labels and timestamp as a
    /// stored one replaces it. Labels are stored sorted by name, so their order does not matter.
    pub fn insert_samples(&mut self, samples: &[MetricSample]) -> Result<usize, StoreError> {
        let result = self.insert_samples_inner(samples);
        if result.is_err() {
            // Ids cached inside a rolled-back transaction may not exist.
            self.series_ids.clear();
        }
        result
    }

    fn insert_samples_inner(&mut self, samples: &[MetricSample]) -> Result<usize, StoreError> {
        if samples.is_empty() {
            return Ok(0);
        }
        let path = &self.path;
        let wait = self.busy_timeout;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(path, wait, "starting a sample batch", e))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?1, ?2, ?3)",
                )
                .map_err(|e| classify(path, wait, "preparing the sample insert", e))?;
            let mut new_series = tx
                .prepare_cached(
                    "INSERT INTO series (target, metric, labels) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (target, metric, labels) DO UPDATE SET target = excluded.target \
                     RETURNING id",
                )
                .map_err(|e| classify(path, wait, "preparing the series insert", e))?;
            for s in samples {
                labels_json(&s.labels, &mut self.order_buf, &mut self.labels_buf);
                self.key_buf.clear();
                self.key_buf.push_str(s.target.as_str());
                self.key_buf.push('\0');
                self.key_buf.push_str(&s.name);
                self.key_buf.push('\0');
                self.key_buf.push_str(&self.labels_buf);
                let series_id = match self.series_ids.get(self.key_buf.as_str()) {
                    Some(id) => *id,
                    None => {
                        let id: i64 = new_series
                            .query_row(params![s.target.as_str(), s.name, self.labels_buf], |r| {
                                r.get(0)
                            })
                            .map_err(|e| classify(path, wait, "registering a series", e))?;
                        self.series_ids.insert(self.key_buf.clone(), id);
                        id
                    }
                };
                let value = if s.value.is_nan() {
                    None
                } else {
                    Some(s.value)
                };
                insert
                    .execute(params![series_id, ts_sql(s.at), value])
                    .map_err(|e| classify(path, wait, "inserting a sample", e))?;
            }
        }
        tx.commit()
            .map_err(|e| classify(path, wait, "committing a sample batch", e))?;
        Ok(samples.len())
    }

    /// The samples of `metric` of `target` with a timestamp in `range` (start inclusive, end
    /// exclusive), every label set, ordered by time (then labels).
    pub fn samples(
        &self,
        target: &str,
        metric: &str,
        range: Range<Timestamp>,
    ) -> Result<Vec<MetricSample>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT s.ts, s.value, r.labels FROM series r JOIN samples s ON s.series_id = r.id \
                 WHERE r.target = ?1 AND r.metric = ?2 AND s.ts >= ?3 AND s.ts < ?4 \
                 ORDER BY s.ts, r.labels",
            )
            .map_err(|e| self.err("querying samples", e))?;
        let rows = stmt
            .query_map(
                params![target, metric, ts_sql(range.start), ts_sql(range.end)],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<f64>>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("querying samples", e))?;
        let target = TargetId::new(target);
        let mut out = Vec::with_capacity(rows.len());
        let mut last_labels: Option<(String, Vec<(String, String)>)> = None;
        for (ts, value, labels) in rows {
            let parsed = match &last_labels {
                Some((raw, parsed)) if *raw == labels => parsed.clone(),
                _ => {
                    let parsed = self.parse_labels(&labels)?;
                    last_labels = Some((labels, parsed.clone()));
                    parsed
                }
            };
            out.push(MetricSample {
                target: target.clone(),
                name: metric.to_owned(),
                labels: parsed,
                value: value.unwrap_or(f64::NAN),
                at: ts_from_sql(ts),
            });
        }
        Ok(out)
    }

    /// The series stored for `target`, ordered by metric then labels.
    pub fn series(&self, target: &str) -> Result<Vec<SeriesKey>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT metric, labels FROM series WHERE target = ?1 ORDER BY metric, labels",
            )
            .map_err(|e| self.err("listing series", e))?;
        let rows = stmt
            .query_map([target], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("listing series", e))?;
        rows.into_iter()
            .map(|(metric, labels)| {
                Ok(SeriesKey {
                    metric,
                    labels: self.parse_labels(&labels)?,
                })
            })
            .collect()
    }

    /// Every target with stored samples, sorted by name.
    pub fn sample_targets(&self) -> Result<Vec<TargetId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT target FROM series ORDER BY target")
            .map_err(|e| self.err("listing targets", e))?;
        stmt.query_map([], |r| r.get::<_, String>(0).map(TargetId::from))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("listing targets", e))
    }

    // ---- health transitions ----

    /// Records a health transition.
    pub fn record_transition(&mut self, t: &HealthTransition) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO health_transitions (target, ts, from_state, to_state, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    t.target.as_str(),
                    ts_sql(t.at),
                    t.from.as_str(),
                    t.to.as_str(),
                    t.reason
                ])
            })
            .map_err(|e| self.err("recording a health transition", e))?;
        Ok(())
    }

    /// Health transitions with a timestamp in `range`, of one target or of all, oldest first.
    pub fn transitions(
        &self,
        target: Option<&str>,
        range: Range<Timestamp>,
    ) -> Result<Vec<HealthTransition>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT target, ts, from_state, to_state, reason FROM health_transitions \
                 WHERE (?1 IS NULL OR target = ?1) AND ts >= ?2 AND ts < ?3 ORDER BY ts, id",
            )
            .map_err(|e| self.err("querying health transitions", e))?;
        let rows = stmt
            .query_map(
                params![target, ts_sql(range.start), ts_sql(range.end)],
                transition_row,
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("querying health transitions", e))?;
        rows.into_iter().map(|r| self.transition(r)).collect()
    }

    /// The most recent transition of every target (its last known state), sorted by target.
    pub fn latest_transitions(&self) -> Result<Vec<HealthTransition>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT target, ts, from_state, to_state, reason FROM health_transitions h \
                 WHERE id = (SELECT id FROM health_transitions WHERE target = h.target \
                             ORDER BY ts DESC, id DESC LIMIT 1) \
                 ORDER BY target",
            )
            .map_err(|e| self.err("querying the latest health states", e))?;
        let rows = stmt
            .query_map([], transition_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("querying the latest health states", e))?;
        rows.into_iter().map(|r| self.transition(r)).collect()
    }

    // ---- incidents ----

    /// Opens an incident and returns its id.
    pub fn open_incident(
        &mut self,
        target: &TargetId,
        opened_at: Timestamp,
        signature: &Value,
        summary: &Value,
    ) -> Result<IncidentId, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO incidents (target, opened_at, signature, summary) \
                 VALUES (?1, ?2, ?3, ?4) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        target.as_str(),
                        ts_sql(opened_at),
                        signature.to_string(),
                        summary.to_string()
                    ],
                    |r| r.get(0),
                )
            })
            .map(IncidentId)
            .map_err(|e| self.err("opening an incident", e))
    }

    /// Replaces the summary of an open incident.
    pub fn update_incident(&mut self, id: IncidentId, summary: &Value) -> Result<(), StoreError> {
        let n = self
            .conn
            .prepare_cached("UPDATE incidents SET summary = ?2 WHERE id = ?1 AND closed_at IS NULL")
            .and_then(|mut s| s.execute(params![id.0, summary.to_string()]))
            .map_err(|e| self.err("updating an incident", e))?;
        self.expect_one(n, id)
    }

    /// Closes an open incident with its final summary.
    pub fn close_incident(
        &mut self,
        id: IncidentId,
        closed_at: Timestamp,
        summary: &Value,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE incidents SET closed_at = ?2, summary = ?3 \
                 WHERE id = ?1 AND closed_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![id.0, ts_sql(closed_at), summary.to_string()]))
            .map_err(|e| self.err("closing an incident", e))?;
        self.expect_one(n, id)
    }

    /// One incident by id.
    pub fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        let row = self
            .conn
            .prepare_cached(&format!("{INCIDENT_SELECT} WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id.0], incident_row).optional())
            .map_err(|e| self.err("querying an incident", e))?;
        row.map(|r| self.incident_from(r)).transpose()
    }

    /// Incidents opened in `range`, of one target or of all, oldest first.
    pub fn incidents(
        &self,
        target: Option<&str>,
        range: Range<Timestamp>,
    ) -> Result<Vec<Incident>, StoreError> {
        self.incident_query(
            &format!(
                "{INCIDENT_SELECT} WHERE (?1 IS NULL OR target = ?1) \
                 AND opened_at >= ?2 AND opened_at < ?3 ORDER BY opened_at, id"
            ),
            params![target, ts_sql(range.start), ts_sql(range.end)],
        )
    }

    /// Incidents not closed yet, oldest first.
    pub fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.incident_query(
            &format!("{INCIDENT_SELECT} WHERE closed_at IS NULL ORDER BY opened_at, id"),
            params![],
        )
    }

    fn incident_query(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Incident>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("querying incidents", e))?;
        let rows = stmt
            .query_map(params, incident_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("querying incidents", e))?;
        rows.into_iter().map(|r| self.incident_from(r)).collect()
    }

    // ---- runs ----

    /// Records the start of a run of `kind` (e.g. `daemon`, `heal`) and returns its number:
    /// unique among every process that opened this database, and greater than every number
    /// handed out before. The daemon and `medic heal` number their actions from it, so ids
    /// written to the one journal never collide.
    pub fn begin_run(&mut self, at: Timestamp, kind: &str) -> Result<u64, StoreError> {
        let id: i64 = self
            .conn
            .prepare_cached("INSERT INTO runs (started_at, kind) VALUES (?1, ?2) RETURNING id")
            .and_then(|mut s| s.query_row(params![ts_sql(at), kind], |r| r.get(0)))
            .map_err(|e| self.err("recording a run", e))?;
        Ok(u64::try_from(id).unwrap_or(0))
    }

    // ---- journal ----

    /// Appends an entry to the action journal and returns its sequence number.
    ///
    /// Durable when it returns `Ok`: the entry's transaction is committed with
    /// `synchronous=FULL`, so it survives SIGKILL of this process and a power loss.
    pub fn append_journal(&mut self, entry: &JournalEntry) -> Result<u64, StoreError> {
        let seq: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO journal (ts, target, kind, idempotency_key, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING seq",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        ts_sql(entry.at),
                        entry.target.as_str(),
                        entry.kind,
                        entry.idempotency_key,
                        entry.payload.to_string()
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(|e| self.err("appending to the journal", e))?;
        Ok(u64::try_from(seq).unwrap_or(0))
    }

    /// Journal entries with a sequence number greater than `seq`, in order.
    pub fn journal_since(&self, seq: u64) -> Result<Vec<JournalRecord>, StoreError> {
        self.journal_query(
            &format!("{JOURNAL_SELECT} WHERE seq > ?1 ORDER BY seq"),
            params![i64::try_from(seq).unwrap_or(i64::MAX)],
        )
    }

    /// The whole journal, in order.
    pub fn journal_all(&self) -> Result<Vec<JournalRecord>, StoreError> {
        self.journal_since(0)
    }

    /// Journal entries carrying `key` as idempotency key, in order.
    pub fn journal_by_key(&self, key: &str) -> Result<Vec<JournalRecord>, StoreError> {
        self.journal_query(
            &format!("{JOURNAL_SELECT} WHERE idempotency_key = ?1 ORDER BY seq"),
            params![key],
        )
    }

    /// Journal entries of `target` with a sequence number greater than `seq`, in order.
    pub fn journal_for_target(
        &self,
        target: &str,
        seq: u64,
    ) -> Result<Vec<JournalRecord>, StoreError> {
        self.journal_query(
            &format!("{JOURNAL_SELECT} WHERE target = ?1 AND seq > ?2 ORDER BY seq"),
            params![target, i64::try_from(seq).unwrap_or(i64::MAX)],
        )
    }

    /// The sequence number of the last journal entry, if any.
    pub fn last_journal_seq(&self) -> Result<Option<u64>, StoreError> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM journal", [], |r| r.get(0))
            .map_err(|e| self.err("reading the journal", e))?;
        Ok(seq.and_then(|s| u64::try_from(s).ok()))
    }

    fn journal_query(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<JournalRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("reading the journal", e))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err("reading the journal", e))?;
        rows.into_iter()
            .map(|(seq, ts, target, kind, idempotency_key, payload)| {
                Ok(JournalRecord {
                    seq: u64::try_from(seq).unwrap_or(0),
                    entry: JournalEntry {
                        at: ts_from_sql(ts),
                        target: TargetId::from(target),
                        kind,
                        idempotency_key,
                        payload: self.parse_json("journal", &payload)?,
                    },
                })
            })
            .collect()
    }

    // ---- retention ----

    /// Deletes samples and health transitions older than `older_than`.
    ///
    /// Keeps: the action journal (all of it, finished or not: the engine decides what a
    /// finished action is, and replaying needs the history), incidents (they are small and are
    /// the record of what happened), and the series catalogue (ids stay stable for concurrent
    /// writers). Runs in one transaction.
    pub fn prune(&mut self, older_than: Timestamp) -> Result<PruneReport, StoreError> {
        let path = &self.path;
        let wait = self.busy_timeout;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(path, wait, "starting the prune", e))?;
        let cutoff = ts_sql(older_than);
        let samples = tx
            .execute("DELETE FROM samples WHERE ts < ?1", [cutoff])
            .map_err(|e| classify(path, wait, "pruning samples", e))?;
        let transitions = tx
            .execute("DELETE FROM health_transitions WHERE ts < ?1", [cutoff])
            .map_err(|e| classify(path, wait, "pruning health transitions", e))?;
        tx.commit()
            .map_err(|e| classify(path, wait, "committing the prune", e))?;
        Ok(PruneReport {
            samples,
            transitions,
        })
    }

    // ---- helpers ----

    fn err(&self, op: &'static str, e: rusqlite::Error) -> StoreError {
        classify(&self.path, self.busy_timeout, op, e)
    }

    fn expect_one(&self, n: usize, id: IncidentId) -> Result<(), StoreError> {
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::NoSuchIncident {
                path: self.path.clone(),
                id: id.0,
            })
        }
    }

    fn parse_json(&self, table: &'static str, text: &str) -> Result<Value, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::BadRow {
            path: self.path.clone(),
            table,
            detail: format!("invalid JSON: {e}"),
        })
    }

    fn parse_labels(&self, text: &str) -> Result<Vec<(String, String)>, StoreError> {
        match self.parse_json("series", text)? {
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    other => Err(StoreError::BadRow {
                        path: self.path.clone(),
                        table: "series",
                        detail: format!("label {k} is not a string: {other}"),
                    }),
                })
                .collect(),
            other => Err(StoreError::BadRow {
                path: self.path.clone(),
                table: "series",
                detail: format!("labels are not a JSON object: {other}"),
            }),
        }
    }

    fn transition(&self, r: TransitionRow) -> Result<HealthTransition, StoreError> {
        let (target, ts, from, to, reason) = r;
        Ok(HealthTransition {
            target: TargetId::from(target),
            at: ts_from_sql(ts),
            from: self.state(&from)?,
            to: self.state(&to)?,
            reason,
        })
    }

    fn state(&self, s: &str) -> Result<HealthState, StoreError> {
        [
            HealthState::Healthy,
            HealthState::Degraded,
            HealthState::Unhealthy,
            HealthState::Unknown,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
        .ok_or_else(|| StoreError::BadRow {
            path: self.path.clone(),
            table: "health_transitions",
            detail: format!("unknown health state {s:?}"),
        })
    }

    fn incident_from(&self, r: IncidentRow) -> Result<Incident, StoreError> {
        let (id, target, opened, closed, signature, summary) = r;
        Ok(Incident {
            id: IncidentId(id),
            target: TargetId::from(target),
            opened_at: ts_from_sql(opened),
            closed_at: closed.map(ts_from_sql),
            signature: self.parse_json("incidents", &signature)?,
            summary: self.parse_json("incidents", &summary)?,
        })
    }
}

const INCIDENT_SELECT: &str =
    "SELECT id, target, opened_at, closed_at, signature, summary FROM incidents";
const JOURNAL_SELECT: &str = "SELECT seq, ts, target, kind, idempotency_key, payload FROM journal";

type TransitionRow = (String, i64, String, String, String);
type IncidentRow = (i64, String, i64, Option<i64>, String, String);

fn transition_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TransitionRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// Maps SQLite's error codes to the store's clear errors.
fn classify(path: &Path, waited: Duration, op: &'static str, e: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase { path, source: e },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path,
            source: Some(e),
            details: Vec::new(),
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
            path,
            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            source: e,
        },
        _ => StoreError::Sqlite {
            path,
            op,
            source: e,
        },
    }
}

/// Writes the labels as a JSON object with keys sorted into `out`, using `order` as scratch.
fn labels_json(labels: &[(String, String)], order: &mut Vec<usize>, out: &mut String) {
    order.clear();
    order.extend(0..labels.len());
    order.sort_by(|a, b| labels[*a].0.cmp(&labels[*b].0));
    out.clear();
    out.push('{');
    for (n, i) in order.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let (k, v) = &labels[*i];
        json_string(k, out);
        out.push(':');
        json_string(v, out);
    }
    out.push('}');
}

fn json_string(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn ts_sql(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn ts_from_sql(ms: i64) -> Timestamp {
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_json_is_sorted_and_parses_back() {
        let labels = vec![
            ("z".to_owned(), "1".to_owned()),
            ("a".to_owned(), "q\"\\\n\u{1}".to_owned()),
        ];
        let (mut order, mut out) = (Vec::new(), String::new());
        labels_json(&labels, &mut order, &mut out);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"], "q\"\\\n\u{1}");
        assert!(out.starts_with("{\"a\""));
        labels_json(&[], &mut order, &mut out);
        assert_eq!(out, "{}");
    }
}
