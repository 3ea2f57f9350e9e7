//! Daemon scale bench: the real `medic run` probing N HTTP targets, its RSS and CPU measured.
//!
//! Answers issue 8's "daemon RSS with 1,000 probed targets (goal < 100 MB)" and "idle CPU with
//! 100 targets". One small HTTP/1.1 server (keep-alive, in this process, on 127.0.0.1) answers
//! `/t/<i>/health`, `/t/<i>/ready` and `/t/<i>/metrics` (a 30-line Prometheus page with a
//! histogram) for every target and counts the requests. For each N a fleet.yaml is written with
//! N targets (liveness and readiness http probes every `--every` s, a metrics scrape every
//! `--scrape` s), `medic run` is started on it with the shipped `policies/`, warmed up, then
//! sampled once a second from `/proc/<pid>/status` (VmRSS, VmHWM) and `/proc/<pid>/stat`
//! (utime + stime). Finally SIGTERM, and the exit status and shutdown time are reported.
//!
//! Every target is healthy, so this measures the daemon's steady cost, not healing.
//! Run from the repository root:
//!
//! ```text
//! cargo run -p medic-bench --bin daemon_scale -- [--medic PATH] [--targets 1000,100]
//!     [--warmup 20] [--seconds 60] [--every 5] [--scrape 15] [--policies policies]
//! ```
//!
//! It is plain std, so it also builds without cargo (`rustc --edition 2024 -O
//! bench/src/bin/daemon_scale.rs -o /dev/shm/daemon_scale`). Scratch files (fleet.yaml, medic's
//! data dir and log) go to `$TMPDIR` and are removed afterwards.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Opts {
    medic: Option<PathBuf>,
    targets: Vec<usize>,
    warmup: u64,
    seconds: u64,
    every: u64,
    scrape: u64,
    policies: PathBuf,
    models: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: daemon_scale [--medic PATH] [--targets 1000,100] [--warmup 20] [--seconds 60] \
         [--every 5] [--scrape 15] [--policies policies] [--models models]"
    );
    std::process::exit(2)
}

fn opts() -> Opts {
    let mut o = Opts {
        medic: None,
        targets: vec![1000, 100],
        warmup: 20,
        seconds: 60,
        every: 5,
        scrape: 15,
        policies: PathBuf::from("policies"),
        models: PathBuf::from("models"),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            usage()
        };
        let num = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage());
        match args[i].as_str() {
            "--medic" => o.medic = Some(PathBuf::from(value)),
            "--targets" => {
                o.targets = value
                    .split(',')
                    .map(|v| v.trim().parse::<usize>().unwrap_or_else(|_| usage()))
                    .collect();
            }
            "--warmup" => o.warmup = num(value),
            "--seconds" => o.seconds = num(value).max(1),
            "--every" => o.every = num(value).max(1),
            "--scrape" => o.scrape = num(value).max(1),
            "--policies" => o.policies = PathBuf::from(value),
            "--models" => o.models = PathBuf::from(value),
            _ => usage(),
        }
        i += 2;
    }
    o
}

/// Requests answered by the server, by kind.
#[derive(Default)]
struct Counts {
    health: AtomicU64,
    ready: AtomicU64,
    metrics: AtomicU64,
    other: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> [u64; 4] {
        [
            self.health.load(Ordering::Relaxed),
            self.ready.load(Ordering::Relaxed),
            self.metrics.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
        ]
    }
}

/// A small, realistic exporter page: a latency histogram, counters and gauges (30 lines).
fn metrics_page() -> String {
    let mut s = String::new();
    s.push_str("# HELP http_request_duration_seconds Request latency.\n");
    s.push_str("# TYPE http_request_duration_seconds histogram\n");
    let buckets = [
        ("0.005", 120),
        ("0.01", 410),
        ("0.025", 980),
        ("0.05", 1320),
        ("0.1", 1402),
        ("0.25", 1417),
        ("0.5", 1419),
        ("1", 1420),
        ("+Inf", 1420),
    ];
    for (le, n) in buckets {
        s.push_str(&format!(
            "http_request_duration_seconds_bucket{{le=\"{le}\"}} {n}\n"
        ));
    }
    s.push_str("http_request_duration_seconds_sum 31.7\n");
    s.push_str("http_request_duration_seconds_count 1420\n");
    s.push_str("# HELP http_requests_total Requests by status class.\n");
    s.push_str("# TYPE http_requests_total counter\n");
    s.push_str("http_requests_total{code=\"2xx\"} 1411\n");
    s.push_str("http_requests_total{code=\"5xx\"} 9\n");
    s.push_str("# HELP http_errors_total Failed requests.\n");
    s.push_str("# TYPE http_errors_total counter\n");
    s.push_str("http_errors_total 9\n");
    s.push_str("# HELP queue_depth Jobs waiting.\n");
    s.push_str("# TYPE queue_depth gauge\n");
    s.push_str("queue_depth 3\n");
    s.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
    s.push_str("# TYPE process_resident_memory_bytes gauge\n");
    s.push_str("process_resident_memory_bytes 2.4117248e+07\n");
    s.push_str("# HELP process_cpu_seconds_total Total user and system CPU time.\n");
    s.push_str("# TYPE process_cpu_seconds_total counter\n");
    s.push_str("process_cpu_seconds_total 12.5\n");
    s.push_str("# HELP up_dependency Whether the dependency answers.\n");
    s.push_str("# TYPE up_dependency gauge\n");
    s.push_str("up_dependency 1\n");
    s
}

/// Serves one keep-alive connection: GET only, bodies skipped by Content-Length.
fn serve_conn(mut sock: TcpStream, counts: Arc<Counts>, page: Arc<String>) {
    // An idle keep-alive connection is dropped after a while so threads do not pile up.
    let _ = sock.set_read_timeout(Some(Duration::from_secs(120)));
    let _ = sock.set_nodelay(true);
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let body_len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + body_len);
        let path = head.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split('?').next().unwrap_or(path);
        let (status, ctype, body): (&str, &str, &str) = if path.ends_with("/health") {
            counts.health.fetch_add(1, Ordering::Relaxed);
            ("200 OK", "text/plain", "ok\n")
        } else if path.ends_with("/ready") {
            counts.ready.fetch_add(1, Ordering::Relaxed);
            ("200 OK", "text/plain", "ready\n")
        } else if path.ends_with("/metrics") {
            counts.metrics.fetch_add(1, Ordering::Relaxed);
            ("200 OK", "text/plain; version=0.0.4", page.as_str())
        } else {
            counts.other.fetch_add(1, Ordering::Relaxed);
            ("404 Not Found", "text/plain", "not found\n")
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if sock.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// Starts the target server (one thread per connection, keep-alive); returns its port.
fn start_server(counts: Arc<Counts>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let page = Arc::new(metrics_page());
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let (counts, page) = (counts.clone(), page.clone());
            std::thread::spawn(move || serve_conn(sock, counts, page));
        }
    });
    Ok(port)
}

/// This bench is plain std (it builds with a bare `rustc` too); errors are only reported.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A scratch directory under $TMPDIR, removed on drop (plain std, no tempfile crate).
struct TempDir(PathBuf);

impl TempDir {
    fn new(n: usize) -> std::io::Result<TempDir> {
        let p = std::env::temp_dir().join(format!("medic-daemon-scale-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_fleet(path: &Path, n: usize, port: u16, every: u64, scrape: u64) -> std::io::Result<()> {
    let mut s = String::with_capacity(n * 400);
    s.push_str("# generated by bench/src/bin/daemon_scale.rs\ntargets:\n");
    for i in 0..n {
        let base = format!("http://127.0.0.1:{port}/t/{i}");
        s.push_str(&format!(
            "  - name: svc-{i:04}\n    labels: {{ type: bench }}\n    probes:\n      \
             liveness:  {{ http: {{ url: \"{base}/health\", timeout: 2s }}, every: {every}s }}\n      \
             readiness: {{ http: {{ url: \"{base}/ready\", timeout: 2s }}, every: {every}s }}\n    \
             metrics: {{ url: \"{base}/metrics\", every: {scrape}s }}\n"
        ));
    }
    std::fs::write(path, s)
}

/// VmRSS and VmHWM in kB.
fn mem_kb(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn threads(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// utime + stime of `pid` in clock ticks (fields 14 and 15 of /proc/<pid>/stat, counted after
/// the parenthesised command name, which may itself hold spaces).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second from `getconf CLK_TCK` (no libc call: unsafe code is denied).
fn ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

fn cpu_seconds(pid: u32, tck: f64) -> Option<f64> {
    cpu_ticks(pid).map(|t| t as f64 / tck)
}

fn pick_medic(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    let release = PathBuf::from("target/release/medic");
    if release.exists() {
        return release;
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    dir.join("debug").join("medic")
}

fn build_kind(path: &Path) -> &'static str {
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    match parent {
        Some("release") => "release build",
        Some("debug") => {
            "debug build (medic's own crates opt-level 0; dependencies opt-level 2 per \
             [profile.dev.package.\"*\"]) - NOT release figures"
        }
        _ => "unknown build profile",
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

struct RunResult {
    n: usize,
    rss_mean_kb: f64,
    rss_last_kb: u64,
    rss_max_kb: u64,
    hwm_kb: u64,
    cpu_pct: f64,
    rate: [f64; 4],
    expected_rate: f64,
    threads: u64,
    exit: Option<ExitStatus>,
    shutdown_ms: Option<u128>,
}

#[allow(clippy::disallowed_methods)] // wall-clock windows and shutdown time are what is measured
fn run_one(
    o: &Opts,
    medic: &Path,
    n: usize,
    port: u16,
    counts: &Counts,
    tck: f64,
) -> Result<RunResult> {
    let dir = TempDir::new(n)?;
    let fleet = dir.path().join("fleet.yaml");
    write_fleet(&fleet, n, port, o.every, o.scrape)?;
    let data = dir.path().join("data");
    let log_path = dir.path().join("medic.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(medic)
        .arg("run")
        .arg("--fleet")
        .arg(&fleet)
        .arg("--policies")
        .arg(&o.policies)
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--models")
        .arg(&o.models)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    eprintln!(
        "N={n}: medic pid {pid}, warm-up {} s, log {}",
        o.warmup,
        log_path.display()
    );

    let tail_log = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };

    std::thread::sleep(Duration::from_secs(o.warmup));
    if let Some(st) = child.try_wait()? {
        return Err(format!(
            "medic exited during warm-up ({st}); log tail:\n{}",
            tail_log()
        )
        .into());
    }

    let c0 = counts.snapshot();
    let cpu0 = cpu_seconds(pid, tck).ok_or("cannot read /proc/<pid>/stat")?;
    let t0 = std::time::Instant::now();
    let mut rss = Vec::with_capacity(o.seconds as usize);
    let mut hwm = 0;
    let mut th = 0;
    for s in 1..=o.seconds {
        let next = t0 + Duration::from_secs(s);
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        if let Some((r, h)) = mem_kb(pid) {
            rss.push(r);
            hwm = h;
        }
        th = threads(pid).unwrap_or(th);
    }
    let cpu1 = cpu_seconds(pid, tck).ok_or("medic vanished during the window")?;
    let elapsed = t0.elapsed().as_secs_f64();
    let c1 = counts.snapshot();
    if let Some(st) = child.try_wait()? {
        return Err(format!(
            "medic exited during the window ({st}); log tail:\n{}",
            tail_log()
        )
        .into());
    }

    let term = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    let ts = std::time::Instant::now();
    let mut exit = None;
    if term.success() {
        while ts.elapsed() < Duration::from_secs(30) {
            if let Some(st) = child.try_wait()? {
                exit = Some(st);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let shutdown_ms = exit.map(|_| ts.elapsed().as_millis());
    if exit.is_none() {
        eprintln!("N={n}: medic did not exit within 30 s of SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
    if !exit.is_some_and(|s| s.success()) {
        eprintln!("N={n}: medic log tail:\n{}", tail_log());
    }

    let rate = std::array::from_fn(|k| (c1[k] - c0[k]) as f64 / elapsed);
    Ok(RunResult {
        n,
        rss_mean_kb: rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64,
        rss_last_kb: rss.last().copied().unwrap_or(0),
        rss_max_kb: rss.iter().copied().max().unwrap_or(0),
        hwm_kb: hwm,
        cpu_pct: 100.0 * (cpu1 - cpu0) / elapsed,
        rate,
        expected_rate: n as f64 * (2.0 / o.every as f64 + 1.0 / o.scrape as f64),
        threads: th,
        exit,
        shutdown_ms,
    })
}

fn main() {
    let o = opts();
    let medic = pick_medic(o.medic.clone());
    if !medic.exists() {
        eprintln!(
            "medic binary not found at {} (use --medic PATH)",
            medic.display()
        );
        std::process::exit(1);
    }
    let tck = ticks_per_sec();
    let counts = Arc::new(Counts::default());
    let port = match start_server(counts.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot start the target server: {e}");
            std::process::exit(1);
        }
    };
    println!("medic: {} ({})", medic.display(), build_kind(&medic));
    println!(
        "targets served by one in-process HTTP/1.1 server on 127.0.0.1:{port} \
         (paths /t/<i>/{{health,ready,metrics}}, 30-line metrics page)"
    );
    println!(
        "per target: liveness + readiness http probes every {} s, metrics scrape every {} s; \
         policies {}, models {}; warm-up {} s, window {} s, sampled every 1 s",
        o.every,
        o.scrape,
        o.policies.display(),
        o.models.display(),
        o.warmup,
        o.seconds
    );
    println!();
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>26} {:>8} {:>8} {:>16}",
        "N",
        "RSS_mean",
        "RSS_last",
        "RSS_max",
        "VmHWM",
        "CPU%",
        "threads",
        "req/s health+ready+metrics",
        "req/s",
        "expect",
        "SIGTERM"
    );
    let mut failed = false;
    for &n in &o.targets {
        match run_one(&o, &medic, n, port, &counts, tck) {
            Ok(r) => {
                let served = r.rate[0] + r.rate[1] + r.rate[2];
                let term = match (r.exit, r.shutdown_ms) {
                    (Some(st), Some(ms)) => format!("{st} {ms} ms"),
                    _ => "no exit in 30s".to_string(),
                };
                if !r.exit.is_some_and(|s| s.success()) {
                    failed = true;
                }
                println!(
                    "{:>6} {:>8.1}MB {:>8.1}MB {:>8.1}MB {:>8.1}MB {:>7.2}% {:>8} {:>26} {:>8.1} {:>8.1} {:>16}",
                    r.n,
                    r.rss_mean_kb / 1024.0,
                    mb(r.rss_last_kb),
                    mb(r.rss_max_kb),
                    mb(r.hwm_kb),
                    r.cpu_pct,
                    r.threads,
                    format!("{:.1}+{:.1}+{:.1}", r.rate[0], r.rate[1], r.rate[2]),
                    served,
                    r.expected_rate,
                    term
                );
                if r.rate[3] > 0.0 {
                    println!(
                        "       ({:.1} req/s to unknown paths answered 404)",
                        r.rate[3]
                    );
                }
            }
            Err(e) => {
                failed = true;
                println!("{n:>6} failed: {e}");
            }
        }
    }
    println!();
    println!(
        "RSS in MiB from /proc/<pid>/status (mean/last/max of the window's samples, VmHWM = peak \
         since start); CPU% = (utime+stime) over the window / wall time, of one core; req/s \
         counted by the server, expect = N x (2/every + 1/scrape)."
    );
    if failed {
        std::process::exit(1);
    }
}
