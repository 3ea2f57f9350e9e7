//! A tolerant parser for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.
//!
//! [`parse`] walks a page once and hands each sample to a callback as a [`SampleRef`] that
//! borrows its name, labels and family metadata from the page: nothing is allocated per sample
//! (label spans go into one buffer reused for the whole page; unescaping happens only when a
//! caller asks for a value that has escapes). [`parse_to_vec`] is the owned convenience.
//!
//! Tolerance: a malformed line is skipped and counted in [`ParseStats`] with its line number and
//! reason; the rest of the page is still parsed. Nothing panics on any input.
//!
//! Accepted syntax, in both formats: counters, gauges, histograms (`_bucket{le}`, `_sum`,
//! `_count`), summaries (`quantile`), untyped, OpenMetrics `info`, `stateset`, `gaugehistogram`
//! (`_gsum`, `_gcount`), `unknown`, `_total` and `_created`; `# HELP` (with escapes),
//! `# TYPE`, `# UNIT`, `# EOF`; label values with `\\`, `\"`, `\n` escapes and any UTF-8;
//! quoted metric and label names (`{"my.metric", "a.b"="c"}`); `NaN`, `±Inf`, `Infinity` in any
//! case, integers and floats with exponents; optional timestamps (0.0.4: milliseconds,
//! OpenMetrics: float seconds; both reported as milliseconds); exemplars (counted, not kept);
//! blank lines, CRLF line ends, spaces and tabs between tokens, trailing whitespace.
//!
//! Family resolution: a sample belongs to the family declared by `# TYPE`/`# HELP` whose name it
//! equals or extends by a suffix the type allows (`_bucket` for a histogram, `_total` for a
//! counter, ...); a sample that matches no declared family forms an untyped family of its own.
//! Lines after an OpenMetrics `# EOF` are skipped and counted.
//!
//! Known gap: Go's hexadecimal floats (`0x1p-3`), which Prometheus's scraper accepts, are
//! skipped as invalid values; no exporter is known to write them.

mod parser;
mod quantile;
mod types;

pub use quantile::histogram_quantile;

pub use types::{
    Family, FamilyRef, Format, Label, Labels, LineError, MAX_RECORDED_ERRORS, MetricType,
    ParseStats, Parsed, Sample, SampleRef, SkipReason, Suffix,
};

use parser::Parser;

/// Parses `text`, guessing the format from its last line (`# EOF` means OpenMetrics), and calls
/// `on_sample` for every valid sample in page order.
pub fn parse(text: &str, stats: &mut ParseStats, on_sample: impl FnMut(SampleRef<'_>)) {
    parse_with(
        text,
        Format::detect(None, text.as_bytes()),
        stats,
        on_sample,
    );
}

/// Parses `text` in the given format, calling `on_sample` for every valid sample in page order.
pub fn parse_with(
    text: &str,
    format: Format,
    stats: &mut ParseStats,
    on_sample: impl FnMut(SampleRef<'_>),
) {
    let mut p = Parser::new(format, stats, on_sample);
    p.feed(text);
}

/// Parses raw bytes: a line that is not valid UTF-8 is skipped and counted like any other
/// malformed line, the others are parsed as by [`parse_with`].
pub fn parse_bytes(
    bytes: &[u8],
    format: Format,
    stats: &mut ParseStats,
    on_sample: impl FnMut(SampleRef<'_>),
) {
    let mut p = Parser::new(format, stats, on_sample);
    feed_bytes(&mut p, bytes);
}

fn feed_bytes<'a, F: FnMut(SampleRef<'_>)>(p: &mut Parser<'a, '_, F>, mut bytes: &'a [u8]) {
    loop {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                p.feed(text);
                return;
            }
            Err(e) => {
                let bad = e.valid_up_to();
                // parse the whole lines before the bad one, skip the bad line, go on after it
                let line_start = memchr::memrchr(b'\n', &bytes[..bad]).map_or(0, |i| i + 1);
                if let Ok(good) = std::str::from_utf8(&bytes[..line_start]) {
                    p.feed(good);
                }
                p.skip_line(SkipReason::InvalidUtf8);
                match memchr::memchr(b'\n', &bytes[bad..]) {
                    Some(i) => bytes = &bytes[bad + i + 1..],
                    None => return,
                }
            }
        }
    }
}

/// Parses `text` in the given format into owned samples and family metadata.
pub fn parse_to_vec(text: &str, format: Format, stats: &mut ParseStats) -> Parsed {
    let mut samples = Vec::new();
    let mut p = Parser::new(format, stats, |s: SampleRef<'_>| {
        samples.push(s.to_owned_sample())
    });
    p.feed(text);
    let families = p
        .families
        .iter()
        .map(|f| Family {
            name: f.name().into_owned(),
            metric_type: f.metric_type(),
            help: f.help().map(|h| h.into_owned()),
            unit: f.unit().map(str::to_owned),
        })
        .collect();
    drop(p);
    Parsed { samples, families }
}
