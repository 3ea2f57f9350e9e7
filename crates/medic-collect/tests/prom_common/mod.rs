//! A seeded generator of valid expositions for the parser tests. It writes the page and, from
//! the same model, the flat samples a correct parser must return, so a test can check the
//! parser against the model and against the oracle.

#![allow(dead_code)]

use medic_collect::prom::{Format, Sample};

/// SplitMix64: tiny, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// One expected sample: full name, labels sorted by name, value, timestamp in ms.
#[derive(Clone, Debug)]
pub struct Flat {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub ts_ms: Option<i64>,
}

impl Flat {
    pub fn same(&self, other: &Flat) -> bool {
        self.name == other.name
            && self.labels == other.labels
            && (self.value == other.value || (self.value.is_nan() && other.value.is_nan()))
            && self.ts_ms == other.ts_ms
    }
}

/// Canonical text of a float-valued label (`le`, `quantile`) so `1`, `1.0` and `1e0` compare equal.
pub fn canon_float_label(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(f) => format!("{f:?}"),
        Err(_) => v.to_owned(),
    }
}

/// Flattens parser output into sorted, canonical [`Flat`]s.
pub fn flatten(samples: &[Sample]) -> Vec<Flat> {
    let mut out: Vec<Flat> = samples
        .iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| {
                    if k == "le" || k == "quantile" {
                        (k.clone(), canon_float_label(v))
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect();
            labels.sort();
            Flat {
                name: s.name.clone(),
                labels,
                value: s.value,
                ts_ms: s.timestamp_ms,
            }
        })
        .collect();
    sort_flats(&mut out);
    out
}

pub fn sort_flats(v: &mut [Flat]) {
    v.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
}

/// Asserts two sorted flat lists are equal, with a readable first difference.
pub fn assert_same(what: &str, page: &str, got: &[Flat], want: &[Flat]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.same(w),
            "{what}: sample {i} differs:\n got  {g:?}\n want {w:?}\npage:\n{page}"
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: sample count differs\npage:\n{page}"
    );
}

/// What a generated family declares.
#[derive(Clone, Debug)]
pub struct GenFamily {
    pub name: String,
    pub kind: &'static str,
    pub help: Option<String>,
}

/// A generated page and what it must parse to.
pub struct GenPage {
    pub text: String,
    pub expected: Vec<Flat>,
    pub families: Vec<GenFamily>,
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

const LABEL_NAMES: &[&str] = &[
    "job", "instance", "path", "code", "method", "_x", "A9", "cpu", "mode",
];
const VALUE_CHARS: &[&str] = &[
    "a", "b", "Z", "0", "9", " ", "\"", "\\", "\n", "é", "日本", "=", ",", "{", "}", "#", "/", ".",
    "-", "🦀",
];

fn label_value(rng: &mut Rng) -> String {
    let n = rng.below(8);
    (0..n).map(|_| *rng.pick(VALUE_CHARS)).collect()
}

/// A value written in one of the spellings both Prometheus and the oracle accept, with the f64
/// it denotes. `nonneg` keeps it at or above zero and not NaN (counters, sums).
fn value(rng: &mut Rng, format: Format, nonneg: bool) -> (String, f64) {
    let choice = rng.below(if nonneg { 7 } else { 11 });
    match choice {
        0 | 1 => {
            let v = rng.below(1_000_000) as i64;
            (v.to_string(), v as f64)
        }
        2 => {
            let v = (rng.next_u64() >> 12) as i64;
            (v.to_string(), v as f64)
        }
        3 => {
            let v = rng.below(100_000) as f64 / 1000.0;
            (format!("{v}"), v)
        }
        4 => {
            let v = (rng.next_u64() % 1_000_000) as f64 * 1.5e-9;
            let s = format!("{v:e}");
            let s = if format == Format::Prometheus && rng.chance(50) {
                s.replace('e', "E")
            } else {
                s
            };
            (s.clone(), s.parse().unwrap())
        }
        5 => {
            let v = 1.0e300 * (1 + rng.below(9)) as f64;
            (format!("{v:e}"), v)
        }
        6 => (
            rng.pick(&["+Inf", "+inf", "+INF"]).to_string(),
            f64::INFINITY,
        ),
        7 => {
            let v = -(rng.below(1_000_000) as f64) / 8.0;
            (format!("{v}"), v)
        }
        8 => (rng.pick(&["NaN", "nan", "NAN"]).to_string(), f64::NAN),
        9 => (
            rng.pick(&["-Inf", "-inf", "-INF"]).to_string(),
            f64::NEG_INFINITY,
        ),
        _ => {
            let v = -(rng.below(1000) as i64);
            (v.to_string(), v as f64)
        }
    }
}

fn timestamp(rng: &mut Rng, format: Format) -> (String, i64) {
    match format {
        Format::Prometheus => {
            let ms = 1_500_000_000_000 + rng.below(1_000_000_000) as i64;
            (ms.to_string(), ms)
        }
        Format::OpenMetrics => {
            let ms = 1_500_000_000_000 + rng.below(1_000_000_000) as i64;
            if rng.chance(50) {
                let s = ms / 1000;
                (s.to_string(), s * 1000)
            } else {
                let text = format!("{}.{:03}", ms / 1000, ms % 1000);
                let secs: f64 = text.parse().unwrap();
                (text, (secs * 1000.0).round() as i64)
            }
        }
    }
}

struct Writer {
    text: String,
    expected: Vec<Flat>,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        rng: &mut Rng,
        format: Format,
        name: &str,
        labels: &[(String, String)],
        extra: Option<(&str, &str)>,
        value: (String, f64),
        ts: Option<&(String, i64)>,
        exemplar_ok: bool,
    ) {
        self.text.push_str(name);
        let mut all: Vec<(String, String)> = labels.to_vec();
        if let Some((k, v)) = extra {
            all.push((k.to_owned(), v.to_owned()));
        }
        if !all.is_empty() || rng.chance(10) {
            self.text.push('{');
            for (i, (k, v)) in all.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(k);
                self.text.push_str("=\"");
                self.text.push_str(&escape_label(v));
                self.text.push('"');
            }
            if format == Format::Prometheus && !all.is_empty() && rng.chance(10) {
                self.text.push(',');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&value.0);
        if let Some((t, _)) = ts {
            self.text.push(' ');
            self.text.push_str(t);
        }
        if exemplar_ok && rng.chance(20) {
            let (ev, _) = (format!("{}", rng.below(100) as f64 / 10.0), ());
            self.text
                .push_str(&format!(" # {{trace_id=\"{}\"}} {ev}", rng.below(1 << 20)));
            if rng.chance(50) {
                self.text.push_str(" 1520879607.789");
            }
        }
        self.text.push('\n');
        let mut sorted = all
            .into_iter()
            .map(|(k, v)| {
                if k == "le" || k == "quantile" {
                    (k, canon_float_label(&v))
                } else {
                    (k, v)
                }
            })
            .collect::<Vec<_>>();
        sorted.sort();
        self.expected.push(Flat {
            name: name.to_owned(),
            labels: sorted,
            value: value.1,
            ts_ms: ts.map(|t| t.1),
        });
    }
}

/// Generates a page the oracle should accept: families contiguous, one label-name set per
/// family, values within each type's rules, timestamps all-or-none per family.
pub fn generate(seed: u64, format: Format) -> GenPage {
    let mut rng = Rng::new(seed);
    let mut w = Writer {
        text: String::new(),
        expected: Vec::new(),
    };
    let mut families = Vec::new();
    let kinds: &[&str] = match format {
        Format::Prometheus => &[
            "counter",
            "gauge",
            "histogram",
            "summary",
            "untyped",
            "none",
        ],
        Format::OpenMetrics => &[
            "counter",
            "gauge",
            "histogram",
            "summary",
            "unknown",
            "info",
            "stateset",
            "gaugehistogram",
        ],
    };
    let n_families = 1 + rng.below(8);
    for fi in 0..n_families {
        let kind = *rng.pick(kinds);
        let prefix = if kind == "stateset" {
            ""
        } else {
            *rng.pick(&["", "_", "ns:"])
        };
        let mut name = format!(
            "{prefix}fam{fi}_{}",
            rng.pick(&["x", "requests", "seconds"])
        );
        if kind == "counter" && format == Format::Prometheus {
            name.push_str("_total");
        }
        let help = rng
            .chance(60)
            .then(|| label_value(&mut rng).replace('"', "'"));
        // the oracle merges consecutive metadata-less families into one and then rejects the
        // page (see the explicit case in prom_oracle.rs), so such a family follows a blank line
        let bare = kind == "none" && help.is_none();
        if format == Format::Prometheus && fi > 0 && (bare || rng.chance(30)) {
            w.text.push('\n');
        }
        if let Some(h) = &help {
            w.text
                .push_str(&format!("# HELP {name} {}\n", escape_help(h)));
        }
        if kind != "none" {
            w.text.push_str(&format!("# TYPE {name} {kind}\n"));
        }
        families.push(GenFamily {
            name: name.clone(),
            kind,
            help: help.clone(),
        });
        // one label-name set per family
        let mut names: Vec<&str> = Vec::new();
        let n_names = if kind == "info" {
            1 + rng.below(3)
        } else {
            rng.below(4)
        };
        for _ in 0..n_names {
            let l = *rng.pick(LABEL_NAMES);
            if !names.contains(&l) {
                names.push(l);
            }
        }
        let n_series = if names.is_empty() || kind == "stateset" {
            1
        } else {
            1 + rng.below(3)
        };
        let with_ts = rng.chance(25);
        for si in 0..n_series {
            let labels: Vec<(String, String)> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let mut v = label_value(&mut rng);
                    if i == 0 {
                        v.push_str(&si.to_string());
                    }
                    (n.to_string(), v)
                })
                .collect();
            let ts = with_ts.then(|| timestamp(&mut rng, format));
            let ts = ts.as_ref();
            match kind {
                "gauge" | "untyped" | "unknown" | "none" => {
                    let v = value(&mut rng, format, false);
                    w.line(&mut rng, format, &name, &labels, None, v, ts, false);
                }
                "counter" => {
                    let v = value(&mut rng, format, true);
                    match format {
                        Format::Prometheus => {
                            w.line(&mut rng, format, &name, &labels, None, v, ts, true)
                        }
                        Format::OpenMetrics => {
                            w.line(
                                &mut rng,
                                format,
                                &format!("{name}_total"),
                                &labels,
                                None,
                                v,
                                ts,
                                true,
                            );
                            if rng.chance(40) {
                                let c = timestamp(&mut rng, Format::OpenMetrics);
                                let created = (c.0.clone(), c.0.parse::<f64>().unwrap());
                                w.line(
                                    &mut rng,
                                    format,
                                    &format!("{name}_created"),
                                    &labels,
                                    None,
                                    created,
                                    ts,
                                    false,
                                );
                            }
                        }
                    }
                }
                "histogram" | "gaugehistogram" => {
                    let bounds = ["0.005", "0.1", "1", "2.5", "10", "1e3"];
                    let mut count = 0u64;
                    let start = rng.below(3);
                    for b in &bounds[start..] {
                        count += rng.below(50) as u64;
                        w.line(
                            &mut rng,
                            format,
                            &format!("{name}_bucket"),
                            &labels,
                            Some(("le", b)),
                            (count.to_string(), count as f64),
                            ts,
                            true,
                        );
                    }
                    count += rng.below(5) as u64;
                    let inf = *rng.pick(&["+Inf", "+inf"]);
                    w.line(
                        &mut rng,
                        format,
                        &format!("{name}_bucket"),
                        &labels,
                        Some(("le", inf)),
                        (count.to_string(), count as f64),
                        ts,
                        true,
                    );
                    if rng.chance(80) {
                        let (sum_s, cnt_s) = if kind == "histogram" {
                            ("_sum", "_count")
                        } else {
                            ("_gsum", "_gcount")
                        };
                        let sum = value(&mut rng, format, true);
                        w.line(
                            &mut rng,
                            format,
                            &format!("{name}{sum_s}"),
                            &labels,
                            None,
                            sum,
                            ts,
                            false,
                        );
                        w.line(
                            &mut rng,
                            format,
                            &format!("{name}{cnt_s}"),
                            &labels,
                            None,
                            (count.to_string(), count as f64),
                            ts,
                            false,
                        );
                    }
                }
                "summary" => {
                    for q in ["0", "0.5", "0.9", "0.99", "1"] {
                        if rng.chance(70) {
                            let v = if rng.chance(15) {
                                ("NaN".to_owned(), f64::NAN)
                            } else {
                                value(&mut rng, format, true)
                            };
                            w.line(
                                &mut rng,
                                format,
                                &name,
                                &labels,
                                Some(("quantile", q)),
                                v,
                                ts,
                                false,
                            );
                        }
                    }
                    let sum = value(&mut rng, format, true);
                    w.line(
                        &mut rng,
                        format,
                        &format!("{name}_sum"),
                        &labels,
                        None,
                        sum,
                        ts,
                        false,
                    );
                    let c = rng.below(10_000);
                    w.line(
                        &mut rng,
                        format,
                        &format!("{name}_count"),
                        &labels,
                        None,
                        (c.to_string(), c as f64),
                        ts,
                        false,
                    );
                }
                "info" => {
                    w.line(
                        &mut rng,
                        format,
                        &format!("{name}_info"),
                        &labels,
                        None,
                        ("1".to_owned(), 1.0),
                        ts,
                        false,
                    );
                }
                "stateset" => {
                    for (i, st) in ["starting", "running", "stopped"].iter().enumerate() {
                        let on = if i == 1 { ("1", 1.0) } else { ("0", 0.0) };
                        let mut l = labels.clone();
                        l.push((name.clone(), (*st).to_owned()));
                        w.line(
                            &mut rng,
                            format,
                            &name,
                            &l,
                            None,
                            (on.0.to_owned(), on.1),
                            ts,
                            false,
                        );
                    }
                }
                _ => unreachable!(),
            }
        }
    }
    if format == Format::OpenMetrics {
        w.text.push_str("# EOF\n");
    }
    sort_flats(&mut w.expected);
    GenPage {
        text: w.text,
        expected: w.expected,
        families,
    }
}
