//! The failure analyzer: text and non-text signals → ranked [`Cause`]s.
//!
//! Every line goes once through the library's `RegexSet` (`is_match`, then `matches` only on
//! the rare lines that hit), so the cost is linear in the input. Matches combine as follows:
//!
//! - a pattern matched on `n` lines has strength `1 - (1 - c)·0.7^(min(n, 4) - 1)` where `c`
//!   is its base confidence: more evidence lines raise confidence, with diminishing returns;
//! - patterns of one category combine by noisy-OR, `1 - Π(1 - strength)`, capped at
//!   [`MAX_CONFIDENCE`];
//! - categories are ranked by that confidence;
//! - `fallback` patterns (generic wording) count only when no regular pattern matched.
//!
//! A cause exists only if a pattern matched or a non-text signal fired, so text that matches
//! nothing yields no cause and the top category is `unknown`.

use medic_core::{DiagnosisCategory, DiagnosisFinding, Strategy};
use serde::{Deserialize, Serialize};

use super::context::{DiagnosticContext, ExitStatus};
use super::patterns::PatternLibrary;

/// No diagnosis is ever fully certain.
pub const MAX_CONFIDENCE: f64 = 0.99;
/// Evidence lines kept per cause.
pub const MAX_EVIDENCE_PER_CAUSE: usize = 5;
/// Characters kept of one evidence line.
pub const MAX_EVIDENCE_CHARS: usize = 400;
/// Each extra evidence line of a pattern multiplies its remaining doubt by this.
const EXTRA_EVIDENCE_DECAY: f64 = 0.7;
/// Evidence lines beyond this many do not raise a pattern's strength further.
const MAX_COUNTED_LINES: u32 = 4;
/// Resident memory at death above this fraction of the limit, with SIGKILL, means OOM.
pub const OOM_RSS_RATIO: f64 = 0.9;
/// Disk usage above this fraction means the disk is full.
pub const DISK_FULL_RATIO: f64 = 0.95;
/// Base confidence of the non-text signals.
const SIGNAL_CONFIDENCE: f64 = 0.9;

/// Pattern id used for the OOM-by-signal evidence.
pub const SIGNAL_OOM_ID: &str = "signal.oom_kill";
/// Pattern id used for the disk-usage evidence.
pub const SIGNAL_DISK_ID: &str = "signal.disk_full";

/// Non-text facts that point at a cause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// The signal that ended the process, if it was killed by one.
    pub exit_signal: Option<i32>,
    /// Resident memory at (or just before) exit as a fraction of the memory limit.
    pub rss_ratio: Option<f64>,
    /// Used fraction of each data path's filesystem: (path, ratio).
    pub disk_used: Vec<(String, f64)>,
}

impl Signals {
    /// The signals contained in a diagnostic context.
    pub fn from_context(ctx: &DiagnosticContext) -> Self {
        let (exit_signal, rss_ratio) = match &ctx.process {
            Some(p) => (
                match p.exit {
                    Some(ExitStatus::Signal(s)) => Some(s),
                    _ => None,
                },
                match (p.rss_bytes, p.memory_limit_bytes) {
                    (Some(rss), Some(limit)) if limit > 0 => Some(rss as f64 / limit as f64),
                    _ => None,
                },
            ),
            None => (None, None),
        };
        Signals {
            exit_signal,
            rss_ratio,
            disk_used: ctx
                .disks
                .iter()
                .filter_map(|d| d.used_ratio.map(|r| (d.path.clone(), r)))
                .collect(),
        }
    }
}

/// One line that supports a cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// 1-based line number in the analyzed text (0 for non-text signals).
    pub line: usize,
    /// The line (truncated to [`MAX_EVIDENCE_CHARS`]) or a description of the signal.
    pub text: String,
    /// The pattern (or signal id) that matched it.
    pub pattern_id: String,
}

/// One ranked explanation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// The root-cause category.
    pub category: DiagnosisCategory,
    /// Combined confidence in `[0, MAX_CONFIDENCE]`.
    pub confidence: f64,
    /// Ids of the patterns (and signals) that matched, strongest first.
    pub patterns: Vec<String>,
    /// Supporting lines, at most [`MAX_EVIDENCE_PER_CAUSE`].
    pub evidence: Vec<Evidence>,
    /// Evidence lines found in total (may exceed `evidence.len()`).
    pub n_evidence: usize,
    /// Suggested strategies of the matched patterns, strongest pattern first, deduplicated.
    pub strategies: Vec<Strategy>,
    /// Diagnostic commands of the matched patterns, deduplicated.
    pub commands: Vec<String>,
    /// Descriptions of the matched patterns.
    pub descriptions: Vec<String>,
}

/// The analyzer's output: causes best first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Ranked causes; empty when nothing matched.
    pub causes: Vec<Cause>,
    /// Lines analyzed.
    pub n_lines: usize,
}

impl Diagnosis {
    /// The most likely category, `unknown` when nothing matched.
    pub fn category(&self) -> DiagnosisCategory {
        self.causes
            .first()
            .map_or(DiagnosisCategory::Unknown, |c| c.category)
    }

    /// Confidence of the top cause (0 when nothing matched).
    pub fn confidence(&self) -> f64 {
        self.causes.first().map_or(0.0, |c| c.confidence)
    }

    /// The top cause as a [`DiagnosisFinding`] for a [`medic_core::Finding`].
    pub fn to_finding(&self) -> DiagnosisFinding {
        match self.causes.first() {
            Some(c) => DiagnosisFinding {
                category: c.category,
                confidence: c.confidence,
                pattern_id: c.patterns.first().cloned(),
                evidence: c.evidence.iter().map(|e| e.text.clone()).collect(),
            },
            None => DiagnosisFinding {
                category: DiagnosisCategory::Unknown,
                confidence: 0.0,
                pattern_id: None,
                evidence: Vec::new(),
            },
        }
    }
}

/// Per-pattern hits while scanning.
#[derive(Default)]
struct Hits {
    n_lines: u32,
    evidence: Vec<Evidence>,
}

/// Analyzes `text` (any number of lines) and the non-text `signals`.
pub fn diagnose(library: &PatternLibrary, text: &str, signals: &Signals) -> Diagnosis {
    let patterns = library.patterns();
    let set = library.set();
    let mut hits: Vec<Hits> = Vec::new();
    let mut n_lines = 0;
    // The last line (1-based) each pattern was counted on, so a pattern with several
    // matching regexes counts a line once, without clearing anything per line.
    let mut last_line: Vec<usize> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        n_lines = i + 1;
        if !set.is_match(line.as_bytes()) {
            continue;
        }
        if hits.is_empty() {
            hits.resize_with(patterns.len(), Hits::default);
            last_line.resize(patterns.len(), 0);
        }
        for regex_idx in set.matches(line.as_bytes()).iter() {
            let p = library.owner(regex_idx);
            if std::mem::replace(&mut last_line[p], i + 1) == i + 1 {
                continue;
            }
            let h = &mut hits[p];
            h.n_lines = h.n_lines.saturating_add(1);
            if h.evidence.len() < MAX_EVIDENCE_PER_CAUSE {
                h.evidence.push(Evidence {
                    line: i + 1,
                    text: truncate(line.trim_end(), MAX_EVIDENCE_CHARS),
                    pattern_id: patterns[p].id.clone(),
                });
            }
        }
    }

    // Fallback (generic-wording) patterns count only when no regular pattern matched.
    let specific = hits
        .iter()
        .zip(patterns)
        .any(|(h, p)| h.n_lines > 0 && !p.fallback);
    let mut contributions: Vec<Contribution> = Vec::new();
    for (p, h) in hits.into_iter().enumerate() {
        if h.n_lines == 0 || (specific && patterns[p].fallback) {
            continue;
        }
        let pat = &patterns[p];
        let extra = h.n_lines.min(MAX_COUNTED_LINES) - 1;
        let strength = 1.0 - (1.0 - pat.confidence) * EXTRA_EVIDENCE_DECAY.powi(extra as i32);
        contributions.push(Contribution {
            category: pat.category,
            strength,
            id: pat.id.clone(),
            n_lines: h.n_lines as usize,
            evidence: h.evidence,
            strategies: pat.strategies.clone(),
            commands: pat.commands.clone(),
            description: pat.description.clone(),
        });
    }
    contributions.extend(signal_contributions(signals));
    combine(contributions, n_lines)
}

struct Contribution {
    category: DiagnosisCategory,
    strength: f64,
    id: String,
    n_lines: usize,
    evidence: Vec<Evidence>,
    strategies: Vec<Strategy>,
    commands: Vec<String>,
    description: String,
}

fn signal_contributions(signals: &Signals) -> Vec<Contribution> {
    let mut out = Vec::new();
    if let (Some(9), Some(ratio)) = (signals.exit_signal, signals.rss_ratio)
        && ratio >= OOM_RSS_RATIO
    {
        out.push(Contribution {
            category: DiagnosisCategory::ResourceExhaustion,
            strength: SIGNAL_CONFIDENCE,
            id: SIGNAL_OOM_ID.to_owned(),
            n_lines: 1,
            evidence: vec![Evidence {
                line: 0,
                text: format!(
                    "killed by signal 9 with resident memory at {:.0}% of its limit",
                    ratio * 100.0
                ),
                pattern_id: SIGNAL_OOM_ID.to_owned(),
            }],
            strategies: vec![Strategy::Repair, Strategy::Restart],
            commands: vec![
                "journalctl -k --since -1h | grep -i -E 'oom|killed process'".to_owned(),
            ],
            description: "the process was SIGKILLed at its memory limit (OOM kill)".to_owned(),
        });
    }
    let full: Vec<&(String, f64)> = signals
        .disk_used
        .iter()
        .filter(|(_, r)| *r > DISK_FULL_RATIO)
        .collect();
    if !full.is_empty() {
        out.push(Contribution {
            category: DiagnosisCategory::Storage,
            strength: SIGNAL_CONFIDENCE,
            id: SIGNAL_DISK_ID.to_owned(),
            n_lines: full.len(),
            evidence: full
                .iter()
                .take(MAX_EVIDENCE_PER_CAUSE)
                .map(|(path, r)| Evidence {
                    line: 0,
                    text: format!("filesystem of {path} is {:.1}% full", r * 100.0),
                    pattern_id: SIGNAL_DISK_ID.to_owned(),
                })
                .collect(),
            strategies: vec![Strategy::Repair, Strategy::Escalate],
            commands: full
                .iter()
                .map(|(path, _)| {
                    format!("df -h {path}; du -xh --max-depth=2 {path} | sort -h | tail")
                })
                .collect(),
            description: "a data path's filesystem is above 95% used".to_owned(),
        });
    }
    out
}

fn combine(mut contributions: Vec<Contribution>, n_lines: usize) -> Diagnosis {
    // Strongest contributions first, so each cause lists its best pattern first.
    contributions.sort_by(|a, b| {
        b.strength
            .total_cmp(&a.strength)
            .then(b.n_lines.cmp(&a.n_lines))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut causes: Vec<(Cause, f64)> = Vec::new(); // (cause, Π(1 - strength))
    for c in contributions {
        let idx = match causes.iter().position(|(k, _)| k.category == c.category) {
            Some(i) => i,
            None => {
                causes.push((
                    Cause {
                        category: c.category,
                        confidence: 0.0,
                        patterns: Vec::new(),
                        evidence: Vec::new(),
                        n_evidence: 0,
                        strategies: Vec::new(),
                        commands: Vec::new(),
                        descriptions: Vec::new(),
                    },
                    1.0,
                ));
                causes.len() - 1
            }
        };
        let (cause, doubt) = &mut causes[idx];
        *doubt *= 1.0 - c.strength;
        cause.patterns.push(c.id);
        cause.n_evidence += c.n_lines;
        for e in c.evidence {
            if cause.evidence.len() < MAX_EVIDENCE_PER_CAUSE
                && !cause
                    .evidence
                    .iter()
                    .any(|x| x.line == e.line && e.line != 0)
            {
                cause.evidence.push(e);
            }
        }
        for s in c.strategies {
            if !cause.strategies.contains(&s) {
                cause.strategies.push(s);
            }
        }
        for cmd in c.commands {
            if !cause.commands.contains(&cmd) {
                cause.commands.push(cmd);
            }
        }
        if !c.description.is_empty() {
            cause.descriptions.push(c.description);
        }
    }
    let mut causes: Vec<Cause> = causes
        .into_iter()
        .map(|(mut cause, doubt)| {
            cause.confidence = (1.0 - doubt).clamp(0.0, MAX_CONFIDENCE);
            cause.evidence.sort_by_key(|e| e.line);
            cause
        })
        .collect();
    causes.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(b.n_evidence.cmp(&a.n_evidence))
            .then(a.category.cmp(&b.category))
    });
    Diagnosis { causes, n_lines }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Appends every string found in a JSON value (depth-first, in document order) as text lines,
/// so stored journal payloads and incident summaries (whose shape the engine defines) can be
/// analyzed like log output. Stops after `max_lines` lines.
pub fn json_strings(value: &serde_json::Value, max_lines: usize, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => {
            for line in s.lines() {
                if out.len() >= max_lines {
                    return;
                }
                if !line.trim().is_empty() {
                    out.push(line.to_owned());
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                json_strings(v, max_lines, out);
            }
        }
        serde_json::Value::Object(map) => {
            for v in map.values() {
                json_strings(v, max_lines, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_flattens_in_order_and_bounds() {
        let v = serde_json::json!({"a": "x\ny", "b": [1, {"c": "z"}], "d": null});
        let mut out = Vec::new();
        json_strings(&v, 10, &mut out);
        assert_eq!(out, ["x", "y", "z"]);
        let mut out = Vec::new();
        json_strings(&v, 2, &mut out);
        assert_eq!(out, ["x", "y"]);
    }
}
