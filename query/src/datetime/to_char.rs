//! `to_char(timestamp, pattern)` with Postgres's patterns.
//!
//! DataFusion's `to_char` takes chrono's `%Y-%m-%d`; given Postgres's
//! `YYYY-MM-DD` it returned the pattern itself, unchanged and without an
//! error. [`ToChar`] reads Postgres's template patterns (the date and time
//! ones: `YYYY`, `MM`, `DD`, `HH24`, `MI`, `SS`, `MS`, `US`, `AM`, `Month`,
//! `Mon`, `Day`, `Dy`, `DDD`, `IW`, `Q`, `TZ`, `OF`, …, with the `FM`
//! prefix and the `TH` suffix, `"quoted text"` and `\` escapes) and still
//! takes a chrono pattern when it has a `%`, as DataFusion did. Timestamps
//! with a zone are formatted in it (the session's, for stored columns).

use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::OffsetName;
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// `to_char(t, pattern)` for timestamps and dates; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToChar {
    signature: Signature,
}

impl Default for ToChar {
    fn default() -> Self {
        ToChar { signature: Signature::any(2, Volatility::Stable) }
    }
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Null => Ok(DataType::Utf8),
            other => Err(DataFusionError::NotImplemented(format!("to_char of a value of type {other}"))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalars = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let zone = match arrays[0].data_type() {
            DataType::Timestamp(_, Some(z)) => Some(Zone::of(z)?),
            _ => None,
        };
        let micros = cast(&arrays[0], &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let patterns = cast(&arrays[1], &DataType::Utf8)?;
        let patterns = patterns.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(micros.len(), micros.len() * 24);
        for i in 0..micros.len() {
            if micros.is_null(i) || patterns.is_null(i) {
                out.append_null();
                continue;
            }
            let instant = DateTime::<Utc>::from_timestamp_micros(micros.value(i))
                .ok_or_else(|| DataFusionError::Execution("timestamp out of range".into()))?;
            let text = match &zone {
                Some(Zone::Named(tz)) => {
                    let local = instant.with_timezone(tz);
                    let abbreviation = local.offset().abbreviation().unwrap_or_default().to_string();
                    format(&local.naive_local(), Some((local.offset().fix(), abbreviation)), patterns.value(i))
                }
                Some(Zone::Fixed(tz)) => {
                    let local = instant.with_timezone(tz);
                    format(&local.naive_local(), Some((local.offset().fix(), String::new())), patterns.value(i))
                }
                None => format(&instant.naive_utc(), None, patterns.value(i)),
            };
            out.append_value(text);
        }
        let array: ArrayRef = Arc::new(out.finish());
        crate::udf::columnar(array, scalars)
    }
}

/// The zone of a `timestamptz`: a named zone knows its abbreviations
/// (`CET`, `IST`), a fixed offset (`+05:30`, and UTC as Arrow spells it)
/// has none.
enum Zone {
    Named(chrono_tz::Tz),
    Fixed(Tz),
}

impl Zone {
    fn of(zone: &str) -> Result<Zone> {
        Ok(match zone.parse::<chrono_tz::Tz>() {
            Ok(named) => Zone::Named(named),
            Err(_) => Zone::Fixed(zone.parse::<Tz>()?),
        })
    }
}

/// `t` (a wall-clock time, with its offset and zone abbreviation if it
/// has a zone) by `pattern`: Postgres's template patterns, or chrono's if
/// the pattern has a `%`.
pub fn format(t: &NaiveDateTime, zone: Option<(FixedOffset, String)>, pattern: &str) -> String {
    if pattern.contains('%') {
        return match &zone {
            Some((offset, _)) => offset.from_local_datetime(t).single().map(|l| l.format(pattern).to_string()),
            None => Some(t.format(pattern).to_string()),
        }
        .unwrap_or_default();
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut rest = pattern;
    let mut fill = false;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            // Quoted text, with \" inside.
            let mut chars = rest[1..].char_indices();
            let mut end = rest.len();
            while let Some((j, q)) = chars.next() {
                match q {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    }
                    '"' => {
                        end = j + 2;
                        break;
                    }
                    other => out.push(other),
                }
            }
            rest = &rest[end.min(rest.len())..];
            continue;
        }
        if c == '\\' {
            let mut chars = rest.chars();
            chars.next();
            if let Some(e) = chars.next() {
                out.push(e);
            }
            rest = chars.as_str();
            continue;
        }
        if let Some(r) = rest.strip_prefix("FM").or_else(|| rest.strip_prefix("fm")) {
            fill = true;
            rest = r;
            continue;
        }
        match field(t, zone.as_ref(), rest, fill) {
            Some((text, used, number)) => {
                out.push_str(&text);
                rest = &rest[used..];
                // TH / th: the ordinal suffix of the number just written.
                if let Some(n) = number {
                    if let Some(r) = rest.strip_prefix("TH") {
                        out.push_str(&ordinal(n).to_uppercase());
                        rest = r;
                    } else if let Some(r) = rest.strip_prefix("th") {
                        out.push_str(ordinal(n));
                        rest = r;
                    }
                }
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        fill = false;
    }
    out
}

/// The pattern at the start of `rest`, formatted: (text, bytes of the
/// pattern, the number it wrote if it is numeric).
fn field(
    t: &NaiveDateTime,
    zone: Option<&(FixedOffset, String)>,
    rest: &str,
    fill: bool,
) -> Option<(String, usize, Option<i64>)> {
    let num = |n: i64, width: usize, used: usize| {
        let text = if fill { n.to_string() } else { format!("{n:0width$}") };
        Some((text, used, Some(n)))
    };
    let name = |full: String, used: usize, pad: bool| {
        let text = if pad && !fill { format!("{full:<9}") } else { full };
        Some((text, used, None))
    };
    let cased = |s: &str, case: &str| match case {
        "upper" => s.to_uppercase(),
        "lower" => s.to_lowercase(),
        _ => s.to_string(),
    };
    let hour12 = (t.hour() + 11) % 12 + 1;
    let pm = t.hour() >= 12;
    let month = t.format("%B").to_string();
    let day = t.format("%A").to_string();
    let starts = |p: &str| rest.starts_with(p);
    // Longer patterns first where one is a prefix of another.
    if starts("HH24") {
        return num(t.hour() as i64, 2, 4);
    }
    if starts("HH12") {
        return num(hour12 as i64, 2, 4);
    }
    if starts("HH") {
        return num(hour12 as i64, 2, 2);
    }
    if starts("MI") {
        return num(t.minute() as i64, 2, 2);
    }
    if starts("SSSS") {
        return num(t.num_seconds_from_midnight() as i64, 1, 4);
    }
    if starts("SS") {
        return num(t.second() as i64, 2, 2);
    }
    if starts("MS") {
        return num((t.nanosecond() / 1_000_000 % 1000) as i64, 3, 2);
    }
    if starts("US") {
        return num((t.nanosecond() / 1_000 % 1_000_000) as i64, 6, 2);
    }
    for (p, text) in [
        ("A.M.", if pm { "P.M." } else { "A.M." }),
        ("P.M.", if pm { "P.M." } else { "A.M." }),
        ("a.m.", if pm { "p.m." } else { "a.m." }),
        ("p.m.", if pm { "p.m." } else { "a.m." }),
        ("AM", if pm { "PM" } else { "AM" }),
        ("PM", if pm { "PM" } else { "AM" }),
        ("am", if pm { "pm" } else { "am" }),
        ("pm", if pm { "pm" } else { "am" }),
    ] {
        if starts(p) {
            return Some((text.to_string(), p.len(), None));
        }
    }
    if starts("Y,YYY") {
        let y = t.year();
        return Some((format!("{},{:03}", y / 1000, y % 1000), 5, Some(y as i64)));
    }
    if starts("IYYY") {
        return num(t.iso_week().year() as i64, 4, 4);
    }
    if starts("YYYY") {
        return num(t.year() as i64, 4, 4);
    }
    if starts("YYY") {
        return num((t.year() % 1000) as i64, 3, 3);
    }
    if starts("YY") {
        return num((t.year() % 100) as i64, 2, 2);
    }
    if starts("Y") {
        return num((t.year() % 10) as i64, 1, 1);
    }
    if starts("CC") {
        return num(((t.year() - 1) / 100 + 1) as i64, 2, 2);
    }
    // A name pattern in capitals, capitalized or in lower case gives the
    // name so; the long forms are padded to 9 unless FM.
    let named = |pattern: &str, text: &str, pad: bool| {
        let capitalized = format!("{}{}", &pattern[..1], pattern[1..].to_lowercase());
        [(pattern.to_string(), "upper"), (capitalized, "as is"), (pattern.to_lowercase(), "lower")]
            .into_iter()
            .find(|(p, _)| starts(p))
            .and_then(|(p, case)| name(cased(text, case), p.len(), pad))
    };
    if let Some(f) = named("MONTH", &month, true).or_else(|| named("MON", &month[..3], false)) {
        return Some(f);
    }
    if starts("MM") {
        return num(t.month() as i64, 2, 2);
    }
    if let Some(f) = named("DAY", &day, true).or_else(|| named("DY", &day[..3], false)) {
        return Some(f);
    }
    if starts("DDD") {
        return num(t.ordinal() as i64, 3, 3);
    }
    if starts("DD") {
        return num(t.day() as i64, 2, 2);
    }
    if starts("D") {
        return num(t.weekday().number_from_sunday() as i64, 1, 1);
    }
    if starts("ID") {
        return num(t.weekday().number_from_monday() as i64, 1, 2);
    }
    if starts("IW") {
        return num(t.iso_week().week() as i64, 2, 2);
    }
    if starts("WW") {
        return num(((t.ordinal() - 1) / 7 + 1) as i64, 2, 2);
    }
    if starts("W") {
        return num(((t.day() - 1) / 7 + 1) as i64, 1, 1);
    }
    if starts("Q") {
        return num(((t.month() - 1) / 3 + 1) as i64, 1, 1);
    }
    if starts("J") {
        // Julian day: days since 4714-11-24 BC (proleptic Gregorian).
        return num(t.date().num_days_from_ce() as i64 + 1_721_425, 1, 1);
    }
    for (p, upper) in [("TZ", true), ("tz", false)] {
        if starts(p) {
            // A fixed offset has no abbreviation: UTC is `UTC`, others
            // print as Postgres prints them, `+05:30`.
            let abbreviation = match zone {
                Some((offset, a)) if a.is_empty() && offset.local_minus_utc() == 0 => "UTC".to_string(),
                Some((offset, a)) if a.is_empty() => offset.to_string(),
                Some((_, a)) => a.clone(),
                None => String::new(),
            };
            return Some((if upper { abbreviation.to_uppercase() } else { abbreviation.to_lowercase() }, 2, None));
        }
    }
    if starts("OF") {
        let secs = zone.map_or(0, |(o, _)| o.local_minus_utc());
        let sign = if secs < 0 { '-' } else { '+' };
        let (h, m) = (secs.unsigned_abs() / 3600, secs.unsigned_abs() / 60 % 60);
        let text = if m == 0 { format!("{sign}{h:02}") } else { format!("{sign}{h:02}:{m:02}") };
        return Some((text, 2, None));
    }
    None
}

/// The English ordinal suffix of `n`: st, nd, rd, th.
fn ordinal(n: i64) -> &'static str {
    match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn postgres_patterns_format_as_postgres_does() {
        let t = at("2026-11-26 09:05:07.123456");
        let cases = [
            ("YYYY-MM-DD HH24:MI:SS.US", "2026-11-26 09:05:07.123456"),
            ("YYYY-MM-DD\"T\"HH24:MI:SS.MS", "2026-11-26T09:05:07.123"),
            ("Day, DDth Month YYYY", "Thursday , 26th November  2026"),
            ("FMDay, FMDDth FMMonth YYYY", "Thursday, 26th November 2026"),
            ("HH12:MI AM", "09:05 AM"),
            ("FMHH12:MI pm", "9:05 am"),
            ("Mon DD, YYYY", "Nov 26, 2026"),
            ("MON dy DDD", "NOV thu 330"),
            ("\"Week\" IW, \"Q\"Q, D, ID", "Week 48, Q4, 5, 4"),
            ("Y,YYY YY CC", "2,026 26 21"),
            ("J", "2461371"),
            ("SSSS", "32707"),
            ("%Y/%m/%d", "2026/11/26"),
        ];
        for (pattern, want) in cases {
            assert_eq!(format(&t, None, pattern), want, "{pattern}");
        }
        assert_eq!(format(&at("2026-11-01 23:00:00"), None, "FMDDth FMHH12PM"), "1st 11PM");
    }

    #[test]
    fn zones_give_their_offset_and_abbreviation() {
        let t = at("2026-11-26 15:30:00");
        let india = (FixedOffset::east_opt(5 * 3600 + 1800).unwrap(), "IST".to_string());
        assert_eq!(format(&t, Some(india), "HH24:MI TZ OF"), "15:30 IST +05:30");
        let utc = (FixedOffset::east_opt(0).unwrap(), String::new());
        assert_eq!(format(&t, Some(utc), "TZ OF"), "UTC +00");
    }
}
