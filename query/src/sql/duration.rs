//! Durations in options and clauses: `'7 days'`, `'30s'`, `'1 hour 30 minutes'`.

use crate::error::{Error, Result};

/// Parses a duration into microseconds. Accepts one or more `<number> <unit>`
/// pairs (the space is optional); units: us, ms, s/sec/second(s),
/// m/min/minute(s), h/hour(s), d/day(s), w/week(s).
pub fn parse_duration(text: &str) -> Result<i64> {
    let bad =
        || Error::InvalidParameter(format!("invalid duration \"{text}\" (expected e.g. '30s', '5 minutes', '7 days')"));
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = rest[num_end..].trim_start();
        let unit_end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = rest[..unit_end].to_ascii_lowercase();
        rest = rest[unit_end..].trim_start();
        let scale: f64 = match unit.as_str() {
            "us" | "microsecond" | "microseconds" => 1.0,
            "ms" | "millisecond" | "milliseconds" => 1e3,
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1e6,
            "m" | "min" | "mins" | "minute" | "minutes" => 60e6,
            "h" | "hour" | "hours" => 3600e6,
            "d" | "day" | "days" => 86_400e6,
            "w" | "week" | "weeks" => 604_800e6,
            _ => return Err(bad()),
        };
        total += (number * scale) as i128;
    }
    i64::try_from(total).map_err(|_| bad())
}

/// Parses a size in bytes: a plain number, or a number with a unit
/// (`'512 kB'`, `'64 MB'`, `'10 GB'`, `'1 TB'` in powers of 1000; `KiB`,
/// `MiB`, `GiB`, `TiB` in powers of 1024; `B`). Must be positive.
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || Error::InvalidParameter(format!("invalid size \"{text}\" (expected e.g. 4096, '64 MB', '10 GB')"));
    let s = text.trim();
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let number: f64 = s[..num_end].parse().map_err(|_| bad())?;
    let scale: f64 = match s[num_end..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = number * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Formats a size in the largest unit that keeps it whole (`'10 GB'`).
pub fn format_size(bytes: u64) -> String {
    for (scale, name) in [(1_000_000_000_000, "TB"), (1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "kB")] {
        if bytes.is_multiple_of(scale) {
            return format!("{} {name}", bytes / scale);
        }
    }
    format!("{bytes} B")
}

/// Formats microseconds in the largest whole unit (`'7 days'`, `'90 s'`).
pub fn format_duration(micros: i64) -> String {
    const UNITS: [(i64, &str); 5] = [
        (86_400_000_000, "days"),
        (3_600_000_000, "hours"),
        (60_000_000, "minutes"),
        (1_000_000, "seconds"),
        (1_000, "ms"),
    ];
    for (scale, name) in UNITS {
        if micros != 0 && micros % scale == 0 {
            return format!("{} {name}", micros / scale);
        }
    }
    format!("{micros} us")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("30s").unwrap(), 30_000_000);
        assert_eq!(parse_duration("7 days").unwrap(), 7 * 86_400_000_000);
        assert_eq!(parse_duration("1 hour 30 minutes").unwrap(), 5_400_000_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250_000);
        assert_eq!(parse_duration("5").unwrap(), 5_000_000);
        assert!(parse_duration("").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for d in ["7 days", "2 hours", "90 seconds", "250 ms"] {
            let micros = parse_duration(d).unwrap();
            assert_eq!(parse_duration(&format_duration(micros)).unwrap(), micros);
        }
    }
}
