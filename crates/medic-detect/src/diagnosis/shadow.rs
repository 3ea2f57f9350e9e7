//! Shadow errors: an action (or job) that reports success while the world says otherwise.
//!
//! The daemon runs an action's post-condition (an http/tcp/exec check from fleet.yaml, run by
//! medic-collect's probes) after the action reports success and hands the result here. A
//! failed post-condition turns the "success" into a `state_mismatch` diagnosis whose evidence
//! line says what was claimed and what was found; the line is written so that the pattern
//! library's `medic_post_condition` pattern recognises it again in journals and logs.

use medic_core::{DiagnosisCategory, Outcome, Strategy};
use serde::{Deserialize, Serialize};

use super::analyze::{Cause, Diagnosis, Evidence, MAX_EVIDENCE_CHARS};

/// Pattern id of a shadow-error cause.
pub const SHADOW_ID: &str = "shadow.post_condition";
/// Confidence of a shadow error: the post-condition was observed, not inferred.
pub const SHADOW_CONFIDENCE: f64 = 0.95;

/// The result of one post-condition check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostConditionResult {
    /// The check as a human reads it, e.g. `http http://127.0.0.1:8080/healthz`.
    pub check: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found, e.g. `status 503` or `exit code 1`.
    pub detail: String,
}

/// A shadow-error diagnosis when `reported` is a success and a post-condition failed;
/// `None` otherwise (a reported failure is not a shadow error, and passing checks confirm it).
pub fn shadow_error(
    target: &str,
    action: &str,
    reported: &Outcome,
    post: &[PostConditionResult],
) -> Option<Diagnosis> {
    if *reported != Outcome::Success {
        return None;
    }
    let failed: Vec<&PostConditionResult> = post.iter().filter(|p| !p.passed).collect();
    if failed.is_empty() {
        return None;
    }
    let evidence = failed
        .iter()
        .map(|p| {
            let mut text = format!(
                "post-condition failed after action {action} on target {target}: {} ({}); the action reported success but the check says otherwise",
                p.check, p.detail
            );
            if let Some((i, _)) = text.char_indices().nth(MAX_EVIDENCE_CHARS) {
                text.truncate(i);
            }
            Evidence {
                line: 0,
                text,
                pattern_id: SHADOW_ID.to_owned(),
            }
        })
        .collect();
    Some(Diagnosis {
        causes: vec![Cause {
            category: DiagnosisCategory::StateMismatch,
            confidence: SHADOW_CONFIDENCE,
            patterns: vec![SHADOW_ID.to_owned()],
            evidence,
            n_evidence: failed.len(),
            strategies: vec![Strategy::Escalate],
            commands: failed
                .iter()
                .map(|p| format!("re-run the check: {}", p.check))
                .collect(),
            descriptions: vec![format!(
                "{action} reported success on {target} but {} of its post-conditions failed (shadow error)",
                failed.len()
            )],
        }],
        n_lines: 0,
    })
}
