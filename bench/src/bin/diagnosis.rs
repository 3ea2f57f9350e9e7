//! Diagnosis matching speed: MB/s of log text through `medic_detect::diagnosis::diagnose`
//! (one `RegexSet` over every pattern's regexes, `is_match` per line, `matches` only on hits)
//! against two references, side by side: the previous matcher (the same set compiled with
//! Unicode classes over `&str`, `is_match` then `matches` per line, no bookkeeping) and the
//! naive loop that tries each compiled regex on each line.
//!
//! `cargo run --release -p medic-bench --bin diagnosis [-- PATTERNS_YAML [MB [ITERATIONS]]]`
//! (`-- --signatures`: the failure-signature figures on the labelled corpus instead;
//! `-- --eval PATTERNS FILE…`: accuracy of a pattern file on labelled corpora)
//!
//! The log is generated from a fixed seed: benign service lines (request logs, start-up and
//! health messages in the formats of nginx, PostgreSQL, Redis, systemd, Go and Java services)
//! with a given fraction of real error lines from the labelled corpus mixed in. Two mixes are
//! measured: 1 % error lines (a normal log) and 100 % error lines (the worst case, every line
//! goes through `matches`). The goal is ≥ 50 MB/s.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_detect::diagnosis::{PatternLibrary, Signals, diagnose};

/// SplitMix64, so logs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn benign_line(rng: &mut Rng) -> String {
    let ip = format!(
        "10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.below(256)
    );
    let ms = rng.below(900);
    let id = rng.below(100_000);
    match rng.below(8) {
        0 => format!(
            "{ip} - - [01/Apr/2024:10:{:02}:{:02} +0000] \"GET /api/v1/items/{id} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0\"",
            rng.below(60),
            rng.below(60),
            rng.below(50_000)
        ),
        1 => format!(
            "2024-04-01 10:00:{:02}.{ms:03} UTC [{}] LOG:  duration: {}.{} ms  statement: SELECT id, name FROM users WHERE id = {id}",
            rng.below(60),
            rng.below(60_000),
            rng.below(500),
            rng.below(1000)
        ),
        2 => format!(
            "Apr 01 10:00:{:02} web{} systemd[1]: Started Session {id} of User deploy.",
            rng.below(60),
            rng.below(20)
        ),
        3 => format!(
            "time=\"2024-04-01T10:00:{:02}Z\" level=info msg=\"request served\" path=/orders/{id} status=200 latency_ms={ms}",
            rng.below(60)
        ),
        4 => format!(
            "1:M 01 Apr 2024 10:00:{:02}.{ms:03} * {} changes in 300 seconds. Saving...",
            rng.below(60),
            rng.below(1000)
        ),
        5 => format!(
            "2024-04-01 10:00:{:02}.{ms:03}  INFO 1 --- [nio-8080-exec-{}] c.a.orders.OrderController : order {id} accepted in {ms} ms",
            rng.below(60),
            rng.below(10)
        ),
        6 => format!(
            "{{\"level\":\"info\",\"ts\":1711965606.{ms},\"caller\":\"worker/run.go:{}\",\"msg\":\"job done\",\"job\":{id},\"attempt\":1}}",
            rng.below(400)
        ),
        _ => format!(
            "[{:>5}.{:06}] IPv6: ADDRCONF(NETDEV_CHANGE): veth{id:x}: link becomes ready",
            rng.below(99_999),
            rng.below(1_000_000)
        ),
    }
}

fn error_lines(root: &Path) -> Vec<String> {
    let path = root.join("tests/data/diagnosis/corpus.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["category"] != "unknown")
        .filter_map(|v| v["text"].as_str().map(str::to_owned))
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn log(bytes: usize, error_fraction: f64, errors: &[String], seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut out = String::with_capacity(bytes + 1024);
    let per_million = (error_fraction * 1e6) as usize;
    while out.len() < bytes {
        if !errors.is_empty() && rng.below(1_000_000) < per_million {
            out.push_str(&errors[rng.below(errors.len())]);
        } else {
            out.push_str(&benign_line(&mut rng));
        }
        out.push('\n');
    }
    out
}

/// Best and median wall time of `f` over `iterations` runs.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall time
fn time<F: FnMut() -> usize>(iterations: usize, mut f: F) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut out = 0;
    for _ in 0..iterations {
        let t = std::time::Instant::now();
        out = black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    (times[0], times[times.len() / 2], out)
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// `diagnosis --signatures`: failure signatures trained on the labelled corpus (release
/// build, default parameters): the k scan, purity, nearest-signature agreement on the holdout,
/// and novelty of a category left out of training.
fn signatures_report(root: &Path) {
    use medic_core::DiagnosisCategory;
    use medic_detect::diagnosis::eval::load_corpus;
    use medic_detect::diagnosis::signatures::{FailureRecord, TrainParams, train};
    let load = |name: &str| -> Vec<FailureRecord> {
        load_corpus(&root.join("tests/data/diagnosis").join(name))
            .expect("corpus")
            .into_iter()
            .filter(|s| s.category != DiagnosisCategory::Unknown)
            .map(|s| FailureRecord {
                text: s.text,
                signals: Signals::default(),
                label: Some(s.category),
            })
            .collect()
    };
    let (corpus, holdout) = (load("corpus.jsonl"), load("holdout.jsonl"));
    for (name, params) in [
        ("default (k 4..30, 4 runs)", TrainParams::default()),
        (
            "test settings (k 10..22, 2 runs)",
            TrainParams {
                k_min: 10,
                k_max: 22,
                n_runs: 2,
                ..TrainParams::default()
            },
        ),
    ] {
        let report = train(&corpus, &params).expect("trains");
        let card = report.model.card();
        let scan: Vec<String> = card
            .scan
            .iter()
            .map(|s| format!("{}:{:.3}", s.k, s.silhouette))
            .collect();
        println!(
            "{name}: {} failures, vocabulary {}, k {} silhouette {:.3} purity {:.3}\n  scan {}",
            card.records,
            card.vocabulary_size,
            card.k,
            card.silhouette,
            card.purity.unwrap_or(0.0),
            scan.join(" ")
        );
        let (mut agree, mut novel) = (0, 0);
        for r in &holdout {
            let a = report.model.assign(&r.text, &r.signals);
            agree += usize::from(a.category == r.label);
            novel += usize::from(a.novel);
        }
        println!(
            "  holdout ({}): nearest-signature category agreement {:.3}, novel {:.3}",
            holdout.len(),
            agree as f64 / holdout.len() as f64,
            novel as f64 / holdout.len() as f64
        );
        let virt = |r: &FailureRecord| r.label == Some(DiagnosisCategory::Virtualization);
        let seen: Vec<FailureRecord> = corpus.iter().filter(|r| !virt(r)).cloned().collect();
        let model = train(&seen, &params).expect("trains").model;
        let unseen: Vec<&FailureRecord> =
            corpus.iter().chain(&holdout).filter(|r| virt(r)).collect();
        let seen_test: Vec<&FailureRecord> = holdout.iter().filter(|r| !virt(r)).collect();
        let rate = |rs: &[&FailureRecord]| {
            rs.iter()
                .filter(|r| model.assign(&r.text, &r.signals).novel)
                .count() as f64
                / rs.len() as f64
        };
        println!(
            "  trained without virtualization: novel {:.3} of {} virtualization failures, {:.3} of {} held-out failures of seen kinds",
            rate(&unseen),
            unseen.len(),
            rate(&seen_test),
            seen_test.len()
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    if args.peek().is_some_and(|a| a == "--signatures") {
        signatures_report(&root);
        return;
    }
    if args.peek().is_some_and(|a| a == "--eval") {
        // `--eval PATTERNS FILE…`: accuracy of a pattern file on labelled corpora (what
        // `medic eval diagnose` prints, without building the CLI).
        args.next();
        let patterns = PathBuf::from(args.next().expect("--eval PATTERNS FILE…"));
        let library = PatternLibrary::load(&patterns).expect("valid patterns");
        for file in args {
            let samples =
                medic_detect::diagnosis::eval::load_corpus(Path::new(&file)).expect("corpus");
            let r = medic_detect::diagnosis::eval::evaluate(&library, &samples);
            println!(
                "{file}: accuracy {:.3} ({}/{}), confident wrong {}",
                r.accuracy, r.correct, r.n, r.confident_wrong
            );
        }
        return;
    }
    let patterns = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("policies/patterns.yaml"));
    let mb: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let iterations: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);

    let library = match PatternLibrary::load(&patterns) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("diagnosis bench: {e}");
            std::process::exit(2);
        }
    };
    let regexes: Vec<regex::Regex> = library
        .patterns()
        .iter()
        .flat_map(|p| p.regexes.iter())
        .map(|r| regex::Regex::new(r).expect("validated"))
        .collect();
    let previous =
        regex::RegexSetBuilder::new(library.patterns().iter().flat_map(|p| p.regexes.iter()))
            .size_limit(64 << 20)
            .dfa_size_limit(32 << 20)
            .build()
            .expect("validated");
    let errors = error_lines(&root);
    println!(
        "patterns: {} ({} regexes), error lines available: {}, log size: {mb} MB, iterations: {iterations}",
        library.patterns().len(),
        regexes.len(),
        errors.len()
    );
    println!(
        "{:<18} {:>11} {:>9} {:>14} {:>9} {:>11} {:>8}",
        "mix", "medic MB/s", "(median)", "previous MB/s", "(median)", "naive MB/s", "vs prev"
    );
    for (name, fraction) in [("1% error lines", 0.01), ("100% error lines", 1.0)] {
        let text = log(mb << 20, fraction, &errors, 7);
        let signals = Signals::default();
        let (best, median, n_causes) = time(iterations, || {
            diagnose(&library, &text, &signals).causes.len()
        });
        let (prev_best, prev_median, _) = time(iterations, || {
            let mut hit_lines = 0;
            for line in text.lines() {
                if previous.is_match(line) {
                    hit_lines += usize::from(previous.matches(line).matched_any());
                }
            }
            hit_lines
        });
        // The naive reference runs once (it is slow); it counts matching (line, regex) pairs.
        let (naive, _, _) = time(1, || {
            let mut hits = 0;
            for line in text.lines() {
                for r in &regexes {
                    if r.is_match(line) {
                        hits += 1;
                    }
                }
            }
            hits
        });
        let medic = mbps(text.len(), best);
        let reference = mbps(text.len(), naive);
        let prev = mbps(text.len(), prev_best);
        println!(
            "{name:<18} {medic:>11.1} {:>9.1} {prev:>14.1} {:>9.1} {reference:>11.1} {:>7.2}x   (causes found: {n_causes}; {:.0}x naive)",
            mbps(text.len(), median),
            mbps(text.len(), prev_median),
            medic / prev,
            medic / reference
        );
    }
}
