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
//!     fallback: false                  # optional; true: counts only when no regular
//!                                      # pattern matched the text (generic wording)
//! ```
//!
//! Validation reports every problem at once as `file:line:col: key.path: message`.

use std::collections::HashSet;
use std::path::Path;

use medic_core::{DiagnosisCategory, Strategy};
use medic_policy::yaml::{Decoder, Node, ValidationErrors, Value, parse_yaml};
use regex::bytes::{RegexSet, RegexSetBuilder};

use super::Error;

/// Compiled size limit of the whole set; generous because the set is built once.
const SET_SIZE_LIMIT: usize = 64 << 20;
/// Lazy-DFA cache of the set; large enough that matching rarely falls back to the NFA.
const SET_DFA_LIMIT: usize = 32 << 20;

/// One problem in a pattern file, with its location: medic-policy's located validation
/// error, rendered `file:line:col: key.path: message`.
pub use medic_policy::yaml::ValidationError as PatternIssue;

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
    /// A generic-wording pattern: it counts only when no regular pattern matched the text,
    /// so it names a cause where nothing specific does without outvoting specific evidence.
    pub fallback: bool,
}

/// The validated patterns with their regexes compiled into one set.
#[derive(Clone, Debug)]
pub struct PatternLibrary {
    patterns: Vec<Pattern>,
    set: RegexSet,
    /// For each regex of the set, the index of its pattern.
    owner: Vec<usize>,
}

impl PatternLibrary {
    /// Reads and validates a pattern file, read as the policy files are (size cap, the place
    /// of a byte that is not UTF-8).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let file = path.display().to_string();
        let text = medic_policy::yaml::read_yaml_file(path, &file)
            .map_err(|e| Error::InvalidPatterns { issues: e.errors })?;
        Self::parse(&file, &text)
    }

    /// Parses and validates pattern YAML; `file` names it in error messages. Every problem
    /// (syntax, unknown keys, wrong types, bad regexes, unknown names, duplicates) is reported.
    pub fn parse(file: &str, yaml: &str) -> Result<Self, Error> {
        let root =
            parse_yaml(yaml, file).map_err(|e| Error::InvalidPatterns { issues: e.errors })?;
        let patterns =
            validate(file, &root).map_err(|e| Error::InvalidPatterns { issues: e.errors })?;
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
        // Log lines are matched as bytes with ASCII-only classes (`\d`, `\w`, `\b`, `(?i)`):
        // the automaton is far smaller than with Unicode classes, so the lazy DFA keeps up
        // with many patterns at once. A library that needs Unicode classes (`\p{…}`) gets them.
        let build = |unicode: bool| {
            RegexSetBuilder::new(&sources)
                .unicode(unicode)
                .size_limit(SET_SIZE_LIMIT)
                .dfa_size_limit(SET_DFA_LIMIT)
                .build()
        };
        let set = build(false)
            .or_else(|_| build(true))
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

    /// The compiled set (one entry per regex), matched against a line's bytes.
    pub(crate) fn set(&self) -> &RegexSet {
        &self.set
    }

    /// The pattern index of each regex of the set.
    pub(crate) fn owner(&self, regex_idx: usize) -> usize {
        self.owner[regex_idx]
    }
}

const PATTERN_KEYS: &[&str] = &[
    "id",
    "category",
    "confidence",
    "regexes",
    "strategies",
    "commands",
    "description",
    "fallback",
];

fn validate(file: &str, root: &Node) -> Result<Vec<Pattern>, ValidationErrors> {
    let mut dec = Decoder::new(file);
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let Some(top) = dec.map(root, "", &["patterns"]) else {
        return Err(dec.into_errors());
    };
    let items = match dec.require(&top, "patterns", "", "a list of patterns") {
        Some(node) => dec.list(Some(node), "patterns"),
        None => &[],
    };
    for (i, item) in items.iter().enumerate() {
        let base = format!("patterns[{i}]");
        let Some(map) = dec.map(item, &base, PATTERN_KEYS) else {
            continue;
        };
        let id = dec.required_string(&map, "id", &base);
        if let (Some(id), Some(node)) = (&id, map.get("id")) {
            let path = format!("{base}.id");
            if !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
            {
                dec.error_at(
                    node.loc,
                    &path,
                    format!("id {id:?} must use only [a-z0-9_.-]"),
                );
            } else if !seen.insert(id.clone()) {
                dec.error_at(node.loc, &path, format!("duplicate id {id:?}"));
            }
        }
        let category_choices: Vec<(&str, DiagnosisCategory)> = DiagnosisCategory::ALL
            .into_iter()
            .filter(|c| *c != DiagnosisCategory::Unknown)
            .map(|c| (c.as_str(), c))
            .collect();
        let category = dec
            .require(&map, "category", &base, "a category")
            .and_then(|n| dec.one_of(n, &format!("{base}.category"), &category_choices));
        let confidence = dec
            .require(&map, "confidence", &base, "a number in (0, 1]")
            .and_then(|n| {
                let path = format!("{base}.confidence");
                let v = dec.ratio(n, &path)?;
                if v == 0.0 {
                    dec.error_at(n.loc, &path, "expected a number in (0, 1], found 0");
                    return None;
                }
                Some(v)
            });
        let regexes_node = dec.require(&map, "regexes", &base, "a list of regexes");
        let regexes_path = format!("{base}.regexes");
        let located = dec.located_string_list(regexes_node, &regexes_path);
        if let Some(node) = regexes_node
            && dec.list(Some(node), &regexes_path).is_empty()
            && matches!(node.value, Value::Seq(_))
        {
            dec.error_at(node.loc, &regexes_path, "at least one regex is required");
        }
        let mut regexes = Vec::new();
        for (j, (r, loc)) in located.into_iter().enumerate() {
            let path = format!("{regexes_path}[{j}]");
            match regex::Regex::new(&r) {
                Ok(compiled) if compiled.is_match("") => dec.error_at(
                    loc,
                    &path,
                    "regex matches the empty line, so it would match every line",
                ),
                Ok(_) => regexes.push(r),
                Err(e) => dec.error_at(
                    loc,
                    &path,
                    format!("invalid regex: {}", one_line(&e.to_string())),
                ),
            }
        }
        let strategy_choices: Vec<(&str, Strategy)> =
            Strategy::ALL.into_iter().map(|s| (s.as_str(), s)).collect();
        let strategies_path = format!("{base}.strategies");
        let strategies: Vec<Strategy> = dec
            .list(map.get("strategies"), &strategies_path)
            .iter()
            .enumerate()
            .filter_map(|(j, n)| {
                dec.one_of(n, &format!("{strategies_path}[{j}]"), &strategy_choices)
            })
            .collect();
        let commands = dec.string_list(map.get("commands"), &format!("{base}.commands"));
        let description = dec
            .opt_string(map.get("description"), &format!("{base}.description"))
            .unwrap_or_default();
        let fallback = dec
            .opt_bool(map.get("fallback"), &format!("{base}.fallback"))
            .unwrap_or(false);
        if let (Some(id), Some(category), Some(confidence)) = (id, category, confidence) {
            out.push(Pattern {
                id,
                category,
                confidence,
                regexes,
                strategies,
                commands,
                description,
                fallback,
            });
        }
    }
    dec.finish(out)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
