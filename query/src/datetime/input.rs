//! Date and time input.
//!
//! Arrow's parser, which DataFusion's casts and Brikk's INSERT, COPY and
//! parameter paths use, takes `2026-11-26 10:00:00` but not
//! `2026-11-26 10:00`, `2026-1-5` or `9:30`, and none of Postgres's
//! special values. [`rewrite`] turns such text into a spelling Arrow
//! reads, and leaves everything else alone (so Arrow's own error still
//! names the original text). [`super::PostgresDateTimes`], an analyzer rule
//! that runs after type coercion, reads every text literal cast to a
//! timestamp or date with it ([`respell`]), once, when the statement is
//! planned: `'2026-11-26 10:00'::timestamptz`, and comparisons
//! such as `at > '2026-11-26 09:00'`.
//!
//! Accepted besides what Arrow reads:
//! - a date with one-digit month or day (`2026-1-5`);
//! - a time of day without seconds, or with a one-digit hour
//!   (`2026-11-26 9:30`, with any offset or zone after it);
//! - `now`, `today`, `tomorrow`, `yesterday` and `epoch`, in any case.
//!   As in Postgres they are resolved when read: `now` is the current
//!   instant; `today` and its neighbours are midnights of the session's
//!   zone. A prepared statement whose text holds one keeps the value it
//!   had when it was planned, as Postgres's documentation warns.

use chrono::{DateTime, Days, NaiveDate, Utc};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Cast, Expr, TryCast};

/// What a text is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `timestamp`: a wall-clock time, no zone.
    Timestamp,
    /// `timestamptz`: an instant; text without an offset is a time of the
    /// session's zone.
    TimestampTz,
    /// `date`.
    Date,
}

impl Target {
    /// The target of a cast to `dt`, if it is a timestamp or a date.
    pub fn of(dt: &DataType) -> Option<Target> {
        match dt {
            DataType::Timestamp(_, None) => Some(Target::Timestamp),
            DataType::Timestamp(_, Some(_)) => Some(Target::TimestampTz),
            DataType::Date32 | DataType::Date64 => Some(Target::Date),
            _ => None,
        }
    }
}

/// `text` spelled so Arrow's parser reads it as Postgres would, or `None`
/// when it needs no change (or is not a date/time Brikk knows how to
/// respell; Arrow then reports it). `zone` is the session's zone as Arrow
/// spells it (`+00:00`, `Europe/Oslo`); it places `today` and, for a
/// `timestamp`, `now`.
pub fn rewrite(text: &str, target: Target, zone: &str) -> Option<String> {
    // The usual case, checked without allocating: every stored timestamp
    // that COPY or INSERT reads passes here.
    if arrow_reads(text) {
        return None;
    }
    let t = text.trim();
    if let Some(s) = special(t, target, zone) {
        return Some(s);
    }
    let canonical = canonical(t)?;
    (canonical != text).then_some(canonical)
}

/// Whether `text` starts as Arrow's parser reads it, with nothing to
/// respell: `YYYY-MM-DD`, alone or followed by `( |T)HH:MM:SS`.
fn arrow_reads(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let date = digits(0..4) && at(4, b'-') && digits(5..7) && at(7, b'-') && digits(8..10);
    let time = || {
        matches!(b.get(10), Some(b' ' | b'T' | b't'))
            && digits(11..13)
            && at(13, b':')
            && digits(14..16)
            && at(16, b':')
            && digits(17..19)
    };
    date && (b.len() == 10 || time())
}

/// The special values, resolved now.
fn special(t: &str, target: Target, zone: &str) -> Option<String> {
    let word = t.to_ascii_lowercase();
    let days: i64 = match word.as_str() {
        "epoch" => {
            return Some(
                match target {
                    Target::Timestamp => "1970-01-01 00:00:00",
                    Target::TimestampTz => "1970-01-01 00:00:00Z",
                    Target::Date => "1970-01-01",
                }
                .to_string(),
            )
        }
        "now" => {
            let now = Utc::now();
            return Some(match target {
                Target::TimestampTz => now.format("%Y-%m-%d %H:%M:%S%.6fZ").to_string(),
                Target::Timestamp => local(now, zone).format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
                Target::Date => local(now, zone).format("%Y-%m-%d").to_string(),
            });
        }
        "today" => 0,
        "tomorrow" => 1,
        "yesterday" => -1,
        _ => return None,
    };
    let today: NaiveDate = local(Utc::now(), zone).date();
    let day = if days >= 0 {
        today.checked_add_days(Days::new(days as u64))
    } else {
        today.checked_sub_days(Days::new(days.unsigned_abs()))
    }?;
    // A date alone is midnight; for `timestamptz` the cast reads it in the
    // session's zone.
    Some(day.format("%Y-%m-%d").to_string())
}

/// `now` as a wall-clock time of `zone` (UTC if Arrow cannot read it).
fn local(now: DateTime<Utc>, zone: &str) -> chrono::NaiveDateTime {
    match zone.parse::<Tz>() {
        Ok(tz) => now.with_timezone(&tz).naive_local(),
        Err(_) => now.naive_utc(),
    }
}

/// `YYYY-M-D[( |T)H:MM[:SS[.f]]][rest]` as `YYYY-MM-DD[( |T)HH:MM:SS[.f]][rest]`,
/// `rest` (an offset or zone) unchanged. `None` if `t` does not start so.
fn canonical(t: &str) -> Option<String> {
    let b = t.as_bytes();
    let mut i = 0;
    let year = digits(b, &mut i, 4, 4)?;
    expect(b, &mut i, b'-')?;
    let month = digits(b, &mut i, 1, 2)?;
    expect(b, &mut i, b'-')?;
    let day = digits(b, &mut i, 1, 2)?;
    let mut out = format!("{year:04}-{month:02}-{day:02}");
    if i == b.len() {
        return Some(out);
    }
    let separator = b[i] as char;
    if !matches!(separator, ' ' | 'T' | 't') {
        return None;
    }
    i += 1;
    let hour = digits(b, &mut i, 1, 2)?;
    expect(b, &mut i, b':')?;
    let minute = digits(b, &mut i, 2, 2)?;
    let with_seconds = b.get(i) == Some(&b':');
    let second = match with_seconds {
        true => {
            i += 1;
            digits(b, &mut i, 2, 2)?
        }
        false => 0,
    };
    out.push_str(&format!("{separator}{hour:02}:{minute:02}:{second:02}"));
    if with_seconds && b.get(i) == Some(&b'.') {
        let start = i;
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        out.push_str(&t[start..i]);
    }
    out.push_str(&t[i..]);
    Some(out)
}

/// The number of `min..=max` ASCII digits at `*i`, advancing past them.
fn digits(b: &[u8], i: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *i;
    while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i - start < min || b.get(*i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(&b[start..*i]).ok()?.parse().ok()
}

fn expect(b: &[u8], i: &mut usize, c: u8) -> Option<()> {
    (b.get(*i) == Some(&c)).then(|| *i += 1)
}

/// `e` as a timestamp or date literal, if it is a text literal cast to
/// one: the text is read now, respelled by [`rewrite`] if need be, as
/// Postgres reads a constant when it parses a statement. Text that does not
/// read is an error that names it, or NULL under `TRY_CAST`.
pub(super) fn respell(e: Expr, zone: &str) -> Result<Transformed<Expr>> {
    let (inner, field, try_cast) = match &e {
        Expr::Cast(Cast { expr, field }) => (expr, field, false),
        Expr::TryCast(TryCast { expr, field }) => (expr, field, true),
        _ => return Ok(Transformed::no(e)),
    };
    let to = field.data_type();
    let Some(target) = Target::of(to) else { return Ok(Transformed::no(e)) };
    let Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) =
        inner.as_ref()
    else {
        return Ok(Transformed::no(e));
    };
    // A cast to `timestamptz` reads text in the zone the cast names.
    let read_in = match to {
        DataType::Timestamp(_, Some(tz)) => tz.as_ref(),
        _ => zone,
    };
    let text = rewrite(s, target, read_in).unwrap_or_else(|| s.clone());
    let value = match ScalarValue::Utf8(Some(text)).cast_to(to) {
        Ok(v) => v,
        Err(_) if try_cast => ScalarValue::try_from(to)?,
        Err(_) => {
            let msg = format!("invalid input syntax for type {}: \"{s}\"", crate::types::pg_name_of(to));
            return Err(DataFusionError::ArrowError(Box::new(ArrowError::ParseError(msg)), None));
        }
    };
    Ok(Transformed::yes(Expr::Literal(value, None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UTC;

    #[test]
    fn postgres_spellings_become_arrow_spellings() {
        let ts = |s: &str| rewrite(s, Target::TimestampTz, UTC);
        assert_eq!(ts("2026-11-26 10:00").as_deref(), Some("2026-11-26 10:00:00"));
        assert_eq!(ts("2026-11-26T9:05").as_deref(), Some("2026-11-26T09:05:00"));
        assert_eq!(ts("2026-1-5").as_deref(), Some("2026-01-05"));
        assert_eq!(ts("2026-11-26 10:00+02").as_deref(), Some("2026-11-26 10:00:00+02"));
        assert_eq!(ts("2026-11-26 10:00 Europe/Oslo").as_deref(), Some("2026-11-26 10:00:00 Europe/Oslo"));
        assert_eq!(ts("2026-11-26 9:00:07.25").as_deref(), Some("2026-11-26 09:00:07.25"));
        assert_eq!(ts(" 2026-11-26 ").as_deref(), Some("2026-11-26"));
        // Already Arrow's spelling, or not a date Brikk respells.
        assert!(
            arrow_reads("2026-11-26") && arrow_reads("2026-11-26T10:00:00.5+02") && !arrow_reads("2026-11-26 10:00")
        );
        assert_eq!(ts("2026-11-26 10:00:00"), None);
        assert_eq!(ts("2026-11-26T10:00:00Z"), None);
        assert_eq!(ts("Nov 26 2026"), None);
        assert_eq!(ts("2026-11-26 10"), None);
        assert_eq!(ts("2026-111-26"), None);
    }

    #[test]
    fn special_values_are_resolved_when_read() {
        assert_eq!(rewrite("EPOCH", Target::TimestampTz, UTC).as_deref(), Some("1970-01-01 00:00:00Z"));
        assert_eq!(rewrite("epoch", Target::Date, UTC).as_deref(), Some("1970-01-01"));
        let today = Utc::now().date_naive();
        let tomorrow = today.succ_opt().unwrap().format("%Y-%m-%d").to_string();
        assert_eq!(rewrite("Tomorrow", Target::Date, UTC), Some(tomorrow));
        let now = rewrite("now", Target::TimestampTz, UTC).unwrap();
        assert!(now.ends_with('Z') && now.starts_with(&today.format("%Y-%m-%d").to_string()[..4]), "{now}");
        // In a zone 14 hours ahead, the local date is today or tomorrow.
        let kiritimati = rewrite("today", Target::Date, "Pacific/Kiritimati").unwrap();
        let candidates =
            [today.format("%Y-%m-%d").to_string(), today.succ_opt().unwrap().format("%Y-%m-%d").to_string()];
        assert!(candidates.contains(&kiritimati), "{kiritimati}");
    }
}
