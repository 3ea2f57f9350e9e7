//! Time as medic sees it: an injected [`Clock`] and millisecond [`Timestamp`]s.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (or since the start of a simulation).
///
/// Arithmetic saturates: time never goes below zero and never wraps.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// A timestamp `s` seconds after the epoch.
    pub const fn from_secs(s: u64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Seconds since the epoch, as a float (for features and reports).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// From this instant on (2000-01-01T00:00:00Z) a timestamp is shown as a UTC date and time;
/// before it, as the offset from the epoch, which is how virtual time in simulations and tests
/// reads best.
const WALL_CLOCK_FROM_MS: u64 = 946_684_800_000;

impl fmt::Display for Timestamp {
    /// `2026-11-27T07:26:58.102Z` for wall-clock times, `t+77.000s` for virtual ones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < WALL_CLOCK_FROM_MS {
            fmt::Debug::fmt(self, f)
        } else {
            f.write_str(&self.rfc3339())
        }
    }
}

impl Timestamp {
    /// This time as RFC 3339 UTC with milliseconds, e.g. `2026-01-01T00:00:00.000Z`.
    pub fn rfc3339(self) -> String {
        let (secs, ms) = (self.0 / 1000, self.0 % 1000);
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (H. Hinnant's `civil_from_days`,
/// for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A source of the current time. Decisions take a [`Timestamp`]; drivers get it from a `Clock`.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock. The only place in medic allowed to read system time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A manual clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start.0)))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `t` (which may be earlier: tests of clock skew need that).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_secs(10));
        let shared = c.clone();
        assert_eq!(c.now(), Timestamp::from_secs(10));
        shared.advance(Duration::from_millis(1500));
        assert_eq!(c.now().as_millis(), 11_500);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(1);
        assert_eq!(t - Duration::from_secs(5), Timestamp::ZERO);
        assert_eq!(Timestamp::ZERO.since(t), Duration::ZERO);
        assert_eq!(
            Timestamp::from_millis(u64::MAX) + Duration::from_secs(1),
            Timestamp::from_millis(u64::MAX)
        );
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        // Including the epoch and times before 2000, which Display shows as offsets.
        assert_eq!(Timestamp::ZERO.rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::from_millis(951_782_400_000).rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_795_746_325_123).rfc3339(),
            "2026-11-27T02:25:25.123Z"
        );
        assert_eq!(
            Timestamp::from_millis(4_102_444_799_999).rfc3339(),
            "2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn wall_clock_times_display_as_utc_and_virtual_ones_as_offsets() {
        assert_eq!(Timestamp::from_millis(77_000).to_string(), "t+77.000s");
        assert_eq!(
            Timestamp::from_millis(946_684_800_000).to_string(),
            "2000-01-01T00:00:00.000Z"
        );
        // 2024-02-29 (a leap day) and the last millisecond of 2026.
        assert_eq!(
            Timestamp::from_millis(1_709_210_096_789).to_string(),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_798_761_599_999).to_string(),
            "2026-12-31T23:59:59.999Z"
        );
        assert_eq!(
            format!("{:?}", Timestamp::from_millis(1_709_210_096_789)),
            "t+1709210096.789s"
        );
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_secs(1_577_836_800));
    }
}
