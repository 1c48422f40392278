//! JSON in SQL: Postgres' operators over `json`/`jsonb` columns.
//!
//! The functions and the `->>`, `?`, `#>` operators come from
//! `datafusion-functions-json`. Two operators are planned here first, so
//! they behave as in Postgres:
//! - `a -> 'k'` returns JSON (`json_get_json`), typed `json` on the wire,
//!   so it can be chained (`fact -> 'a' -> 'b'`);
//! - `a @> b` / `a <@ b` is JSON containment ([`json_contains_value`]).
//!
//! `jsonb_set`, `jsonb || jsonb` and `jsonb - key` edit a document
//! ([`edit`]).
//!
//! `json_build_object(k, v, ...)` and `jsonb_build_object` are Postgres'
//! ([`JsonBuildObject`]), as are `to_json(v)` and `to_jsonb(v)`
//! ([`ToJson`]).
//!
//! Casts to `json` and `jsonb` are rewritten to calls of [`JSON_CAST`] and
//! [`JSONB_CAST`] ([`JsonCast`]): the text, checked to be JSON (`22P02`
//! otherwise), typed `json` or `jsonb` on the wire; `jsonb` also normalizes
//! it, as Postgres stores it parsed. Casts to `uuid`, the other type Brikk
//! holds as text, go the same way ([`UUID_CAST`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::DFSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::{Alias, ScalarFunction};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::utils::{format_state_name, AggregateOrderSensitivity};
use datafusion::logical_expr::{
    create_udf, Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::BinaryOperator;
use serde_json::Value as Json;

use brikk_storage::ColumnType;

use crate::types::{column_field, json_metadata, json_text, uuid_text};

mod edit;
pub mod elements;
mod path;

use edit::{Edit, JsonbEdit};
use elements::{JsonParts, Part};
use path::JsonAtPath;

/// Registers the JSON functions and operators with `registry`.
pub fn register(registry: &mut dyn FunctionRegistry) -> Result<()> {
    // Ours first: the first planner that plans an operator wins.
    registry.register_expr_planner(Arc::new(PostgresJsonPlanner))?;
    registry.register_udf(Arc::new(contains_udf()))?;
    registry.register_udf(Arc::new(array_length_udf("json_array_length")))?;
    registry.register_udf(Arc::new(array_length_udf("jsonb_array_length")))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonBuildObject::new(ColumnType::Json))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonBuildObject::new(ColumnType::Jsonb))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(ToJson::new(ColumnType::Json))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(ToJson::new(ColumnType::Jsonb))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonAtPath::new(false))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonAtPath::new(true))))?;
    for part in Part::ALL {
        registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonParts::new(part))))?;
    }
    for e in [Edit::Set, Edit::Concat, Edit::Delete] {
        registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonbEdit::new(e))))?;
    }
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonArrayOf::new(ColumnType::Json))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonArrayOf::new(ColumnType::Jsonb))))?;
    registry.register_udaf(Arc::new(AggregateUDF::new_from_impl(JsonAgg::new(ColumnType::Json))))?;
    registry.register_udaf(Arc::new(AggregateUDF::new_from_impl(JsonAgg::new(ColumnType::Jsonb))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonCast::new(ColumnType::Json))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonCast::new(ColumnType::Jsonb))))?;
    registry.register_udf(Arc::new(ScalarUDF::new_from_impl(JsonCast::new(ColumnType::Uuid))))?;
    datafusion_functions_json::register_all(registry)
}

#[derive(Debug)]
struct PostgresJsonPlanner;

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)
}

impl ExprPlanner for PostgresJsonPlanner {
    fn plan_binary_op(&self, mut expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        // A parameter of a JSON operator whose type the client left open
        // (`fact ->> $1`) is text, as Postgres resolves it.
        if matches!(
            expr.op,
            BinaryOperator::Arrow
                | BinaryOperator::LongArrow
                | BinaryOperator::HashArrow
                | BinaryOperator::HashLongArrow
                | BinaryOperator::AtArrow
                | BinaryOperator::ArrowAt
                | BinaryOperator::Question
        ) && is_json(&expr.left, schema)
        {
            expr.right = typed_text(expr.right);
        }
        let name = format!("{} {} {}", expr.left.schema_name(), expr.op, expr.right.schema_name());
        let planned = match expr.op {
            BinaryOperator::Arrow => Expr::ScalarFunction(ScalarFunction {
                func: datafusion_functions_json::udfs::json_get_json_udf(),
                args: vec![expr.left, expr.right],
            }),
            BinaryOperator::AtArrow | BinaryOperator::ArrowAt => {
                let (lt, rt) = (expr.left.get_type(schema)?, expr.right.get_type(schema)?);
                if !is_text(&lt) || !is_text(&rt) {
                    return Ok(PlannerResult::Original(expr));
                }
                let (container, contained) = match expr.op {
                    BinaryOperator::AtArrow => (expr.left, expr.right),
                    _ => (expr.right, expr.left),
                };
                Expr::ScalarFunction(ScalarFunction {
                    func: Arc::new(contains_udf()),
                    args: vec![container, contained],
                })
            }
            // A path of keys and indexes, which the JSON functions'
            // operators would take as one key.
            BinaryOperator::HashArrow | BinaryOperator::HashLongArrow => {
                let text = expr.op == BinaryOperator::HashLongArrow;
                Expr::ScalarFunction(ScalarFunction {
                    func: Arc::new(ScalarUDF::new_from_impl(JsonAtPath::new(text))),
                    args: vec![expr.left, expr.right],
                })
            }
            // jsonb || x and jsonb - x edit the document (text || text
            // stays concatenation).
            BinaryOperator::StringConcat | BinaryOperator::Minus => {
                let json = is_json(&expr.left, schema)
                    || (expr.op == BinaryOperator::StringConcat && is_json(&expr.right, schema));
                if !json {
                    return Ok(PlannerResult::Original(expr));
                }
                let edit = if expr.op == BinaryOperator::Minus { Edit::Delete } else { Edit::Concat };
                Expr::ScalarFunction(ScalarFunction {
                    func: Arc::new(ScalarUDF::new_from_impl(JsonbEdit::new(edit))),
                    args: vec![expr.left, expr.right],
                })
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        Ok(PlannerResult::Planned(Expr::Alias(Alias::new(planned, None::<&str>, name))))
    }
}

/// The field of a function's JSON result, typed `kind` (`json` or `jsonb`)
/// on the wire.
pub(crate) fn json_field(name: &str, kind: ColumnType, nullable: bool) -> FieldRef {
    Arc::new(Field::new(name, DataType::Utf8, nullable).with_metadata(json_metadata(kind.sql_name())))
}

/// A text column of `rows` values, row `i` being `value(i)` (None: NULL).
pub(crate) fn text_rows(rows: usize, value: impl FnMut(usize) -> Result<Option<String>>) -> Result<ColumnarValue> {
    let out: StringArray = (0..rows).map(value).collect::<Result<_>>()?;
    Ok(ColumnarValue::Array(Arc::new(out)))
}

/// `e` with a parameter of no known type typed text.
fn typed_text(e: Expr) -> Expr {
    match e {
        Expr::Placeholder(p) if p.field.is_none() => {
            Expr::Placeholder(datafusion::logical_expr::expr::Placeholder::new_with_field(
                p.id,
                Some(Arc::new(Field::new("", DataType::Utf8, true))),
            ))
        }
        other => other,
    }
}

/// Whether `e` is a JSON value (a column, cast or function typed `json` or
/// `jsonb`). `->` gives `json` here where Postgres gives `jsonb` for a
/// `jsonb` document, so both count.
fn is_json(e: &Expr, schema: &DFSchema) -> bool {
    e.to_field(schema).is_ok_and(|(_, f)| f.extension_type_name() == Some("arrow.json"))
}

/// Postgres' `@>` on JSON: whether `a` contains `b`. Objects contain
/// objects whose every key they have with a contained value; arrays
/// contain arrays whose every element one of theirs contains (and a
/// scalar they hold); scalars contain only themselves.
pub fn json_contains_value(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Object(a), Json::Object(b)) => {
            b.iter().all(|(k, bv)| a.get(k).is_some_and(|av| json_contains_value(av, bv)))
        }
        (Json::Array(a), Json::Array(b)) => b.iter().all(|bv| a.iter().any(|av| json_contains_value(av, bv))),
        (Json::Array(a), b) if !b.is_object() && !b.is_array() => a.iter().any(|av| av == b),
        (a, b) => a == b,
    }
}

/// Postgres' `json_array_length(j)` / `jsonb_array_length(j)`: the number
/// of elements of a JSON array (an `integer`); NULL for NULL; `22023` for
/// anything but an array, `22P02` for text that is not JSON.
fn array_length_udf(name: &'static str) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let text = arrays[0]
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Internal(format!("{name} expects text")))?;
            let fail = |e: crate::error::Error| DataFusionError::External(Box::new(e));
            let mut out = Vec::with_capacity(text.len());
            for value in text.iter() {
                let Some(value) = value else {
                    out.push(None);
                    continue;
                };
                match serde_json::from_str::<Json>(value) {
                    Ok(Json::Array(items)) => out.push(Some(items.len() as i32)),
                    Ok(Json::Object(_)) => {
                        return Err(fail(crate::error::Error::InvalidParameter(
                            "cannot get array length of a non-array".into(),
                        )))
                    }
                    Ok(_) => {
                        return Err(fail(crate::error::Error::InvalidParameter(
                            "cannot get array length of a scalar".into(),
                        )))
                    }
                    Err(e) => {
                        return Err(fail(crate::error::Error::InvalidText(format!(
                            "invalid input syntax for type json: {e}"
                        ))))
                    }
                }
            }
            Ok(ColumnarValue::Array(Arc::new(datafusion::arrow::array::Int32Array::from(out))))
        }),
    )
}

fn contains_udf() -> ScalarUDF {
    create_udf(
        "json_contains_value",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let text = |i: usize| {
                arrays[i]
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataFusionError::Internal("json_contains_value expects text".into()))
            };
            let (a, b) = (text(0)?, text(1)?);
            let parse = |s: &str| {
                serde_json::from_str::<Json>(s).map_err(|e| {
                    DataFusionError::External(Box::new(crate::error::Error::InvalidText(format!(
                        "invalid input syntax for type json: {e}"
                    ))))
                })
            };
            let mut out = Vec::with_capacity(a.len());
            for i in 0..a.len() {
                if a.is_null(i) || b.is_null(i) {
                    out.push(None);
                } else {
                    out.push(Some(json_contains_value(&parse(a.value(i))?, &parse(b.value(i))?)));
                }
            }
            Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
        }),
    )
}

/// Postgres' `json_build_object(key, value, ...)` and
/// `jsonb_build_object`: an object from alternating keys and values, typed
/// `json` or `jsonb`. Keys are text (a NULL key is an error); values keep
/// their JSON kind: numbers, booleans, NULL as `null`, `json`/`jsonb`
/// values embedded, anything else as its text. Printed as Brikk prints
/// `jsonb` (compact, one key once), for both.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuildObject {
    signature: Signature,
    /// `Json` or `Jsonb`: the type of the result.
    kind: ColumnType,
}

impl JsonBuildObject {
    pub fn new(kind: ColumnType) -> JsonBuildObject {
        JsonBuildObject { signature: Signature::variadic_any(Volatility::Immutable), kind }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        match self.kind {
            ColumnType::Jsonb => "jsonb_build_object",
            _ => "json_build_object",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(json_field(self.name(), self.kind, false))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(DataFusionError::External(Box::new(crate::error::Error::InvalidParameter(
                "argument list must have even number of elements".into(),
            ))));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let mut object = serde_json::Map::new();
            for pair in 0..arrays.len() / 2 {
                let key = ScalarValue::try_from_array(&arrays[2 * pair], row)?;
                if key.is_null() {
                    return Err(DataFusionError::External(Box::new(crate::error::Error::InvalidParameter(
                        "null value not allowed for object key".into(),
                    ))));
                }
                let key = match key {
                    ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s,
                    other => other.to_string(),
                };
                let field = &args.arg_fields[2 * pair + 1];
                let value = ScalarValue::try_from_array(&arrays[2 * pair + 1], row)?;
                object.insert(key, json_value(value, field.extension_type_name() == Some("arrow.json")));
            }
            out.push(json_string(&Json::Object(object), self.kind));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// Postgres' `to_json(value)` and `to_jsonb(value)`: one value as JSON,
/// kept as its JSON kind as [`JsonBuildObject`] keeps values (a number is a
/// number, text a string, a JSON column its JSON); NULL for NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToJson {
    signature: Signature,
    /// `Json` or `Jsonb`: the type of the result.
    kind: ColumnType,
}

impl ToJson {
    pub fn new(kind: ColumnType) -> ToJson {
        ToJson { signature: Signature::any(1, Volatility::Immutable), kind }
    }
}

impl ScalarUDFImpl for ToJson {
    fn name(&self) -> &str {
        match self.kind {
            ColumnType::Jsonb => "to_jsonb",
            _ => "to_json",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(json_field(self.name(), self.kind, true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let is_json = args.arg_fields[0].extension_type_name() == Some("arrow.json");
        text_rows(args.number_rows, |row| {
            let value = ScalarValue::try_from_array(&arrays[0], row)?;
            Ok((!value.is_null()).then(|| json_string(&json_value(value, is_json), self.kind)))
        })
    }
}

/// Postgres' `json_agg(value)` and `jsonb_agg(value)`: the group's values
/// as a JSON array, each kept as its JSON kind as [`JsonBuildObject`]
/// keeps values; NULL for a group of no rows. The array's order is not
/// defined: partial arrays of parallel partitions are joined as they come.
/// `json_agg(v ORDER BY k)` is rewritten before it gets here (see
/// [`ORDERED_ARRAY`]); one that still does is refused (`0A000`) rather
/// than answered out of order.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonAgg {
    signature: Signature,
    /// `Json` or `Jsonb`: the type of the result.
    kind: ColumnType,
}

impl JsonAgg {
    pub fn new(kind: ColumnType) -> JsonAgg {
        JsonAgg { signature: Signature::any(1, Volatility::Immutable), kind }
    }
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        match self.kind {
            ColumnType::Jsonb => "jsonb_agg",
            _ => "json_agg",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field(&self, _args: &[FieldRef]) -> Result<FieldRef> {
        Ok(json_field(self.name(), self.kind, true))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !args.order_bys.is_empty() {
            return Err(DataFusionError::NotImplemented(format!(
                "{}(… ORDER BY …) (the order of its array is not kept; use string_agg(…, ',' ORDER BY …))",
                self.name()
            )));
        }
        let is_json = args.expr_fields.first().is_some_and(|f| f.extension_type_name() == Some("arrow.json"));
        Ok(Box::new(JsonAggregate { values: Vec::new(), is_json, kind: self.kind }))
    }

    /// The partial array so far, as JSON text.
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format_state_name(args.name, "values"), DataType::Utf8, true))])
    }

    /// Keeps an `ORDER BY` in the call, so that it reaches
    /// [`JsonAgg::accumulator`], which refuses it.
    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::HardRequirement
    }
}

/// The function `json_agg(v ORDER BY k)` becomes, around DataFusion's
/// ordered `array_agg`: `json_array_of(array_agg(to_json(v) ORDER BY k))`
/// (`jsonb_array_of` for `jsonb_agg`). `array_agg` keeps the order across
/// partitions; this makes the list of JSON texts one JSON array, NULL for
/// NULL (a group of no rows).
pub const ORDERED_ARRAY: &str = "json_array_of";

/// [`ORDERED_ARRAY`], and `jsonb_array_of`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonArrayOf {
    signature: Signature,
    kind: ColumnType,
}

impl JsonArrayOf {
    pub fn new(kind: ColumnType) -> JsonArrayOf {
        JsonArrayOf { signature: Signature::any(1, Volatility::Immutable), kind }
    }
}

impl ScalarUDFImpl for JsonArrayOf {
    fn name(&self) -> &str {
        match self.kind {
            ColumnType::Jsonb => "jsonb_array_of",
            _ => ORDERED_ARRAY,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(json_field(self.name(), self.kind, true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        text_rows(args.number_rows, |row| {
            let ScalarValue::List(list) = ScalarValue::try_from_array(&arrays[0], row)? else {
                return Err(DataFusionError::Internal(format!("{} expects a list", self.name())));
            };
            let Some(items) = ScalarValue::convert_array_to_scalar_vec(list.as_ref())?.into_iter().next().flatten()
            else {
                return Ok(None);
            };
            let items = items
                .into_iter()
                .map(|v| match v {
                    ScalarValue::Utf8(Some(text)) => serde_json::from_str(&text).unwrap_or(Json::String(text)),
                    _ => Json::Null,
                })
                .collect();
            Ok(Some(json_string(&Json::Array(items), self.kind)))
        })
    }
}

/// [`JsonAgg`]'s values of one group.
#[derive(Debug)]
struct JsonAggregate {
    values: Vec<Json>,
    /// The input is `json`/`jsonb`: values are embedded, not quoted.
    is_json: bool,
    /// `json` or `jsonb`: the type of the result.
    kind: ColumnType,
}

impl Accumulator for JsonAggregate {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(column) = values.first() else { return Ok(()) };
        for row in 0..column.len() {
            self.values.push(json_value(ScalarValue::try_from_array(column, row)?, self.is_json));
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(texts) = states.first().and_then(|a| a.as_any().downcast_ref::<StringArray>()) else {
            return Err(DataFusionError::Internal("json_agg state is not text".into()));
        };
        for text in texts.iter().flatten() {
            match serde_json::from_str(text) {
                Ok(Json::Array(values)) => self.values.extend(values),
                _ => return Err(DataFusionError::Internal("json_agg state is not a JSON array".into())),
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let array = || json_string(&Json::Array(self.values.clone()), self.kind);
        Ok(ScalarValue::Utf8((!self.values.is_empty()).then(array)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<Json>()
    }
}

/// The function a cast to `json` becomes.
pub const JSON_CAST: &str = "json";
/// The function a cast to `jsonb` becomes.
pub const JSONB_CAST: &str = "jsonb";
/// The function a cast to `uuid` becomes (`uuid()` is DataFusion's random
/// UUID).
pub const UUID_CAST: &str = "uuid_in";

/// `text::json` / `text::jsonb` / `text::uuid`: the text if it is one (for
/// `jsonb`, normalized: parsed and printed again; for `uuid`, canonical),
/// typed as such; NULL stays NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonCast {
    /// `ColumnType::Json`, `ColumnType::Jsonb` or `ColumnType::Uuid`.
    ty: ColumnType,
    signature: Signature,
}

impl JsonCast {
    fn new(ty: ColumnType) -> JsonCast {
        JsonCast { ty, signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for JsonCast {
    fn name(&self) -> &str {
        match self.ty {
            ColumnType::Uuid => UUID_CAST,
            ty => ty.sql_name(),
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.first().is_none_or(|f| f.is_nullable());
        Ok(Arc::new(column_field(self.ty.sql_name(), self.ty, nullable)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = arrays[0]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal(format!("{} expects text", self.name())))?;
        let out = text
            .iter()
            .map(|t| {
                t.map(|t| match self.ty {
                    ColumnType::Uuid => uuid_text(t),
                    ty => json_text(t.to_string(), ty),
                })
                .transpose()
            })
            .collect::<crate::Result<StringArray>>()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// A SQL value as JSON, as Postgres' `to_json` makes it.
/// `value` as Postgres prints a `jsonb`: `{"a": 1, "bb": [1, 2]}`, a
/// space after each `:` and `,`, an object's keys in [`key_order`].
pub fn jsonb_string(value: &Json) -> String {
    let mut out = String::new();
    write_jsonb(value, &mut out);
    out
}

fn write_jsonb(value: &Json, out: &mut String) {
    match value {
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort_by(|a, b| key_order(a, b));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Json::from(key.as_str()).to_string());
                out.push_str(": ");
                write_jsonb(&members[key], out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The order of a `jsonb` object's keys, as Postgres keeps them: shorter
/// keys first, keys of one length in byte order.
pub fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// `value` as the text of a value of JSON type `kind`: `jsonb` as
/// [`jsonb_string`] prints it, `json` compact.
fn json_string(value: &Json, kind: ColumnType) -> String {
    match kind {
        ColumnType::Jsonb => jsonb_string(value),
        _ => value.to_string(),
    }
}

fn json_value(v: ScalarValue, is_json: bool) -> Json {
    if v.is_null() {
        return Json::Null;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => Json::Bool(b),
        ScalarValue::Int8(Some(i)) => i.into(),
        ScalarValue::Int16(Some(i)) => i.into(),
        ScalarValue::Int32(Some(i)) => i.into(),
        ScalarValue::Int64(Some(i)) => i.into(),
        ScalarValue::UInt8(Some(i)) => i.into(),
        ScalarValue::UInt16(Some(i)) => i.into(),
        ScalarValue::UInt32(Some(i)) => i.into(),
        ScalarValue::UInt64(Some(i)) => i.into(),
        ScalarValue::Float32(Some(f)) => serde_json::Number::from_f64(f as f64).map_or(Json::Null, Json::Number),
        ScalarValue::Float64(Some(f)) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            if is_json {
                serde_json::from_str(&s).unwrap_or(Json::String(s))
            } else {
                Json::String(s)
            }
        }
        // A number, as close as JSON numbers get (`1.50` reads as 1.5).
        d @ ScalarValue::Decimal128(..) => {
            let text = d.to_string();
            serde_json::from_str(&text).unwrap_or(Json::String(text))
        }
        // Dates and times in ISO 8601, as Postgres writes them in JSON
        // (`"2026-11-27T07:50:52.901499"`; a timestamptz in UTC, `+00:00`).
        ScalarValue::TimestampSecond(Some(t), ref zone) => iso_timestamp(t.checked_mul(1_000_000), zone.is_some()),
        ScalarValue::TimestampMillisecond(Some(t), ref zone) => iso_timestamp(t.checked_mul(1_000), zone.is_some()),
        ScalarValue::TimestampMicrosecond(Some(t), ref zone) => iso_timestamp(Some(t), zone.is_some()),
        ScalarValue::TimestampNanosecond(Some(t), ref zone) => iso_timestamp(Some(t / 1_000), zone.is_some()),
        ScalarValue::Date32(Some(d)) => chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163)
            .map_or_else(|| Json::String(d.to_string()), |d| Json::String(d.format("%Y-%m-%d").to_string())),
        ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) | ScalarValue::BinaryView(Some(b)) => {
            Json::String(format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
        }
        ScalarValue::List(list) => match ScalarValue::convert_array_to_scalar_vec(list.as_ref()) {
            Ok(rows) => match rows.into_iter().next().flatten() {
                Some(items) => Json::Array(items.into_iter().map(|v| json_value(v, false)).collect()),
                None => Json::Null,
            },
            Err(_) => Json::String(ScalarValue::List(list).to_string()),
        },
        other => Json::String(other.to_string()),
    }
}

/// A timestamp of `micros` since the epoch as Postgres writes it in JSON:
/// ISO 8601 with a `T`, the fraction without trailing zeros, and for a
/// `timestamptz` the offset (UTC).
fn iso_timestamp(micros: Option<i64>, with_zone: bool) -> Json {
    let Some(t) = micros.and_then(chrono::DateTime::from_timestamp_micros) else {
        return Json::String(micros.map_or_else(|| "out of range".into(), |m| m.to_string()));
    };
    let mut text = t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
    text.truncate(trimmed);
    if with_zone {
        text.push_str("+00:00");
    }
    Json::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(a: &str, b: &str) -> bool {
        json_contains_value(&serde_json::from_str(a).unwrap(), &serde_json::from_str(b).unwrap())
    }

    #[test]
    fn jsonb_prints_as_postgres_does() {
        let doc: Json =
            serde_json::from_str(r#"{"bb": [1, {"z": "a\n\"b", "y": null}], "c": true, "a": 1.5}"#).unwrap();
        assert_eq!(jsonb_string(&doc), r#"{"a": 1.5, "c": true, "bb": [1, {"y": null, "z": "a\n\"b"}]}"#);
        assert_eq!(jsonb_string(&serde_json::from_str("[]").unwrap()), "[]");
        assert_eq!(jsonb_string(&serde_json::from_str("{}").unwrap()), "{}");
        assert_eq!(jsonb_string(&Json::from("é")), r#""é""#);
        assert_eq!(json_text(r#"{"b":1,"aa":[2,3]}"#.into(), ColumnType::Jsonb).unwrap(), r#"{"b": 1, "aa": [2, 3]}"#);
        assert_eq!(json_text(r#"{"b":1}"#.into(), ColumnType::Json).unwrap(), r#"{"b":1}"#);
    }

    #[test]
    fn dates_and_times_are_iso_strings() {
        let ts = |us: i64, zone: Option<&str>| {
            json_value(ScalarValue::TimestampMicrosecond(Some(us), zone.map(Into::into)), false)
        };
        assert_eq!(ts(1_795_765_852_901_499, None), Json::String("2026-11-27T07:50:52.901499".into()));
        assert_eq!(ts(1_795_765_852_000_000, Some("UTC")), Json::String("2026-11-27T07:50:52+00:00".into()));
        assert_eq!(ts(1_795_765_852_500_000, None), Json::String("2026-11-27T07:50:52.5".into()));
        assert_eq!(json_value(ScalarValue::Date32(Some(20_784)), false), Json::String("2026-11-27".into()));
        assert_eq!(json_value(ScalarValue::Binary(Some(vec![0xde, 0xad])), false), Json::String("\\xdead".into()));
    }

    #[test]
    fn containment_follows_postgres() {
        assert!(c(r#"{"a":1,"b":{"c":2,"d":3}}"#, r#"{"b":{"c":2}}"#));
        assert!(!c(r#"{"a":1}"#, r#"{"a":2}"#));
        assert!(c(r#"[1,2,[3,4]]"#, r#"[[4],1]"#));
        assert!(c(r#"["x","y"]"#, r#""x""#));
        assert!(!c(r#""x""#, r#"["x"]"#));
        assert!(c(r#"{"tags":["a","b"]}"#, r#"{"tags":["b"]}"#));
    }
}
