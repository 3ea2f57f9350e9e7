//! History: per-target ring buffers for hot windows, and SQLite (WAL) for samples, health
//! transitions, incidents and the action journal.
//!
//! Invariant: a journal entry that was acknowledged is never lost, even on SIGKILL.
