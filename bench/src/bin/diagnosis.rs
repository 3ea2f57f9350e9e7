//! Diagnosis matching speed: MB/s of log text through `medic_detect::diagnosis::diagnose`
//! (one `RegexSet` over every pattern's regexes, `is_match` per line, `matches` only on hits)
//! against the naive reference that tries each compiled regex on each line, side by side.
//!
//! `cargo run --release -p medic-bench --bin diagnosis [-- PATTERNS_YAML [MB [ITERATIONS]]]`
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

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
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
    let errors = error_lines(&root);
    println!(
        "patterns: {} ({} regexes), error lines available: {}, log size: {mb} MB, iterations: {iterations}",
        library.patterns().len(),
        regexes.len(),
        errors.len()
    );
    println!(
        "{:<22} {:>14} {:>14} {:>16} {:>8}",
        "mix", "medic MB/s", "(median)", "naive MB/s", "ratio"
    );
    for (name, fraction) in [("1% error lines", 0.01), ("100% error lines", 1.0)] {
        let text = log(mb << 20, fraction, &errors, 7);
        let signals = Signals::default();
        let (best, median, n_causes) = time(iterations, || {
            diagnose(&library, &text, &signals).causes.len()
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
        println!(
            "{name:<22} {medic:>14.1} {:>14.1} {reference:>16.1} {:>7.1}x   (causes found: {n_causes})",
            mbps(text.len(), median),
            medic / reference
        );
    }
}
