//! History: per-target ring buffers for hot windows, and SQLite (WAL) for samples, health
//! transitions, incidents and the action journal.
//!
//! Main types:
//! - [`Windows`]: fixed-capacity ring buffers, one per (target, series name), holding the recent
//!   window the detectors score. Pushing into an existing series never allocates; reading copies
//!   a window into caller-provided buffers, oldest to newest. See the [`ring`] module for the
//!   capacity rules.
//! - [`Store`]: the SQLite history of one data directory — samples (batched writes), health
//!   transitions, incidents and the generic action journal ([`JournalEntry`], payloads defined
//!   by the engine), runs ([`Store::begin_run`]: a number per process start, never handed out
//!   twice, from which the daemon and `medic heal` number their actions apart), with retention
//!   by age ([`Store::prune`]) and a versioned schema migrated on open ([`SCHEMA_VERSION`]);
//!   [`Store::open_read_only`] reads an existing database without writing (dry runs).
//! - [`StoreError`]: every failure names the database file; a corrupt file, a lock held by
//!   another process or a database from a newer medic each get their own clear variant.
//!
//! Invariants: a journal entry that was acknowledged ([`Store::append_journal`] returned `Ok`)
//! is never lost, even on SIGKILL (WAL with `synchronous=FULL`). Nothing here reads the clock:
//! every timestamp comes from the caller. No input panics.

mod db;
mod error;
pub mod ring;

pub use db::{
    DB_FILE, HealthTransition, Incident, IncidentId, JournalEntry, JournalRecord, OpenOptions,
    PruneReport, SCHEMA_VERSION, SeriesKey, Store,
};
pub use error::StoreError;
pub use ring::{PushOutcome, SeriesId, Windows, WindowsFull, series_key};
