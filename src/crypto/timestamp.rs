//! RFC 3339 UTC timestamps for the `created` field of key versions (stage: crypto,
//! keyring maintenance), without a date crate.
//!
//! Informational only: nothing depends on a timestamp for security. Never panics on a
//! clock before 1970 (it writes the epoch instead).

use std::time::{SystemTime, UNIX_EPOCH};

const SECS_PER_DAY: u64 = 86_400;

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339_utc(SystemTime::now())
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`, whole seconds, UTC.
pub(crate) fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days(secs / SECS_PER_DAY);
    let sec_of_day = secs % SECS_PER_DAY;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        sec_of_day / 3600,
        sec_of_day % 3600 / 60,
        sec_of_day % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
///
/// Counts from 0000-03-01 instead, so that the leap day is the last day of a
/// "year": then a year is 365 days plus one every 4, minus one every 100, plus one
/// every 400, and months from March on have lengths that a linear formula gives.
fn civil_from_days(days_since_epoch: u64) -> (u64, u64, u64) {
    const DAYS_PER_400_YEARS: u64 = 146_097;
    // Days from 0000-03-01 to 1970-01-01.
    let days = days_since_epoch + 719_468;
    let cycle = days / DAYS_PER_400_YEARS;
    let day_of_cycle = days % DAYS_PER_400_YEARS;
    // Remove the leap days the cycle has had so far, then divide by 365.
    let year_of_cycle = (day_of_cycle - day_of_cycle / 1_460 + day_of_cycle / 36_524
        - day_of_cycle / (DAYS_PER_400_YEARS - 1))
        / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    // March = 0 ... February = 11; month lengths 31,30,31,30,31 repeat from March.
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = cycle * 400 + year_of_cycle + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> String {
        rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(at(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(1_795_960_800), "2026-11-29T14:00:00Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(at(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn clock_before_epoch_gives_epoch() {
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }
}
