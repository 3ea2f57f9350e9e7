//! Prometheus text parser throughput: medic against `openmetrics-parser` and
//! `prometheus-parse` on the same generated node_exporter-like pages, side by side in one run.
//!
//! `cargo run --release -p medic-bench --bin prom_parser [-- ITERATIONS]`
//!
//! medic is measured twice: the borrowed callback API (every label name and value is visited,
//! as a consumer would) and `parse_to_vec` (owned samples, the closest to what the other two
//! build). Each parser parses each page `ITERATIONS` times (default 9); best and median MB/s
//! are printed with the ratios medic / other.

use std::hint::black_box;
use std::time::Duration;

use medic_collect::prom::{self, Format, ParseStats};

/// SplitMix64, so pages are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn float(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A node_exporter-like page of about `target_bytes`: CPU, memory, disk, network and filesystem
/// families with many labels, HTTP latency histograms, GC summaries. Valid for all three parsers
/// (families contiguous, one label-name set per family, integer histogram counts).
fn node_exporter_page(target_bytes: usize, seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut out = String::with_capacity(target_bytes + 64 * 1024);
    let mut host = 0;
    while out.len() < target_bytes {
        // one "host" worth of families; names carry the host so families stay distinct
        let h = format!("h{host}");
        let modes = [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ];
        out.push_str(&format!(
            "# HELP node_cpu_seconds_total_{h} Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds_total_{h} counter\n"
        ));
        for cpu in 0..32 {
            for m in modes {
                out.push_str(&format!(
                    "node_cpu_seconds_total_{h}{{cpu=\"{cpu}\",mode=\"{m}\"}} {:.2}\n",
                    rng.float() * 1e6
                ));
            }
        }
        for (name, help) in [
            (
                "node_memory_MemAvailable_bytes",
                "Memory information field MemAvailable_bytes.",
            ),
            (
                "node_memory_MemFree_bytes",
                "Memory information field MemFree_bytes.",
            ),
            (
                "node_memory_Cached_bytes",
                "Memory information field Cached_bytes.",
            ),
            ("node_load1", "1m load average."),
        ] {
            out.push_str(&format!(
                "# HELP {name}_{h} {help}\n# TYPE {name}_{h} gauge\n"
            ));
            out.push_str(&format!("{name}_{h} {}\n", rng.below(64_000_000_000)));
        }
        for (name, help) in [
            (
                "node_network_receive_bytes_total",
                "Network device statistic receive_bytes.",
            ),
            (
                "node_network_transmit_bytes_total",
                "Network device statistic transmit_bytes.",
            ),
            (
                "node_network_receive_packets_total",
                "Network device statistic receive_packets.",
            ),
            (
                "node_disk_read_bytes_total",
                "The total number of bytes read successfully.",
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name}_{h} {help}\n# TYPE {name}_{h} counter\n"
            ));
            for dev in [
                "eth0",
                "eth1",
                "lo",
                "docker0",
                "veth1a2b3c",
                "nvme0n1",
                "sda",
                "sdb",
            ] {
                out.push_str(&format!(
                    "{name}_{h}{{device=\"{dev}\"}} {:e}\n",
                    rng.float() * 1e12
                ));
            }
        }
        out.push_str(&format!(
            "# HELP node_filesystem_avail_bytes_{h} Filesystem space available to non-root users in bytes.\n# TYPE node_filesystem_avail_bytes_{h} gauge\n"
        ));
        for (dev, fs, mp) in [
            ("/dev/nvme0n1p2", "ext4", "/"),
            ("/dev/nvme0n1p1", "vfat", "/boot/efi"),
            ("tmpfs", "tmpfs", "/run"),
            ("tmpfs", "tmpfs", "/run/user/1000"),
            ("/dev/sda1", "xfs", "/var/lib/docker"),
        ] {
            out.push_str(&format!(
                "node_filesystem_avail_bytes_{h}{{device=\"{dev}\",fstype=\"{fs}\",mountpoint=\"{mp}\"}} {}\n",
                rng.below(1 << 40)
            ));
        }
        out.push_str(&format!(
            "# HELP http_request_duration_seconds_{h} A histogram of latencies for requests.\n# TYPE http_request_duration_seconds_{h} histogram\n"
        ));
        let bounds = [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ];
        for handler in ["/api/v1/query", "/api/v1/write", "/metrics", "/-/healthy"] {
            for method in ["GET", "POST"] {
                for code in ["200", "500"] {
                    let labels =
                        format!("handler=\"{handler}\",method=\"{method}\",code=\"{code}\"");
                    let mut count = 0;
                    for le in bounds {
                        count += rng.below(1000);
                        out.push_str(&format!(
                            "http_request_duration_seconds_{h}_bucket{{{labels},le=\"{le}\"}} {count}\n"
                        ));
                    }
                    out.push_str(&format!(
                        "http_request_duration_seconds_{h}_sum{{{labels}}} {}\n",
                        rng.float() * count as f64
                    ));
                    out.push_str(&format!(
                        "http_request_duration_seconds_{h}_count{{{labels}}} {count}\n"
                    ));
                }
            }
        }
        out.push_str(&format!(
            "# HELP go_gc_duration_seconds_{h} A summary of the pause duration of garbage collection cycles.\n# TYPE go_gc_duration_seconds_{h} summary\n"
        ));
        for q in ["0", "0.25", "0.5", "0.75", "1"] {
            out.push_str(&format!(
                "go_gc_duration_seconds_{h}{{quantile=\"{q}\"}} {:e}\n",
                rng.float() * 1e-3
            ));
        }
        out.push_str(&format!(
            "go_gc_duration_seconds_{h}_sum {}\n",
            rng.float() * 10.0
        ));
        out.push_str(&format!(
            "go_gc_duration_seconds_{h}_count {}\n",
            rng.below(100_000)
        ));
        host += 1;
    }
    out
}

/// Wall time of one run of `f`.
#[allow(clippy::disallowed_methods)] // a benchmark measures elapsed wall time by definition
fn time(f: impl FnOnce() -> usize) -> (Duration, usize) {
    let start = std::time::Instant::now();
    let n = black_box(f());
    (start.elapsed(), n)
}

struct Measured {
    name: &'static str,
    best: f64,
    median: f64,
    samples: usize,
}

fn measure(
    name: &'static str,
    mb: f64,
    iterations: usize,
    mut f: impl FnMut() -> usize,
) -> Measured {
    let mut rates = Vec::with_capacity(iterations);
    let mut samples = 0;
    // one warm-up run outside the measurement
    black_box(f());
    for _ in 0..iterations {
        let (d, n) = time(&mut f);
        samples = n;
        rates.push(mb / d.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Measured {
        name,
        best: rates[rates.len() - 1],
        median: rates[rates.len() / 2],
        samples,
    }
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(9)
        .max(1);
    for target in [1 << 20, 5 << 20] {
        let page = node_exporter_page(target, 42);
        let mb = page.len() as f64 / 1e6;
        let lines = page.lines().count();

        // every parser must accept the whole page, or the comparison is meaningless
        let mut stats = ParseStats::default();
        prom::parse_with(&page, Format::Prometheus, &mut stats, |_| {});
        assert_eq!(
            stats.skipped_lines, 0,
            "medic skipped lines: {:?}",
            stats.errors
        );
        let oracle = openmetrics_parser::prometheus::parse_prometheus(&page)
            .expect("openmetrics-parser accepts the page");
        let oracle_families = oracle.families.len();
        drop(oracle);

        println!(
            "page: {:.2} MB, {lines} lines, {} samples, {oracle_families} families, {iterations} iterations",
            mb, stats.samples
        );
        let results = [
            measure("medic (borrowed callback)", mb, iterations, || {
                let mut stats = ParseStats::default();
                let mut n = 0usize;
                let mut label_bytes = 0usize;
                let mut sum = 0.0;
                prom::parse_with(&page, Format::Prometheus, &mut stats, |s| {
                    n += 1;
                    sum += s.value;
                    for l in s.labels() {
                        label_bytes += l.raw_name().len() + l.value().len();
                    }
                });
                black_box((sum, label_bytes));
                n
            }),
            measure("medic (parse_to_vec, owned)", mb, iterations, || {
                let mut stats = ParseStats::default();
                prom::parse_to_vec(&page, Format::Prometheus, &mut stats)
                    .samples
                    .len()
            }),
            measure("openmetrics-parser 0.5", mb, iterations, || {
                let e = openmetrics_parser::prometheus::parse_prometheus(&page).expect("accepted");
                e.families.values().map(|f| f.iter_samples().count()).sum()
            }),
            measure("prometheus-parse 0.2", mb, iterations, || {
                let s = prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_owned())))
                    .expect("accepted");
                s.samples.len()
            }),
        ];
        println!(
            "  {:<30} {:>10} {:>10} {:>9}",
            "parser", "best MB/s", "med MB/s", "items"
        );
        for r in &results {
            println!(
                "  {:<30} {:>10.1} {:>10.1} {:>9}",
                r.name, r.best, r.median, r.samples
            );
        }
        for medic in &results[..2] {
            for other in &results[2..] {
                println!(
                    "  ratio {} / {}: best {:.1}x, median {:.1}x",
                    medic.name,
                    other.name,
                    medic.best / other.best,
                    medic.median / other.median
                );
            }
        }
        println!();
    }
}
