//! Floating-point text as Postgres prints it.
//!
//! Postgres prints the shortest text that reads back as the same value,
//! in plain notation when the decimal exponent is in -4..15 (-4..6 for
//! `real`) and in scientific notation, with a signed two-digit exponent,
//! otherwise: `1024`, `0.0001`, `1e+20`, `1.5e-05`, and `Infinity`,
//! `-Infinity`, `NaN`. pgwire and Arrow print `1024.0`, `1e20` and `inf`;
//! `inf` is no number to pgjdbc or node-postgres. The server prints float
//! columns sent as text with [`floats_as_text`], and `COPY … TO` its cells.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};

/// Decimal exponents at or above which a `double precision` / `real` is
/// printed in scientific notation (Postgres's `DBL_DIG` and `FLT_DIG`).
const DOUBLE_DIGITS: i32 = 15;
const REAL_DIGITS: i32 = 6;

/// A `real` or `double precision` column as Postgres's text (any other
/// column as it is).
pub fn floats_as_text(column: &ArrayRef) -> ArrayRef {
    let mut out = StringBuilder::with_capacity(column.len(), column.len() * 8);
    match column.data_type() {
        DataType::Float64 => {
            for v in column.as_primitive::<Float64Type>().iter() {
                match v {
                    Some(v) => out.append_value(float_text(v, DOUBLE_DIGITS, format!("{v:e}"))),
                    None => out.append_null(),
                }
            }
        }
        DataType::Float32 => {
            for v in column.as_primitive::<Float32Type>().iter() {
                match v {
                    Some(v) => out.append_value(float_text(f64::from(v), REAL_DIGITS, format!("{v:e}"))),
                    None => out.append_null(),
                }
            }
        }
        _ => return column.clone(),
    }
    Arc::new(out.finish())
}

/// `v` as Postgres prints it, from `scientific`: the shortest digits that
/// read back as `v` (Rust's `{:e}` of the value in its own width, so a
/// `real` keeps its own shortest digits).
fn float_text(v: f64, digits: i32, scientific: String) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let significant: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(24);
    out.push_str(sign);
    if exponent < -4 || exponent >= digits {
        out.push_str(&significant[..1]);
        if significant.len() > 1 {
            out.push('.');
            out.push_str(&significant[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.unsigned_abs());
    } else if exponent < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
        out.push_str(&significant);
    } else {
        let int_len = exponent as usize + 1;
        if significant.len() <= int_len {
            out.push_str(&significant);
            out.extend(std::iter::repeat_n('0', int_len - significant.len()));
        } else {
            out.push_str(&significant[..int_len]);
            out.push('.');
            out.push_str(&significant[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float32Array, Float64Array, StringArray};

    fn doubles(values: Vec<Option<f64>>) -> Vec<Option<String>> {
        let text = floats_as_text(&(Arc::new(Float64Array::from(values)) as ArrayRef));
        text.as_any().downcast_ref::<StringArray>().unwrap().iter().map(|v| v.map(String::from)).collect()
    }

    #[test]
    fn doubles_print_as_postgres_prints_them() {
        let cases = [
            (1024.0, "1024"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e+15"),
            (1e20, "1e+20"),
            (-1.25e100, "-1.25e+100"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (0.0, "0"),
        ];
        let got = doubles(cases.iter().map(|(v, _)| Some(*v)).chain([None]).collect());
        let want: Vec<Option<String>> = cases.iter().map(|(_, t)| Some(t.to_string())).chain([None]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn reals_keep_their_own_shortest_digits() {
        let text = floats_as_text(&(Arc::new(Float32Array::from(vec![0.1f32, 100000.0, 1e6, 3.4e38])) as ArrayRef));
        let text = text.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(text.iter().flatten().collect::<Vec<_>>(), ["0.1", "100000", "1e+06", "3.4e+38"]);
    }
}
