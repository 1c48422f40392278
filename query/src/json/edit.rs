//! Changing part of a `jsonb` value, as Postgres does: `jsonb_set(j, path,
//! value [, create_missing])`, `j || other` (concatenation: objects merge,
//! the right side winning, arrays join) and `j - key` / `j - index`
//! (removal). A blackboard agent revises one field of a fact with them
//! instead of rewriting the whole document.
//!
//! All three are strict (NULL in, NULL out) and return `jsonb`. Text that
//! is not JSON is `22P02`; removing from a scalar, or by index from an
//! object, is `22023`.

use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;
use serde_json::Value as Json;

use crate::error::Error;
use crate::types::json_metadata;

/// Which edit a [`JsonbEdit`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edit {
    /// `jsonb_set(target, path, new_value [, create_missing])`.
    Set,
    /// `a || b`.
    Concat,
    /// `a - key` or `a - index`.
    Delete,
}

/// One of the `jsonb` edits, as a scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonbEdit {
    signature: Signature,
    edit: Edit,
}

impl JsonbEdit {
    pub fn new(edit: Edit) -> JsonbEdit {
        JsonbEdit { signature: Signature::variadic_any(Volatility::Immutable), edit }
    }

    /// The function's name; the operators are planned as calls of it.
    pub fn name_of(edit: Edit) -> &'static str {
        match edit {
            Edit::Set => "jsonb_set",
            Edit::Concat => "jsonb_concat",
            Edit::Delete => "jsonb_delete",
        }
    }

    fn arity(&self) -> (usize, usize) {
        match self.edit {
            Edit::Set => (3, 4),
            Edit::Concat | Edit::Delete => (2, 2),
        }
    }

    /// The edit of one row's arguments (none NULL).
    fn apply(&self, args: &[ScalarValue]) -> crate::Result<Json> {
        let target = parse(&args[0])?;
        match self.edit {
            Edit::Set => {
                let create = !matches!(args.get(3), Some(ScalarValue::Boolean(Some(false))));
                Ok(set(target, &path(&args[1])?, parse(&args[2])?, create))
            }
            Edit::Concat => Ok(concat(target, parse(&args[1])?)),
            Edit::Delete => delete(target, &args[1]),
        }
    }
}

impl ScalarUDFImpl for JsonbEdit {
    fn name(&self) -> &str {
        Self::name_of(self.edit)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let (min, max) = self.arity();
        if args.len() < min || args.len() > max {
            return Err(DataFusionError::Plan(format!(
                "{} takes {} arguments, not {}",
                self.name(),
                if min == max { min.to_string() } else { format!("{min} or {max}") },
                args.len()
            )));
        }
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let ty = self.return_type(&types)?;
        Ok(Arc::new(Field::new(self.name(), ty, true).with_metadata(json_metadata("jsonb"))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        super::text_rows(args.number_rows, |row| {
            let values: Vec<ScalarValue> =
                arrays.iter().map(|a| ScalarValue::try_from_array(a, row)).collect::<Result<_>>()?;
            if values.iter().any(ScalarValue::is_null) {
                return Ok(None);
            }
            let edited = self.apply(&values).map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok(Some(super::jsonb_string(&edited)))
        })
    }
}

/// A JSON argument: its text parsed (any other scalar as its JSON value).
fn parse(v: &ScalarValue) -> crate::Result<Json> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            serde_json::from_str(s).map_err(|e| Error::InvalidText(format!("invalid input syntax for type jsonb: {e}")))
        }
        other => Ok(super::json_value(other.clone(), false)),
    }
}

/// A path argument: a `text[]` literal (`'{a,0,b}'`) or an array of text.
fn path(v: &ScalarValue) -> crate::Result<Vec<String>> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => text_array(s),
        ScalarValue::List(list) if list.len() == 1 => {
            let items = list.value(0);
            (0..items.len())
                .map(|i| match ScalarValue::try_from_array(&items, i) {
                    Ok(ScalarValue::Utf8(Some(s))) => Ok(s),
                    Ok(other) if !other.is_null() => Ok(other.to_string()),
                    _ => Err(Error::InvalidParameter("path element must not be null".into())),
                })
                .collect()
        }
        other => Err(Error::TypeMismatch(format!(
            "the path of jsonb_set must be text[], not {}",
            crate::types::pg_name_of(&other.data_type())
        ))),
    }
}

/// Postgres' text form of a one-dimensional `text[]`: `{a,"b c",d}`.
fn text_array(s: &str) -> crate::Result<Vec<String>> {
    let bad = || Error::InvalidText(format!("malformed array literal: \"{s}\""));
    let inner = s.trim().strip_prefix('{').and_then(|r| r.strip_suffix('}')).ok_or_else(bad)?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut item = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next().ok_or_else(bad)? {
                    '"' => break,
                    '\\' => item.push(chars.next().ok_or_else(bad)?),
                    c => item.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                item.push(c);
            }
            item = item.trim_end().to_string();
        }
        out.push(item);
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return Err(bad()),
        }
    }
    Ok(out)
}

/// An array position from a path element or index: counted from the end
/// when negative; `None` if it is not an integer.
fn position(len: usize, index: i64) -> Option<usize> {
    if index >= 0 {
        Some(index as usize)
    } else {
        (len as i64 + index).try_into().ok()
    }
}

/// `jsonb_set`: `target` with the value at `path` replaced by `value`,
/// or added there when `create` and only the last step is missing.
fn set(mut target: Json, path: &[String], value: Json, create: bool) -> Json {
    let Some((last, steps)) = path.split_last() else { return target };
    let mut at = &mut target;
    for step in steps {
        let next = match at {
            Json::Object(map) => map.get_mut(step),
            Json::Array(items) => {
                let len = items.len();
                step.parse::<i64>().ok().and_then(|i| position(len, i)).and_then(|i| items.get_mut(i))
            }
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return target,
        }
    }
    match at {
        Json::Object(map) if create || map.contains_key(last) => {
            map.insert(last.clone(), value);
        }
        Json::Array(items) => {
            if let Ok(i) = last.parse::<i64>() {
                let len = items.len();
                match position(len, i) {
                    Some(p) if p < len => items[p] = value,
                    Some(_) if create => items.push(value),
                    None if create => items.insert(0, value),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    target
}

/// `a || b`: two objects merge (b's value for a key both have), two arrays
/// join, anything else is taken as a one-element array first.
fn concat(a: Json, b: Json) -> Json {
    match (a, b) {
        (Json::Object(mut a), Json::Object(b)) => {
            a.extend(b);
            Json::Object(a)
        }
        (a, b) => {
            let as_array = |v: Json| match v {
                Json::Array(items) => items,
                other => vec![other],
            };
            let mut items = as_array(a);
            items.extend(as_array(b));
            Json::Array(items)
        }
    }
}

/// `a - key` (an object's key, or an array's string elements equal to it)
/// or `a - index` (an array's element, counted from the end when negative).
fn delete(target: Json, what: &ScalarValue) -> crate::Result<Json> {
    let index = match what {
        ScalarValue::Int8(Some(i)) => Some(*i as i64),
        ScalarValue::Int16(Some(i)) => Some(*i as i64),
        ScalarValue::Int32(Some(i)) => Some(*i as i64),
        ScalarValue::Int64(Some(i)) => Some(*i),
        _ => None,
    };
    match (target, index) {
        (Json::Object(mut map), None) => {
            map.remove(&key_text(what));
            Ok(Json::Object(map))
        }
        (Json::Array(items), None) => {
            let key = key_text(what);
            Ok(Json::Array(items.into_iter().filter(|v| v.as_str() != Some(key.as_str())).collect()))
        }
        (Json::Array(mut items), Some(i)) => {
            if let Some(p) = position(items.len(), i).filter(|&p| p < items.len()) {
                items.remove(p);
            }
            Ok(Json::Array(items))
        }
        (Json::Object(_), Some(_)) => {
            Err(Error::InvalidParameter("cannot delete from object using integer index".into()))
        }
        _ => Err(Error::InvalidParameter("cannot delete from scalar".into())),
    }
}

fn key_text(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Json {
        serde_json::from_str(s).unwrap()
    }

    fn p(s: &str) -> Vec<String> {
        text_array(s).unwrap()
    }

    #[test]
    fn set_replaces_adds_or_leaves_alone() {
        let doc = j(r#"{"a":{"b":[1,2,3]},"c":1}"#);
        assert_eq!(set(doc.clone(), &p("{c}"), j("2"), true), j(r#"{"a":{"b":[1,2,3]},"c":2}"#));
        assert_eq!(set(doc.clone(), &p("{a,b,-1}"), j("9"), true), j(r#"{"a":{"b":[1,2,9]},"c":1}"#));
        assert_eq!(set(doc.clone(), &p("{a,b,10}"), j("4"), true), j(r#"{"a":{"b":[1,2,3,4]},"c":1}"#));
        assert_eq!(set(doc.clone(), &p("{a,b,-10}"), j("0"), true), j(r#"{"a":{"b":[0,1,2,3]},"c":1}"#));
        assert_eq!(set(doc.clone(), &p("{d}"), j("true"), true), j(r#"{"a":{"b":[1,2,3]},"c":1,"d":true}"#));
        assert_eq!(set(doc.clone(), &p("{d}"), j("true"), false), doc);
        assert_eq!(set(doc.clone(), &p("{x,y}"), j("1"), true), doc, "a missing step changes nothing");
        assert_eq!(set(doc.clone(), &p("{}"), j("1"), true), doc);
    }

    #[test]
    fn concat_merges_objects_and_joins_arrays() {
        assert_eq!(concat(j(r#"{"a":1,"b":2}"#), j(r#"{"b":3,"c":4}"#)), j(r#"{"a":1,"b":3,"c":4}"#));
        assert_eq!(concat(j("[1,2]"), j("[3]")), j("[1,2,3]"));
        assert_eq!(concat(j("[1]"), j(r#"{"a":1}"#)), j(r#"[1,{"a":1}]"#));
        assert_eq!(concat(j("1"), j("2")), j("[1,2]"));
    }

    #[test]
    fn delete_by_key_or_index() {
        let key = |s: &str| ScalarValue::Utf8(Some(s.into()));
        assert_eq!(delete(j(r#"{"a":1,"b":2}"#), &key("a")).unwrap(), j(r#"{"b":2}"#));
        assert_eq!(delete(j(r#"["a","b","a"]"#), &key("a")).unwrap(), j(r#"["b"]"#));
        assert_eq!(delete(j("[1,2,3]"), &ScalarValue::Int64(Some(-1))).unwrap(), j("[1,2]"));
        assert_eq!(delete(j("[1,2,3]"), &ScalarValue::Int64(Some(7))).unwrap(), j("[1,2,3]"));
        assert!(matches!(delete(j("1"), &key("a")), Err(Error::InvalidParameter(_))));
        assert!(matches!(delete(j("{}"), &ScalarValue::Int32(Some(0))), Err(Error::InvalidParameter(_))));
    }

    #[test]
    fn reads_text_array_literals() {
        assert_eq!(p("{a,0, b }"), ["a", "0", "b"]);
        assert_eq!(p(r#"{"x,y","q\"z"}"#), ["x,y", "q\"z"]);
        assert_eq!(p("{}"), Vec::<String>::new());
        assert!(text_array("a,b").is_err());
    }
}
