//! A JSON document's parts as rows: Postgres' `json_array_elements(j)`,
//! `jsonb_each(j)`, `jsonb_object_keys(j)` and their `json`/`_text` forms,
//! in a select list or in FROM.
//!
//! DataFusion's only set-returning function is `unnest` of a list, so
//! [`crate::sql::pg_compat`] and [`crate::sql::table_functions`] rewrite
//! each of those calls to `unnest` of a list one of the functions here
//! makes: `jsonb_array_elements(j)` to `jsonb(unnest(json_array_items(j)))`,
//! `jsonb_each(j)` to the two columns `unnest(json_object_key_list(j))` and
//! `jsonb(unnest(json_object_value_list(j)))`, which `unnest` walks side by
//! side. NULL gives no rows. An array's parts asked of an object or a
//! scalar, or an object's of an array or a scalar, are `22023`; text that
//! is not JSON is `22P02`.
//!
//! An object's members come in the order Brikk keeps a document's keys in,
//! bytewise (Postgres orders `jsonb` keys shorter first, and keeps a `json`
//! document's order).

use std::sync::Arc;

use datafusion::arrow::array::{ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use datafusion::scalar::ScalarValue;
use serde_json::Value as Json;

use crate::error::Error;

/// Which parts of a document a [`JsonParts`] function lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// An array's elements, as JSON.
    Items,
    /// An array's elements, as text (strings unquoted, JSON null as NULL).
    Texts,
    /// An object's keys.
    Keys,
    /// An object's values, as JSON.
    Values,
    /// An object's values, as text.
    ValueTexts,
}

impl Part {
    pub const ALL: [Part; 5] = [Part::Items, Part::Texts, Part::Keys, Part::Values, Part::ValueTexts];

    /// The function that lists these parts.
    pub fn function(self) -> &'static str {
        match self {
            Part::Items => "json_array_items",
            Part::Texts => "json_array_texts",
            Part::Keys => "json_object_key_list",
            Part::Values => "json_object_value_list",
            Part::ValueTexts => "json_object_text_list",
        }
    }

    /// Whether the parts are JSON (typed `jsonb` once unnested).
    pub fn is_json(self) -> bool {
        matches!(self, Part::Items | Part::Values)
    }

    fn of_object(self) -> bool {
        matches!(self, Part::Keys | Part::Values | Part::ValueTexts)
    }

    fn as_text(self) -> bool {
        matches!(self, Part::Texts | Part::ValueTexts)
    }
}

/// One of the functions of [`Part::function`]: the parts of each document
/// as a list of text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonParts {
    signature: Signature,
    part: Part,
}

impl JsonParts {
    pub fn new(part: Part) -> JsonParts {
        JsonParts { signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable), part }
    }

    fn item(&self) -> FieldRef {
        Arc::new(Field::new(if self.part == Part::Keys { "key" } else { "value" }, DataType::Utf8, true))
    }

    /// The parts of one document, as the list's values.
    fn parts(&self, text: &str) -> crate::Result<Vec<Option<String>>> {
        let parsed: Json = serde_json::from_str(text)
            .map_err(|e| Error::InvalidText(format!("invalid input syntax for type json: {e}")))?;
        let values: Vec<Json> = match (parsed, self.part.of_object()) {
            (Json::Array(items), false) => items,
            (Json::Object(members), true) => {
                let mut members: Vec<(String, Json)> = members.into_iter().collect();
                members.sort_by(|a, b| super::key_order(&a.0, &b.0));
                match self.part {
                    Part::Keys => return Ok(members.into_iter().map(|(k, _)| Some(k)).collect()),
                    _ => members.into_iter().map(|(_, v)| v).collect(),
                }
            }
            (other, of_object) => {
                let what = match &other {
                    Json::Object(_) => "an object",
                    Json::Array(_) => "an array",
                    _ => "a scalar",
                };
                let parts = if of_object { "keys and values" } else { "elements" };
                return Err(Error::InvalidParameter(format!("cannot extract {parts} from {what}")));
            }
        };
        Ok(values
            .into_iter()
            .map(|v| match (self.part.as_text(), v) {
                (true, Json::String(s)) => Some(s),
                (true, Json::Null) => None,
                (_, other) => Some(super::jsonb_string(&other)),
            })
            .collect())
    }
}

impl ScalarUDFImpl for JsonParts {
    fn name(&self) -> &str {
        self.part.function()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(self.item()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = ListBuilder::new(StringBuilder::new()).with_field(self.item());
        for row in 0..args.number_rows {
            match ScalarValue::try_from_array(&arrays[0], row)? {
                ScalarValue::Utf8(Some(text)) => {
                    let parts = self.parts(&text).map_err(|e| DataFusionError::External(Box::new(e)))?;
                    for part in parts {
                        out.values().append_option(part);
                    }
                    out.append(true);
                }
                _ => out.append(false),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(part: Part, doc: &str) -> crate::Result<Vec<Option<String>>> {
        JsonParts::new(part).parts(doc)
    }

    #[test]
    fn array_elements_as_json_or_text() {
        let doc = r#"["a", 1, {"b": null}, null]"#;
        assert_eq!(
            parts(Part::Items, doc).unwrap(),
            [Some(r#""a""#.into()), Some("1".into()), Some(r#"{"b": null}"#.into()), Some("null".into())]
        );
        assert_eq!(
            parts(Part::Texts, doc).unwrap(),
            [Some("a".into()), Some("1".into()), Some(r#"{"b": null}"#.into()), None]
        );
        assert!(matches!(parts(Part::Items, "{}"), Err(Error::InvalidParameter(_))));
        assert!(matches!(parts(Part::Items, "3"), Err(Error::InvalidParameter(_))));
        assert!(matches!(parts(Part::Items, "[1,"), Err(Error::InvalidText(_))));
    }

    #[test]
    fn object_members_in_key_order() {
        // Shorter keys first, as Postgres keeps a jsonb object's keys.
        let doc = r#"{"bb": "x", "a": [1], "c": null}"#;
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(parts(Part::Keys, doc).unwrap(), some(&["a", "c", "bb"]));
        assert_eq!(parts(Part::Values, doc).unwrap(), some(&["[1]", "null", r#""x""#]));
        assert_eq!(parts(Part::ValueTexts, doc).unwrap(), [Some("[1]".into()), None, Some("x".into())]);
        assert!(matches!(parts(Part::Keys, "[1]"), Err(Error::InvalidParameter(_))));
        assert!(matches!(parts(Part::Values, "true"), Err(Error::InvalidParameter(_))));
    }
}
