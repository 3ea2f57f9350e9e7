//! The parser on hand-written pages: every syntax feature, each tolerance, each skip reason.

use medic_collect::prom::{
    Format, MetricType, ParseStats, Sample, SkipReason, Suffix, parse, parse_bytes, parse_to_vec,
    parse_with,
};

fn parse_all(text: &str, format: Format) -> (Vec<Sample>, ParseStats) {
    let mut stats = ParseStats::default();
    let parsed = parse_to_vec(text, format, &mut stats);
    (parsed.samples, stats)
}

fn labels(s: &Sample) -> Vec<(&str, &str)> {
    s.labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The example page from the Prometheus exposition format documentation.
const DOC_EXAMPLE: &str = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
"#;

#[test]
fn prometheus_documentation_example() {
    let (s, stats) = parse_all(DOC_EXAMPLE, Format::Prometheus);
    assert_eq!(stats.skipped_lines, 0, "{:?}", stats.errors);
    assert_eq!(s.len(), 20);
    assert_eq!(s[0].name, "http_requests_total");
    assert_eq!(labels(&s[0]), [("method", "post"), ("code", "200")]);
    assert_eq!(
        (s[0].value, s[0].timestamp_ms),
        (1027.0, Some(1_395_066_363_000))
    );
    assert_eq!(s[0].metric_type, MetricType::Counter);
    assert_eq!(s[1].value, 3.0);
    assert_eq!(
        labels(&s[2]),
        [
            ("path", "C:\\DIR\\FILE.TXT"),
            ("error", "Cannot find file:\n\"FILE.TXT\"")
        ]
    );
    assert_eq!(s[2].value, 1.458255915e9);
    assert_eq!(
        (s[3].name.as_str(), s[3].value, s[3].timestamp_ms),
        ("metric_without_timestamp_and_labels", 12.47, None)
    );
    assert_eq!(
        (s[4].value, s[4].timestamp_ms),
        (f64::INFINITY, Some(-3_982_045))
    );
    assert_eq!(s[5].family, "http_request_duration_seconds");
    assert_eq!(
        (s[5].suffix, s[5].metric_type),
        (Suffix::Bucket, MetricType::Histogram)
    );
    assert_eq!(labels(&s[10]), [("le", "+Inf")]);
    assert_eq!((s[11].suffix, s[12].suffix), (Suffix::Sum, Suffix::Count));
    assert_eq!(
        (s[13].family.as_str(), s[13].suffix),
        ("rpc_duration_seconds", Suffix::None)
    );
    assert_eq!(s[18].value, 1.7560473e7);
    assert_eq!(s[19].metric_type, MetricType::Summary);
}

#[test]
fn family_metadata_and_help_escapes() {
    let page = "# HELP a Line one\\nback\\\\slash \"quoted\" \\q\n# TYPE a gauge\na 1\n";
    let mut stats = ParseStats::default();
    let parsed = parse_to_vec(page, Format::Prometheus, &mut stats);
    assert_eq!(parsed.families.len(), 1);
    let f = &parsed.families[0];
    assert_eq!(f.metric_type, MetricType::Gauge);
    // 0.0.4 HELP escapes only \\ and \n; unknown escapes keep their backslash
    assert_eq!(
        f.help.as_deref(),
        Some("Line one\nback\\slash \"quoted\" \\q")
    );
    let om = "# HELP a say \\\"hi\\\"\n# TYPE a gauge\n# UNIT a seconds\na 1\n# EOF\n";
    let parsed = parse_to_vec(om, Format::OpenMetrics, &mut stats);
    assert_eq!(parsed.families[0].help.as_deref(), Some("say \"hi\""));
    assert_eq!(parsed.families[0].unit.as_deref(), Some("seconds"));
    // the borrowed API sees the same metadata
    let mut seen = Vec::new();
    parse(om, &mut stats, |s| {
        let f = s.family();
        seen.push((
            f.name().into_owned(),
            f.metric_type(),
            f.help().map(|h| h.into_owned()),
        ));
    });
    assert_eq!(
        seen,
        [(
            "a".to_owned(),
            MetricType::Gauge,
            Some("say \"hi\"".to_owned())
        )]
    );
}

#[test]
fn special_values_in_every_spelling() {
    let page = "a NaN\nb nan\nc +Inf\nd -Inf\ne inf\nf +infinity\ng -INF\nh 1e3\ni -1.5E-3\nj 0x10\nk .5\nl 1.\nm -0\nn 123456789012345678901234567890\no +7\n";
    let mut stats = ParseStats::default();
    let mut got = Vec::new();
    parse_with(page, Format::Prometheus, &mut stats, |s| {
        got.push((s.name().into_owned(), s.value))
    });
    // hexadecimal floats (Go accepts them) are not supported: counted as a skip
    assert_eq!(stats.skipped_lines, 1);
    assert_eq!(stats.errors[0].reason, SkipReason::InvalidValue);
    let v: Vec<f64> = got.iter().map(|g| g.1).collect();
    assert!(v[0].is_nan() && v[1].is_nan());
    assert_eq!(
        &v[2..],
        [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1000.0,
            -0.0015,
            0.5,
            1.0,
            -0.0,
            1.2345678901234568e29,
            7.0
        ]
    );
}

#[test]
fn timestamps_per_format() {
    let (s, _) = parse_all("a 1 1700000000123\n", Format::Prometheus);
    assert_eq!(s[0].timestamp_ms, Some(1_700_000_000_123));
    let (s, _) = parse_all(
        "# TYPE a gauge\na 1 1700000000.123\nb 2 17e8\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!(s[0].timestamp_ms, Some(1_700_000_000_123));
    assert_eq!(s[1].timestamp_ms, Some(1_700_000_000_000));
    let (_, stats) = parse_all(
        "a 1 NaN\nb 1 +Inf\nc 1 99999999999999999999999\n",
        Format::Prometheus,
    );
    assert_eq!(stats.skipped_lines, 3);
    assert!(
        stats
            .errors
            .iter()
            .all(|e| e.reason == SkipReason::InvalidTimestamp)
    );
}

#[test]
fn openmetrics_types_and_suffixes() {
    let page = r#"# TYPE requests counter
# HELP requests Requests.
requests_total{path="/"} 10 # {trace_id="abc"} 1.0 1700000000.5
requests_created{path="/"} 1700000000.25
# TYPE build info
build_info{version="1.2.3",rev="abc"} 1
# TYPE state stateset
state{state="up"} 1
state{state="down"} 0
# TYPE queue gaugehistogram
queue_bucket{le="1"} 3
queue_bucket{le="+Inf"} 5
queue_gcount 5
queue_gsum 7.5
# TYPE mystery unknown
mystery 42
# EOF
"#;
    let (s, stats) = parse_all(page, Format::OpenMetrics);
    assert_eq!(stats.skipped_lines, 0, "{:?}", stats.errors);
    assert!(stats.eof);
    assert_eq!(stats.exemplars, 1);
    let summary: Vec<(&str, &str, MetricType, Suffix)> = s
        .iter()
        .map(|s| (s.name.as_str(), s.family.as_str(), s.metric_type, s.suffix))
        .collect();
    use MetricType as T;
    assert_eq!(
        summary,
        [
            ("requests_total", "requests", T::Counter, Suffix::Total),
            ("requests_created", "requests", T::Counter, Suffix::Created),
            ("build_info", "build", T::Info, Suffix::Info),
            ("state", "state", T::StateSet, Suffix::None),
            ("state", "state", T::StateSet, Suffix::None),
            ("queue_bucket", "queue", T::GaugeHistogram, Suffix::Bucket),
            ("queue_bucket", "queue", T::GaugeHistogram, Suffix::Bucket),
            ("queue_gcount", "queue", T::GaugeHistogram, Suffix::Gcount),
            ("queue_gsum", "queue", T::GaugeHistogram, Suffix::Gsum),
            ("mystery", "mystery", T::Untyped, Suffix::None),
        ]
    );
    assert_eq!(s[1].value, 1_700_000_000.25);
}

#[test]
fn lines_after_eof_are_skipped_and_counted() {
    let (s, stats) = parse_all("a 1\n# EOF\nb 2\n\nc 3\n", Format::OpenMetrics);
    assert_eq!(s.len(), 1);
    assert_eq!(stats.skipped_lines, 2);
    assert_eq!(stats.errors[0].line, 3);
    assert_eq!(stats.errors[1].reason, SkipReason::AfterEof);
    // in 0.0.4 `# EOF` is only a comment
    let (s, stats) = parse_all("a 1\n# EOF\nb 2\n", Format::Prometheus);
    assert_eq!((s.len(), stats.skipped_lines), (2, 0));
}

#[test]
fn whitespace_crlf_and_blank_lines_are_tolerated() {
    let page = "\r\n  # TYPE a gauge\r\na{x=\"1\"}\t 1 \t 1000\t\r\n\n\t\n   b   2   \r\n{\"c.d\", \"e.f\"=\"g\"} 3\r\nlast 4";
    let (s, stats) = parse_all(page, Format::Prometheus);
    assert_eq!(stats.skipped_lines, 0, "{:?}", stats.errors);
    assert_eq!(stats.lines, 8);
    let got: Vec<(&str, f64, Option<i64>)> = s
        .iter()
        .map(|s| (s.name.as_str(), s.value, s.timestamp_ms))
        .collect();
    assert_eq!(
        got,
        [
            ("a", 1.0, Some(1000)),
            ("b", 2.0, None),
            ("c.d", 3.0, None),
            ("last", 4.0, None)
        ]
    );
    assert_eq!(s[0].metric_type, MetricType::Gauge);
    assert_eq!(labels(&s[2]), [("e.f", "g")]);
}

#[test]
fn utf8_and_escapes_in_label_values() {
    let page = "a{x=\"日本語 🦀\",y=\"tab\\there\",z=\"\\\\\\\"\\n\",w=\"\"} 1\n";
    let mut stats = ParseStats::default();
    let mut raw = Vec::new();
    let mut values = Vec::new();
    parse_with(page, Format::Prometheus, &mut stats, |s| {
        for l in s.labels() {
            raw.push((l.raw_value().to_owned(), l.value_is_escaped()));
            let mut buf = String::new();
            l.push_value(&mut buf);
            assert_eq!(buf, l.value());
            values.push(buf);
        }
    });
    assert_eq!(values, ["日本語 🦀", "tab\\there", "\\\"\n", ""]);
    assert_eq!(raw[0], ("日本語 🦀".to_owned(), false));
    assert_eq!(raw[2], ("\\\\\\\"\\n".to_owned(), true));
}

#[test]
fn samples_without_declared_family_are_untyped_and_families_resolve_out_of_order() {
    let page = "# TYPE h histogram\nother 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nfoo_sum 4\n";
    let (s, _) = parse_all(page, Format::Prometheus);
    let got: Vec<(&str, MetricType, Suffix)> = s
        .iter()
        .map(|s| (s.family.as_str(), s.metric_type, s.suffix))
        .collect();
    assert_eq!(
        got,
        [
            ("other", MetricType::Untyped, Suffix::None),
            ("h", MetricType::Histogram, Suffix::Bucket),
            ("h", MetricType::Histogram, Suffix::Sum),
            ("foo_sum", MetricType::Untyped, Suffix::None),
        ]
    );
}

#[test]
fn every_skip_reason_with_its_line() {
    let cases: &[(&str, SkipReason)] = &[
        ("1abc 1", SkipReason::InvalidMetricName),
        ("a{1=\"x\"} 1", SkipReason::InvalidLabelName),
        ("a{x\"y\"} 1", SkipReason::MalformedLabel),
        ("a{x=\"y} 1", SkipReason::UnterminatedLabelValue),
        ("a{x=\"y\" z=\"w\"} 1", SkipReason::MalformedLabels),
        ("a{x=\"1\",x=\"2\"} 1", SkipReason::DuplicateLabel),
        ("a{x=\"1\"}", SkipReason::MissingValue),
        ("a one", SkipReason::InvalidValue),
        ("a 1 yesterday", SkipReason::InvalidTimestamp),
        ("a 1 2 3", SkipReason::TrailingGarbage),
        ("# HELP", SkipReason::MalformedMetadata),
        ("# TYPE a histogramm", SkipReason::UnknownType),
    ];
    let page: String = cases.iter().map(|(l, _)| format!("ok 1\n{l}\n")).collect();
    let (s, stats) = parse_all(&page, Format::Prometheus);
    assert_eq!(s.len(), cases.len());
    assert_eq!(stats.skipped_lines, cases.len());
    for (i, ((line, reason), err)) in cases.iter().zip(&stats.errors).enumerate() {
        assert_eq!((err.line, err.reason), (2 * i + 2, *reason), "{line:?}");
    }
}

#[test]
fn error_details_are_bounded() {
    let page = "x{\n".repeat(10_000);
    let (_, stats) = parse_all(&page, Format::Prometheus);
    assert_eq!(stats.skipped_lines, 10_000);
    assert_eq!(stats.errors.len(), medic_collect::prom::MAX_RECORDED_ERRORS);
}

#[test]
fn invalid_utf8_costs_only_its_line() {
    let mut page = b"a 1\nb{x=\"".to_vec();
    page.extend_from_slice(&[0xff, 0xfe]);
    page.extend_from_slice(b"\"} 2\nc 3\n\xc3\n");
    let mut stats = ParseStats::default();
    let mut names = Vec::new();
    parse_bytes(&page, Format::Prometheus, &mut stats, |s| {
        names.push(s.name().into_owned())
    });
    assert_eq!(names, ["a", "c"]);
    assert_eq!(stats.skipped_lines, 2);
    assert_eq!(
        (stats.errors[0].line, stats.errors[0].reason),
        (2, SkipReason::InvalidUtf8)
    );
    assert_eq!(stats.errors[1].line, 4);
}

#[test]
fn format_detection() {
    assert_eq!(Format::detect(None, b"a 1\n# EOF\n"), Format::OpenMetrics);
    assert_eq!(Format::detect(None, b"# EOF"), Format::OpenMetrics);
    assert_eq!(Format::detect(None, b"a 1\n"), Format::Prometheus);
    assert_eq!(Format::detect(None, b"a 1 # EOF\n"), Format::Prometheus);
    assert_eq!(
        Format::detect(
            Some("application/openmetrics-text; version=1.0.0"),
            b"a 1\n"
        ),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::detect(Some("text/plain; version=0.0.4"), b"# EOF\n"),
        Format::Prometheus
    );
}

#[test]
fn long_label_sets_are_checked_for_duplicates() {
    let mut line = String::from("a{");
    for i in 0..50_000 {
        line.push_str(&format!("l{i}=\"v\","));
    }
    let ok = format!("{line}}} 1\n");
    let dup = format!("{line}l7=\"again\"}} 1\n");
    let (s, stats) = parse_all(&(ok + &dup), Format::Prometheus);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].labels.len(), 50_000);
    assert_eq!(stats.errors[0].reason, SkipReason::DuplicateLabel);
}
