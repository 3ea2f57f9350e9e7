//! The line parser. One pass over the page; each line is found with `memchr`, parsed in place,
//! and either handed to the callback as a borrowed [`SampleRef`] or skipped and counted.
//!
//! Why lines first: a malformed line must cost only itself, so every line is a bounded slice and
//! an error simply moves on to the next one.

use std::collections::HashMap;

use super::types::{
    FamilyRef, Format, LabelSpan, MetricType, ParseStats, SampleRef, SkipReason, Suffix,
};

pub(crate) struct Parser<'a, 's, F> {
    format: Format,
    stats: &'s mut ParseStats,
    on_sample: F,
    pub(crate) families: Vec<FamilyRef<'a>>,
    index: HashMap<&'a str, usize>,
    current: Option<usize>,
    labels: Vec<LabelSpan>,
    line: usize,
    /// `# EOF` seen on this page (kept here, not read from the stats, which may span pages).
    eof: bool,
}

type Res<T> = Result<T, SkipReason>;

#[inline]
fn is_ws(b: u8) -> bool {
    // a stray carriage return counts as a blank, so CRLF and trailing `\r`s never break a line
    b == b' ' || b == b'\t' || b == b'\r'
}

#[inline]
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

#[inline]
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

#[inline]
fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

#[inline]
fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Drops the `\r` of a CRLF line end and leading blanks. Trailing blanks stay: the sample
/// parser skips them anyway, and in HELP text they belong to the docstring.
#[inline]
fn trim_line(line: &str) -> &str {
    let b = line.as_bytes();
    let end = if b.last() == Some(&b'\r') {
        b.len() - 1
    } else {
        b.len()
    };
    let mut start = 0;
    while start < end && is_ws(b[start]) {
        start += 1;
    }
    &line[start..end]
}

/// Scans a quoted string starting at the opening quote `b[i]`.
/// Returns (content start, content end, has escapes, index after the closing quote).
#[inline]
fn scan_quoted(b: &[u8], i: usize) -> Res<(usize, usize, bool, usize)> {
    let start = i + 1;
    let mut j = start;
    let mut escaped = false;
    loop {
        let Some(k) = memchr::memchr2(b'"', b'\\', &b[j..]) else {
            return Err(SkipReason::UnterminatedLabelValue);
        };
        let k = j + k;
        if b[k] == b'"' {
            return Ok((start, k, escaped, k + 1));
        }
        escaped = true;
        if k + 1 >= b.len() {
            return Err(SkipReason::UnterminatedLabelValue);
        }
        j = k + 2;
    }
}

/// Parses a sample value: integers take a fast path, everything else (exponents, `NaN`,
/// `+Inf`, `-inf`, `Infinity` in any case) goes through the standard library's float parser.
#[inline]
pub(crate) fn parse_value(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if !digits.is_empty() && digits.len() <= 15 {
        let mut n: u64 = 0;
        let mut all_digits = true;
        for &d in digits {
            let v = d.wrapping_sub(b'0');
            if v > 9 {
                all_digits = false;
                break;
            }
            n = n * 10 + u64::from(v);
        }
        if all_digits {
            // exact: 15 decimal digits always fit in f64's 53-bit mantissa
            let f = n as f64;
            return Some(if neg { -f } else { f });
        }
    }
    s.parse::<f64>().ok()
}

fn parse_timestamp(s: &str, format: Format) -> Option<i64> {
    match format {
        Format::Prometheus => {
            if let Ok(ms) = s.parse::<i64>() {
                return Some(ms);
            }
            // tolerate a float of milliseconds, which some exporters write
            let f = s.parse::<f64>().ok()?;
            float_to_i64(f)
        }
        Format::OpenMetrics => {
            let secs = s.parse::<f64>().ok()?;
            float_to_i64(secs * 1000.0)
        }
    }
}

fn float_to_i64(f: f64) -> Option<i64> {
    // i64::MAX as f64 rounds up to 2^63, so compare strictly
    if (-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&f) {
        Some(f.round() as i64)
    } else {
        None
    }
}

/// Whether two labels share a name. Pairwise for the usual handful of labels; sorted for a
/// long label set, so a hostile line with thousands of labels costs n log n, not n².
fn has_duplicate_label(b: &[u8], labels: &[LabelSpan]) -> bool {
    let name = |l: &LabelSpan| &b[l.name.0..l.name.1];
    if labels.len() <= 16 {
        labels
            .iter()
            .enumerate()
            .any(|(i, a)| labels[i + 1..].iter().any(|c| name(c) == name(a)))
    } else {
        let mut names: Vec<&[u8]> = labels.iter().map(name).collect();
        names.sort_unstable();
        names.windows(2).any(|w| w[0] == w[1])
    }
}

fn suffix_of(name: &str, family: &str) -> Option<Suffix> {
    if name.len() == family.len() {
        return (name == family).then_some(Suffix::None);
    }
    let rest = name.strip_prefix(family)?;
    Suffix::ALL
        .iter()
        .find(|(_, text)| *text == rest)
        .map(|(s, _)| *s)
}

impl<'a, 's, F> Parser<'a, 's, F>
where
    F: FnMut(SampleRef<'_>),
{
    pub(crate) fn new(format: Format, stats: &'s mut ParseStats, on_sample: F) -> Self {
        Parser {
            format,
            stats,
            on_sample,
            families: Vec::new(),
            index: HashMap::new(),
            current: None,
            labels: Vec::with_capacity(16),
            line: 0,
            eof: false,
        }
    }

    /// Parses a chunk of whole lines; the line counter continues from the previous chunk.
    pub(crate) fn feed(&mut self, chunk: &'a str) {
        let b = chunk.as_bytes();
        let mut pos = 0;
        while pos < b.len() {
            let end = memchr::memchr(b'\n', &b[pos..]).map_or(b.len(), |i| pos + i);
            self.line += 1;
            self.stats.lines += 1;
            let line = trim_line(&chunk[pos..end]);
            pos = end + 1;
            if line.is_empty() {
                continue;
            }
            if self.eof {
                self.stats.skip(self.line, SkipReason::AfterEof);
                continue;
            }
            let result = if line.as_bytes()[0] == b'#' {
                self.comment(line)
            } else {
                self.sample(line)
            };
            if let Err(reason) = result {
                self.stats.skip(self.line, reason);
            }
        }
    }

    /// Counts one line that could not be decoded at all (used by the bytes entry point).
    pub(crate) fn skip_line(&mut self, reason: SkipReason) {
        self.line += 1;
        self.stats.lines += 1;
        self.stats.skip(self.line, reason);
    }

    fn comment(&mut self, line: &'a str) -> Res<()> {
        let b = line.as_bytes();
        let i = skip_ws(b, 1);
        if i == 1 {
            // `#foo`: a plain comment
            return Ok(());
        }
        let kw_end = i + b[i..].iter().position(|&c| is_ws(c)).unwrap_or(b.len() - i);
        let kw = &line[i..kw_end];
        match kw {
            "HELP" | "TYPE" | "UNIT" => {}
            "EOF" if skip_ws(b, kw_end) == b.len() => {
                if self.format == Format::OpenMetrics {
                    self.eof = true;
                    self.stats.eof = true;
                }
                return Ok(());
            }
            _ => return Ok(()),
        }
        let i = skip_ws(b, kw_end);
        if i == b.len() {
            return Err(SkipReason::MalformedMetadata);
        }
        let (name, escaped, after) = if b[i] == b'"' {
            let (s, e, esc, next) = scan_quoted(b, i).map_err(|_| SkipReason::MalformedMetadata)?;
            (&line[s..e], esc, next)
        } else {
            if !is_name_start(b[i]) {
                return Err(SkipReason::MalformedMetadata);
            }
            let mut j = i + 1;
            while j < b.len() && is_name_char(b[j]) {
                j += 1;
            }
            (&line[i..j], false, j)
        };
        if after < b.len() && !is_ws(b[after]) {
            return Err(SkipReason::MalformedMetadata);
        }
        // exactly one blank separates the name from the HELP text; the rest is the docstring
        let rest = line.get(after + 1..).unwrap_or("");
        match kw {
            "HELP" => {
                let idx = self.family_for_meta(name, escaped);
                self.families[idx].help = Some(rest);
            }
            "TYPE" => {
                let rest = rest.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
                let t = MetricType::from_word(rest).ok_or(if rest.is_empty() {
                    SkipReason::MalformedMetadata
                } else {
                    SkipReason::UnknownType
                })?;
                let idx = self.family_for_meta(name, escaped);
                self.families[idx].metric_type = t;
            }
            _ => {
                let idx = self.family_for_meta(name, escaped);
                self.families[idx].unit = Some(rest.trim_matches(|c| c == ' ' || c == '\t'));
            }
        }
        Ok(())
    }

    fn new_family(&mut self, name: &'a str, escaped: bool) -> usize {
        let idx = self.families.len();
        self.families.push(FamilyRef {
            name,
            name_escaped: escaped,
            metric_type: MetricType::Untyped,
            help: None,
            unit: None,
            format: self.format,
        });
        self.index.insert(name, idx);
        idx
    }

    fn family_for_meta(&mut self, name: &'a str, escaped: bool) -> usize {
        if let Some(c) = self.current
            && self.families[c].name == name
        {
            return c;
        }
        let idx = match self.index.get(name) {
            Some(&i) => i,
            None => self.new_family(name, escaped),
        };
        self.current = Some(idx);
        idx
    }

    fn resolve(&mut self, name: &'a str, escaped: bool) -> (usize, Suffix) {
        if let Some(c) = self.current {
            let f = &self.families[c];
            if let Some(s) = suffix_of(name, f.name)
                && f.metric_type.allows(s)
            {
                return (c, s);
            }
        }
        let found = match self.index.get(name) {
            Some(&i) => Some((i, Suffix::None)),
            None => Suffix::ALL.iter().find_map(|&(s, text)| {
                let base = name.strip_suffix(text)?;
                let &i = self.index.get(base)?;
                self.families[i].metric_type.allows(s).then_some((i, s))
            }),
        };
        let (idx, suffix) = found.unwrap_or_else(|| (self.new_family(name, escaped), Suffix::None));
        self.current = Some(idx);
        (idx, suffix)
    }

    fn sample(&mut self, line: &'a str) -> Res<()> {
        let b = line.as_bytes();
        self.labels.clear();
        let mut name: Option<(usize, usize, bool)> = None;
        let mut i = 0;
        if b[0] != b'{' {
            if !is_name_start(b[0]) {
                return Err(SkipReason::InvalidMetricName);
            }
            i = 1;
            while i < b.len() && is_name_char(b[i]) {
                i += 1;
            }
            name = Some((0, i, false));
            i = skip_ws(b, i);
        }
        if i < b.len() && b[i] == b'{' {
            i = self.label_block(b, i, &mut name)?;
        }
        let Some((ns, ne, name_escaped)) = name else {
            return Err(SkipReason::InvalidMetricName);
        };
        if i == b.len() {
            return Err(SkipReason::MissingValue);
        }
        let before = i;
        i = skip_ws(b, i);
        if i == before && i > 0 && !is_ws(b[i - 1]) {
            // `foo!bar 1` or `foo{a="b"}1`: the name or label block runs into garbage
            return Err(if b[i - 1] == b'}' {
                SkipReason::MalformedLabels
            } else {
                SkipReason::InvalidMetricName
            });
        }
        if i == b.len() {
            return Err(SkipReason::MissingValue);
        }
        let vstart = i;
        while i < b.len() && !is_ws(b[i]) {
            i += 1;
        }
        let value = parse_value(&line[vstart..i]).ok_or(SkipReason::InvalidValue)?;
        i = skip_ws(b, i);
        let mut timestamp_ms = None;
        if i < b.len() && b[i] != b'#' {
            let tstart = i;
            while i < b.len() && !is_ws(b[i]) {
                i += 1;
            }
            timestamp_ms = Some(
                parse_timestamp(&line[tstart..i], self.format)
                    .ok_or(SkipReason::InvalidTimestamp)?,
            );
            i = skip_ws(b, i);
        }
        if i < b.len() {
            // only an exemplar may follow: ` # {labels} value [timestamp]`; it is not kept
            let j = skip_ws(b, i + 1);
            if b[i] != b'#' || j >= b.len() || b[j] != b'{' {
                return Err(SkipReason::TrailingGarbage);
            }
            self.stats.exemplars += 1;
        }
        if has_duplicate_label(b, &self.labels) {
            return Err(SkipReason::DuplicateLabel);
        }
        let raw_name = &line[ns..ne];
        let (idx, suffix) = self.resolve(raw_name, name_escaped);
        self.stats.samples += 1;
        (self.on_sample)(SampleRef {
            text: line,
            name: raw_name,
            name_escaped,
            labels: &self.labels,
            family: self.families[idx],
            suffix,
            value,
            timestamp_ms,
            line: self.line,
        });
        Ok(())
    }

    /// Parses `{...}` starting at `b[i] == '{'`; returns the index after `}`.
    /// A leading quoted string not followed by `=` is the metric name (`{"my.metric", a="b"}`).
    fn label_block(
        &mut self,
        b: &[u8],
        mut i: usize,
        name: &mut Option<(usize, usize, bool)>,
    ) -> Res<usize> {
        i += 1;
        let mut first = true;
        loop {
            i = skip_ws(b, i);
            if i >= b.len() {
                return Err(SkipReason::MalformedLabels);
            }
            if b[i] == b'}' {
                return Ok(i + 1);
            }
            let (ns, ne, nesc);
            if b[i] == b'"' {
                let (s, e, esc, next) = scan_quoted(b, i)?;
                let j = skip_ws(b, next);
                if j < b.len() && b[j] != b'=' {
                    if !(first && name.is_none() && (b[j] == b',' || b[j] == b'}')) {
                        return Err(SkipReason::MalformedLabel);
                    }
                    *name = Some((s, e, esc));
                    first = false;
                    i = if b[j] == b',' { j + 1 } else { j };
                    continue;
                }
                (ns, ne, nesc) = (s, e, esc);
                i = next;
            } else if is_label_start(b[i]) {
                ns = i;
                i += 1;
                while i < b.len() && is_label_char(b[i]) {
                    i += 1;
                }
                ne = i;
                nesc = false;
            } else {
                return Err(SkipReason::InvalidLabelName);
            }
            first = false;
            i = skip_ws(b, i);
            if i >= b.len() || b[i] != b'=' {
                return Err(if i < b.len() && !is_ws(b[i]) && b[i] != b'"' {
                    SkipReason::InvalidLabelName
                } else {
                    SkipReason::MalformedLabel
                });
            }
            i = skip_ws(b, i + 1);
            if i >= b.len() || b[i] != b'"' {
                return Err(SkipReason::MalformedLabel);
            }
            let (vs, ve, vesc, next) = scan_quoted(b, i)?;
            self.labels.push(LabelSpan {
                name: (ns, ne),
                value: (vs, ve),
                name_escaped: nesc,
                value_escaped: vesc,
            });
            i = skip_ws(b, next);
            if i >= b.len() {
                return Err(SkipReason::MalformedLabels);
            }
            match b[i] {
                b',' => i += 1,
                b'}' => return Ok(i + 1),
                _ => return Err(SkipReason::MalformedLabels),
            }
        }
    }
}
