//! Postgres' `format(formatstr, args...)`: text built from a template, as
//! agents build messages and SQL (`format('task %s done by %I', id, who)`).
//!
//! A specifier is `%[n$][-][width]type`: `%s` the argument as text (NULL
//! as nothing), `%I` quoted as an identifier when it needs to be (NULL is
//! `22004`), `%L` quoted as a literal (NULL as `NULL`); `%%` is `%`. `n$`
//! takes argument n (later specifiers go on from there), a width pads on
//! the left (`-`: on the right). Values are written as Postgres writes
//! them (`t`/`f`, ISO timestamps; see [`crate::copy::text_cell`]).
//! A NULL template gives NULL.
//!
//! `quote_literal(x)` and `quote_nullable(x)` quote one value as `%L` does.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use crate::error::Error;

/// The `format` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Format {
    signature: Signature,
}

impl Default for Format {
    fn default() -> Format {
        Format { signature: Signature::variadic_any(Volatility::Stable) }
    }
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some((template, values)) = arrays.split_first() else {
            return Err(external(Error::Plan("format() needs a format string".into())));
        };
        // Logical nulls: a NULL literal is a NullArray, which has no null
        // buffer.
        let is_null = |a: &ArrayRef, row: usize| a.logical_nulls().is_some_and(|n| n.is_null(row));
        let mut out = StringBuilder::new();
        for row in 0..args.number_rows {
            if is_null(template, row) {
                out.append_null();
                continue;
            }
            let template = crate::copy::text_cell(template, row).map_err(external)?;
            let cells = values
                .iter()
                .map(|v| match is_null(v, row) {
                    true => Ok(None),
                    false => crate::copy::text_cell(v, row).map(Some),
                })
                .collect::<crate::Result<Vec<_>>>()
                .map_err(external)?;
            out.append_value(format(&template, &cells).map_err(external)?);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

/// `quote_literal(x)` and `quote_nullable(x)`: `x` as text (what `x::text`
/// gives) quoted as an SQL literal, as `format`'s `%L` quotes it. A NULL is
/// NULL for `quote_literal` and the text `NULL` for `quote_nullable`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct QuoteLiteral {
    signature: Signature,
    /// `quote_nullable`
    nullable: bool,
}

impl QuoteLiteral {
    pub fn new(nullable: bool) -> QuoteLiteral {
        QuoteLiteral { signature: Signature::any(1, Volatility::Stable), nullable }
    }
}

impl ScalarUDFImpl for QuoteLiteral {
    fn name(&self) -> &str {
        match self.nullable {
            true => "quote_nullable",
            false => "quote_literal",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let values = args.args[0].to_array(args.number_rows)?;
        let nulls = values.logical_nulls();
        let mut out = StringBuilder::new();
        for row in 0..values.len() {
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                match self.nullable {
                    true => out.append_value("NULL"),
                    false => out.append_null(),
                }
                continue;
            }
            // `x::text` of a boolean is `true`/`false` (COPY's text is `t`/`f`).
            let text = match values.as_any().downcast_ref::<datafusion::arrow::array::BooleanArray>() {
                Some(b) => b.value(row).to_string(),
                None => crate::copy::text_cell(&values, row).map_err(external)?,
            };
            out.append_value(quote_literal(&text));
        }
        crate::udf::columnar(Arc::new(out.finish()), scalar)
    }
}

fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// `template` with its specifiers replaced by `args` (their text; None is
/// NULL), as the module describes.
pub fn format(template: &str, args: &[Option<String>]) -> crate::Result<String> {
    let bad = |m: String| Error::InvalidParameter(m);
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'%').is_some() {
            out.push('%');
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            digits.push(d);
        }
        if chars.next_if_eq(&'$').is_some() {
            let n: usize = digits
                .parse()
                .map_err(|_| bad("format specifies argument 0, but arguments are numbered from 1".into()))?;
            if n == 0 {
                return Err(bad("format specifies argument 0, but arguments are numbered from 1".into()));
            }
            next = n - 1;
            digits.clear();
        }
        let left = chars.next_if_eq(&'-').is_some();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            digits.push(d);
        }
        let width: usize = digits.parse().unwrap_or(0);
        let kind = chars.next().ok_or_else(|| bad("unterminated format() type specifier".into()))?;
        let arg = args.get(next).ok_or_else(|| bad("too few arguments for format()".into()))?;
        next += 1;
        let text = match (kind, arg) {
            ('s', v) => v.clone().unwrap_or_default(),
            ('I', Some(v)) => crate::sql::table_functions::ident(v).to_string(),
            ('I', None) => return Err(Error::NullValue("null values cannot be formatted as an SQL identifier".into())),
            ('L', Some(v)) => quote_literal(v),
            ('L', None) => "NULL".to_string(),
            (other, _) => return Err(bad(format!("unrecognized format() type specifier \"{other}\""))),
        };
        let pad = width.saturating_sub(text.chars().count());
        if !left {
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(&text);
        if left {
            out.extend(std::iter::repeat_n(' ', pad));
        }
    }
    Ok(out)
}

/// A value as an SQL string literal: in single quotes, doubled; with a
/// backslash in it, an `E'…'` literal with the backslashes doubled.
fn quote_literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    match value.contains('\\') {
        true => format!("E'{}'", quoted.replace('\\', "\\\\")),
        false => format!("'{quoted}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(template: &str, args: &[Option<&str>]) -> crate::Result<String> {
        format(template, &args.iter().map(|a| a.map(str::to_string)).collect::<Vec<_>>())
    }

    #[test]
    fn formats_as_postgres_does() {
        assert_eq!(f("task %s done by %s", &[Some("7"), Some("ann")]).unwrap(), "task 7 done by ann");
        assert_eq!(f("%s|%s", &[None, Some("x")]).unwrap(), "|x");
        assert_eq!(f("%I.%I", &[Some("board"), Some("Topic \"1\"")]).unwrap(), "board.\"Topic \"\"1\"\"\"");
        assert_eq!(f("%L %L %L", &[Some("it's"), None, Some("a\\b")]).unwrap(), "'it''s' NULL E'a\\\\b'");
        assert_eq!(f("%2$s %1$s %s", &[Some("a"), Some("b")]).unwrap(), "b a b");
        assert_eq!(f("[%5s|%-5s] 100%%", &[Some("ab"), Some("cd")]).unwrap(), "[   ab|cd   ] 100%");
        assert!(matches!(f("%s %s", &[Some("a")]), Err(Error::InvalidParameter(_))));
        assert!(matches!(f("%x", &[Some("a")]), Err(Error::InvalidParameter(_))));
        assert!(matches!(f("%I", &[None]), Err(Error::NullValue(_))));
    }
}
