//! The store's errors.

use std::path::PathBuf;

/// What went wrong with the history database. Every variant names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is not an SQLite database (garbage, truncated header, wrong file).
    #[error("{path}: not a database (the file is corrupt or is not a medic store)")]
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite detected corruption inside an otherwise recognisable database.
    #[error("{path}: database disk image is corrupt")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's error, when SQLite reported it.
        #[source]
        source: Option<rusqlite::Error>,
        /// What the integrity check said, when it was the integrity check that failed.
        details: Vec<String>,
    },
    /// Another connection held the lock for longer than the busy timeout.
    #[error("{path}: database is locked by another process (gave up after {waited_ms} ms)")]
    Locked {
        /// The database file.
        path: PathBuf,
        /// How long the store waited for the lock.
        waited_ms: u64,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer medic with a schema this code does not know.
    #[error(
        "{path}: database schema version {found} is newer than this medic supports \
         (at most {supported}); upgrade medic or point it at another data directory"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The file's `user_version`.
        found: u32,
        /// The newest version this code knows.
        supported: u32,
    },
    /// Applying a schema migration failed; the database is left at `from`.
    #[error("{path}: migrating the schema from version {from} to {to} failed")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version before the migration.
        from: u32,
        /// The version the failing migration targets.
        to: u32,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row could not be decoded (e.g. JSON that does not parse).
    #[error("{path}: bad row in {table}: {detail}")]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// The table holding the row.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// No incident with this id is open.
    #[error("{path}: no open incident with id {id}")]
    NoSuchIncident {
        /// The database file.
        path: PathBuf,
        /// The id asked for.
        id: i64,
    },
    /// SQLite refused WAL mode (e.g. a file system without shared memory support).
    #[error("{path}: cannot use WAL mode (SQLite kept journal_mode={mode})")]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },
    /// The data directory could not be created.
    #[error("{path}: cannot create the data directory")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Any other SQLite failure, with the operation that failed.
    #[error("{path}: {op} failed")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}
