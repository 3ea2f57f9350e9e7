//! The diagnostic context of a failing target: output tail, process status, system resources,
//! disk usage of its data paths and connectivity to its dependencies.
//!
//! [`collect`] fills one [`DiagnosticContext`] within a total deadline (read on the injected
//! [`Clock`]) and size limits ([`ContextLimits`]); whatever cannot be read in time or at all is
//! named in [`DiagnosticContext::problems`] instead of failing the whole collection. The
//! parsers of `/proc/meminfo` and `/proc/stat` are pure functions over text so they can be
//! tested without the machine's values.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use medic_core::{Clock, Timestamp};
use serde::{Deserialize, Serialize};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// What the supervisor knows about the target's process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// Pid of the current (or last) process.
    pub pid: Option<u32>,
    /// Seconds since it started.
    pub uptime_s: Option<f64>,
    /// Restarts so far.
    pub restarts: u32,
    /// How it ended, if it has.
    pub exit: Option<ExitStatus>,
    /// Resident memory, last reading.
    pub rss_bytes: Option<u64>,
    /// Its memory limit, if it has one.
    pub memory_limit_bytes: Option<u64>,
}

/// Host-wide resources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemResources {
    /// Busy fraction of all CPUs over the collection interval.
    pub cpu_busy_ratio: Option<f64>,
    /// `MemTotal`.
    pub mem_total_bytes: Option<u64>,
    /// `MemAvailable`.
    pub mem_available_bytes: Option<u64>,
}

/// Disk usage of one data path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// The path as configured.
    pub path: String,
    /// Filesystem size.
    pub total_bytes: Option<u64>,
    /// Bytes available to unprivileged users.
    pub available_bytes: Option<u64>,
    /// `1 - available / total` (what `df` shows as Use%).
    pub used_ratio: Option<f64>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// TCP connectivity to one dependency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DependencyCheck {
    /// The dependency's name.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Whether a TCP connection was established.
    pub reachable: bool,
    /// Time to connect, when it did.
    pub latency_ms: Option<f64>,
    /// Why it did not.
    pub error: Option<String>,
}

/// Everything known about a failing target at one time. Bounded by [`ContextLimits`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticContext {
    /// When collection started.
    pub collected_at: Timestamp,
    /// The last lines of the target's output, oldest first.
    pub output_tail: Vec<String>,
    /// Lines of output dropped to respect the limits.
    pub output_dropped: usize,
    /// Process status, if the target is a process medic knows.
    pub process: Option<ProcessStatus>,
    /// Host resources.
    pub system: SystemResources,
    /// Disk usage of the data paths.
    pub disks: Vec<DiskUsage>,
    /// Connectivity to dependencies.
    pub dependencies: Vec<DependencyCheck>,
    /// What could not be collected, and why.
    pub problems: Vec<String>,
}

/// Size and time bounds of a collection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContextLimits {
    /// Output lines kept (the last ones).
    pub max_lines: usize,
    /// Characters kept of one output line.
    pub max_line_chars: usize,
    /// Dependencies checked (the first ones).
    pub max_dependencies: usize,
    /// Data paths checked (the first ones).
    pub max_paths: usize,
    /// Timeout of one TCP connect (and of its name resolution).
    pub connect_timeout: Duration,
    /// Whole collection.
    pub total: Duration,
}

impl ContextLimits {
    /// Limits suited to attaching the context to an incident.
    pub const STANDARD: ContextLimits = ContextLimits {
        max_lines: 200,
        max_line_chars: 1000,
        max_dependencies: 16,
        max_paths: 8,
        connect_timeout: Duration::from_secs(2),
        total: Duration::from_secs(5),
    };
}

/// What to collect.
#[derive(Clone, Debug, Default)]
pub struct ContextRequest {
    /// Captured output of the target, oldest first (only the tail is kept).
    pub output: Vec<String>,
    /// Process status from the supervisor.
    pub process: Option<ProcessStatus>,
    /// Data paths whose filesystems to check.
    pub data_paths: Vec<PathBuf>,
    /// Dependencies as (name, `host:port`).
    pub dependencies: Vec<(String, String)>,
}

/// Collects a context within `limits`, reading time only from `clock`.
///
/// Blocks for at most about `limits.total` (plus one connect timeout in the worst case of a
/// hanging name resolution, whose thread is abandoned); run it off async workers.
pub fn collect(
    req: &ContextRequest,
    limits: &ContextLimits,
    clock: &dyn Clock,
) -> DiagnosticContext {
    let start = clock.now();
    let deadline = start + limits.total;
    let mut problems = Vec::new();

    let (output_tail, output_dropped) = tail(&req.output, limits);
    let cpu_before = read_cpu(&mut problems);

    let mut disks = Vec::new();
    for path in req.data_paths.iter().take(limits.max_paths) {
        disks.push(disk_usage(path));
    }
    if req.data_paths.len() > limits.max_paths {
        problems.push(format!(
            "{} data paths not checked (limit {})",
            req.data_paths.len() - limits.max_paths,
            limits.max_paths
        ));
    }

    let mut dependencies = Vec::new();
    for (name, address) in req.dependencies.iter().take(limits.max_dependencies) {
        let now = clock.now();
        let remaining = remaining(now, deadline);
        if remaining.is_zero() {
            problems.push(format!("dependency {name} not checked: deadline reached"));
            continue;
        }
        dependencies.push(check_dependency(
            name,
            address,
            limits.connect_timeout.min(remaining),
        ));
    }
    if req.dependencies.len() > limits.max_dependencies {
        problems.push(format!(
            "{} dependencies not checked (limit {})",
            req.dependencies.len() - limits.max_dependencies,
            limits.max_dependencies
        ));
    }

    let mut cpu_busy_ratio = None;
    if let Some(before) = cpu_before {
        // /proc/stat counts in jiffies; wait a little if no tick passed yet.
        let mut after = read_cpu(&mut problems);
        if after.is_some_and(|a| a.total <= before.total) {
            let wait = remaining(clock.now(), deadline).min(Duration::from_millis(100));
            std::thread::sleep(wait);
            after = read_cpu(&mut problems);
        }
        cpu_busy_ratio = after.and_then(|a| a.busy_ratio_since(&before));
    }
    let (mem_total_bytes, mem_available_bytes) = match std::fs::read_to_string("/proc/meminfo") {
        Ok(text) => parse_meminfo(&text),
        Err(e) => {
            problems.push(format!("reading /proc/meminfo: {e}"));
            (None, None)
        }
    };

    DiagnosticContext {
        collected_at: start,
        output_tail,
        output_dropped,
        process: req.process.clone(),
        system: SystemResources {
            cpu_busy_ratio,
            mem_total_bytes,
            mem_available_bytes,
        },
        disks,
        dependencies,
        problems,
    }
}

fn remaining(now: Timestamp, deadline: Timestamp) -> Duration {
    if now.as_millis() >= deadline.as_millis() {
        Duration::ZERO
    } else {
        deadline.since(now)
    }
}

fn tail(output: &[String], limits: &ContextLimits) -> (Vec<String>, usize) {
    let skip = output.len().saturating_sub(limits.max_lines);
    let lines = output[skip..]
        .iter()
        .map(|l| match l.char_indices().nth(limits.max_line_chars) {
            Some((i, _)) => format!("{}…", &l[..i]),
            None => l.clone(),
        })
        .collect();
    (lines, skip)
}

/// Aggregate CPU counters from the `cpu` line of `/proc/stat`, in jiffies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuCounters {
    /// All time.
    pub total: u64,
    /// Time not idle and not waiting for I/O.
    pub busy: u64,
}

impl CpuCounters {
    /// Busy fraction between `earlier` and `self`, `None` if no time passed.
    pub fn busy_ratio_since(&self, earlier: &CpuCounters) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        (total > 0).then(|| (busy as f64 / total as f64).clamp(0.0, 1.0))
    }
}

/// Parses the aggregate `cpu` line of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Option<CpuCounters> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map_while(|f| f.parse().ok())
        .collect();
    if fields.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest counted inside user)
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuCounters {
        total,
        busy: total.saturating_sub(idle),
    })
}

/// Parses `MemTotal` and `MemAvailable` (in bytes) from `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let mut parts = rest.split_whitespace();
            let value: u64 = parts.next()?.parse().ok()?;
            let unit = parts.next().unwrap_or("");
            Some(if unit.eq_ignore_ascii_case("kb") {
                value.saturating_mul(1024)
            } else {
                value
            })
        })
    };
    (field("MemTotal"), field("MemAvailable"))
}

fn read_cpu(problems: &mut Vec<String>) -> Option<CpuCounters> {
    match std::fs::read_to_string("/proc/stat") {
        Ok(text) => {
            let parsed = parse_proc_stat(&text);
            if parsed.is_none() {
                problems.push("no cpu line in /proc/stat".to_owned());
            }
            parsed
        }
        Err(e) => {
            problems.push(format!("reading /proc/stat: {e}"));
            None
        }
    }
}

/// Disk usage of the filesystem holding `path`, via `statvfs(3)`.
pub fn disk_usage(path: &Path) -> DiskUsage {
    let shown = path.display().to_string();
    match statvfs(path) {
        Ok((total, available)) => DiskUsage {
            path: shown,
            total_bytes: Some(total),
            available_bytes: Some(available),
            used_ratio: (total > 0).then(|| 1.0 - available as f64 / total as f64),
            error: None,
        },
        Err(e) => DiskUsage {
            path: shown,
            total_bytes: None,
            available_bytes: None,
            used_ratio: None,
            error: Some(e.to_string()),
        },
    }
}

/// (total bytes, bytes available to unprivileged users).
#[allow(unsafe_code)] // statvfs(3) has no safe std wrapper
fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `buf` points to writable memory
    // of the right type; statvfs writes it fully on success and we read it only then.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `buf`.
    let st = unsafe { buf.assume_init() };
    #[allow(clippy::useless_conversion)] // field widths differ between platforms
    let frsize = u64::from(st.f_frsize);
    #[allow(clippy::useless_conversion)]
    let (blocks, bavail) = (u64::from(st.f_blocks), u64::from(st.f_bavail));
    Ok((blocks.saturating_mul(frsize), bavail.saturating_mul(frsize)))
}

/// Resolves `address` within `timeout` (resolution may block, so it runs on its own thread)
/// and connects to the first address with the remaining time.
pub fn check_dependency(name: &str, address: &str, timeout: Duration) -> DependencyCheck {
    let fail = |error: String| DependencyCheck {
        name: name.to_owned(),
        address: address.to_owned(),
        reachable: false,
        latency_ms: None,
        error: Some(error),
    };
    let addr = match address.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match resolve(address, timeout) {
            Ok(a) => a,
            Err(e) => return fail(e),
        },
    };
    // Measuring connect latency genuinely needs a monotonic timer.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => DependencyCheck {
            name: name.to_owned(),
            address: address.to_owned(),
            reachable: true,
            latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            error: None,
        },
        Err(e) => fail(format!("connect {addr}: {e}")),
    }
}

fn resolve(address: &str, timeout: Duration) -> Result<SocketAddr, String> {
    let (tx, rx) = mpsc::channel();
    let owned = address.to_owned();
    std::thread::Builder::new()
        .name("medic-resolve".to_owned())
        .spawn(move || {
            let result = owned
                .to_socket_addrs()
                .map_err(|e| e.to_string())
                .and_then(|mut it| it.next().ok_or_else(|| "no address".to_owned()));
            let _ = tx.send(result);
        })
        .map_err(|e| format!("resolving {address}: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addr)) => Ok(addr),
        Ok(Err(e)) => Err(format!("resolving {address}: {e}")),
        Err(_) => Err(format!("resolving {address}: timed out after {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_ratio() {
        let a = parse_proc_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = parse_proc_stat("cpu  150 0 150 800 100 0 0 0 0 0\n").unwrap();
        assert_eq!(a.total, 1000);
        assert_eq!(b.busy_ratio_since(&a), Some(0.5));
        assert_eq!(a.busy_ratio_since(&a), None);
        assert_eq!(parse_proc_stat("intr 1 2 3"), None);
    }

    #[test]
    fn meminfo_in_bytes() {
        let text = "MemTotal:       16318412 kB\nMemFree:  1 kB\nMemAvailable:    8159206 kB\n";
        assert_eq!(
            parse_meminfo(text),
            (Some(16318412 * 1024), Some(8159206 * 1024))
        );
        assert_eq!(parse_meminfo("garbage"), (None, None));
    }

    #[test]
    fn tail_keeps_last_lines_truncated() {
        let limits = ContextLimits {
            max_lines: 2,
            max_line_chars: 3,
            ..ContextLimits::STANDARD
        };
        let out: Vec<String> = ["a", "bbbbb", "cc"].map(String::from).to_vec();
        assert_eq!(
            tail(&out, &limits),
            (vec!["bbb…".to_owned(), "cc".to_owned()], 1)
        );
    }
}
