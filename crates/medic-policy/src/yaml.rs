//! Located YAML and a decoder that collects every error.
//!
//! serde's derive stops at the first problem, but a user fixing a config file wants all of them
//! at once. So YAML is parsed (by serde-saphyr, with its `Spanned` locations) into a [`Node`]
//! tree that remembers where every value and key came from, and typed structs are decoded from
//! that tree with a [`Decoder`], which records a [`ValidationError`] for each problem and keeps
//! going.
//!
//! Whatever YAML allows reaches the tree so that it can be reported with its key path: a key
//! written twice, a key that is a list, a map or null, `.nan` or `1e400`. Numbers keep their
//! spelling for messages (`found 18446744073709551616`, not the `f64` it became). What is
//! refused before decoding, as one located error: a YAML syntax error, nesting deeper than
//! [`MAX_DEPTH`], alias bombs, a file above [`MAX_FILE_BYTES`] or not in UTF-8
//! ([`read_yaml_file`]). Durations are at most [`MAX_DURATION`].
//!
//! Other crates validate their own YAML the same way:
//!
//! ```
//! use medic_policy::yaml::{parse_yaml, Decoder};
//!
//! let text = "patterns:\n  - id: oom\n    weight: 2.5\n";
//! let root = parse_yaml(text, "patterns.yaml").unwrap();
//! let mut dec = Decoder::new("patterns.yaml");
//! let mut ids = Vec::new();
//! if let Some(map) = dec.map(&root, "", &["patterns"]) {
//!     for (i, item) in dec.list(map.get("patterns"), "patterns").iter().enumerate() {
//!         let path = format!("patterns[{i}]");
//!         if let Some(p) = dec.map(item, &path, &["id", "weight"]) {
//!             ids.extend(dec.required_string(&p, "id", &path));
//!             dec.opt_ratio(p.get("weight"), &format!("{path}.weight"));
//!         }
//!     }
//! }
//! let err = dec.finish(ids).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "patterns.yaml:3:13: patterns[0].weight: expected a number between 0 and 1, found 2.5"
//! );
//! ```

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column in a YAML file; `0:0` when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub col: u32,
}

/// One parsed YAML value with the place it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub loc: Loc,
    /// The value.
    pub value: Value,
    /// A number as written in the file (`1e400`, `.nan`, `18446744073709551616`, `0x10`), so
    /// messages and keys show what the user wrote rather than what `f64` or `i128` made of it;
    /// `None` for other values.
    raw: Option<Box<str>>,
}

/// The value of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string (plain or quoted).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order; keys are nodes too so that their location is known.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A node without a recorded spelling.
    pub fn new(loc: Loc, value: Value) -> Self {
        Node {
            loc,
            value,
            raw: None,
        }
    }

    /// A float as it was written (`1e400`, `.nan`), or its value in YAML's spelling when the
    /// file's text is not known.
    fn float_text(&self, f: f64) -> String {
        if let Some(raw) = &self.raw {
            return raw.to_string();
        }
        if f.is_nan() {
            ".nan".to_owned()
        } else if f.is_infinite() {
            if f > 0.0 { ".inf" } else { "-.inf" }.to_owned()
        } else {
            f.to_string()
        }
    }

    /// How the value is described in "found …" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => self
                .raw
                .as_deref()
                .map_or_else(|| i.to_string(), str::to_owned),
            Value::Float(f) => self.float_text(*f),
            Value::Str(s) => {
                let mut short: String = s.chars().take(60).collect();
                if short.len() < s.len() {
                    short.push('…');
                }
                format!("{short:?}")
            }
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a map".to_owned(),
        }
    }

    /// The value as a map key: strings as written, numbers and booleans as text.
    pub fn as_key(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(
                self.raw
                    .as_deref()
                    .map_or_else(|| i.to_string(), str::to_owned),
            ),
            Value::Bool(b) => Some(b.to_string()),
            Value::Float(f) => Some(self.float_text(*f)),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        let raw = match spanned.value {
            // Where it was defined: an alias `*x` is not the number.
            Value::Float(_) | Value::Int(_) => source_text(&spanned.defined),
            _ => None,
        };
        Ok(Node {
            loc: loc_of(&spanned.referenced),
            value: spanned.value,
            raw,
        })
    }
}

thread_local! {
    /// The text [`parse_yaml`] is parsing on this thread, so that a [`Node`] can keep a number
    /// as written (serde hands over only the `f64` or integer).
    static SOURCE: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

/// Sets [`SOURCE`] for the life of one parse and restores the previous value after it, even
/// when the parse panics.
struct SourceGuard(Option<Rc<str>>);

impl SourceGuard {
    fn set(text: &str) -> Self {
        SourceGuard(SOURCE.with(|s| s.replace(Some(Rc::from(text)))))
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        SOURCE.with(|s| *s.borrow_mut() = previous);
    }
}

/// The text at `l`'s byte span in the source being parsed, trimmed; `None` outside
/// [`parse_yaml`] or when serde-saphyr knows no byte span.
fn source_text(l: &serde_saphyr::Location) -> Option<Box<str>> {
    let span = l.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    SOURCE.with(|s| {
        let text = s.borrow();
        let raw = text.as_deref()?.get(start..start.checked_add(len)?)?.trim();
        (!raw.is_empty()).then(|| raw.into())
    })
}

fn loc_of(l: &serde_saphyr::Location) -> Loc {
    Loc {
        line: u32::try_from(l.line()).unwrap_or(u32::MAX),
        col: u32::try_from(l.column()).unwrap_or(u32::MAX),
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i128::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(node) = seq.next_element::<Node>()? {
            items.push(node);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(mut key) = map.next_key::<Node>()? {
            // A scalar key is a name, as written (`010`, `1.10`); a null, list or map key stays
            // what it is, for the decoder to report at its key path.
            if let Value::Int(_) | Value::Float(_) | Value::Bool(_) = key.value
                && let Some(name) = key.as_key()
            {
                key = Node::new(key.loc, Value::Str(name));
            }
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValidationError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line; 0 when the problem concerns the whole file (e.g. it cannot be read).
    pub line: u32,
    /// 1-based column; 0 when unknown.
    pub col: u32,
    /// Dotted key path, e.g. `targets[0].probes.liveness.every`; empty for the whole file.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (0, true) => write!(f, "{}: {}", self.file, self.message),
            (0, false) => write!(f, "{}: {}: {}", self.file, self.path, self.message),
            (_, true) => write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            ),
            (_, false) => write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.col, self.path, self.message
            ),
        }
    }
}

/// Every problem found in a set of configuration files, sorted by file and position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    /// The problems; never empty when returned as an error.
    pub errors: Vec<ValidationError>,
}

impl ValidationErrors {
    /// Sorts by file, line and column and drops exact duplicates.
    pub fn normalize(&mut self) {
        self.errors.sort();
        self.errors.dedup();
    }

    /// Appends the errors of `other`.
    pub fn extend(&mut self, other: ValidationErrors) {
        self.errors.extend(other.errors);
    }

    /// The number of problems.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// A single error about a whole file (no line).
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        ValidationErrors {
            errors: vec![ValidationError {
                file: file.to_owned(),
                line: 0,
                col: 0,
                path: String::new(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// The deepest nesting of maps and lists a file may have.
pub const MAX_DEPTH: usize = 24;

/// serde-saphyr's options for medic's files.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // YAML 1.2 booleans only: a target named `y` or a label `on` stays a string.
        strict_booleans: true,
        // The default 250k nodes stops at ~5,000 targets; the alias limits are kept.
        // Nesting: medic's files need ~8 levels; each level costs serde's recursion tens of KiB
        // of stack in a debug build, and 40 levels overflowed a 2 MiB thread (the default for
        // spawned threads and tokio workers), so 24 rather than serde-saphyr's 64.
        budget: serde_saphyr::budget! {
            max_nodes: 5_000_000,
            max_events: 20_000_000,
            max_depth: MAX_DEPTH,
        },
    }
}

/// [`options`] for [`parse_yaml`]'s tree: duplicate keys and non-finite floats reach the tree,
/// where they get a key path and a message of their own instead of a library error.
fn tree_options() -> serde_saphyr::Options {
    let mut o = options();
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    o.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    o
}

/// Parses YAML text into a located [`Node`]; a syntax error (or an input over serde-saphyr's
/// safety budget, e.g. nesting deeper than [`MAX_DEPTH`]) becomes one located
/// [`ValidationError`].
///
/// An empty document parses as a `Null` node at 1:1.
pub fn parse_yaml(text: &str, file: &str) -> Result<Node, ValidationErrors> {
    if text.trim().is_empty() {
        return Ok(Node::new(Loc { line: 1, col: 1 }, Value::Null));
    }
    let parsed = {
        let _source = SourceGuard::set(text);
        serde_saphyr::from_str_with_options::<Option<Node>>(text, tree_options())
    };
    match parsed {
        Ok(Some(node)) => {
            let mut dec = Decoder::new(file);
            let mut path = String::new();
            report_duplicate_keys(&mut dec, &node, &mut path);
            dec.finish(node)
        }
        Ok(None) => Ok(Node::new(Loc { line: 1, col: 1 }, Value::Null)),
        Err(e) => {
            let loc = e.location().map_or(Loc { line: 1, col: 1 }, |l| Loc {
                line: u32::try_from(l.line()).unwrap_or(u32::MAX).max(1),
                col: u32::try_from(l.column()).unwrap_or(u32::MAX).max(1),
            });
            let found = syntax_message(&e);
            Err(ValidationErrors {
                errors: vec![ValidationError {
                    file: file.to_owned(),
                    line: loc.line,
                    col: loc.col,
                    path: String::new(),
                    message: format!("expected valid YAML, found {found}"),
                }],
            })
        }
    }
}

/// Records every key written twice in one mapping of `node`'s tree, at the second one.
///
/// YAML forbids them, and serde-saphyr's own error would name neither the key path nor the
/// first occurrence. `path` is `node`'s key path; it is restored before returning.
fn report_duplicate_keys(dec: &mut Decoder, node: &Node, path: &mut String) {
    let len = path.len();
    match &node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                report_duplicate_keys(dec, item, path);
                path.truncate(len);
            }
        }
        Value::Map(entries) => {
            // Keys seen so far with where they first occur; a hostile file may have a huge
            // mapping, so no quadratic scan.
            let mut seen: std::collections::HashMap<String, Loc> = std::collections::HashMap::new();
            for (k, v) in entries {
                let Some(name) = k.as_key() else { continue };
                let joined = join(path, &name);
                path.clear();
                path.push_str(&joined);
                report_duplicate_keys(dec, v, path);
                match seen.get(&name) {
                    Some(first) => {
                        let at = if first.line == k.loc.line {
                            format!("line {}, column {}", first.line, first.col)
                        } else {
                            format!("line {}", first.line)
                        };
                        let message = format!(
                            "expected each key once, found a second {name:?} (first at {at})"
                        );
                        dec.error_at(k.loc, path, message);
                    }
                    None => {
                        seen.insert(name, k.loc);
                    }
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Deserialises `text` straight into a serde type (e.g. a `#[serde(deny_unknown_fields)]`
/// struct) and reports a failure as one [`ValidationError`] at serde-saphyr's location.
///
/// serde stops at the first problem and knows no key path, so this reports one error with an
/// empty path; use a [`Decoder`] to report every problem with its path.
///
/// ```
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(deny_unknown_fields)]
/// struct Limits { max: u32 }
///
/// let err = medic_policy::yaml::from_str_located::<Limits>("max: 3\nmin: 1\n", "l.yaml")
///     .unwrap_err();
/// assert!(err.to_string().starts_with("l.yaml:2:1: expected "), "{err}");
/// ```
pub fn from_str_located<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, ValidationErrors> {
    serde_saphyr::from_str_with_options::<T>(text, options()).map_err(|e| {
        let loc = e.location().map_or(Loc { line: 1, col: 1 }, |l| Loc {
            line: u32::try_from(l.line()).unwrap_or(u32::MAX).max(1),
            col: u32::try_from(l.column()).unwrap_or(u32::MAX).max(1),
        });
        ValidationErrors {
            errors: vec![ValidationError {
                file: file.to_owned(),
                line: loc.line,
                col: loc.col,
                path: String::new(),
                message: format!("expected a valid file, found {}", syntax_message(&e)),
            }],
        }
    })
}

/// serde-saphyr's message, on one line and without its own location suffix.
fn syntax_message(e: &serde_saphyr::Error) -> String {
    let raw = e.without_snippet().to_string();
    let first = raw.lines().next().unwrap_or("a syntax error").trim();
    // serde-saphyr appends " at line L, column C"; the location is already in front.
    let cut = first.find(" at line ").map_or(first, |i| &first[..i]);
    // Drop advice addressed to Rust callers ("; use from_str_multiple …").
    let cut = cut.find("; use ").map_or(cut, |i| &cut[..i]);
    let cut = cut.trim_end_matches('.').trim();
    // The error behind the snippet and alias wrappers (a budget breach inside an alias).
    let mut inner = e.without_snippet();
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    if let serde_saphyr::Error::Budget { breach, .. } = inner {
        budget_message(breach)
    } else if let serde_saphyr::Error::AliasReplayLimitExceeded {
        max_total_replayed_events,
        ..
    } = inner
    {
        format!(
            "aliases expanding to more than {max_total_replayed_events} values, as in an alias bomb"
        )
    } else if cut.starts_with("multiple YAML documents") {
        "a second YAML document (one document per file)".to_owned()
    } else if cut.starts_with("recursion limit exceeded") {
        // The parser's own limit (256), met before the deserializer's budget on deep input.
        format!("nesting deeper than {MAX_DEPTH} levels")
    } else if cut.starts_with("recursive references require") {
        "an alias inside its own anchor (a structure containing itself)".to_owned()
    } else if let Some(rest) = cut.strip_prefix("duplicate mapping key: ") {
        // Drop the advice to Rust callers (", set DuplicateKeyPolicy in Options …").
        let key = rest.find(", set ").map_or(rest, |i| &rest[..i]);
        format!("a second {key:?} key (each key may appear once)")
    } else if let Some(rest) = cut.strip_prefix("non-finite float ") {
        let number = rest.split('`').nth(1).unwrap_or(rest);
        format!("the non-finite number {number}")
    } else if cut.is_empty() {
        "a syntax error".to_owned()
    } else {
        cut.to_owned()
    }
}

/// The largest configuration file read: far above any real fleet (5,000 targets take ~2 MB),
/// and a guard against `--fleet /dev/zero`.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads a YAML file as UTF-8 text; `file` is the name used in messages.
///
/// An unreadable file, one above [`MAX_FILE_BYTES`] or one that is not UTF-8 gives one
/// [`ValidationError`]; for invalid UTF-8 it is located at the first bad byte.
pub fn read_yaml_file(path: &std::path::Path, file: &str) -> Result<String, ValidationErrors> {
    use std::io::Read;

    let unreadable = |e: std::io::Error| {
        ValidationErrors::file(file, format!("expected a readable file, found {e}"))
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ValidationErrors::file(
            file,
            format!(
                "expected a file of at most {} MiB, found a larger one",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let good = e.utf8_error().valid_up_to();
        // The prefix is valid UTF-8, so lines and characters can be counted on it.
        let before = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let col = before[line_start..].chars().count() + 1;
        let found = if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
            "UTF-16 text (byte order mark)".to_owned()
        } else {
            // `good` is below the length: an error means a bad byte follows the valid prefix.
            bytes.get(good).map_or_else(
                || "a truncated character".to_owned(),
                |b| format!("the byte 0x{b:02x}"),
            )
        };
        ValidationErrors {
            errors: vec![ValidationError {
                file: file.to_owned(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
                col: u32::try_from(col).unwrap_or(u32::MAX),
                path: String::new(),
                message: format!("expected UTF-8 text, found {found}"),
            }],
        }
    })
}

/// What went over serde-saphyr's safety budget, in the user's terms.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let budget = options().budget.unwrap_or_default();
    match breach {
        B::Depth { .. } => format!("nesting deeper than {} levels", budget.max_depth),
        B::Nodes { .. } | B::Events { .. } => {
            format!("more than {} values in one file", budget.max_nodes)
        }
        B::Aliases { .. } | B::AliasAnchorRatio { .. } => {
            "too many aliases (*name) for the anchors defined, as in an alias bomb".to_owned()
        }
        B::Anchors { .. } => format!("more than {} anchors (&name)", budget.max_anchors),
        B::MergeKeys { .. } => format!("more than {} merge keys (<<)", budget.max_merge_keys),
        B::ScalarBytes { .. } => format!(
            "more than {} MiB of text in values",
            budget.max_total_scalar_bytes >> 20
        ),
        other => format!("a file over the parser's limits ({other:?})"),
    }
}

/// Joins a key path and a key: `a.b` + `c` → `a.b.c`; an empty key shows as `""`.
pub fn join(path: &str, key: &str) -> String {
    let key = if key.is_empty() { "\"\"" } else { key };
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping whose keys were checked against a list of allowed keys.
#[derive(Clone, Copy, Debug)]
pub struct MapView<'n> {
    /// The map node itself.
    pub node: &'n Node,
    entries: &'n [(Node, Node)],
}

impl<'n> MapView<'n> {
    /// The value under `key`, `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    /// The key node of `key`, for pointing at the key itself.
    pub fn key_node(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(k, _)| k)
    }

    /// Whether `key` is present with a non-null value.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// All entries in file order (keys that are not scalars are skipped; the decoder already
    /// reported them).
    pub fn entries(&self) -> impl Iterator<Item = (String, &'n Node, &'n Node)> + '_ {
        self.entries
            .iter()
            .filter_map(|(k, v)| k.as_key().map(|name| (name, k, v)))
    }
}

/// Decodes typed values out of [`Node`]s, recording every problem instead of stopping.
///
/// Each method takes the node, the key path used in messages, and returns `None` (after
/// recording an error) when the value does not fit. [`Decoder::finish`] turns the collected
/// errors into a `Result`.
#[derive(Debug)]
pub struct Decoder {
    file: String,
    errors: Vec<ValidationError>,
}

impl Decoder {
    /// A decoder for the file named `file` (as shown in messages).
    pub fn new(file: &str) -> Self {
        Decoder {
            file: file.to_owned(),
            errors: Vec::new(),
        }
    }

    /// The file name shown in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Records a problem at `loc`.
    pub fn error_at(&mut self, loc: Loc, path: &str, message: impl Into<String>) {
        self.errors.push(ValidationError {
            file: self.file.clone(),
            line: loc.line,
            col: loc.col,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Records "expected `expected`, found <what `node` is>" at `node`.
    pub fn expected(&mut self, node: &Node, path: &str, expected: &str) {
        let message = format!("expected {expected}, found {}", node.describe());
        self.error_at(node.loc, path, message);
    }

    /// How many problems were recorded so far.
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Whether any problem was recorded.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors recorded so far, sorted.
    pub fn into_errors(self) -> ValidationErrors {
        let mut e = ValidationErrors {
            errors: self.errors,
        };
        e.normalize();
        e
    }

    /// `Ok(value)` when nothing was recorded, otherwise every recorded problem.
    pub fn finish<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.into_errors())
        }
    }

    /// Checks that `node` is a map whose keys are all in `allowed`; every unknown key is
    /// reported at the key. Returns `None` (and records) when `node` is not a map.
    pub fn map<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<MapView<'n>> {
        self.map_tolerating(node, path, allowed, &[])
    }

    /// Like [`Decoder::map`], but keys in `tolerated` are also accepted without being listed
    /// in messages (for keys the caller reports with a more specific message of its own).
    pub fn map_tolerating<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
        tolerated: &[&str],
    ) -> Option<MapView<'n>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, path, "a map");
            return None;
        };
        for (k, _) in entries {
            match k.as_key() {
                Some(name)
                    if allowed.contains(&name.as_str()) || tolerated.contains(&name.as_str()) => {}
                Some(name) => {
                    let message = format!(
                        "expected one of {}, found unknown key {name:?}",
                        allowed.join(", ")
                    );
                    self.error_at(k.loc, &join(path, &name), message);
                }
                None => self.expected(k, path, "a string key"),
            }
        }
        Some(MapView { node, entries })
    }

    /// Like [`Decoder::map`] but any key is allowed (labels, environment, named entries).
    pub fn free_map<'n>(&mut self, node: &'n Node, path: &str) -> Option<MapView<'n>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, path, "a map");
            return None;
        };
        for (k, _) in entries {
            if k.as_key().is_none() {
                self.expected(k, path, "a string key");
            }
        }
        Some(MapView { node, entries })
    }

    /// The items of a list; absent is an empty list; anything else is recorded.
    pub fn list<'n>(&mut self, node: Option<&'n Node>, path: &str) -> &'n [Node] {
        match node {
            None => &[],
            Some(Node {
                value: Value::Seq(items),
                ..
            }) => items,
            Some(other) => {
                self.expected(other, path, "a list");
                &[]
            }
        }
    }

    /// A required key of `map`: records "expected …, found nothing" at the map when absent.
    pub fn require<'n>(
        &mut self,
        map: &MapView<'n>,
        key: &str,
        path: &str,
        expected: &str,
    ) -> Option<&'n Node> {
        let node = map.get(key);
        if node.is_none() {
            let at = map.key_node(key).unwrap_or(map.node).loc;
            self.error_at(
                at,
                &join(path, key),
                format!("expected {expected}, found nothing"),
            );
        }
        node
    }

    /// A non-empty string.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => {
                self.expected(node, path, "a non-empty string");
                None
            }
        }
    }

    /// A required non-empty string key of `map`.
    pub fn required_string(&mut self, map: &MapView<'_>, key: &str, path: &str) -> Option<String> {
        let node = self.require(map, key, path, "a non-empty string")?;
        self.string(node, &join(path, key))
    }

    /// An optional non-empty string.
    pub fn opt_string(&mut self, node: Option<&Node>, path: &str) -> Option<String> {
        node.and_then(|n| self.string(n, path))
    }

    /// A scalar rendered as text (strings as is, numbers and booleans as written), for labels
    /// and environment values.
    pub fn scalar_text(&mut self, node: &Node, path: &str) -> Option<String> {
        match node.as_key() {
            Some(s) => Some(s),
            None => {
                self.expected(node, path, "a string, number or boolean");
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, node: Option<&Node>, path: &str) -> Option<bool> {
        node.and_then(|n| self.bool(n, path))
    }

    /// An integer in `min..=max`; the message names both bounds (for a `u32` field, its real
    /// limit 4294967295 rather than "non-negative").
    pub fn int_in(&mut self, node: &Node, path: &str, min: i128, max: i128) -> Option<i128> {
        match node.value {
            Value::Int(i) if (min..=max).contains(&i) => Some(i),
            _ => {
                self.expected(node, path, &format!("an integer from {min} to {max}"));
                None
            }
        }
    }

    /// A `u32` of at least `min`.
    pub fn u32_min(&mut self, node: &Node, path: &str, min: u32) -> Option<u32> {
        self.int_in(node, path, i128::from(min), i128::from(u32::MAX))
            .and_then(|i| u32::try_from(i).ok())
    }

    /// An optional `u32` of at least `min`.
    pub fn opt_u32_min(&mut self, node: Option<&Node>, path: &str, min: u32) -> Option<u32> {
        node.and_then(|n| self.u32_min(n, path, min))
    }

    /// A finite number (integer or float) that is at least `min`.
    pub fn number_min(&mut self, node: &Node, path: &str, min: f64) -> Option<f64> {
        let v = match node.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) if f.is_finite() => Some(f),
            _ => None,
        };
        match v {
            Some(v) if v >= min => Some(v),
            _ => {
                // `.inf` is at least anything: say why it is refused.
                let finite = if matches!(node.value, Value::Float(f) if !f.is_finite()) {
                    "finite "
                } else {
                    ""
                };
                let expected = if min == 0.0 {
                    format!("a {finite}non-negative number")
                } else {
                    format!("a {finite}number of at least {min}")
                };
                self.expected(node, path, &expected);
                None
            }
        }
    }

    /// A number in `[0, 1]`.
    pub fn ratio(&mut self, node: &Node, path: &str) -> Option<f64> {
        let v = match node.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        };
        match v {
            Some(v) if (0.0..=1.0).contains(&v) => Some(v),
            _ => {
                self.expected(node, path, "a number between 0 and 1");
                None
            }
        }
    }

    /// An optional number in `[0, 1]`.
    pub fn opt_ratio(&mut self, node: Option<&Node>, path: &str) -> Option<f64> {
        node.and_then(|n| self.ratio(n, path))
    }

    /// A duration: `500ms`, `300s`, `5m`, `1h`, `1d`, or a bare number of seconds, at most
    /// [`MAX_DURATION`].
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let secs = match &node.value {
            Value::Int(i) if *i >= 0 => Ok(*i as f64),
            Value::Float(f) if *f >= 0.0 => Ok(*f),
            Value::Str(s) => duration_secs(s),
            _ => Err("not a duration"),
        };
        match secs.and_then(bounded_duration) {
            Ok(d) => Some(d),
            Err(TOO_LONG) => {
                self.expected(node, path, DURATION_AT_MOST);
                None
            }
            Err(_) => {
                self.expected(node, path, DURATION_EXPECTED);
                None
            }
        }
    }

    /// A duration greater than zero.
    pub fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.expected(node, path, "a duration greater than zero");
            return None;
        }
        Some(d)
    }

    /// An optional duration.
    pub fn opt_duration(&mut self, node: Option<&Node>, path: &str) -> Option<Duration> {
        node.and_then(|n| self.duration(n, path))
    }

    /// An optional duration greater than zero.
    pub fn opt_positive_duration(&mut self, node: Option<&Node>, path: &str) -> Option<Duration> {
        node.and_then(|n| self.positive_duration(n, path))
    }

    /// One of a fixed set of names; the message lists them.
    pub fn one_of<T: Copy>(&mut self, node: &Node, path: &str, choices: &[(&str, T)]) -> Option<T> {
        if let Value::Str(s) = &node.value
            && let Some((_, v)) = choices.iter().find(|(name, _)| name == s)
        {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        self.expected(node, path, &format!("one of {}", names.join(", ")));
        None
    }

    /// A list of names from a fixed set; a single name is accepted as a one-item list.
    pub fn list_of<T: Copy>(
        &mut self,
        node: Option<&Node>,
        path: &str,
        choices: &[(&str, T)],
    ) -> Vec<T> {
        let Some(node) = node else { return Vec::new() };
        if let Value::Str(_) = node.value {
            return self.one_of(node, path, choices).into_iter().collect();
        }
        let items = self.list(Some(node), path);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.one_of(n, &format!("{path}[{i}]"), choices))
            .collect()
    }

    /// A list of non-empty strings.
    pub fn string_list(&mut self, node: Option<&Node>, path: &str) -> Vec<String> {
        let items = self.list(node, path);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.string(n, &format!("{path}[{i}]")))
            .collect()
    }

    /// A list of non-empty strings with the location of each.
    pub fn located_string_list(&mut self, node: Option<&Node>, path: &str) -> Vec<(String, Loc)> {
        let items = self.list(node, path);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.string(n, &format!("{path}[{i}]")).map(|s| (s, n.loc)))
            .collect()
    }

    /// A map of string keys to scalar values rendered as text.
    pub fn string_map(
        &mut self,
        node: Option<&Node>,
        path: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let Some(node) = node else { return out };
        let Some(map) = self.free_map(node, path) else {
            return out;
        };
        for (k, _, v) in map.entries() {
            if let Some(text) = self.scalar_text(v, &join(path, &k)) {
                out.insert(k, text);
            }
        }
        out
    }
}

/// What a duration looks like, for messages.
pub const DURATION_EXPECTED: &str =
    "a duration like 500ms, 300s, 5m or 1h30m (or a number of seconds)";

/// The longest duration a file may give: 365 days.
///
/// Nothing medic waits for is longer, and the bound keeps every product of a duration and a
/// count (e.g. `every × failure_threshold`) far from `Duration`'s overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// "Expected …" for a duration above [`MAX_DURATION`].
const DURATION_AT_MOST: &str = "a duration of at most 365d";

/// [`parse_duration`]'s reason for a duration above [`MAX_DURATION`].
const TOO_LONG: &str = "longer than 365d";

/// Parses `500ms`, `300s`, `5m`, `1h`, `1d`, compounds such as `1h30m` or `2m30s`, or a bare
/// number of seconds (`1.5` allowed).
///
/// Negative, non-finite values and values above [`MAX_DURATION`] are errors; the error is a
/// short reason.
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    duration_secs(text).and_then(bounded_duration)
}

/// The number of seconds `text` spells (see [`parse_duration`]), without the upper bound.
fn duration_secs(text: &str) -> Result<f64, &'static str> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty");
    }
    if t.starts_with('-') {
        return Err("negative");
    }
    let mut rest = t;
    let mut total = 0.0_f64;
    let mut parts = 0;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(split);
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "" if parts == 0 && after.is_empty() => 1.0,
            "s" | "sec" | "secs" => 1.0,
            "ms" => 0.001,
            "m" | "min" | "mins" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err("unknown unit"),
        };
        if num.is_empty() || !num.starts_with(|c: char| c.is_ascii_digit()) {
            return Err("not a number");
        }
        let n: f64 = num.parse().map_err(|_| "not a number")?;
        total += n * scale;
        parts += 1;
        rest = after.trim_start();
    }
    Ok(total)
}

/// `secs` as a [`Duration`] when it is from 0 to [`MAX_DURATION`].
fn bounded_duration(secs: f64) -> Result<Duration, &'static str> {
    if secs.is_nan() || secs < 0.0 {
        Err("not a duration")
    } else if secs > MAX_DURATION.as_secs_f64() {
        Err(TOO_LONG)
    } else {
        Duration::try_from_secs_f64(secs).map_err(|_| "out of range")
    }
}
