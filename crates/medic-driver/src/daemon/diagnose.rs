//! Error-pattern diagnosis of failing targets in the daemon.
//!
//! The pattern library is loaded at start and with each accepted reload ([`load_patterns`]):
//! the policies directory's `patterns.yaml` when there is one (a bad one stops the start, or
//! is refused by the reload, with its `file:line:col` errors, like the other policy files),
//! else the shipped `policies/patterns.yaml` built into the binary. Both go through
//! [`PatternLibrary::parse`], the loader `medic diagnose` uses.
//!
//! Each target keeps a [`TargetDiagnosis`]: the evidence seen since its incident began, and
//! the diagnosis made from it. Evidence is
//!
//! - the exit of its supervised process (which instance, and how it ended): the tail of that
//!   instance's captured output (stdout and stderr) becomes text, a signal becomes a signal;
//! - the error of a failing probe whose text is the target's own words or a dependency's
//!   state: exec probes (the command's output) and the dependencies level. The connect errors
//!   of http and tcp probes to the target itself are left out: "connection refused" there
//!   says the target is down (the health levels say so already), not that the network is
//!   the cause, and a network diagnosis would stop a lone down instance's reroute;
//! - the output tail of its latest failed action.
//!
//! A supervised target's output tail counts at every diagnosis, exit or not. The text is
//! bounded by [`MAX_TEXT_BYTES`] (the newest lines are kept), and the signals are the exit
//! signal and resident memory against the target's `max_rss` (signal 9 near the limit is an
//! OOM kill). Diagnosis runs on the brain's thread (not an async worker), only when the
//! evidence changed (not per probe or sample), and not at all while the target is healthy;
//! the same text and signals as last time reuse the last result. An `unknown` diagnosis puts
//! nothing in the finding.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use medic_core::{DiagnosisCategory, DiagnosisFinding, ProbeKind, ProbeLevel, TargetId};
use medic_detect::diagnosis::{PatternLibrary, Signals, diagnose};

use super::DaemonError;
use crate::supervise::{ExitStatus, Supervisor};

/// The pattern file looked for in the policies directory.
pub const PATTERNS_FILE: &str = "patterns.yaml";

/// What the built-in library is called in messages.
pub const BUILTIN_PATTERNS: &str = "built-in policies/patterns.yaml";

/// The shipped library, used when the policies directory has no `patterns.yaml`.
const SHIPPED_PATTERNS: &str = include_str!("../../../../policies/patterns.yaml");

/// Bytes of text analyzed per diagnosis at most (the newest lines are kept).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The pattern library of the daemon, and where it came from.
pub(crate) struct Patterns {
    pub(crate) library: PatternLibrary,
    /// The file, or [`BUILTIN_PATTERNS`].
    pub(crate) source: String,
}

/// Loads `policies_dir/patterns.yaml`, or the built-in library when the file does not exist.
///
/// # Errors
/// A pattern file that exists but cannot be read or is invalid: every problem, with its
/// `file:line:col`.
pub(crate) fn load_patterns(policies_dir: &Path) -> Result<Patterns, DaemonError> {
    let path: PathBuf = policies_dir.join(PATTERNS_FILE);
    let (library, source) = if path.exists() {
        let library =
            PatternLibrary::load(&path).map_err(|e| DaemonError::Config(crate::error_chain(&e)))?;
        (library, path.display().to_string())
    } else {
        let library = PatternLibrary::parse(BUILTIN_PATTERNS, SHIPPED_PATTERNS)
            .map_err(|e| DaemonError::Config(crate::error_chain(&e)))?;
        (library, BUILTIN_PATTERNS.to_owned())
    };
    Ok(Patterns { library, source })
}

/// One target's evidence and the diagnosis made from it.
#[derive(Debug, Default)]
pub(crate) struct TargetDiagnosis {
    /// The instance whose unexpected exit is the latest, and how it ended.
    exit: Option<(u32, ExitStatus)>,
    /// The latest error of a failing probe that counts as evidence (see the module docs).
    probe_error: Option<String>,
    /// The output tail of the latest failed action.
    action_output: Vec<String>,
    /// Evidence arrived since the last diagnosis.
    dirty: bool,
    /// Whether a diagnosis was made in the current incident (the first is always made).
    made: bool,
    /// Hash of the text and signals the current result was made from.
    key: Option<u64>,
    /// The diagnosis (`None`: unknown, or not made).
    finding: Option<DiagnosisFinding>,
}

/// What a diagnosis needs beyond a target's evidence.
pub(crate) struct Inputs<'a> {
    pub(crate) library: &'a PatternLibrary,
    pub(crate) supervisor: &'a Supervisor,
    pub(crate) target: &'a TargetId,
    /// Whether the target is supervised (its output is captured).
    pub(crate) supervised: bool,
    /// Resident memory as a fraction of the target's limit, last reading.
    pub(crate) memory_ratio: Option<f64>,
}

impl TargetDiagnosis {
    /// The diagnosis the target's findings carry (`None`: unknown or not made).
    pub(crate) fn finding(&self) -> Option<&DiagnosisFinding> {
        self.finding.as_ref()
    }

    /// A supervised instance exited unexpectedly.
    pub(crate) fn on_exit(&mut self, instance: u32, exit: ExitStatus) {
        self.exit = Some((instance, exit));
        self.dirty = true;
    }

    /// A probe failed with `error`; kept when its kind or level makes it evidence, and only
    /// when it differs from the kept one (a probe failing the same way allocates nothing).
    pub(crate) fn on_probe_failure(&mut self, kind: ProbeKind, level: ProbeLevel, error: &str) {
        let evidence = kind == ProbeKind::Exec || level == ProbeLevel::Dependencies;
        if !evidence || self.probe_error.as_deref() == Some(error) {
            return;
        }
        self.probe_error = Some(error.to_owned());
        self.dirty = true;
    }

    /// An action failed; `output` is its (already capped) output tail.
    pub(crate) fn on_action_failed(&mut self, output: &[String]) {
        if output.is_empty() && self.action_output.is_empty() {
            return;
        }
        self.action_output = output.to_vec();
        self.dirty = true;
    }

    /// The incident is over: its evidence and diagnosis are forgotten.
    pub(crate) fn clear(&mut self) {
        *self = TargetDiagnosis::default();
    }

    /// Diagnoses again when evidence arrived since the last diagnosis of this incident (or
    /// none was made yet). Returns whether the diagnosis changed.
    pub(crate) fn refresh(&mut self, inputs: &Inputs<'_>) -> bool {
        if self.made && !self.dirty {
            return false;
        }
        self.made = true;
        self.dirty = false;
        let text = self.text(inputs);
        let signals = Signals {
            exit_signal: match self.exit {
                Some((_, ExitStatus::Signal(s))) => Some(s),
                _ => None,
            },
            rss_ratio: inputs.memory_ratio,
            disk_used: Vec::new(),
        };
        let mut h = DefaultHasher::new();
        text.hash(&mut h);
        signals.exit_signal.hash(&mut h);
        // Only whether memory was near the limit matters to the analyzer (with signal 9).
        let near_limit = signals
            .rss_ratio
            .is_some_and(|r| r >= medic_detect::diagnosis::analyze::OOM_RSS_RATIO);
        near_limit.hash(&mut h);
        let key = h.finish();
        if self.key == Some(key) {
            return false;
        }
        self.key = Some(key);
        let d = diagnose(inputs.library, &text, &signals);
        let finding = (d.category() != DiagnosisCategory::Unknown).then(|| d.to_finding());
        if finding == self.finding {
            return false;
        }
        match &finding {
            Some(f) => tracing::info!(
                target = %inputs.target,
                category = f.category.as_str(),
                confidence = f.confidence,
                pattern = f.pattern_id.as_deref().unwrap_or(""),
                lines = d.n_lines,
                "diagnosed"
            ),
            None => tracing::debug!(target = %inputs.target, lines = d.n_lines, "no diagnosis"),
        }
        self.finding = finding;
        true
    }

    /// The text to analyze: the probe error, the failed action's output, then the newest
    /// lines of the supervised output, within [`MAX_TEXT_BYTES`].
    fn text(&self, inputs: &Inputs<'_>) -> String {
        let mut text = String::new();
        let push = |text: &mut String, line: &str| {
            if text.len() + line.len() < MAX_TEXT_BYTES {
                text.push_str(line);
                text.push('\n');
            }
        };
        if let Some(e) = &self.probe_error {
            push(&mut text, e);
        }
        for line in &self.action_output {
            push(&mut text, line);
        }
        if inputs.supervised {
            let output = match self.exit {
                Some((instance, _)) => inputs
                    .supervisor
                    .instance_output_tail(inputs.target, instance),
                None => inputs.supervisor.output_tail(inputs.target),
            };
            let budget = MAX_TEXT_BYTES.saturating_sub(text.len());
            let mut used = 0;
            let mut first = output.len();
            for (k, line) in output.iter().enumerate().rev() {
                if used + line.len() + 1 > budget {
                    break;
                }
                used += line.len() + 1;
                first = k;
            }
            for line in &output[first..] {
                push(&mut text, line);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_library_is_the_shipped_file_and_a_bad_file_names_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = load_patterns(dir.path()).unwrap();
        assert_eq!(p.source, BUILTIN_PATTERNS);
        let shipped = PatternLibrary::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies/patterns.yaml"),
        )
        .unwrap();
        assert_eq!(p.library.patterns(), shipped.patterns());

        std::fs::write(
            dir.path().join(PATTERNS_FILE),
            "patterns:\n  - id: x\n    category: nonsense\n    confidence: 0.5\n    regexes: ['a']\n",
        )
        .unwrap();
        let Err(DaemonError::Config(msg)) = load_patterns(dir.path()) else {
            panic!("a bad patterns.yaml is refused");
        };
        assert!(msg.contains("patterns.yaml:3:"), "{msg}");
        assert!(msg.contains("category"), "{msg}");
    }

    #[test]
    fn evidence_is_diagnosed_once_per_change_and_connect_errors_are_not_evidence() {
        let patterns = load_patterns(Path::new("/nonexistent")).unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let supervisor = Supervisor::new(tx);
        let target = TargetId::new("svc");
        let inputs = Inputs {
            library: &patterns.library,
            supervisor: &supervisor,
            target: &target,
            supervised: false,
            memory_ratio: None,
        };
        let mut d = TargetDiagnosis::default();
        // A connect error of an http probe to the target itself says it is down, nothing more.
        d.on_probe_failure(
            ProbeKind::Http,
            ProbeLevel::Liveness,
            "liveness: connect to 127.0.0.1:1: Connection refused (os error 111)",
        );
        assert!(!d.refresh(&inputs));
        assert_eq!(d.finding(), None);

        let config = "liveness: Error: invalid configuration: unknown key \"listen_adress\" in /etc/app/config.yaml";
        d.on_probe_failure(ProbeKind::Exec, ProbeLevel::Liveness, config);
        assert!(d.refresh(&inputs));
        let f = d.finding().unwrap().clone();
        assert_eq!(f.category, DiagnosisCategory::Configuration);
        assert!(f.evidence[0].contains("listen_adress"), "{f:?}");
        // The same failure again is no new evidence.
        d.on_probe_failure(ProbeKind::Exec, ProbeLevel::Liveness, config);
        assert!(!d.dirty);
        assert!(!d.refresh(&inputs));

        // A failed action's output is evidence too, and replaces the earlier cause.
        d.on_action_failed(&[
            "restoring the snapshot".to_owned(),
            "cp: error writing '/var/lib/app/state.db': No space left on device".to_owned(),
        ]);
        assert!(d.refresh(&inputs));
        assert_eq!(d.finding().unwrap().category, DiagnosisCategory::Storage);

        // A kill by signal 9 at the memory limit is an OOM kill.
        d.clear();
        d.on_exit(0, ExitStatus::Signal(9));
        let oom = Inputs {
            memory_ratio: Some(0.97),
            ..inputs
        };
        assert!(d.refresh(&oom));
        assert_eq!(
            d.finding().unwrap().category,
            DiagnosisCategory::ResourceExhaustion
        );
    }
}
