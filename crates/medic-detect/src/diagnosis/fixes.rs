//! Known fixes: for a diagnosis (keyed by pattern id or category), a repair whose new value
//! is computed from the old one and clamped to the target's bounds.
//!
//! Pure logic: nothing here runs anything. Each [`ProposedFix`] carries the old and the new
//! value so the daemon can pass the new value to the target's configured `repair` action,
//! record the old one, verify, and revert to the old one if verification fails.

use std::time::Duration;

use medic_core::DiagnosisCategory;
use serde::{Deserialize, Serialize};

use super::analyze::{Diagnosis, SIGNAL_OOM_ID};

/// Growth factor of a raised limit or timeout.
pub const RAISE_FACTOR: f64 = 1.5;
/// Memory usage (fraction of the limit) above which raising the limit is considered.
pub const MEMORY_PRESSURE_RATIO: f64 = 0.9;

/// The kinds of known fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixKind {
    /// Call the target's configured GC/flush/cache-clear endpoint (leaks, memory pressure).
    CallGcEndpoint,
    /// Raise the memory limit ×[`RAISE_FACTOR`] when usage stays above 90 % of it.
    RaiseMemoryLimit,
    /// Raise a timeout ×[`RAISE_FACTOR`] after timeout diagnoses.
    RaiseTimeout,
    /// Run the configured disk cleanup.
    FreeDisk,
    /// Restore the configuration file from its last good copy.
    RestoreConfig,
}

impl FixKind {
    /// The fix's name as printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            FixKind::CallGcEndpoint => "call_gc_endpoint",
            FixKind::RaiseMemoryLimit => "raise_memory_limit",
            FixKind::RaiseTimeout => "raise_timeout",
            FixKind::FreeDisk => "free_disk",
            FixKind::RestoreConfig => "restore_config",
        }
    }
}

/// What a known fix is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixKey {
    /// A pattern (or signal) id.
    Pattern(&'static str),
    /// Any cause of this category.
    Category(DiagnosisCategory),
}

/// The table of known fixes, in the order they are proposed (cheapest and safest first).
pub const KNOWN_FIXES: &[(FixKey, FixKind)] = &[
    (FixKey::Pattern(SIGNAL_OOM_ID), FixKind::RaiseMemoryLimit),
    (
        FixKey::Category(DiagnosisCategory::ResourceExhaustion),
        FixKind::CallGcEndpoint,
    ),
    (
        FixKey::Category(DiagnosisCategory::ResourceExhaustion),
        FixKind::RaiseMemoryLimit,
    ),
    (
        FixKey::Category(DiagnosisCategory::Timeout),
        FixKind::RaiseTimeout,
    ),
    (
        FixKey::Category(DiagnosisCategory::Storage),
        FixKind::FreeDisk,
    ),
    (
        FixKey::Category(DiagnosisCategory::Configuration),
        FixKind::RestoreConfig,
    ),
];

/// The target's current settings and configured repair hooks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FixInputs {
    /// Current memory limit.
    pub memory_limit_bytes: Option<u64>,
    /// Memory usage as a fraction of the limit, sustained over the recent window.
    pub memory_usage_ratio: Option<f64>,
    /// Current timeout of the operation that timed out.
    pub timeout: Option<Duration>,
    /// Configured GC/flush/cache-clear endpoint (URL).
    pub gc_endpoint: Option<String>,
    /// Configured disk cleanup command (argv).
    pub cleanup_command: Option<Vec<String>>,
    /// Configuration file and its last good copy: (live, last good).
    pub config_backup: Option<(String, String)>,
}

/// Per-target bounds the fixes must respect (from the policy).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FixBounds {
    /// Memory limit never raised above this.
    pub max_memory_bytes: Option<u64>,
    /// Timeout never raised above this.
    pub max_timeout: Option<Duration>,
}

/// The value a fix changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum FixValue {
    /// A memory size in bytes.
    Bytes(u64),
    /// A duration in milliseconds.
    Millis(u64),
    /// A file path.
    Path(String),
    /// Nothing changes in configuration (an endpoint call, a cleanup).
    None,
}

impl FixValue {
    /// The value as passed to the target's repair action.
    pub fn as_argument(&self) -> String {
        match self {
            FixValue::Bytes(b) => b.to_string(),
            FixValue::Millis(ms) => ms.to_string(),
            FixValue::Path(p) => p.clone(),
            FixValue::None => String::new(),
        }
    }
}

/// A fix to apply, with what it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProposedFix {
    /// Which fix.
    pub kind: FixKind,
    /// The category it addresses.
    pub category: DiagnosisCategory,
    /// The value before.
    pub old: FixValue,
    /// The value to set (pass to the repair action); restore `old` to revert.
    pub new: FixValue,
    /// Whether `new` was limited by a bound.
    pub clamped: bool,
    /// The endpoint or command to invoke, if the fix is a call rather than a value.
    pub invoke: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// A known fix that matched the diagnosis but cannot be applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedFix {
    /// Which fix.
    pub kind: FixKind,
    /// Why not.
    pub reason: String,
}

/// Fixes for a diagnosis: the applicable ones and the ones that matched but cannot apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FixProposals {
    /// Applicable, in [`KNOWN_FIXES`] order.
    pub fixes: Vec<ProposedFix>,
    /// Matched by key but not applicable.
    pub skipped: Vec<SkippedFix>,
}

/// Proposes the known fixes for the diagnosis's causes.
pub fn propose(diagnosis: &Diagnosis, inputs: &FixInputs, bounds: &FixBounds) -> FixProposals {
    let mut out = FixProposals::default();
    for cause in &diagnosis.causes {
        for (key, kind) in KNOWN_FIXES {
            let keyed = match key {
                FixKey::Pattern(id) => cause.patterns.iter().any(|p| p == id),
                FixKey::Category(c) => *c == cause.category,
            };
            let already = out.fixes.iter().any(|f| f.kind == *kind)
                || out.skipped.iter().any(|f| f.kind == *kind);
            if !keyed || already {
                continue;
            }
            match apply(*kind, cause.category, inputs, bounds) {
                Ok(fix) => out.fixes.push(fix),
                Err(reason) => out.skipped.push(SkippedFix {
                    kind: *kind,
                    reason,
                }),
            }
        }
    }
    out
}

/// Computes one fix from the inputs, or says why it does not apply.
pub fn apply(
    kind: FixKind,
    category: DiagnosisCategory,
    inputs: &FixInputs,
    bounds: &FixBounds,
) -> Result<ProposedFix, String> {
    match kind {
        FixKind::RaiseMemoryLimit => {
            let old = inputs
                .memory_limit_bytes
                .ok_or("the target has no memory limit configured")?;
            let usage = inputs
                .memory_usage_ratio
                .ok_or("memory usage against the limit is unknown")?;
            if usage <= MEMORY_PRESSURE_RATIO {
                return Err(format!(
                    "memory usage {:.0}% is not above {:.0}% of the limit",
                    usage * 100.0,
                    MEMORY_PRESSURE_RATIO * 100.0
                ));
            }
            let max = bounds
                .max_memory_bytes
                .ok_or("no max memory bound in the policy")?;
            let (new, clamped) = raise(old, max)?;
            Ok(ProposedFix {
                kind,
                category,
                old: FixValue::Bytes(old),
                new: FixValue::Bytes(new),
                clamped,
                invoke: Vec::new(),
                reason: format!(
                    "memory usage at {:.0}% of the limit: raise the limit from {old} to {new} bytes{}",
                    usage * 100.0,
                    if clamped { " (clamped to max)" } else { "" }
                ),
            })
        }
        FixKind::RaiseTimeout => {
            let old = inputs
                .timeout
                .ok_or("the target has no timeout configured")?;
            let max = bounds
                .max_timeout
                .ok_or("no max timeout bound in the policy")?;
            let old_ms = u64::try_from(old.as_millis()).unwrap_or(u64::MAX);
            let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
            let (new_ms, clamped) = raise(old_ms, max_ms)?;
            Ok(ProposedFix {
                kind,
                category,
                old: FixValue::Millis(old_ms),
                new: FixValue::Millis(new_ms),
                clamped,
                invoke: Vec::new(),
                reason: format!(
                    "operations time out: raise the timeout from {old_ms} ms to {new_ms} ms{}",
                    if clamped { " (clamped to max)" } else { "" }
                ),
            })
        }
        FixKind::CallGcEndpoint => {
            let endpoint = inputs
                .gc_endpoint
                .clone()
                .ok_or("no GC/flush endpoint configured")?;
            Ok(ProposedFix {
                kind,
                category,
                old: FixValue::None,
                new: FixValue::None,
                clamped: false,
                reason: format!("memory pressure or leak: call {endpoint}"),
                invoke: vec![endpoint],
            })
        }
        FixKind::FreeDisk => {
            let argv = inputs
                .cleanup_command
                .clone()
                .filter(|a| !a.is_empty())
                .ok_or("no disk cleanup command configured")?;
            Ok(ProposedFix {
                kind,
                category,
                old: FixValue::None,
                new: FixValue::None,
                clamped: false,
                reason: format!("disk full: run the configured cleanup `{}`", argv.join(" ")),
                invoke: argv,
            })
        }
        FixKind::RestoreConfig => {
            let (live, good) = inputs
                .config_backup
                .clone()
                .ok_or("no last good configuration recorded")?;
            Ok(ProposedFix {
                kind,
                category,
                reason: format!("configuration error: restore {live} from {good}"),
                old: FixValue::Path(live),
                new: FixValue::Path(good),
                clamped: false,
                invoke: Vec::new(),
            })
        }
    }
}

/// `old × RAISE_FACTOR`, clamped to `max`; an error if it cannot grow.
fn raise(old: u64, max: u64) -> Result<(u64, bool), String> {
    if old == 0 {
        return Err("current value is zero; nothing to scale".to_owned());
    }
    if old >= max {
        return Err(format!("already at or above its bound ({old} ≥ {max})"));
    }
    let wanted = (old as f64 * RAISE_FACTOR).ceil();
    let wanted = if wanted >= u64::MAX as f64 {
        u64::MAX
    } else {
        wanted as u64
    };
    Ok(if wanted > max {
        (max, true)
    } else {
        (wanted, false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::analyze::Cause;

    fn diagnosis(category: DiagnosisCategory, patterns: &[&str]) -> Diagnosis {
        Diagnosis {
            causes: vec![Cause {
                category,
                confidence: 0.9,
                patterns: patterns.iter().map(|s| s.to_string()).collect(),
                evidence: Vec::new(),
                n_evidence: 1,
                strategies: Vec::new(),
                commands: Vec::new(),
                descriptions: Vec::new(),
            }],
            n_lines: 1,
        }
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn memory_limit_grows_by_half_within_bounds() {
        let d = diagnosis(
            DiagnosisCategory::ResourceExhaustion,
            &["kernel_oom_killer"],
        );
        let inputs = FixInputs {
            memory_limit_bytes: Some(2 * GIB),
            memory_usage_ratio: Some(0.97),
            ..FixInputs::default()
        };
        let bounds = FixBounds {
            max_memory_bytes: Some(8 * GIB),
            max_timeout: None,
        };
        let p = propose(&d, &inputs, &bounds);
        assert_eq!(p.fixes.len(), 1, "{p:?}");
        let f = &p.fixes[0];
        assert_eq!(f.kind, FixKind::RaiseMemoryLimit);
        assert_eq!(f.old, FixValue::Bytes(2 * GIB));
        assert_eq!(f.new, FixValue::Bytes(3 * GIB));
        assert!(!f.clamped);
        // The GC endpoint was keyed too but is not configured: reported as skipped.
        assert!(p.skipped.iter().any(|s| s.kind == FixKind::CallGcEndpoint));
    }

    #[test]
    fn memory_limit_clamped_and_refused_at_bound() {
        let inputs = FixInputs {
            memory_limit_bytes: Some(6 * GIB),
            memory_usage_ratio: Some(0.95),
            ..FixInputs::default()
        };
        let bounds = FixBounds {
            max_memory_bytes: Some(8 * GIB),
            max_timeout: None,
        };
        let f = apply(
            FixKind::RaiseMemoryLimit,
            DiagnosisCategory::ResourceExhaustion,
            &inputs,
            &bounds,
        )
        .unwrap();
        assert_eq!(f.new, FixValue::Bytes(8 * GIB));
        assert!(f.clamped);
        let at_max = FixInputs {
            memory_limit_bytes: Some(8 * GIB),
            ..inputs.clone()
        };
        let err = apply(
            FixKind::RaiseMemoryLimit,
            DiagnosisCategory::ResourceExhaustion,
            &at_max,
            &bounds,
        )
        .unwrap_err();
        assert!(err.contains("bound"), "{err}");
    }

    #[test]
    fn memory_limit_not_raised_without_pressure_or_bound() {
        let bounds = FixBounds {
            max_memory_bytes: Some(8 * GIB),
            max_timeout: None,
        };
        let calm = FixInputs {
            memory_limit_bytes: Some(2 * GIB),
            memory_usage_ratio: Some(0.5),
            ..FixInputs::default()
        };
        let c = DiagnosisCategory::ResourceExhaustion;
        assert!(apply(FixKind::RaiseMemoryLimit, c, &calm, &bounds).is_err());
        let pressed = FixInputs {
            memory_usage_ratio: Some(0.95),
            ..calm
        };
        assert!(
            apply(
                FixKind::RaiseMemoryLimit,
                c,
                &pressed,
                &FixBounds::default()
            )
            .is_err()
        );
    }

    #[test]
    fn timeout_grows_and_clamps() {
        let d = diagnosis(DiagnosisCategory::Timeout, &["go_context_deadline"]);
        let inputs = FixInputs {
            timeout: Some(Duration::from_secs(10)),
            ..FixInputs::default()
        };
        let bounds = FixBounds {
            max_memory_bytes: None,
            max_timeout: Some(Duration::from_secs(12)),
        };
        let p = propose(&d, &inputs, &bounds);
        assert_eq!(p.fixes[0].old, FixValue::Millis(10_000));
        assert_eq!(p.fixes[0].new, FixValue::Millis(12_000));
        assert!(p.fixes[0].clamped);
        let roomy = FixBounds {
            max_timeout: Some(Duration::from_secs(60)),
            ..bounds
        };
        assert_eq!(
            propose(&d, &inputs, &roomy).fixes[0].new,
            FixValue::Millis(15_000)
        );
    }

    #[test]
    fn calls_and_commands_need_configuration() {
        let leak = diagnosis(DiagnosisCategory::ResourceExhaustion, &["java_heap_oom"]);
        let inputs = FixInputs {
            gc_endpoint: Some("http://127.0.0.1:8080/admin/gc".to_owned()),
            cleanup_command: Some(vec!["/usr/local/bin/prune-logs".to_owned()]),
            ..FixInputs::default()
        };
        let p = propose(&leak, &inputs, &FixBounds::default());
        assert_eq!(p.fixes[0].kind, FixKind::CallGcEndpoint);
        assert_eq!(p.fixes[0].invoke, vec!["http://127.0.0.1:8080/admin/gc"]);
        let disk = diagnosis(DiagnosisCategory::Storage, &["enospc"]);
        let p = propose(&disk, &inputs, &FixBounds::default());
        assert_eq!(p.fixes[0].kind, FixKind::FreeDisk);
        let p = propose(&disk, &FixInputs::default(), &FixBounds::default());
        assert!(p.fixes.is_empty());
        assert_eq!(p.skipped[0].kind, FixKind::FreeDisk);
    }

    #[test]
    fn oom_signal_keys_memory_fix() {
        let d = diagnosis(DiagnosisCategory::ResourceExhaustion, &[SIGNAL_OOM_ID]);
        let inputs = FixInputs {
            memory_limit_bytes: Some(GIB),
            memory_usage_ratio: Some(0.99),
            ..FixInputs::default()
        };
        let bounds = FixBounds {
            max_memory_bytes: Some(4 * GIB),
            max_timeout: None,
        };
        let p = propose(&d, &inputs, &bounds);
        assert_eq!(p.fixes[0].kind, FixKind::RaiseMemoryLimit);
        assert_eq!(p.fixes[0].new.as_argument(), (3 * GIB / 2).to_string());
    }
}
