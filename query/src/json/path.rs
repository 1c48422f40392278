//! Postgres' `doc #> path` and `doc #>> path`: the value at a path of keys
//! and array indexes, as JSON or as text.
//!
//! The path is a text array, written `'{a,b,0}'` or `ARRAY['a','b','0']`
//! (or a parameter): each step a key of an object or, in an array, an
//! index (negative counts from the end). A missing step, a step into a
//! scalar, or a NULL gives NULL; an empty path gives the document.
//! `#>>` gives a string unquoted and JSON null as NULL.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;
use serde_json::Value as Json;

use crate::error::Error;
use brikk_storage::ColumnType;

/// The function `doc #> path` becomes (`#>>`: [`TEXT_AT_PATH`]).
pub const JSON_AT_PATH: &str = "json_at_path";
/// The function `doc #>> path` becomes.
pub const TEXT_AT_PATH: &str = "json_text_at_path";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonAtPath {
    signature: Signature,
    /// `#>>`: the value as text.
    text: bool,
}

impl JsonAtPath {
    pub fn new(text: bool) -> JsonAtPath {
        JsonAtPath { signature: Signature::any(2, Volatility::Immutable), text }
    }
}

/// The steps of a path value: a text array literal or a list of text.
fn steps(path: ScalarValue) -> crate::Result<Option<Vec<String>>> {
    match path {
        v if v.is_null() => Ok(None),
        ScalarValue::Utf8(Some(t)) | ScalarValue::LargeUtf8(Some(t)) | ScalarValue::Utf8View(Some(t)) => {
            let steps = crate::sql::pg_compat::array_elements(&t)
                .ok_or_else(|| Error::InvalidText(format!("malformed array literal: \"{t}\"")))?;
            Ok(steps.into_iter().collect())
        }
        ScalarValue::List(list) => {
            let Some(items) = ScalarValue::convert_array_to_scalar_vec(list.as_ref())
                .map_err(Error::from_datafusion)?
                .into_iter()
                .next()
                .flatten()
            else {
                return Ok(None);
            };
            Ok(items
                .into_iter()
                .map(|v| match v {
                    ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s,
                    other if other.is_null() => None,
                    other => Some(other.to_string()),
                })
                .collect())
        }
        other => Err(Error::TypeMismatch(format!("a JSON path is a text array, not {}", other.data_type()))),
    }
}

/// The value of `doc` at `path`, if there is one.
pub fn at_path<'a>(doc: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(doc, |v, step| match v {
        Json::Object(members) => members.get(step),
        Json::Array(items) => {
            let i: i64 = step.trim().parse().ok()?;
            let i = if i < 0 { items.len() as i64 + i } else { i };
            items.get(usize::try_from(i).ok()?)
        }
        _ => None,
    })
}

impl ScalarUDFImpl for JsonAtPath {
    fn name(&self) -> &str {
        if self.text {
            TEXT_AT_PATH
        } else {
            JSON_AT_PATH
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(match self.text {
            true => Arc::new(Field::new(self.name(), DataType::Utf8, true)),
            false => super::json_field(self.name(), ColumnType::Jsonb, true),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        super::text_rows(args.number_rows, |row| {
            let doc = ScalarValue::try_from_array(&arrays[0], row)?;
            let (ScalarValue::Utf8(Some(doc)) | ScalarValue::LargeUtf8(Some(doc)) | ScalarValue::Utf8View(Some(doc))) =
                doc
            else {
                return Ok(None);
            };
            let external = |e: Error| DataFusionError::External(Box::new(e));
            let Some(path) = steps(ScalarValue::try_from_array(&arrays[1], row)?).map_err(external)? else {
                return Ok(None);
            };
            let doc: Json = serde_json::from_str(&doc)
                .map_err(|e| external(Error::InvalidText(format!("invalid input syntax for type json: {e}"))))?;
            Ok(match (at_path(&doc, &path), self.text) {
                (None, _) | (Some(Json::Null), true) => None,
                (Some(Json::String(s)), true) => Some(s.clone()),
                (Some(v), _) => Some(super::jsonb_string(v)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_keys_and_indexes() {
        let doc: Json = serde_json::from_str(r#"{"a": {"b": [10, {"c": "x"}]}, "n": null}"#).unwrap();
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(at_path(&doc, &p(&["a", "b", "0"])), Some(&Json::from(10)));
        assert_eq!(at_path(&doc, &p(&["a", "b", "-1", "c"])), Some(&Json::from("x")));
        assert_eq!(at_path(&doc, &p(&[])), Some(&doc));
        assert_eq!(at_path(&doc, &p(&["a", "b", "2"])), None);
        assert_eq!(at_path(&doc, &p(&["a", "b", "x"])), None);
        assert_eq!(at_path(&doc, &p(&["n", "z"])), None);
    }
}
