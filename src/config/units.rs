//! Human units in the config: durations (`30s`, `500ms`, `2m`, `1h`, `1d`) and sizes
//! (`8MiB`, `512KiB`, `1MB`, `4096`).

use std::time::Duration;

/// Longest duration the config takes: a hundred years, in milliseconds. Anything longer
/// means "never" to a person, and is refused rather than wrapped or carried into deadline
/// arithmetic that would overflow.
const MAX_DURATION_MS: u64 = 100 * 365 * 86_400_000;

/// The duration units, largest first, in milliseconds: read by [`duration`], written by
/// [`format_duration`].
const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a duration; the message says what is accepted.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. \"30s\", \"500ms\", \"2m\""))?;
    let (_, per) = DURATION_UNITS
        .into_iter()
        .find(|(name, _)| *name == unit)
        .ok_or_else(|| format!("`{s}` has no known unit: use ms, s, m, h or d"))?;
    let ms = n
        .checked_mul(per)
        .filter(|&ms| ms <= MAX_DURATION_MS)
        .ok_or_else(|| format!("`{s}` is too long: at most 36500d"))?;
    Ok(Duration::from_millis(ms))
}

/// Writes a duration the way [`duration`] reads it, in the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let (unit, per) = DURATION_UNITS
        .into_iter()
        .find(|&(_, per)| ms > 0 && ms % u128::from(per) == 0)
        .unwrap_or(("ms", 1));
    format!("{}{unit}", ms / u128::from(per))
}

/// Parses a size in bytes.
pub fn size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size: write e.g. \"8MiB\" or \"512KiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{s}` has no known unit: use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert!(duration("30").is_err() && duration("s").is_err() && duration("3 weeks").is_err());
        // A count that would overflow once multiplied out is refused, not wrapped.
        assert_eq!(
            duration("36500d").unwrap(),
            Duration::from_secs(36_500 * 86_400)
        );
        for long in [
            "36501d",
            "213503982334601d",
            "18446744073709551615h",
            "3153600001s",
        ] {
            let e = duration(long).unwrap_err();
            assert!(e.contains("too long"), "{long}: {e}");
        }
        for s in ["400d", "36h", "90m", "45s", "1500ms", "0ms"] {
            assert_eq!(format_duration(duration(s).unwrap()), s);
        }
        assert_eq!(size("8MiB").unwrap(), 8 << 20);
        assert_eq!(size("1MB").unwrap(), 1_000_000);
        assert_eq!(size("4096").unwrap(), 4096);
        assert!(size("8 mb").is_err() && size("lots").is_err());
    }
}
