//! A JSON array's elements as rows: Postgres' `json_array_elements(j)`,
//! `jsonb_array_elements(j)` and their `_text` forms, in a select list.
//!
//! DataFusion's only set-returning function in a select list is `unnest`,
//! so [`crate::sql::pg_compat`] rewrites `jsonb_array_elements(j)` to
//! `jsonb(unnest(json_array_items(j)))` (and `_text` to
//! `unnest(json_array_texts(j))`): the functions here make the array,
//! `unnest` the rows. NULL gives no rows; an
//! object or a scalar is `22023`, text that is not JSON `22P02`.

use std::sync::Arc;

use datafusion::arrow::array::{ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use datafusion::scalar::ScalarValue;
use serde_json::Value as Json;

use crate::error::Error;

/// The function `json_array_elements` becomes: elements as JSON text.
pub const ITEMS: &str = "json_array_items";
/// The function `json_array_elements_text` becomes: elements as text.
pub const TEXTS: &str = "json_array_texts";

/// [`ITEMS`] or [`TEXTS`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayElements {
    signature: Signature,
    /// Elements as text (strings unquoted, JSON null as NULL) rather than
    /// as JSON.
    text: bool,
}

impl ArrayElements {
    pub fn new(text: bool) -> ArrayElements {
        ArrayElements { signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable), text }
    }

    fn item(&self) -> FieldRef {
        Arc::new(Field::new("value", DataType::Utf8, true))
    }

    /// The elements of one array, as the list's values.
    fn elements(&self, text: &str) -> crate::Result<Vec<Option<String>>> {
        let parsed: Json = serde_json::from_str(text)
            .map_err(|e| Error::InvalidText(format!("invalid input syntax for type json: {e}")))?;
        let Json::Array(items) = parsed else {
            let what = if parsed.is_object() { "an object" } else { "a scalar" };
            return Err(Error::InvalidParameter(format!("cannot extract elements from {what}")));
        };
        Ok(items
            .into_iter()
            .map(|v| match (self.text, v) {
                (true, Json::String(s)) => Some(s),
                (true, Json::Null) => None,
                (_, other) => Some(other.to_string()),
            })
            .collect())
    }
}

impl ScalarUDFImpl for ArrayElements {
    fn name(&self) -> &str {
        if self.text {
            TEXTS
        } else {
            ITEMS
        }
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
                    let items = self.elements(&text).map_err(|e| DataFusionError::External(Box::new(e)))?;
                    for item in items {
                        out.values().append_option(item);
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

    #[test]
    fn elements_as_json_or_text() {
        let json = ArrayElements::new(false);
        let text = ArrayElements::new(true);
        let doc = r#"["a", 1, {"b": null}, null]"#;
        assert_eq!(
            json.elements(doc).unwrap(),
            [Some(r#""a""#.into()), Some("1".into()), Some(r#"{"b":null}"#.into()), Some("null".into())]
        );
        assert_eq!(
            text.elements(doc).unwrap(),
            [Some("a".into()), Some("1".into()), Some(r#"{"b":null}"#.into()), None]
        );
        assert!(matches!(json.elements("{}"), Err(Error::InvalidParameter(_))));
        assert!(matches!(json.elements("3"), Err(Error::InvalidParameter(_))));
        assert!(matches!(json.elements("[1,"), Err(Error::InvalidText(_))));
    }
}
