//! Exact decimals (`numeric(p, s)`): a value is an integer count of
//! 10^-scale units, so `12.50` in a `numeric(10,2)` column is 1250 at
//! scale 2. This module is the one place that reads, prints and rescales
//! such values; rounding is half away from zero, as Postgres rounds
//! `numeric`.

/// The largest precision a `numeric` column may have: the digits the wire
/// encoding (a 96-bit mantissa) can carry.
pub const MAX_PRECISION: u8 = 28;

/// Why text is not a `numeric` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a number.
    Invalid,
    /// A number, but too large for 128-bit units at the wanted scale.
    Overflow,
}

/// The text of `units` at `scale`, with exactly `scale` digits after the
/// point (`1250` at scale 2 is `12.50`), as Postgres prints `numeric`.
pub fn to_text(units: i128, scale: u8) -> String {
    let digits = units.unsigned_abs().to_string();
    let sign = if units < 0 { "-" } else { "" };
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// `units` at scale `from`, moved to scale `to`, rounding half away from
/// zero when digits are dropped; `None` when the result does not fit.
pub fn rescale(units: i128, from: u8, to: u8) -> Option<i128> {
    if to >= from {
        return units.checked_mul(10i128.checked_pow((to - from) as u32)?);
    }
    let divisor = 10i128.checked_pow((from - to) as u32)?;
    let (quotient, remainder) = (units / divisor, units % divisor);
    Some(if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() { quotient + units.signum() } else { quotient })
}

/// An Arrow decimal (`units` at `scale`, which may be negative: units of
/// 10^-scale) as units at a scale of zero or more; `None` when it does not
/// fit.
pub fn from_decimal(units: i128, scale: i8) -> Option<(i128, u8)> {
    match u8::try_from(scale) {
        Ok(scale) => Some((units, scale)),
        Err(_) => Some((rescale(units, 0, scale.unsigned_abs())?, 0)),
    }
}

/// Whether `units` has at most `precision` digits.
pub fn fits(units: i128, precision: u8) -> bool {
    10u128.checked_pow(precision as u32).is_none_or(|limit| units.unsigned_abs() < limit)
}

/// Reads decimal text (`12.5`, `-0.125`, `+3`, `.5`, `1e3`, `1.5E-2`,
/// surrounding blanks allowed) as units at `scale`, rounding half away
/// from zero.
pub fn parse(text: &str, scale: u8) -> Result<i128, ParseError> {
    let t = text.trim();
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(at) => (&t[..at], t[at + 1..].parse::<i32>().map_err(|_| ParseError::Invalid)?),
        None => (t, 0),
    };
    let (negative, unsigned) = match mantissa.as_bytes().first() {
        Some(b'-') => (true, &mantissa[1..]),
        Some(b'+') => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
        return Err(ParseError::Invalid);
    }
    // The digits as one integer at scale `frac.len() - exponent`; leading
    // zeros carry no value, so they cannot overflow.
    let digits = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    let mut units: i128 =
        if significant.is_empty() { 0 } else { significant.parse().map_err(|_| ParseError::Overflow)? };
    if negative {
        units = -units;
    }
    let from = frac.len() as i64 - exponent as i64;
    let to = scale as i64;
    let moved = if from > to {
        // Dropping digits: more than 38 of them leaves nothing but zero.
        let dropped = (from - to).min(u8::MAX as i64) as u8;
        if dropped > 38 {
            Some(0)
        } else {
            rescale(units, dropped, 0)
        }
    } else {
        u8::try_from(to - from).ok().and_then(|grow| rescale(units, 0, grow))
    };
    moved.ok_or(ParseError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_exactly_scale_digits() {
        assert_eq!(to_text(1250, 2), "12.50");
        assert_eq!(to_text(-5, 2), "-0.05");
        assert_eq!(to_text(7, 0), "7");
        assert_eq!(to_text(0, 3), "0.000");
        assert_eq!(to_text(i128::MIN, 0), i128::MIN.to_string());
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(rescale(125, 2, 1), Some(13));
        assert_eq!(rescale(-125, 2, 1), Some(-13));
        assert_eq!(rescale(124, 2, 1), Some(12));
        assert_eq!(rescale(12, 1, 3), Some(1200));
        assert_eq!(rescale(i128::MAX, 0, 1), None);
    }

    #[test]
    fn reads_postgres_numeric_input() {
        assert_eq!(parse("12.5", 2), Ok(1250));
        assert_eq!(parse(" -0.125 ", 2), Ok(-13));
        assert_eq!(parse("+3", 0), Ok(3));
        assert_eq!(parse(".5", 1), Ok(5));
        assert_eq!(parse("1e3", 0), Ok(1000));
        assert_eq!(parse("1.5E-2", 3), Ok(15));
        assert_eq!(parse("0000000000000000000000000000000000000000001", 2), Ok(100));
        assert_eq!(parse("1e-100", 2), Ok(0));
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "1e+x", "12 3", "--1"] {
            assert_eq!(parse(bad, 2), Err(ParseError::Invalid), "{bad:?}");
        }
        assert_eq!(parse("1e40", 0), Err(ParseError::Overflow));
        assert_eq!(parse(&"9".repeat(40), 0), Err(ParseError::Overflow));
    }

    #[test]
    fn arrow_decimals_of_any_scale() {
        assert_eq!(from_decimal(125, 2), Some((125, 2)));
        assert_eq!(from_decimal(12, -2), Some((1200, 0)));
        assert_eq!(from_decimal(i128::MAX, -1), None);
    }

    #[test]
    fn precision_counts_digits() {
        assert!(fits(99_999, 5));
        assert!(!fits(100_000, 5));
        assert!(fits(-99_999, 5));
        assert!(fits(i128::MAX, 39));
    }
}
