//! Human units in the config: durations (`30s`, `500ms`, `2m`, `1h`, `1d`) and sizes
//! (`8MiB`, `512KiB`, `1MB`, `4096`).

use std::time::Duration;

/// Longest duration the config takes: a hundred years. Anything longer means "never" to a
/// person, and is refused rather than wrapped or carried into deadline arithmetic that
/// would overflow.
const MAX_DURATION_SECS: u64 = 100 * 365 * 86_400;

/// Parses a duration; the message says what is accepted.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. \"30s\", \"500ms\", \"2m\""))?;
    let (per, millis) = match unit {
        "ms" => (1, true),
        "s" => (1, false),
        "m" => (60, false),
        "h" => (3600, false),
        "d" => (86_400, false),
        _ => return Err(format!("`{s}` has no known unit: use ms, s, m, h or d")),
    };
    let secs = if millis {
        n / 1000
    } else {
        n.saturating_mul(per)
    };
    if secs > MAX_DURATION_SECS {
        return Err(format!("`{s}` is too long: at most 36500d"));
    }
    Ok(if millis {
        Duration::from_millis(n)
    } else {
        Duration::from_secs(secs)
    })
}

/// Writes a duration the way [`duration`] reads it, in the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms > 0 && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
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
