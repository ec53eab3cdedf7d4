//! UTC timestamps for flow events and rotated file names, computed from `SystemTime` alone.
//!
//! Part of the flow log's writer stage. It must never consult the local time zone or the
//! environment: every time tarnkappe writes is UTC, so files from several hosts compare.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time broken into UTC calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

impl Civil {
    /// Times before 1970 cannot happen on a sane clock; they are clamped to the epoch so a
    /// broken clock still yields a well-formed timestamp.
    fn from_system(t: SystemTime) -> Civil {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            millis: since.subsec_millis(),
        }
    }
}

/// `2024-05-01T12:34:56.789Z`: RFC 3339, UTC, always with milliseconds, so that timestamps of
/// one writer sort lexicographically.
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let c = Civil::from_system(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// Formats like [`rfc3339_millis`] for a stream of nearby times: the calendar part is
/// worked out once a second, only the milliseconds anew.
#[derive(Default)]
pub(crate) struct Clock {
    second: Option<u64>,
    text: String,
}

impl Clock {
    pub(crate) fn format(&mut self, t: SystemTime) -> &str {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        if self.second != Some(since.as_secs()) {
            self.text = rfc3339_millis(t);
            self.second = Some(since.as_secs());
        }
        // `.789Z`: the three digits and the zone are rewritten.
        self.text.truncate(self.text.len() - 4);
        let ms = since.subsec_millis();
        for digit in [ms / 100, ms / 10 % 10, ms % 10] {
            self.text.push(char::from(b'0' + digit as u8));
        }
        self.text.push('Z');
        &self.text
    }
}

/// `20240501T123456Z`: the compact form used in rotated file names.
pub(crate) fn compact(t: SystemTime) -> String {
    let c = Civil::from_system(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Parses what [`rfc3339_millis`] writes (a fraction of any length, or none; `Z` only).
/// Used on restart to learn when the current file began; `None` for anything else.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        let part = s.get(from..to)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 || year < 1970 {
        return None;
    }
    let nanos = match &s[19..s.len() - 1] {
        "" => 0,
        frac => {
            let digits = frac.strip_prefix('.')?;
            if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            let scale = 10u32.pow(9 - digits.len() as u32);
            digits.parse::<u32>().ok()? * scale
        }
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_as_rfc3339_millis() {
        let mut clock = Clock::default();
        let base = UNIX_EPOCH + Duration::from_secs(1_714_566_896);
        for ms in [0, 1, 9, 10, 99, 100, 789, 999, 1000, 1001, 86_400_123, 5] {
            let t = base + Duration::from_millis(ms);
            assert_eq!(clock.format(t), rfc3339_millis(t), "{ms}");
        }
    }

    fn at(secs: u64, millis: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, millis * 1_000_000)
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_millis(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(at(951_782_400, 5)),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(
            rfc3339_millis(at(1_700_000_000, 123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(compact(at(1_700_000_000, 999)), "20231114T221320Z");
        assert_eq!(
            rfc3339_millis(at(4_107_542_399, 999)),
            "2100-02-28T23:59:59.999Z"
        );
    }

    #[test]
    fn parse_inverts_format_day_by_day() {
        for day in (0..60_000u64).step_by(7) {
            let t = at(day * 86_400 + 45_296, 789);
            assert_eq!(parse_rfc3339(&rfc3339_millis(t)), Some(t), "day {day}");
        }
    }

    #[test]
    fn parse_rejects_other_shapes() {
        for bad in [
            "",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00+02:00",
            "2024-13-01T12:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567890Z",
            "1969-12-31T23:59:59Z",
            "2024-05-01T12:00:0xZ",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(at(1, 0)));
    }
}
