//! Property tests: the parser never panics, and malformed lines cost only themselves.

mod prom_common;

use medic_collect::prom::{Format, ParseStats, parse_bytes, parse_to_vec, parse_with};
use prom_common::{assert_same, flatten, generate};
use proptest::prelude::*;

/// Lines that are malformed in both formats, each with a different reason.
const MALFORMED: &[&str] = &[
    "9starts_with_digit 1",
    "name_only",
    "bad_value{a=\"b\"} 12abc",
    "unterminated{a=\"b} 1",
    "open_block{a=\"b\" 1",
    "no_eq{a \"b\"} 1",
    "unquoted{a=b} 1",
    "dup{a=\"1\",a=\"2\"} 1",
    "bad_ts 1 12x",
    "garbage 1 2 3",
    "{} 1",
    "# TYPE",
    "# TYPE x notatype",
    "a{1a=\"x\"} 1",
    "-1",
    "a{a=\"x\"}1",
    "\"quoted_not_in_braces\" 1",
];

fn check_page(text: &str) {
    let mut stats = ParseStats::default();
    let mut n = 0usize;
    parse_with(text, Format::Prometheus, &mut stats, |s| {
        // touch everything a consumer would
        let _ = s.name();
        for l in s.labels() {
            let _ = (l.name(), l.value());
        }
        let _ = s.family().help();
        n += 1;
    });
    assert_eq!(stats.samples, n);
    let mut stats = ParseStats::default();
    let _ = parse_to_vec(text, Format::OpenMetrics, &mut stats);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let mut stats = ParseStats::default();
            parse_bytes(&bytes, format, &mut stats, |s| {
                let _ = s.to_owned_sample();
            });
            prop_assert!(stats.samples + stats.skipped_lines <= stats.lines);
        }
    }

    /// Valid pages with random bytes overwritten, inserted or cut: no panic, and every line
    /// is accounted for at most once (a sample, a skip, or neither for comments and blanks).
    #[test]
    fn mutated_pages_never_panic(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..24),
    ) {
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let mut bytes = generate(seed, format).text.into_bytes();
            for (at, byte, op) in &edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 if i < bytes.len() => bytes[i] = *byte,
                    1 => bytes.insert(i, *byte),
                    _ => bytes.truncate(i.max(1)),
                }
            }
            let mut stats = ParseStats::default();
            let mut n = 0;
            parse_bytes(&bytes, format, &mut stats, |s| {
                let _ = s.to_owned_sample();
                n += 1;
            });
            prop_assert_eq!(n, stats.samples);
            prop_assert!(stats.samples + stats.skipped_lines <= stats.lines);
            prop_assert!(stats.errors.len() <= stats.skipped_lines);
        }
    }

    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        check_page(&text);
    }

    #[test]
    fn never_panics_on_exposition_like_text(
        text in "([a-z_:{}\"=,#\\\\ \\t\\r\\n0-9.eE+-]|HELP|TYPE|EOF|Inf|NaN|le|\u{e9}){0,200}"
    ) {
        check_page(&text);
    }

    /// Malformed lines inserted anywhere into a valid page are each skipped and counted with
    /// their line number, and every valid sample is still returned.
    #[test]
    fn malformed_lines_are_skipped_and_counted(
        seed in any::<u64>(),
        om in any::<bool>(),
        inserts in proptest::collection::vec((any::<prop::sample::Index>(), 0..MALFORMED.len()), 1..8),
    ) {
        let format = if om { Format::OpenMetrics } else { Format::Prometheus };
        let page = generate(seed, format);
        let mut lines: Vec<&str> = page.text.lines().collect();
        // never insert after `# EOF`: that is a different rule (counted as AfterEof)
        let body_len = if om { lines.len() - 1 } else { lines.len() };
        let mut positions: Vec<(usize, &str)> = inserts
            .iter()
            .map(|(at, which)| (at.index(body_len + 1), MALFORMED[*which]))
            .collect();
        positions.sort_by_key(|p| std::cmp::Reverse(p.0));
        for (at, bad) in &positions {
            lines.insert(*at, bad);
        }
        let text = lines.join("\n") + "\n";
        let bad_lines: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| MALFORMED.contains(l))
            .map(|(i, _)| i + 1)
            .collect();

        let mut stats = ParseStats::default();
        let parsed = parse_to_vec(&text, format, &mut stats);
        prop_assert_eq!(stats.skipped_lines, positions.len());
        let reported: Vec<usize> = stats.errors.iter().map(|e| e.line).collect();
        prop_assert_eq!(reported, bad_lines);
        assert_same("with malformed lines", &text, &flatten(&parsed.samples), &page.expected);
    }
}

#[test]
fn each_malformed_line_is_skipped_alone() {
    for bad in MALFORMED {
        let text = format!("before 1\n{bad}\nafter 2\n");
        let mut stats = ParseStats::default();
        let parsed = parse_to_vec(&text, Format::Prometheus, &mut stats);
        assert_eq!(stats.skipped_lines, 1, "{bad:?}: {:?}", stats.errors);
        assert_eq!(stats.errors[0].line, 2, "{bad:?}");
        let names: Vec<&str> = parsed.samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["before", "after"], "{bad:?}");
    }
}
