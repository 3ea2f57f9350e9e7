//! The agent's own metrics and their Prometheus text exposition.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::fault::{FaultKind, Faults};

/// Upper bounds (seconds) of the request latency histogram buckets.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters and gauges, updated lock-free by the handlers.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Non-cumulative bucket counts; index `BUCKETS.len()` is the +Inf overflow.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
    /// `/work` requests answered.
    pub requests: AtomicU64,
    /// `/work` requests answered with a 5xx.
    pub errors: AtomicU64,
    /// `/work` requests in flight.
    pub queue_depth: AtomicI64,
    /// Bytes held by the leak fault.
    pub leaked_bytes: AtomicU64,
    /// `/work` requests refused (503) while the circuit is open; neither requests nor errors.
    pub shed: AtomicU64,
}

impl Metrics {
    /// Records one `/work` request's duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the exposition needs besides the counters.
pub struct Exposition<'a> {
    /// The agent's `--name`.
    pub name: &'a str,
    /// The agent's `--app-version`.
    pub version: &'a str,
    /// Active faults (exposed as ground truth for labelling recorded data).
    pub faults: &'a Faults,
    /// Whether the dependency answered its last health check.
    pub dependency_up: Option<bool>,
    /// Starts recorded in the state directory, when there is one.
    pub starts: Option<u64>,
    /// Whether the circuit is open (work refused).
    pub circuit_open: bool,
}

/// Renders every metric in the Prometheus text format 0.0.4.
pub fn render(m: &Metrics, x: &Exposition<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let name = escape(x.name);

    let _ = writeln!(
        out,
        "# HELP demo_request_duration_seconds Latency of /work requests.\n\
         # TYPE demo_request_duration_seconds histogram"
    );
    let mut cumulative = 0u64;
    for (i, le) in BUCKETS.iter().enumerate() {
        cumulative += m.buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "demo_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += m.buckets[BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "demo_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let sum = m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "demo_request_duration_seconds_sum {sum}");
    // The count is the +Inf bucket, so the two always agree within one scrape.
    let _ = writeln!(out, "demo_request_duration_seconds_count {cumulative}");

    let counter = |out: &mut String, metric: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {metric} {help}\n# TYPE {metric} counter\n{metric} {v}"
        );
    };
    let gauge = |out: &mut String, metric: &str, help: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP {metric} {help}\n# TYPE {metric} gauge\n{metric} {v}"
        );
    };
    counter(
        &mut out,
        "demo_requests_total",
        "Requests to /work answered.",
        m.requests.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "demo_errors_total",
        "Requests to /work answered with a 5xx.",
        m.errors.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "demo_queue_depth",
        "Requests to /work in flight.",
        m.queue_depth.load(Ordering::Relaxed) as f64,
    );
    gauge(
        &mut out,
        "demo_leaked_bytes",
        "Bytes held by the leak fault.",
        m.leaked_bytes.load(Ordering::Relaxed) as f64,
    );
    counter(
        &mut out,
        "demo_shed_total",
        "Requests to /work refused with 503 while the circuit was open.",
        m.shed.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "demo_circuit_open",
        "Whether the circuit is open: /work refused, set by POST /admin/circuit/{open,close}.",
        if x.circuit_open { 1.0 } else { 0.0 },
    );
    if let Some(up) = x.dependency_up {
        gauge(
            &mut out,
            "demo_dependency_up",
            "Whether the dependency answered its last health check.",
            if up { 1.0 } else { 0.0 },
        );
    }
    if let Some(starts) = x.starts {
        gauge(
            &mut out,
            "demo_starts",
            "Starts recorded in the state directory.",
            starts as f64,
        );
    }
    let _ = writeln!(
        out,
        "# HELP demo_version The running version (always 1).\n# TYPE demo_version gauge\n\
         demo_version{{name=\"{name}\",version=\"{}\"}} 1",
        escape(x.version)
    );
    let _ = writeln!(
        out,
        "# HELP demo_fault_active Injected faults (ground truth for labelling, not a symptom).\n\
         # TYPE demo_fault_active gauge"
    );
    for k in FaultKind::ALL {
        let _ = writeln!(
            out,
            "demo_fault_active{{kind=\"{}\"}} {}",
            k.as_str(),
            u8::from(x.faults.is_active(k))
        );
    }

    if let Some(rss) = resident_bytes() {
        gauge(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss as f64,
        );
    }
    if let Some(cpu) = cpu_seconds() {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}"
        );
    }
    if let Some(fds) = open_fds() {
        gauge(
            &mut out,
            "process_open_fds",
            "Number of open file descriptors.",
            fds as f64,
        );
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Resident set size: resident pages from `/proc/self/statm` times the page size.
///
/// The page size is read once as `KernelPageSize` from `/proc/self/smaps` (4 KiB when
/// unreadable): asking `sysconf` would need unsafe code.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size()))
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        std::fs::read_to_string("/proc/self/smaps")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("KernelPageSize:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(4096, |kb| kb * 1024)
    })
}

/// User plus system CPU time from `/proc/self/stat`, assuming the usual 100 ticks per second.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_count_matches() {
        let m = Metrics::default();
        m.observe(Duration::from_millis(3));
        m.observe(Duration::from_millis(30));
        m.observe(Duration::from_secs(20));
        let faults = Faults::default();
        let text = render(
            &m,
            &Exposition {
                name: "a\"b",
                version: "1.0.0",
                faults: &faults,
                dependency_up: None,
                starts: None,
                circuit_open: false,
            },
        );
        assert!(text.contains("demo_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("demo_request_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("demo_request_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("demo_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("demo_request_duration_seconds_count 3\n"));
        assert!(text.contains("demo_version{name=\"a\\\"b\",version=\"1.0.0\"} 1\n"));
        assert!(resident_bytes().unwrap() > 0);
    }
}
