//! Date and time output.
//!
//! pgwire prints six fraction digits always
//! (`10:00:00.000000`) and only the hours of an offset, so a
//! `timestamptz` shown in India's zone read `… 15:30:00.000000+05`: half
//! an hour off for any client that parses it. Postgres prints, in the ISO
//! date style, `2026-11-26 15:30:00+05:30`: fraction digits only when
//! there are some, trailing zeros dropped, and the offset's minutes (and
//! seconds) when they are not zero. The server prints timestamps sent as
//! text with [`timestamps_as_text`], and `COPY … TO` its cells.

use std::fmt::Write;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, StringBuilder, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::{Cast, Expr, ExprSchemable};

/// Whether a session's `DateStyle` prints in the ISO style (Brikk's
/// default; the only one drivers such as pgjdbc accept).
pub fn iso_style(date_style: &str) -> bool {
    date_style.trim_start().get(..3).is_some_and(|s| s.eq_ignore_ascii_case("iso"))
}

/// A timestamp column as Postgres's ISO text (any other column as it is): `timestamp` as
/// `2026-11-26 10:00:00.25`, `timestamptz` in the column's zone with its
/// offset (`… +05:30`). Sub-microsecond digits are dropped, as Postgres
/// keeps microseconds.
pub fn timestamps_as_text(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let DataType::Timestamp(_, zone) = column.data_type() else { return Ok(column.clone()) };
    let zone = zone.as_deref().map(Tz::from_str).transpose()?;
    let micros = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    let micros = micros.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("cast to microseconds");
    let mut out = StringBuilder::with_capacity(micros.len(), micros.len() * 32);
    for v in micros.iter() {
        match v.and_then(DateTime::<Utc>::from_timestamp_micros) {
            Some(t) => {
                match &zone {
                    Some(tz) => write_instant(&mut out, t.with_timezone(tz))?,
                    None => write_wall_clock(&mut out, &t.naive_utc())?,
                }
                out.append_value("");
            }
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

fn write_wall_clock(out: &mut impl Write, t: &chrono::NaiveDateTime) -> Result<(), ArrowError> {
    let fmt = |e: std::fmt::Error| ArrowError::ComputeError(e.to_string());
    let micros = t.nanosecond() / 1_000 % 1_000_000;
    if t.year() < 1 {
        return write_wall_clock_slow(out, t, micros).map_err(fmt);
    }
    // Digits straight into a buffer: this runs for every timestamp cell a
    // text-format client receives, and chrono's `format` parses its
    // pattern each time.
    if t.year() <= 9999 {
        let mut year = *b"0000";
        put_digits(&mut year, t.year() as u32);
        out.write_str(std::str::from_utf8(&year).expect("ASCII digits")).map_err(fmt)?;
    } else {
        write!(out, "{}", t.year()).map_err(fmt)?;
    }
    let mut buf = *b"-00-00 00:00:00.000000";
    put_digits(&mut buf[1..3], t.month());
    put_digits(&mut buf[4..6], t.day());
    put_digits(&mut buf[7..9], t.hour());
    put_digits(&mut buf[10..12], t.minute());
    put_digits(&mut buf[13..15], t.second());
    let len = if micros == 0 {
        15
    } else {
        put_digits(&mut buf[16..22], micros);
        22 - decimal_trailing_zeros(micros)
    };
    out.write_str(std::str::from_utf8(&buf[..len]).expect("ASCII digits")).map_err(fmt)
}

/// Years before 1, through chrono's formatting.
fn write_wall_clock_slow(out: &mut impl Write, t: &chrono::NaiveDateTime, micros: u32) -> std::fmt::Result {
    write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S"))?;
    if micros != 0 {
        let digits = format!("{micros:06}");
        write!(out, ".{}", digits.trim_end_matches('0'))?;
    }
    Ok(())
}

/// `v` in decimal, zero-padded to fill `buf` (its high digits are dropped
/// if it does not fit).
fn put_digits(buf: &mut [u8], mut v: u32) {
    for b in buf.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Trailing decimal zeros of `v` (not 0).
fn decimal_trailing_zeros(mut v: u32) -> usize {
    let mut n = 0;
    while v.is_multiple_of(10) {
        v /= 10;
        n += 1;
    }
    n
}

fn write_instant<Z: TimeZone>(out: &mut impl Write, t: DateTime<Z>) -> Result<(), ArrowError> {
    write_wall_clock(out, &t.naive_local())?;
    let offset = t.offset().fix().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let secs = offset.unsigned_abs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let fmt = |e: std::fmt::Error| ArrowError::ComputeError(e.to_string());
    match (m, s) {
        (0, 0) => write!(out, "{sign}{h:02}"),
        (_, 0) => write!(out, "{sign}{h:02}:{m:02}"),
        _ => write!(out, "{sign}{h:02}:{m:02}:{s:02}"),
    }
    .map_err(fmt)
}

/// `e` as Postgres's text of a timestamp, if it is a cast (over
/// `schema`) of one to text: `at::text`, `'due ' || at`. Arrow's cast
/// would print `2026-11-26T10:00:00+00:00`.
pub(super) fn text_cast(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr, field }) = &e else { return Ok(Transformed::no(e)) };
    let to_text = matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    if !to_text || !matches!(expr.get_type(schema), Ok(DataType::Timestamp(..))) {
        return Ok(Transformed::no(e));
    }
    let function = crate::udf::TextOf::udf("timestamp_text", false, |a| Ok(timestamps_as_text(a)?));
    let text = function.call(vec![expr.as_ref().clone()]);
    Ok(Transformed::yes(match field.data_type() {
        DataType::Utf8 => text,
        other => Expr::Cast(Cast::new(Box::new(text), other.clone())),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, TimestampNanosecondArray};

    fn shown(values: Vec<Option<i64>>, zone: Option<&str>) -> Vec<Option<String>> {
        let array: ArrayRef = Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(zone));
        let text = timestamps_as_text(&array).unwrap();
        let text = text.as_any().downcast_ref::<StringArray>().unwrap();
        text.iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn timestamps_print_as_postgres_prints_them() {
        // 2026-11-26 10:00:00 UTC, then with a quarter second, then NULL.
        let t = 1_795_687_200_000_000;
        let utc = shown(vec![Some(t), Some(t + 250_000), None], Some("+00:00"));
        assert_eq!(utc, vec![Some("2026-11-26 10:00:00+00".into()), Some("2026-11-26 10:00:00.25+00".into()), None]);
        let india = shown(vec![Some(t + 1)], Some("Asia/Kolkata"));
        assert_eq!(india, vec![Some("2026-11-26 15:30:00.000001+05:30".into())]);
        let new_york = shown(vec![Some(t)], Some("America/New_York"));
        assert_eq!(new_york, vec![Some("2026-11-26 05:00:00-05".into())]);
        let naive = shown(vec![Some(t)], None);
        assert_eq!(naive, vec![Some("2026-11-26 10:00:00".into())]);
        let kathmandu = shown(vec![Some(t)], Some("Asia/Kathmandu"));
        assert_eq!(kathmandu, vec![Some("2026-11-26 15:45:00+05:45".into())]);
    }

    #[test]
    fn offsets_with_seconds_keep_them() {
        // Amsterdam's mean time until 1937.
        let amsterdam = chrono::FixedOffset::east_opt(19 * 60 + 32).unwrap();
        let t = DateTime::<Utc>::from_timestamp(0, 0).unwrap().with_timezone(&amsterdam);
        let mut out = String::new();
        write_instant(&mut out, t).unwrap();
        assert_eq!(out, "1970-01-01 00:19:32+00:19:32");
    }

    #[test]
    fn every_fraction_length_and_far_years_print() {
        let printed = |micros: i64| {
            let mut out = String::new();
            write_wall_clock(&mut out, &DateTime::<Utc>::from_timestamp_micros(micros).unwrap().naive_utc()).unwrap();
            out
        };
        assert_eq!(printed(1), "1970-01-01 00:00:00.000001");
        assert_eq!(printed(120_000), "1970-01-01 00:00:00.12");
        assert_eq!(printed(999_999), "1970-01-01 00:00:00.999999");
        assert_eq!(printed(-1), "1969-12-31 23:59:59.999999");
        // 0001-01-01 and 9999-12-31 23:59:59: the fast path's edges.
        assert_eq!(printed(-62_135_596_800_000_000), "0001-01-01 00:00:00");
        assert_eq!(printed(253_402_300_799_000_000), "9999-12-31 23:59:59");
        // Beyond, the year takes a fifth digit, as in Postgres.
        assert_eq!(printed(253_402_300_800_000_000), "10000-01-01 00:00:00");
    }

    #[test]
    fn nanoseconds_keep_their_microseconds() {
        let array: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_500_999]));
        let text = timestamps_as_text(&array).unwrap();
        assert_eq!(text.as_any().downcast_ref::<StringArray>().unwrap().value(0), "1970-01-01 00:00:00.0015");
    }

    #[test]
    fn iso_is_recognised_in_any_case() {
        assert!(iso_style("ISO, MDY") && iso_style("iso") && !iso_style("SQL, DMY") && !iso_style(""));
    }
}
