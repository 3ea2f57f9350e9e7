//! Error-pattern diagnosis: why a target fails, and what can be done about it.
//!
//! - [`patterns`]: the user-extensible pattern library (`policies/patterns.yaml`), validated
//!   with `file:line:col: key.path: message` errors and compiled into one `RegexSet`.
//! - [`analyze`]: matches text (and non-text signals such as "killed by signal 9 near the
//!   memory limit") against the library and combines the matches into ranked [`Cause`]s.
//! - [`context`]: the bounded [`DiagnosticContext`] of a failing target and its collector.
//! - [`planner`]: turns a [`Diagnosis`] into ranked [`medic_core::PlanOption`]s and decides
//!   whether the best one may run without approval.
//! - [`fixes`]: known fixes (raise a memory limit, a timeout, free disk, …) as pure functions
//!   from an old value to a new one, clamped to per-target bounds.
//! - [`shadow`]: shadow errors: a reported success contradicted by a failed post-condition.
//! - [`outcomes`]: learning from outcomes offline: incident signatures and their verified
//!   attempts read from the journal, clustered (linfa k-means or DBSCAN, silhouette), Beta
//!   success per cluster and strategy, written as a model file with a card and loaded into
//!   `medic_strategy::Learner` (medic's one learner, which re-ranks plans).
//! - [`signatures`]: failure signatures: recorded failures clustered offline (k-means,
//!   k by silhouette), assigned at run time to the nearest centroid or called novel.
//! - [`eval`]: accuracy, per-category precision/recall and the confusion matrix on a labelled
//!   corpus.
//!
//! Invariants: matching is linear in the input length (one `RegexSet` pass per line) and
//! bounded in what it keeps (evidence lines per cause, bytes per evidence line); a cause is
//! only ever reported with evidence that really matched one of its patterns, or with the
//! non-text signal that raised it, so random text never yields a confident category.

pub mod analyze;
pub mod context;
pub mod eval;
pub mod fixes;
pub mod outcomes;
pub mod patterns;
pub mod planner;
pub mod shadow;
pub mod signatures;

pub use analyze::{Cause, Diagnosis, Evidence, Signals, diagnose};
pub use context::DiagnosticContext;
pub use patterns::{Pattern, PatternIssue, PatternLibrary};

use std::path::PathBuf;

/// Errors of the diagnosis module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pattern file could not be read, or has problems; every one is listed with its
    /// location.
    #[error("{}", patterns::format_issues(.issues))]
    InvalidPatterns {
        /// Every problem found, in file order.
        issues: Vec<PatternIssue>,
    },
    /// The validated regexes could not be compiled together (e.g. the set is too large).
    #[error("compiling the pattern set")]
    CompileSet(#[source] regex::Error),
    /// A labelled corpus line could not be parsed.
    #[error("{path}:{line}: bad corpus line")]
    CorpusLine {
        /// The corpus file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A labelled corpus line names a category that does not exist.
    #[error("{path}:{line}: unknown category {category:?}")]
    CorpusCategory {
        /// The corpus file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending name.
        category: String,
    },
    /// A corpus file could not be read.
    #[error("reading corpus {path}")]
    ReadCorpus {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Too few failures (with at least one vocabulary term) to cluster.
    #[error("{found} failures with known terms, clustering needs at least {need}")]
    TooFewFailures {
        /// Failures with a vector.
        found: usize,
        /// Failures needed.
        need: usize,
    },
    /// Too few incidents with a verified outcome to cluster.
    #[error("{found} incidents with a verified outcome, clustering needs at least {need}")]
    TooFewIncidents {
        /// Incidents found.
        found: usize,
        /// Incidents needed.
        need: usize,
    },
    /// DBSCAN's parameters were refused.
    #[error("dbscan parameters")]
    Dbscan(#[source] linfa_clustering::DbscanParamsError),
    /// k-means failed.
    #[error("clustering failures")]
    Clustering(#[source] linfa_clustering::KMeansError),
    /// A signature model could not be read.
    #[error("reading signature model {path}")]
    ReadModel {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A signature model is not valid JSON of the expected shape.
    #[error("parsing signature model {path}")]
    ParseModel {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A signature model is inconsistent.
    #[error("invalid signature model {path}: {reason}")]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A signature model could not be encoded.
    #[error("encoding signature model {path}")]
    EncodeModel {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A signature model could not be written.
    #[error("writing signature model {path}")]
    WriteModel {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Parses a category name as written by [`medic_core::DiagnosisCategory::as_str`].
pub fn parse_category(name: &str) -> Option<medic_core::DiagnosisCategory> {
    medic_core::DiagnosisCategory::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
}
