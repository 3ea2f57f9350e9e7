//! The faults the agent can be told to have, and their current state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A fault the agent can simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultKind {
    /// Exit with status 1 (right after answering the request that injected it).
    Crash,
    /// Stop answering anything, `/health` included. Only a restart clears it.
    Hang,
    /// Allocate and touch memory at `--leak-mb-per-s` until `--leak-limit-mb`.
    Leak,
    /// `/work` and `/health` answer 500; the error counter rises.
    Errors,
    /// Latency creep: `/work` gets slower by `--slow-ms-per-s` every second.
    Slow,
    /// Report the dependency down: `/ready` answers 503.
    Dependency,
    /// Persist a corrupt-state marker in `--state-dir`: like `errors`, but it survives restarts
    /// and `POST /fault/clear`; only removing the state directory (a reset) clears it.
    CorruptState,
}

impl FaultKind {
    /// Every kind, in the order the metrics list them.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Crash,
        FaultKind::Hang,
        FaultKind::Leak,
        FaultKind::Errors,
        FaultKind::Slow,
        FaultKind::Dependency,
        FaultKind::CorruptState,
    ];

    /// The kind's name in URLs, flags and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Hang => "hang",
            FaultKind::Leak => "leak",
            FaultKind::Errors => "errors",
            FaultKind::Slow => "slow",
            FaultKind::Dependency => "dependency",
            FaultKind::CorruptState => "corrupt-state",
        }
    }

    /// Parses a kind as written in `POST /fault/{kind}` (`_` accepted for `-`).
    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.as_str().replace('-', "_") == s)
    }
}

/// The currently active faults. Shared by every handler; lock-free except for the slow-fault
/// start time.
#[derive(Debug, Default)]
pub struct Faults {
    /// Crash was injected (the process is about to exit).
    pub crash: AtomicBool,
    /// Every handler blocks forever.
    pub hang: AtomicBool,
    /// The leak task allocates.
    pub leak: AtomicBool,
    /// 500s on `/work` and `/health`.
    pub errors: AtomicBool,
    /// `/ready` reports the dependency down.
    pub dependency: AtomicBool,
    /// The persisted corrupt-state marker was found or written.
    pub corrupt_state: AtomicBool,
    slow_since: Mutex<Option<Instant>>,
}

impl Faults {
    /// Whether `kind` is active.
    pub fn is_active(&self, kind: FaultKind) -> bool {
        match kind {
            FaultKind::Crash => self.crash.load(Ordering::Relaxed),
            FaultKind::Hang => self.hang.load(Ordering::Relaxed),
            FaultKind::Leak => self.leak.load(Ordering::Relaxed),
            FaultKind::Errors => self.errors.load(Ordering::Relaxed),
            FaultKind::Slow => self.slow_since().is_some(),
            FaultKind::Dependency => self.dependency.load(Ordering::Relaxed),
            FaultKind::CorruptState => self.corrupt_state.load(Ordering::Relaxed),
        }
    }

    /// Whether requests should fail with 500 (the errors fault or corrupt state).
    pub fn failing(&self) -> bool {
        self.errors.load(Ordering::Relaxed) || self.corrupt_state.load(Ordering::Relaxed)
    }

    /// Starts latency creep now (keeps the original start if already creeping).
    pub fn start_slow(&self, now: Instant) {
        let mut since = self.slow_since.lock().unwrap_or_else(|e| e.into_inner());
        since.get_or_insert(now);
    }

    /// When latency creep started.
    pub fn slow_since(&self) -> Option<Instant> {
        *self.slow_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The delay latency creep adds at `now`: `ms_per_s` for every second since it started,
    /// capped at `cap`.
    pub fn slow_delay(&self, now: Instant, ms_per_s: u64, cap: Duration) -> Duration {
        match self.slow_since() {
            None => Duration::ZERO,
            Some(since) => {
                let secs = now.saturating_duration_since(since).as_secs_f64();
                Duration::from_secs_f64(secs * ms_per_s as f64 / 1000.0).min(cap)
            }
        }
    }

    /// Clears every fault that can be cleared at run time: errors, slow, leak, dependency.
    /// Hang cannot be cleared (nothing answers), nor crash, nor corrupt state (on disk).
    pub fn clear(&self) {
        self.errors.store(false, Ordering::Relaxed);
        self.leak.store(false, Ordering::Relaxed);
        self.dependency.store(false, Ordering::Relaxed);
        *self.slow_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_names() {
        assert_eq!(FaultKind::parse("crash"), Some(FaultKind::Crash));
        assert_eq!(
            FaultKind::parse("corrupt_state"),
            Some(FaultKind::CorruptState)
        );
        assert_eq!(
            FaultKind::parse("corrupt-state"),
            Some(FaultKind::CorruptState)
        );
        assert_eq!(FaultKind::parse("clear"), None);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // an arbitrary base instant; only offsets matter
    fn slow_delay_grows_then_caps() {
        let f = Faults::default();
        let t0 = Instant::now();
        assert_eq!(
            f.slow_delay(t0, 100, Duration::from_secs(1)),
            Duration::ZERO
        );
        f.start_slow(t0);
        let d = f.slow_delay(t0 + Duration::from_secs(3), 100, Duration::from_secs(1));
        assert_eq!(d, Duration::from_millis(300));
        let d = f.slow_delay(t0 + Duration::from_secs(30), 100, Duration::from_secs(1));
        assert_eq!(d, Duration::from_secs(1));
        f.clear();
        assert!(!f.is_active(FaultKind::Slow));
    }
}
