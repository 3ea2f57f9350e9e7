//! The parser's vocabulary: formats, metric types, suffixes, borrowed samples, statistics.

use std::borrow::Cow;
use std::fmt;

/// Which text format a page is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text exposition 0.0.4: timestamps are integer milliseconds.
    Prometheus,
    /// OpenMetrics 1.0: timestamps are float seconds, `# EOF` ends the page.
    OpenMetrics,
}

impl Format {
    /// Picks the format from a `Content-Type` header if it names one, else from the body:
    /// an OpenMetrics page must end with `# EOF`, a 0.0.4 page has no such rule.
    pub fn detect(content_type: Option<&str>, body: &[u8]) -> Format {
        if let Some(ct) = content_type {
            if ct.contains("application/openmetrics-text") {
                return Format::OpenMetrics;
            }
            if ct.contains("text/plain") {
                return Format::Prometheus;
            }
        }
        let trimmed = body.trim_ascii_end();
        if trimmed.ends_with(b"# EOF") {
            let before = trimmed.len() - b"# EOF".len();
            if before == 0 || trimmed[before - 1] == b'\n' {
                return Format::OpenMetrics;
            }
        }
        Format::Prometheus
    }
}

/// The type a family declares with `# TYPE`, or `Untyped` when it declares none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A monotonic counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets with `le`, plus `_sum` and `_count`.
    Histogram,
    /// OpenMetrics: a histogram of current values, with `_gsum` and `_gcount`.
    GaugeHistogram,
    /// Precomputed `quantile`s plus `_sum` and `_count`.
    Summary,
    /// OpenMetrics: textual information as labels on a `_info` sample of value 1.
    Info,
    /// OpenMetrics: one boolean sample per state, labelled by the family name.
    StateSet,
    /// No type given (0.0.4 `untyped`, OpenMetrics `unknown`, or no `# TYPE` line at all).
    Untyped,
}

impl MetricType {
    /// Parses the word after `# TYPE name`; both formats' words are accepted in either format.
    pub fn from_word(word: &str) -> Option<MetricType> {
        Some(match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "untyped" | "unknown" => MetricType::Untyped,
            _ => return None,
        })
    }

    /// The type's word as written in 0.0.4 (`untyped`) or OpenMetrics for the others.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Untyped => "untyped",
        }
    }

    /// The suffixes a sample of this family may add to the family name.
    pub(crate) fn allows(self, suffix: Suffix) -> bool {
        use Suffix as S;
        match self {
            MetricType::Counter => matches!(suffix, S::None | S::Total | S::Created),
            MetricType::Histogram => {
                matches!(suffix, S::None | S::Bucket | S::Sum | S::Count | S::Created)
            }
            MetricType::GaugeHistogram => {
                matches!(
                    suffix,
                    S::None | S::Bucket | S::Gsum | S::Gcount | S::Created
                )
            }
            MetricType::Summary => matches!(suffix, S::None | S::Sum | S::Count | S::Created),
            MetricType::Info => matches!(suffix, S::None | S::Info),
            MetricType::Gauge | MetricType::StateSet | MetricType::Untyped => {
                matches!(suffix, S::None)
            }
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sample's name adds to its family's name, i.e. which part of the family it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suffix {
    /// The sample's name is the family name (gauges, 0.0.4 counters, summary quantiles, ...).
    None,
    /// `_total` (an OpenMetrics counter's value).
    Total,
    /// `_created` (creation time of a counter, histogram or summary).
    Created,
    /// `_bucket` (a histogram bucket, labelled `le`).
    Bucket,
    /// `_sum`.
    Sum,
    /// `_count`.
    Count,
    /// `_gsum` (gauge histogram).
    Gsum,
    /// `_gcount` (gauge histogram).
    Gcount,
    /// `_info` (info metric).
    Info,
}

impl Suffix {
    /// Every suffix other than `None`, longest match first is not needed: none is a suffix of another.
    pub(crate) const ALL: [(Suffix, &'static str); 8] = [
        (Suffix::Bucket, "_bucket"),
        (Suffix::Sum, "_sum"),
        (Suffix::Count, "_count"),
        (Suffix::Total, "_total"),
        (Suffix::Created, "_created"),
        (Suffix::Gsum, "_gsum"),
        (Suffix::Gcount, "_gcount"),
        (Suffix::Info, "_info"),
    ];

    /// The suffix text, empty for `None`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Suffix::None => "",
            Suffix::Total => "_total",
            Suffix::Created => "_created",
            Suffix::Bucket => "_bucket",
            Suffix::Sum => "_sum",
            Suffix::Count => "_count",
            Suffix::Gsum => "_gsum",
            Suffix::Gcount => "_gcount",
            Suffix::Info => "_info",
        }
    }
}

/// Why a line was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The line does not start with a valid metric name (or a `{"quoted name"` block).
    InvalidMetricName,
    /// A label name is missing or has invalid characters.
    InvalidLabelName,
    /// A label is not `name="value"` (missing `=` or opening quote).
    MalformedLabel,
    /// A label value's closing quote is missing before the end of the line.
    UnterminatedLabelValue,
    /// The label block is not closed, or labels are not separated by commas.
    MalformedLabels,
    /// The same label name appears twice in one sample.
    DuplicateLabel,
    /// The sample has no value.
    MissingValue,
    /// The value is not a number, `NaN` or `±Inf`.
    InvalidValue,
    /// The timestamp is not a (finite) number.
    InvalidTimestamp,
    /// Something other than a timestamp or an exemplar follows the value.
    TrailingGarbage,
    /// A `# HELP`, `# TYPE` or `# UNIT` line lacks its metric name or type.
    MalformedMetadata,
    /// `# TYPE` names a type neither format knows.
    UnknownType,
    /// A line follows the OpenMetrics `# EOF` marker.
    AfterEof,
    /// The line is not valid UTF-8 (only from [`parse_bytes`](super::parse_bytes)).
    InvalidUtf8,
}

impl SkipReason {
    /// A short lowercase description.
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::InvalidMetricName => "invalid metric name",
            SkipReason::InvalidLabelName => "invalid label name",
            SkipReason::MalformedLabel => "label is not name=\"value\"",
            SkipReason::UnterminatedLabelValue => "unterminated label value",
            SkipReason::MalformedLabels => "malformed label set",
            SkipReason::DuplicateLabel => "duplicate label name",
            SkipReason::MissingValue => "missing value",
            SkipReason::InvalidValue => "invalid value",
            SkipReason::InvalidTimestamp => "invalid timestamp",
            SkipReason::TrailingGarbage => "unexpected text after the value",
            SkipReason::MalformedMetadata => "malformed HELP/TYPE/UNIT line",
            SkipReason::UnknownType => "unknown metric type",
            SkipReason::AfterEof => "content after # EOF",
            SkipReason::InvalidUtf8 => "invalid utf-8",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One skipped line: where and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the page.
    pub line: usize,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// How many skipped lines [`ParseStats::errors`] records in detail; the rest are only counted,
/// so a hostile page cannot make the statistics grow without bound.
pub const MAX_RECORDED_ERRORS: usize = 64;

/// Counters a parse accumulates. Reuse one across pages to keep totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParseStats {
    /// Lines seen (including blank lines and comments).
    pub lines: usize,
    /// Samples handed to the callback.
    pub samples: usize,
    /// Lines skipped as malformed; each is also in `errors` while there is room.
    pub skipped_lines: usize,
    /// Exemplars seen and skipped (their samples are kept).
    pub exemplars: usize,
    /// Whether an OpenMetrics `# EOF` was seen.
    pub eof: bool,
    /// The first [`MAX_RECORDED_ERRORS`] skipped lines.
    pub errors: Vec<LineError>,
}

impl ParseStats {
    pub(crate) fn skip(&mut self, line: usize, reason: SkipReason) {
        self.skipped_lines += 1;
        if self.errors.len() < MAX_RECORDED_ERRORS {
            self.errors.push(LineError { line, reason });
        }
    }
}

/// Resolves the escapes `\\`, `\"` and `\n` (and, when `quotes` is false, leaves `\"` alone, as
/// 0.0.4 HELP text does). An unknown escape keeps its backslash, as Prometheus's scraper does.
pub(crate) fn unescape_into(raw: &str, quotes: bool, out: &mut String) {
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.as_bytes().first() {
            Some(b'\\') => out.push('\\'),
            Some(b'n') => out.push('\n'),
            Some(b'"') if quotes => out.push('"'),
            _ => {
                out.push('\\');
                rest = after;
                continue;
            }
        }
        rest = &after[1..];
    }
    out.push_str(rest);
}

pub(crate) fn unescape(raw: &str, escaped: bool, quotes: bool) -> Cow<'_, str> {
    if !escaped {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    unescape_into(raw, quotes, &mut out);
    Cow::Owned(out)
}

/// A family's metadata: its name, type, and HELP/UNIT text if given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FamilyRef<'a> {
    pub(crate) name: &'a str,
    pub(crate) name_escaped: bool,
    pub(crate) metric_type: MetricType,
    pub(crate) help: Option<&'a str>,
    pub(crate) unit: Option<&'a str>,
    pub(crate) format: Format,
}

impl<'a> FamilyRef<'a> {
    /// The family name (without any suffix), unescaped if it was a quoted name with escapes.
    pub fn name(&self) -> Cow<'a, str> {
        unescape(self.name, self.name_escaped, true)
    }

    /// The declared type, `Untyped` if none.
    pub fn metric_type(&self) -> MetricType {
        self.metric_type
    }

    /// The HELP text, unescaped (`\\` and `\n`; also `\"` in OpenMetrics).
    pub fn help(&self) -> Option<Cow<'a, str>> {
        self.help.map(|h| {
            unescape(
                h,
                h.as_bytes().contains(&b'\\'),
                self.format == Format::OpenMetrics,
            )
        })
    }

    /// The HELP text as written, escapes unresolved.
    pub fn help_raw(&self) -> Option<&'a str> {
        self.help
    }

    /// The OpenMetrics UNIT, if given.
    pub fn unit(&self) -> Option<&'a str> {
        self.unit
    }
}

/// Byte ranges of one label inside the page, filled into a buffer the parser reuses.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LabelSpan {
    pub name: (usize, usize),
    pub value: (usize, usize),
    pub name_escaped: bool,
    pub value_escaped: bool,
}

/// One label of a [`SampleRef`], borrowed from the page; unescaping happens only on request.
#[derive(Clone, Copy, Debug)]
pub struct Label<'a> {
    name: &'a str,
    name_escaped: bool,
    value: &'a str,
    value_escaped: bool,
}

impl<'a> Label<'a> {
    /// The label name (unescaped if it was quoted with escapes; borrowed otherwise).
    pub fn name(&self) -> Cow<'a, str> {
        unescape(self.name, self.name_escaped, true)
    }

    /// The label name as written (without quotes).
    pub fn raw_name(&self) -> &'a str {
        self.name
    }

    /// The value with `\\`, `\"` and `\n` resolved; borrowed unless it had escapes.
    pub fn value(&self) -> Cow<'a, str> {
        unescape(self.value, self.value_escaped, true)
    }

    /// The value as written between the quotes, escapes unresolved.
    pub fn raw_value(&self) -> &'a str {
        self.value
    }

    /// Whether the value contains escapes (so [`value`](Self::value) allocates).
    pub fn value_is_escaped(&self) -> bool {
        self.value_escaped
    }

    /// Appends the unescaped value to `out`, for callers that reuse a buffer.
    pub fn push_value(&self, out: &mut String) {
        if self.value_escaped {
            unescape_into(self.value, true, out);
        } else {
            out.push_str(self.value);
        }
    }
}

/// Iterator over a sample's labels in page order.
#[derive(Clone, Debug)]
pub struct Labels<'a> {
    text: &'a str,
    spans: std::slice::Iter<'a, LabelSpan>,
}

impl<'a> Iterator for Labels<'a> {
    type Item = Label<'a>;

    fn next(&mut self) -> Option<Label<'a>> {
        let s = self.spans.next()?;
        Some(Label {
            name: &self.text[s.name.0..s.name.1],
            name_escaped: s.name_escaped,
            value: &self.text[s.value.0..s.value.1],
            value_escaped: s.value_escaped,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for Labels<'_> {}

/// One sample, borrowed from the page and valid only during the callback.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    pub(crate) text: &'a str,
    pub(crate) name: &'a str,
    pub(crate) name_escaped: bool,
    pub(crate) labels: &'a [LabelSpan],
    pub(crate) family: FamilyRef<'a>,
    pub(crate) suffix: Suffix,
    /// The value; may be NaN or ±Inf.
    pub value: f64,
    /// The exposition's timestamp in milliseconds since the epoch, if the line had one
    /// (0.0.4 writes milliseconds, OpenMetrics seconds; both end up here as milliseconds).
    pub timestamp_ms: Option<i64>,
    /// 1-based line number.
    pub line: usize,
}

impl<'a> SampleRef<'a> {
    /// The full sample name (family name plus suffix), borrowed unless quoted with escapes.
    pub fn name(&self) -> Cow<'a, str> {
        unescape(self.name, self.name_escaped, true)
    }

    /// The sample name as written (without quotes, escapes unresolved).
    pub fn raw_name(&self) -> &'a str {
        self.name
    }

    /// The labels in page order.
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            text: self.text,
            spans: self.labels.iter(),
        }
    }

    /// Number of labels.
    pub fn n_labels(&self) -> usize {
        self.labels.len()
    }

    /// The (unescaped) value of the label `name`, if present.
    pub fn label(&self, name: &str) -> Option<Cow<'a, str>> {
        self.labels()
            .find(|l| l.raw_name() == name)
            .map(|l| l.value())
    }

    /// The family this sample belongs to.
    pub fn family(&self) -> FamilyRef<'a> {
        self.family
    }

    /// Which part of the family this sample is.
    pub fn suffix(&self) -> Suffix {
        self.suffix
    }

    /// Copies the sample into an owned [`Sample`].
    pub fn to_owned_sample(&self) -> Sample {
        Sample {
            name: self.name().into_owned(),
            labels: self
                .labels()
                .map(|l| (l.name().into_owned(), l.value().into_owned()))
                .collect(),
            value: self.value,
            timestamp_ms: self.timestamp_ms,
            family: self.family.name().into_owned(),
            metric_type: self.family.metric_type,
            suffix: self.suffix,
        }
    }
}

/// An owned sample, as returned by [`parse_to_vec`](super::parse_to_vec).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The full sample name, e.g. `http_request_duration_seconds_bucket`.
    pub name: String,
    /// Label pairs in page order, unescaped.
    pub labels: Vec<(String, String)>,
    /// The value; may be NaN or ±Inf.
    pub value: f64,
    /// The exposition's timestamp in milliseconds, if any.
    pub timestamp_ms: Option<i64>,
    /// The family name, e.g. `http_request_duration_seconds`.
    pub family: String,
    /// The family's type.
    pub metric_type: MetricType,
    /// Which part of the family this sample is.
    pub suffix: Suffix,
}

/// An owned family's metadata, as returned by [`parse_to_vec`](super::parse_to_vec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    /// The family name.
    pub name: String,
    /// The declared type, `Untyped` if none.
    pub metric_type: MetricType,
    /// The HELP text, unescaped.
    pub help: Option<String>,
    /// The OpenMetrics UNIT.
    pub unit: Option<String>,
}

/// The owned result of [`parse_to_vec`](super::parse_to_vec).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    /// Every accepted sample in page order.
    pub samples: Vec<Sample>,
    /// Every family seen (declared by metadata or implied by a sample), in order of first sight.
    pub families: Vec<Family>,
}
