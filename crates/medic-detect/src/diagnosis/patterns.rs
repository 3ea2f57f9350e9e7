//! The pattern library: `policies/patterns.yaml` → validated [`Pattern`]s → one compiled
//! `RegexSet`.
//!
//! The file is a mapping with one key, `patterns`, a list of entries:
//!
//! ```yaml
//! patterns:
//!   - id: kernel_oom_killer            # unique, [a-z0-9_.-]+
//!     category: resource_exhaustion    # a medic_core::DiagnosisCategory name
//!     confidence: 0.95                 # base confidence in (0, 1]
//!     regexes:                         # one or more; each matches within one line
//!       - 'Out of memory: Kill(ed)? process \d+'
//!     strategies: [restart, repair]    # medic_core::Strategy names, best first
//!     commands:                        # shown to a human, never run by medic
//!       - journalctl -k --since -1h | grep -i oom
//!     description: The kernel OOM killer killed a process.
//! ```
//!
//! Validation reports every problem at once as `file:line:col: key.path: message`.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use medic_core::{DiagnosisCategory, Strategy};
use regex::{RegexSet, RegexSetBuilder};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Error, parse_category};

/// Compiled size limit of the whole set; generous because the set is built once.
const SET_SIZE_LIMIT: usize = 64 << 20;
/// Lazy-DFA cache of the set; large enough that matching rarely falls back to the NFA.
const SET_DFA_LIMIT: usize = 32 << 20;

/// One problem in a pattern file, with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternIssue {
    /// The file as given to the loader.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// Key path, e.g. `patterns[3].regexes[0]`.
    pub path: String,
    /// What is wrong, lowercase.
    pub message: String,
}

impl fmt::Display for PatternIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.path, self.message
        )
    }
}

/// All issues, one per line.
pub(crate) fn format_issues(issues: &[PatternIssue]) -> String {
    let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// A validated pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    /// Unique id, used as the key of known fixes and in findings.
    pub id: String,
    /// The root-cause category it indicates.
    pub category: DiagnosisCategory,
    /// Base confidence in `(0, 1]` for one matching line.
    pub confidence: f64,
    /// The regexes; any one matching a line makes the line evidence.
    pub regexes: Vec<String>,
    /// Suggested strategies, best first.
    pub strategies: Vec<Strategy>,
    /// Diagnostic commands to show a human.
    pub commands: Vec<String>,
    /// What the pattern means, in words.
    pub description: String,
}

/// The validated patterns with their regexes compiled into one set.
#[derive(Clone, Debug)]
pub struct PatternLibrary {
    patterns: Vec<Pattern>,
    set: RegexSet,
    /// For each regex of the set, the index of its pattern.
    owner: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternFileConfig {
    patterns: Vec<Spanned<PatternConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternConfig {
    id: Spanned<String>,
    category: Spanned<String>,
    confidence: Spanned<f64>,
    regexes: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    strategies: Vec<Spanned<String>>,
    #[serde(default)]
    commands: Vec<String>,
    #[serde(default)]
    description: String,
}

impl PatternLibrary {
    /// Reads and validates a pattern file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadPatterns {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates pattern YAML; `file` names it in error messages.
    pub fn parse(file: &str, yaml: &str) -> Result<Self, Error> {
        let config: PatternFileConfig = serde_saphyr::from_str(yaml).map_err(|e| {
            let (line, column) = e
                .location()
                .map_or((0, 0), |loc| (loc.line(), loc.column()));
            Error::InvalidPatterns {
                issues: vec![PatternIssue {
                    file: file.to_owned(),
                    line,
                    column,
                    path: "patterns".to_owned(),
                    message: plain_message(&e),
                }],
            }
        })?;
        let patterns = validate(file, config)?;
        Self::from_patterns(patterns)
    }

    /// Builds a library from already validated patterns (e.g. merged from several files).
    pub fn from_patterns(patterns: Vec<Pattern>) -> Result<Self, Error> {
        let mut sources = Vec::new();
        let mut owner = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            for r in &p.regexes {
                sources.push(r.as_str());
                owner.push(i);
            }
        }
        let set = RegexSetBuilder::new(&sources)
            .size_limit(SET_SIZE_LIMIT)
            .dfa_size_limit(SET_DFA_LIMIT)
            .build()
            .map_err(Error::CompileSet)?;
        Ok(PatternLibrary {
            patterns,
            set,
            owner,
        })
    }

    /// The patterns, in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// A pattern by id.
    pub fn get(&self, id: &str) -> Option<&Pattern> {
        self.patterns.iter().find(|p| p.id == id)
    }

    /// The compiled set (one entry per regex).
    pub(crate) fn set(&self) -> &RegexSet {
        &self.set
    }

    /// The pattern index of each regex of the set.
    pub(crate) fn owner(&self, regex_idx: usize) -> usize {
        self.owner[regex_idx]
    }
}

/// The error's message without the rendered source snippet, lowercased first letter.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("").trim();
    // The location is reported separately; drop a trailing " at line X column Y" if present.
    let msg = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let mut chars = msg.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "invalid yaml".to_owned(),
    }
}

fn issue_at<T>(file: &str, at: &Spanned<T>, path: String, message: String) -> PatternIssue {
    PatternIssue {
        file: file.to_owned(),
        line: at.referenced.line(),
        column: at.referenced.column(),
        path,
        message,
    }
}

fn validate(file: &str, config: PatternFileConfig) -> Result<Vec<Pattern>, Error> {
    let mut issues = Vec::new();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, entry) in config.patterns.into_iter().enumerate() {
        let p = entry.value;
        let base = format!("patterns[{i}]");
        let id = p.id.value.trim().to_owned();
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        {
            issues.push(issue_at(
                file,
                &p.id,
                format!("{base}.id"),
                format!("id {id:?} must be non-empty and use only [a-z0-9_.-]"),
            ));
        } else if !seen.insert(id.clone()) {
            issues.push(issue_at(
                file,
                &p.id,
                format!("{base}.id"),
                format!("duplicate id {id:?}"),
            ));
        }
        let category = parse_category(p.category.value.trim());
        match category {
            None => issues.push(issue_at(
                file,
                &p.category,
                format!("{base}.category"),
                format!(
                    "unknown category {:?}; expected one of {}",
                    p.category.value,
                    DiagnosisCategory::ALL.map(|c| c.as_str()).join(", ")
                ),
            )),
            Some(DiagnosisCategory::Unknown) => issues.push(issue_at(
                file,
                &p.category,
                format!("{base}.category"),
                "a pattern cannot conclude `unknown`".to_owned(),
            )),
            Some(_) => {}
        }
        let confidence = p.confidence.value;
        if !(confidence > 0.0 && confidence <= 1.0) {
            issues.push(issue_at(
                file,
                &p.confidence,
                format!("{base}.confidence"),
                format!("confidence {confidence} must be in (0, 1]"),
            ));
        }
        if p.regexes.value.is_empty() {
            issues.push(issue_at(
                file,
                &p.regexes,
                format!("{base}.regexes"),
                "at least one regex is required".to_owned(),
            ));
        }
        let mut regexes = Vec::new();
        for (j, r) in p.regexes.value.iter().enumerate() {
            if r.value.is_empty() {
                issues.push(issue_at(
                    file,
                    r,
                    format!("{base}.regexes[{j}]"),
                    "empty regex matches every line".to_owned(),
                ));
                continue;
            }
            match regex::Regex::new(&r.value) {
                Ok(compiled) if compiled.is_match("") => issues.push(issue_at(
                    file,
                    r,
                    format!("{base}.regexes[{j}]"),
                    "regex matches the empty line, so it would match every line".to_owned(),
                )),
                Ok(_) => regexes.push(r.value.clone()),
                Err(e) => issues.push(issue_at(
                    file,
                    r,
                    format!("{base}.regexes[{j}]"),
                    format!("invalid regex: {}", one_line(&e.to_string())),
                )),
            }
        }
        let mut strategies = Vec::new();
        for (j, s) in p.strategies.iter().enumerate() {
            match Strategy::parse(s.value.trim()) {
                Some(st) => strategies.push(st),
                None => issues.push(issue_at(
                    file,
                    s,
                    format!("{base}.strategies[{j}]"),
                    format!(
                        "unknown strategy {:?}; expected one of {}",
                        s.value,
                        Strategy::ALL.map(|s| s.as_str()).join(", ")
                    ),
                )),
            }
        }
        if let Some(category) = category {
            out.push(Pattern {
                id,
                category,
                confidence,
                regexes,
                strategies,
                commands: p.commands,
                description: p.description,
            });
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(Error::InvalidPatterns { issues })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
