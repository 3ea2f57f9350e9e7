//! [`Timestamp`] → RFC 3339 text in UTC, as Alertmanager's API wants it.

use medic_core::Timestamp;

/// `2026-11-27T02:25:25.123Z` for a timestamp in milliseconds since the Unix epoch.
pub fn format(t: Timestamp) -> String {
    let ms = t.as_millis();
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm,
/// restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(Timestamp::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format(Timestamp::from_millis(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format(Timestamp::from_millis(1_795_746_325_123)),
            "2026-11-27T02:25:25.123Z"
        );
        assert_eq!(
            format(Timestamp::from_millis(4_102_444_799_999)),
            "2099-12-31T23:59:59.999Z"
        );
    }
}
