//! Plain reads of `/proc`: a process's state, CPU ticks, resident memory and open fds, and
//! lookup by pid file or by name.
//!
//! Every read is a small file read; nothing here blocks for long, allocates per sample beyond
//! the file text, or spawns anything.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_core::Timestamp;

/// A failed `/proc` (or pid file) read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// No process with this pid exists (any more).
    #[error("no process with pid {pid}")]
    NoSuchProcess {
        /// The pid looked up.
        pid: u32,
    },
    /// A `/proc` file could not be read for another reason (permissions, I/O).
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `/proc` file did not have the expected shape.
    #[error("unexpected contents in {path}: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: &'static str,
    },
    /// The pid file could not be read.
    #[error("could not read pid file {path}")]
    PidFileRead {
        /// The pid file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The pid file did not hold a positive integer.
    #[error("pid file {path} does not hold a pid: found {found:?}")]
    PidFileContents {
        /// The pid file.
        path: PathBuf,
        /// Its (trimmed, shortened) contents.
        found: String,
    },
}

/// The scheduling state of a process, the third field of `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// `R`: running or runnable.
    Running,
    /// `S`: interruptible sleep.
    Sleeping,
    /// `D`: uninterruptible sleep (usually I/O).
    DiskSleep,
    /// `Z`: exited, not yet reaped by its parent.
    Zombie,
    /// `T`: stopped by a signal (SIGSTOP, SIGTSTP).
    Stopped,
    /// `t`: stopped by a debugger.
    TracingStop,
    /// `X`/`x`: dead.
    Dead,
    /// `I`: idle kernel thread.
    Idle,
    /// Any other letter (kernel versions add some).
    Other(char),
}

impl ProcState {
    /// Parses the state letter.
    pub fn from_letter(c: char) -> ProcState {
        match c {
            'R' => ProcState::Running,
            'S' => ProcState::Sleeping,
            'D' => ProcState::DiskSleep,
            'Z' => ProcState::Zombie,
            'T' => ProcState::Stopped,
            't' => ProcState::TracingStop,
            'X' | 'x' => ProcState::Dead,
            'I' => ProcState::Idle,
            other => ProcState::Other(other),
        }
    }

    /// Whether a process in this state can do work: not a zombie, not stopped, not dead.
    pub fn is_alive(self) -> bool {
        !matches!(
            self,
            ProcState::Zombie | ProcState::Stopped | ProcState::TracingStop | ProcState::Dead
        )
    }

    /// A short human-readable name.
    pub fn describe(self) -> &'static str {
        match self {
            ProcState::Running => "running",
            ProcState::Sleeping => "sleeping",
            ProcState::DiskSleep => "in uninterruptible sleep",
            ProcState::Zombie => "a zombie",
            ProcState::Stopped => "stopped",
            ProcState::TracingStop => "stopped by a tracer",
            ProcState::Dead => "dead",
            ProcState::Idle => "idle",
            ProcState::Other(_) => "in an unknown state",
        }
    }
}

/// The fields medic uses from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The process id.
    pub pid: u32,
    /// Scheduling state.
    pub state: ProcState,
    /// User-mode CPU time in clock ticks.
    pub utime_ticks: u64,
    /// Kernel-mode CPU time in clock ticks.
    pub stime_ticks: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

impl ProcStat {
    /// User plus kernel CPU time in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime_ticks.saturating_add(self.stime_ticks)
    }
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    let mut p = PathBuf::from("/proc");
    p.push(pid.to_string());
    p.push(file);
    p
}

fn read_proc_file(pid: u32, file: &str) -> Result<(PathBuf, String), ProcError> {
    let path = proc_path(pid, file);
    match fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ProcError::NoSuchProcess { pid }),
        Err(source) => Err(ProcError::Read { path, source }),
    }
}

/// Reads `/proc/<pid>/stat`.
pub fn read_stat(pid: u32) -> Result<ProcStat, ProcError> {
    let (path, text) = read_proc_file(pid, "stat")?;
    parse_stat(pid, &text).ok_or(ProcError::Malformed {
        path,
        what: "expected `pid (comm) state ...` with at least 24 fields",
    })
}

/// Parses the text of `/proc/<pid>/stat`. The command name may contain spaces and `)`, so
/// fields are counted from the last `)`.
pub fn parse_stat(pid: u32, text: &str) -> Option<ProcStat> {
    let close = text.rfind(')')?;
    // Fields after the command: index 0 is field 3 (state) of proc(5).
    let mut fields = text.get(close + 1..)?.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // utime is field 14, stime 15, rss 24 → indices 11, 12, 21 after the state at 0.
    let mut fields = fields.skip(10);
    let utime_ticks = fields.next()?.parse().ok()?;
    let stime_ticks = fields.next()?.parse().ok()?;
    let rss_pages = fields.nth(8)?.parse::<i64>().ok()?.max(0).unsigned_abs();
    Some(ProcStat {
        pid,
        state: ProcState::from_letter(state),
        utime_ticks,
        stime_ticks,
        rss_pages,
    })
}

/// Counts the open file descriptors of a process (entries of `/proc/<pid>/fd`).
pub fn count_open_fds(pid: u32) -> Result<u64, ProcError> {
    let path = proc_path(pid, "fd");
    let dir = match fs::read_dir(&path) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProcError::NoSuchProcess { pid });
        }
        Err(source) => return Err(ProcError::Read { path, source }),
    };
    let mut n = 0u64;
    for entry in dir {
        if entry.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Reads a pid from a pid file (a positive integer, surrounding whitespace allowed).
pub fn read_pid_file(path: &Path) -> Result<u32, ProcError> {
    let text = fs::read_to_string(path).map_err(|source| ProcError::PidFileRead {
        path: path.to_owned(),
        source,
    })?;
    let trimmed = text.trim();
    match trimmed.parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(ProcError::PidFileContents {
            path: path.to_owned(),
            found: trimmed.chars().take(40).collect(),
        }),
    }
}

/// Every process whose `comm` or argv\[0\] basename equals `name`, in ascending pid order.
///
/// Processes that vanish while `/proc` is walked are skipped.
pub fn find_by_name(name: &str) -> Result<Vec<u32>, ProcError> {
    let dir = fs::read_dir("/proc").map_err(|source| ProcError::Read {
        path: PathBuf::from("/proc"),
        source,
    })?;
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if process_has_name(pid, name) {
            found.push(pid);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn process_has_name(pid: u32, name: &str) -> bool {
    if let Ok((_, comm)) = read_proc_file(pid, "comm")
        && comm.trim_end_matches('\n') == name
    {
        return true;
    }
    // comm is cut at 15 bytes; argv[0] carries the full name.
    let Ok(cmdline) = fs::read(proc_path(pid, "cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let base = argv0.rsplit(|b| *b == b'/').next().unwrap_or_default();
    base == name.as_bytes()
}

/// System constants needed to turn `/proc` numbers into units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysConf {
    /// Clock ticks per second (`_SC_CLK_TCK`).
    pub ticks_per_sec: u64,
    /// Page size in bytes (`_SC_PAGESIZE`).
    pub page_size: u64,
}

impl SysConf {
    /// Reads the constants from the running system, falling back to the usual Linux values.
    pub fn get() -> SysConf {
        #[allow(unsafe_code)]
        // SAFETY: sysconf takes an integer name, touches no caller memory and is thread-safe.
        let (tck, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        SysConf {
            ticks_per_sec: u64::try_from(tck).ok().filter(|v| *v > 0).unwrap_or(100),
            page_size: u64::try_from(page).ok().filter(|v| *v > 0).unwrap_or(4096),
        }
    }
}

/// One reading of a process's resources.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResourceSample {
    /// The process.
    pub pid: u32,
    /// When it was read.
    pub at: Timestamp,
    /// Scheduling state.
    pub state: ProcState,
    /// User plus kernel CPU time in clock ticks (cumulative).
    pub cpu_ticks: u64,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
}

/// Reads state, CPU ticks, RSS and open fds of `pid` at time `at`.
pub fn sample_resources(
    pid: u32,
    at: Timestamp,
    sys: SysConf,
) -> Result<ResourceSample, ProcError> {
    let stat = read_stat(pid)?;
    let open_fds = count_open_fds(pid)?;
    Ok(ResourceSample {
        pid,
        at,
        state: stat.state,
        cpu_ticks: stat.cpu_ticks(),
        rss_bytes: stat.rss_pages.saturating_mul(sys.page_size),
        open_fds,
    })
}

/// CPU use between two samples of the same process, as a fraction of one core.
///
/// `None` when the samples are of different processes, out of order, or less than 1 ms apart.
pub fn cpu_fraction(earlier: &ResourceSample, later: &ResourceSample, sys: SysConf) -> Option<f64> {
    if earlier.pid != later.pid {
        return None;
    }
    let elapsed: Duration = later.at.since(earlier.at);
    if elapsed < Duration::from_millis(1) {
        return None;
    }
    let ticks = later.cpu_ticks.checked_sub(earlier.cpu_ticks)?;
    Some(ticks as f64 / sys.ticks_per_sec as f64 / elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_parens_and_spaces_in_comm() {
        let text = "4242 (my (weird) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    17 5 0 0 20 0 1 0 12345 10000000 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = parse_stat(4242, text).unwrap();
        assert_eq!(s.state, ProcState::Sleeping);
        assert_eq!(s.utime_ticks, 17);
        assert_eq!(s.stime_ticks, 5);
        assert_eq!(s.rss_pages, 321);
        assert_eq!(s.cpu_ticks(), 22);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert_eq!(parse_stat(1, "1 (x) S 0 1"), None);
        assert_eq!(parse_stat(1, "garbage"), None);
        assert_eq!(parse_stat(1, ""), None);
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        let sys = SysConf::get();
        let s = sample_resources(pid, Timestamp::from_secs(1), sys).unwrap();
        assert!(s.state.is_alive());
        assert!(s.rss_bytes > 0);
        assert!(s.open_fds >= 3);
    }

    #[test]
    fn cpu_fraction_from_tick_delta() {
        let sys = SysConf {
            ticks_per_sec: 100,
            page_size: 4096,
        };
        let a = ResourceSample {
            pid: 7,
            at: Timestamp::from_secs(10),
            state: ProcState::Running,
            cpu_ticks: 1000,
            rss_bytes: 0,
            open_fds: 0,
        };
        let b = ResourceSample {
            at: Timestamp::from_secs(12),
            cpu_ticks: 1100,
            ..a
        };
        assert_eq!(cpu_fraction(&a, &b, sys), Some(0.5));
        assert_eq!(cpu_fraction(&b, &a, sys), None);
        assert_eq!(cpu_fraction(&a, &ResourceSample { pid: 8, ..b }, sys), None);
    }

    #[test]
    fn missing_process_is_a_clear_error() {
        // Pids above pid_max (at most 2^22) never exist.
        let err = read_stat(4_194_305 + 17).unwrap_err();
        assert!(matches!(err, ProcError::NoSuchProcess { .. }), "{err}");
    }
}
