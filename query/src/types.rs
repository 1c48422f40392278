//! Types: SQL type names ↔ storage column types ↔ Arrow, and the assignment
//! rules that turn a value into a column's value (as Postgres does for
//! INSERT: numbers widen or round, anything becomes text, text is parsed).

use std::sync::Arc;

use brikk_storage::{numeric, ColumnType, FieldRef, Value};
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DFSchemaRef, ExprSchema};
use datafusion::logical_expr::{Expr, LogicalPlan, Operator};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, TimezoneInfo};

use crate::error::{Error, Result};

/// The time zone Brikk attaches to `timestamptz` values and `_timestamp`.
pub const UTC: &str = "+00:00";

/// Arrow type of a column type.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::SmallInt => DataType::Int16,
        ColumnType::Integer => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Real => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::Text | ColumnType::Json | ColumnType::Jsonb | ColumnType::Uuid => DataType::Utf8,
        ColumnType::Bytea => DataType::Binary,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        ColumnType::Date => DataType::Date32,
        ColumnType::Numeric { precision, scale } => DataType::Decimal128(precision, scale as i8),
    }
}

/// `text` as a value of JSON type `ty`: refused (`22P02`) unless it is
/// JSON; `jsonb` keeps it normalized (parsed and printed again as Postgres
/// prints a `jsonb`, [`crate::json::jsonb_string`]), `json` as written.
pub fn json_text(text: String, ty: ColumnType) -> Result<String> {
    let parsed: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidText(format!("invalid input syntax for type {}: {e}", ty.sql_name())))?;
    Ok(if ty == ColumnType::Jsonb { crate::json::jsonb_string(&parsed) } else { text })
}

/// Field metadata key naming the Postgres type of a column Arrow holds as
/// text (`json`, `jsonb`, `uuid`); the server reports that type to clients.
pub const PG_TYPE_METADATA: &str = "brikk.pg_type";

/// The Arrow field of a user column. JSON columns are text tagged as the
/// `arrow.json` extension type, with their Postgres type in
/// [`PG_TYPE_METADATA`]; UUID columns are text with `uuid` there.
pub fn column_field(name: &str, ty: ColumnType, nullable: bool) -> Field {
    let field = Field::new(name, arrow_type(ty), nullable);
    match ty {
        ColumnType::Json | ColumnType::Jsonb => field.with_metadata(json_metadata(ty.sql_name())),
        ColumnType::Uuid => field.with_metadata(std::collections::HashMap::from([(
            PG_TYPE_METADATA.to_string(),
            ty.sql_name().to_string(),
        )])),
        _ => field,
    }
}

/// [`PG_TYPE_METADATA`] of an integer-array result column of a catalog
/// query: an `oid[]` (see [`oid_arrays_of_catalog`]).
pub const OID_ARRAY_TYPE: &str = "oid[]";

/// `plan` with its `integer[]` result columns tagged as `oid[]`
/// ([`OID_ARRAY_TYPE`]) when it reads `pg_catalog`. Brikk holds OIDs as
/// integers, and the catalog has no `integer[]` columns, only `oid[]` ones
/// (such as what `array_agg(atttypid)` gives): a driver that learns types
/// from the catalog (asyncpg) knows how to read `oid[]` before it has
/// learnt anything, and would otherwise ask the catalog about `integer[]`
/// with the same query, forever.
pub(crate) fn oid_arrays_of_catalog(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let oid_arrays = |f: &Field| matches!(f.data_type(), DataType::List(item) if item.data_type() == &DataType::Int32);
    if !plan.schema().fields().iter().any(|f| oid_arrays(f)) {
        return Ok(plan);
    }
    let mut catalog = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            catalog |= scan.table_name.schema() == Some("pg_catalog") || scan.table_name.table().starts_with("pg_");
        }
        Ok(if catalog { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    if !catalog {
        return Ok(plan);
    }
    let tag = std::collections::HashMap::from([(PG_TYPE_METADATA.to_string(), OID_ARRAY_TYPE.to_string())]);
    let exprs: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::from((qualifier, field)));
            match oid_arrays(field) {
                true => {
                    column.alias_qualified_with_metadata(qualifier.cloned(), field.name(), Some(tag.clone().into()))
                }
                false => column,
            }
        })
        .collect();
    Ok(LogicalPlan::Projection(datafusion::logical_expr::Projection::try_new(exprs, std::sync::Arc::new(plan))?))
}

/// Whether `field` is a `uuid` column ([`column_field`]).
pub fn is_uuid_field(field: &Field) -> bool {
    field.metadata().get(PG_TYPE_METADATA).map(String::as_str) == Some(ColumnType::Uuid.sql_name())
}

/// `e` with the text literals it compares with a `uuid` column (`=`,
/// `<>`, `<`…, `IS [NOT] DISTINCT FROM`, `IN`) in canonical form: Postgres
/// reads such a literal as a `uuid`, so `id = 'A0EEBC99-…'` finds the row
/// stored as `a0eebc99-…`. Text that is not a uuid is refused with `22P02`,
/// as there. Columns are resolved in `schemas`.
pub(crate) fn uuid_literals(e: Expr, schemas: &[&DFSchema]) -> Result<Expr> {
    let mut failed = None;
    let out = canonical_uuid_literals(e, schemas, &mut failed)?.data;
    failed.map_or(Ok(out), Err)
}

/// [`uuid_literals`] as a tree rewrite: whether it changed `e`, and the
/// first text that is not a uuid in `failed` (that literal is left as it
/// is).
fn canonical_uuid_literals(
    e: Expr,
    schemas: &[&DFSchema],
    failed: &mut Option<Error>,
) -> datafusion::error::Result<Transformed<Expr>> {
    let mut canonical = |e: Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(text)), meta) => match uuid_text(&text) {
            Ok(t) => Expr::Literal(ScalarValue::Utf8(Some(t)), meta),
            Err(err) => {
                failed.get_or_insert(err);
                Expr::Literal(ScalarValue::Utf8(Some(text)), meta)
            }
        },
        other => other,
    };
    e.transform_up(|e| {
        Ok(match e {
            Expr::BinaryExpr(mut b)
                if compares(b.op) && (is_uuid_column(&b.left, schemas) || is_uuid_column(&b.right, schemas)) =>
            {
                b.left = Box::new(canonical(*b.left));
                b.right = Box::new(canonical(*b.right));
                Transformed::yes(Expr::BinaryExpr(b))
            }
            Expr::InList(mut l) if is_uuid_column(&l.expr, schemas) => {
                l.list = l.list.into_iter().map(&mut canonical).collect();
                Transformed::yes(Expr::InList(l))
            }
            e => Transformed::no(e),
        })
    })
}

/// [`uuid_literals`] in every expression of `plan` and its subqueries, each
/// against its node's inputs. A plan with no text literal is returned as
/// it is, without a walk that rebuilds it.
pub(crate) fn uuid_literals_in_plan(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut text = false;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            text |= e.exists(|e| Ok(matches!(e, Expr::Literal(ScalarValue::Utf8(Some(_)), _))))?;
            Ok(if text { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })
    })?;
    if !text {
        return Ok(plan);
    }
    let mut failed = None;
    let out = plan
        .transform_up_with_subqueries(|node| {
            let inputs: Vec<DFSchemaRef> = node.inputs().iter().map(|p| p.schema().clone()).collect();
            let schemas: Vec<&DFSchema> = inputs.iter().map(|s| s.as_ref()).collect();
            node.map_expressions(|e| canonical_uuid_literals(e, &schemas, &mut failed))
        })?
        .data;
    failed.map_or(Ok(out), Err)
}

/// Whether `e` is a column that `schemas` type `uuid`.
pub(crate) fn is_uuid_column(e: &Expr, schemas: &[&DFSchema]) -> bool {
    let Expr::Column(c) = e else { return false };
    schemas.iter().any(|s| s.field_from_column(c).is_ok_and(|f| is_uuid_field(f)))
}

/// Whether `op` compares its two sides.
pub(crate) fn compares(op: Operator) -> bool {
    use Operator::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom)
}

/// `text` as a canonical UUID (lower-case, 8-4-4-4-12), as Postgres reads
/// one: hex digits with or without hyphens (after any group of four),
/// optionally in braces. Anything else is refused with `22P02`.
pub fn uuid_text(text: &str) -> Result<String> {
    let invalid = || Error::InvalidText(format!("invalid input syntax for type uuid: \"{text}\""));
    let t = text.trim();
    let t = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(t);
    let mut hex = String::with_capacity(32);
    let mut since_hyphen = 0;
    for (i, c) in t.chars().enumerate() {
        match c {
            '-' if i > 0 && since_hyphen % 4 == 0 && since_hyphen > 0 => since_hyphen = 0,
            c if c.is_ascii_hexdigit() => {
                hex.push(c.to_ascii_lowercase());
                since_hyphen += 1;
            }
            _ => return Err(invalid()),
        }
    }
    if hex.len() != 32 || t.ends_with('-') {
        return Err(invalid());
    }
    Ok(hyphenated(&hex))
}

/// The canonical text of a UUID's 16 bytes.
pub fn uuid_of_bytes(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    Some(hyphenated(&b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
}

/// 32 hex digits in the 8-4-4-4-12 groups of a UUID.
fn hyphenated(hex: &str) -> String {
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Field metadata of a JSON value of Postgres type `pg_type`.
pub fn json_metadata(pg_type: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("ARROW:extension:name".to_string(), "arrow.json".to_string()),
        ("ARROW:extension:metadata".to_string(), "{}".to_string()),
        (PG_TYPE_METADATA.to_string(), pg_type.to_string()),
    ])
}

/// The smallest and largest value of an integer column type; `None` for
/// any other type.
pub fn integer_range(ty: ColumnType) -> Option<(i64, i64)> {
    match ty {
        ColumnType::SmallInt => Some((i16::MIN as i64, i16::MAX as i64)),
        ColumnType::Integer => Some((i32::MIN as i64, i32::MAX as i64)),
        ColumnType::BigInt => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

/// The column type named by a SQL type in `CREATE STREAM`.
pub fn column_type(dt: &ast::DataType) -> Result<ColumnType> {
    use ast::DataType as D;
    Ok(match dt {
        D::Boolean | D::Bool => ColumnType::Boolean,
        D::SmallInt(_) | D::Int2(_) => ColumnType::SmallInt,
        D::Int(_) | D::Integer(_) | D::Int4(_) => ColumnType::Integer,
        D::BigInt(_) | D::Int8(_) => ColumnType::BigInt,
        D::Real | D::Float4 => ColumnType::Real,
        D::Double(_) | D::DoublePrecision | D::Float8 | D::Float(_) => ColumnType::Double,
        D::Text | D::Varchar(_) | D::CharacterVarying(_) | D::String(_) | D::Char(_) | D::Character(_) => {
            ColumnType::Text
        }
        D::Bytea => ColumnType::Bytea,
        D::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => ColumnType::Timestamp,
        D::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => ColumnType::TimestampTz,
        D::Date => ColumnType::Date,
        D::JSON => ColumnType::Json,
        D::JSONB => ColumnType::Jsonb,
        D::Uuid => ColumnType::Uuid,
        D::Numeric(info) | D::Decimal(info) | D::Dec(info) => numeric_type(info)?,
        D::Custom(name, _) if name.to_string().eq_ignore_ascii_case("timestamptz") => ColumnType::TimestampTz,
        other => return Err(Error::Unsupported(format!("column type {other}"))),
    })
}

/// The column type of `numeric(p, s)` (`decimal`, `dec`): `p` from 1 to
/// [`numeric::MAX_PRECISION`], `s` from 0 to `p`; `numeric(p)` has scale 0.
/// An unconstrained `numeric` is refused: Brikk stores every value of a
/// column at the column's scale.
fn numeric_type(info: &ast::ExactNumberInfo) -> Result<ColumnType> {
    let (precision, scale) = match *info {
        ast::ExactNumberInfo::None => {
            return Err(Error::Unsupported(format!(
                "numeric without a precision (declare numeric(p, s), p at most {})",
                numeric::MAX_PRECISION
            )))
        }
        ast::ExactNumberInfo::Precision(p) => (p, 0),
        ast::ExactNumberInfo::PrecisionAndScale(p, s) => (p, s),
    };
    if precision == 0 {
        return Err(Error::InvalidParameter(format!("NUMERIC precision {precision} must be at least 1")));
    }
    if precision > numeric::MAX_PRECISION as u64 {
        return Err(Error::Unsupported(format!("numeric precision {precision} (at most {})", numeric::MAX_PRECISION)));
    }
    if scale < 0 || scale as u64 > precision {
        return Err(Error::InvalidParameter(format!(
            "NUMERIC scale {scale} must be between 0 and precision {precision}"
        )));
    }
    Ok(ColumnType::Numeric { precision: precision as u8, scale: scale as u8 })
}

/// Coerces `value` for assignment to a column of type `ty`, following
/// Postgres' assignment rules closely enough that agents see the errors they
/// expect: 42804 for a type that cannot be assigned, 22P02 for unreadable
/// text, 22003 for numbers that do not fit.
///
/// Text without an offset assigned to a `timestamptz` column is a time in
/// UTC here; [`assign_in`] reads it in a session's zone.
pub fn assign(value: ScalarValue, ty: ColumnType, column: &str) -> Result<Value> {
    assign_in(value, ty, column, UTC)
}

/// [`assign`], reading text without an offset for a `timestamptz` column as
/// a local time of `zone` (the session's `TimeZone`, as Arrow spells it).
pub fn assign_in(value: ScalarValue, ty: ColumnType, column: &str, zone: &str) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let mismatch = |v: &ScalarValue| {
        Error::TypeMismatch(format!(
            "column \"{column}\" is of type {} but expression is of type {}",
            ty.sql_name(),
            pg_name_of(&v.data_type())
        ))
    };
    let source = value.data_type();
    match ty {
        ColumnType::Json | ColumnType::Jsonb => {
            let text = match value {
                ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s,
                ScalarValue::Binary(_) | ScalarValue::LargeBinary(_) | ScalarValue::BinaryView(_) => {
                    return Err(mismatch(&value))
                }
                other => other.to_string(),
            };
            Ok(Value::Text(json_text(text, ty)?))
        }
        ColumnType::Uuid => match value {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
                uuid_text(&s).map(Value::Text)
            }
            ScalarValue::Binary(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::BinaryView(Some(b))
            | ScalarValue::FixedSizeBinary(16, Some(b)) => uuid_of_bytes(&b)
                .map(Value::Text)
                .ok_or_else(|| Error::InvalidText("invalid input syntax for type uuid: not 16 bytes".into())),
            other => Err(mismatch(&other)),
        },
        ColumnType::Text => Ok(Value::Text(match value {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s,
            ScalarValue::Boolean(Some(b)) => b.to_string(),
            ScalarValue::Binary(_) | ScalarValue::LargeBinary(_) => return Err(mismatch(&value)),
            other => other.to_string(),
        })),
        ColumnType::Bytea => match value {
            ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) | ScalarValue::BinaryView(Some(b)) => {
                Ok(Value::Bytes(b))
            }
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
                parse_bytea(&s).map(Value::Bytes)
            }
            other => Err(mismatch(&other)),
        },
        ColumnType::Boolean => match value {
            ScalarValue::Boolean(Some(b)) => Ok(Value::Boolean(b)),
            v if is_text(&source) => parse_bool(&text_of(v)).map(Value::Boolean),
            other => Err(mismatch(&other)),
        },
        ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => {
            let (lo, hi) = integer_range(ty).expect("an integer type");
            let out_of_range = || Error::OutOfRange(format!("{} out of range", ty.sql_name()));
            let v: i64 = if source.is_integer() {
                match value.cast_to(&DataType::Int64) {
                    Ok(ScalarValue::Int64(Some(v))) => v,
                    _ => return Err(out_of_range()),
                }
            } else if source.is_floating() || matches!(source, DataType::Decimal128(..) | DataType::Decimal256(..)) {
                let f = match value.cast_to(&DataType::Float64) {
                    Ok(ScalarValue::Float64(Some(f))) => f.round_ties_even(),
                    _ => return Err(out_of_range()),
                };
                if !f.is_finite() || f < i64::MIN as f64 || f >= i64::MAX as f64 {
                    return Err(out_of_range());
                }
                f as i64
            } else if is_text(&source) {
                let s = text_of(value);
                s.trim().parse::<i64>().map_err(|_| {
                    if s.trim().parse::<i128>().is_ok() {
                        out_of_range()
                    } else {
                        Error::InvalidText(format!("invalid input syntax for type {}: \"{s}\"", ty.sql_name()))
                    }
                })?
            } else {
                return Err(mismatch(&value));
            };
            if v < lo || v > hi {
                return Err(out_of_range());
            }
            Ok(Value::Int(v))
        }
        ColumnType::Real | ColumnType::Double => {
            if source.is_numeric() {
                match value.cast_to(&DataType::Float64) {
                    Ok(ScalarValue::Float64(Some(f))) => Ok(Value::Float(f)),
                    _ => Err(Error::OutOfRange(format!("value out of range for type {}", ty.sql_name()))),
                }
            } else if is_text(&source) {
                let s = text_of(value);
                let t = s.trim();
                let parsed = match t.to_ascii_lowercase().as_str() {
                    "nan" => Ok(f64::NAN),
                    "infinity" | "+infinity" | "inf" => Ok(f64::INFINITY),
                    "-infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                    _ => t.parse::<f64>(),
                };
                parsed.map(Value::Float).map_err(|_| {
                    Error::InvalidText(format!("invalid input syntax for type {}: \"{s}\"", ty.sql_name()))
                })
            } else {
                Err(mismatch(&value))
            }
        }
        ColumnType::Numeric { precision, scale } => {
            let overflow = || {
                Error::OutOfRange(format!(
                    "numeric field overflow: a field with precision {precision}, scale {scale} must round to an \
                     absolute value less than 10^{}",
                    precision - scale
                ))
            };
            let units = match value {
                ScalarValue::Decimal128(Some(units), _, from) => numeric::from_decimal(units, from)
                    .and_then(|(units, from)| numeric::rescale(units, from, scale))
                    .ok_or_else(overflow)?,
                v if source.is_integer() => match v.cast_to(&DataType::Int64) {
                    Ok(ScalarValue::Int64(Some(i))) => numeric::rescale(i as i128, 0, scale).ok_or_else(overflow)?,
                    _ => return Err(overflow()),
                },
                v if source.is_floating() => match v.cast_to(&DataType::Float64) {
                    Ok(ScalarValue::Float64(Some(f))) if f.is_finite() => {
                        numeric::parse(&f.to_string(), scale).map_err(|_| overflow())?
                    }
                    _ => return Err(Error::Unsupported("NaN and infinity in numeric columns".into())),
                },
                v if is_text(&source) => {
                    let text = text_of(v);
                    let special = text.trim().trim_start_matches(['+', '-']).to_ascii_lowercase();
                    if matches!(special.as_str(), "nan" | "inf" | "infinity") {
                        return Err(Error::Unsupported("NaN and infinity in numeric columns".into()));
                    }
                    match numeric::parse(&text, scale) {
                        Ok(units) => units,
                        Err(numeric::ParseError::Overflow) => return Err(overflow()),
                        Err(numeric::ParseError::Invalid) => {
                            return Err(Error::InvalidText(format!(
                                "invalid input syntax for type numeric: \"{text}\""
                            )))
                        }
                    }
                }
                other => return Err(mismatch(&other)),
            };
            if !numeric::fits(units, precision) {
                return Err(overflow());
            }
            Ok(Value::Numeric { units, scale })
        }
        ColumnType::Timestamp | ColumnType::TimestampTz | ColumnType::Date => {
            let target = match ty {
                ColumnType::TimestampTz if !is_utc(zone) => {
                    DataType::Timestamp(TimeUnit::Microsecond, Some(zone.into()))
                }
                _ => arrow_type(ty),
            };
            let temporal = matches!(source, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64);
            if !temporal && !is_text(&source) {
                return Err(mismatch(&value));
            }
            let shown = if is_text(&source) { Some(text_of(value.clone())) } else { None };
            let target_kind = crate::datetime::Target::of(&target).expect("a date/time type");
            let value = match shown.as_deref().and_then(|s| crate::datetime::rewrite(s, target_kind, zone)) {
                Some(respelled) => ScalarValue::Utf8(Some(respelled)),
                None => value,
            };
            let cast = value.cast_to(&target).map_err(|_| match &shown {
                Some(s) => Error::InvalidText(format!("invalid input syntax for type {}: \"{s}\"", ty.sql_name())),
                None => mismatch(&ScalarValue::try_from(&source).unwrap_or(ScalarValue::Null)),
            })?;
            match cast {
                ScalarValue::TimestampMicrosecond(Some(v), _) => Ok(Value::Timestamp(v)),
                ScalarValue::Date32(Some(d)) => Ok(Value::Date(d)),
                other => Err(Error::Internal(format!("cast produced {other:?}"))),
            }
        }
    }
}

/// Whether `zone` is UTC, as the session (`UTC`) or Arrow (`+00:00`)
/// spells it.
pub fn is_utc(zone: &str) -> bool {
    zone == UTC || zone == crate::session::vars::DEFAULT_ZONE
}

fn is_text(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn text_of(v: ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s,
        other => other.to_string(),
    }
}

fn parse_bool(s: &str) -> Result<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
        _ => Err(Error::InvalidText(format!("invalid input syntax for type boolean: \"{s}\""))),
    }
}

/// Postgres' hex bytea input (`\x0aff`); other text is taken as its bytes.
fn parse_bytea(s: &str) -> Result<Vec<u8>> {
    let Some(hex) = s.strip_prefix("\\x") else {
        return Ok(s.as_bytes().to_vec());
    };
    let bad = || Error::InvalidText(format!("invalid hexadecimal data in bytea: \"{s}\""));
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

/// The Postgres name of an Arrow type, for error messages.
pub fn pg_name_of(dt: &DataType) -> &'static str {
    match dt {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Interval(_) => "interval",
        DataType::Null => "unknown",
        _ => "an unsupported type",
    }
}

/// A scalar as a storage value, if it has a storage counterpart
/// (timestamps in microseconds, dates in days).
pub fn value_of_scalar(s: &ScalarValue) -> Option<Value> {
    if s.is_null() {
        return Some(Value::Null);
    }
    Some(match s {
        ScalarValue::Boolean(Some(b)) => Value::Boolean(*b),
        ScalarValue::Int8(Some(x)) => Value::Int(*x as i64),
        ScalarValue::Int16(Some(x)) => Value::Int(*x as i64),
        ScalarValue::Int32(Some(x)) => Value::Int(*x as i64),
        ScalarValue::Int64(Some(x)) => Value::Int(*x),
        ScalarValue::UInt8(Some(x)) => Value::Int(*x as i64),
        ScalarValue::UInt16(Some(x)) => Value::Int(*x as i64),
        ScalarValue::UInt32(Some(x)) => Value::Int(*x as i64),
        ScalarValue::Float32(Some(x)) => Value::Float(*x as f64),
        ScalarValue::Float64(Some(x)) => Value::Float(*x),
        ScalarValue::Utf8(Some(x)) | ScalarValue::LargeUtf8(Some(x)) | ScalarValue::Utf8View(Some(x)) => {
            Value::Text(x.clone())
        }
        ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) => Value::Bytes(b.clone()),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Value::Timestamp(*x),
        ScalarValue::TimestampMillisecond(Some(x), _) => Value::Timestamp(*x * 1000),
        ScalarValue::TimestampSecond(Some(x), _) => Value::Timestamp(*x * 1_000_000),
        ScalarValue::TimestampNanosecond(Some(x), _) => Value::Timestamp(*x / 1000),
        ScalarValue::Date32(Some(d)) => Value::Date(*d),
        ScalarValue::Decimal128(Some(units), _, scale) => {
            let (units, scale) = numeric::from_decimal(*units, *scale)?;
            Value::Numeric { units, scale }
        }
        _ => return None,
    })
}

/// Builds the Arrow column of one [`ColumnType`] value by value, from
/// values borrowed out of encoded records ([`FieldRef`]) or owned ones.
/// A value that does not fit the column (which the storage layer's checks
/// rule out) becomes NULL.
pub enum ColumnBuilder {
    Boolean(BooleanBuilder),
    SmallInt(Int16Builder),
    Integer(Int32Builder),
    BigInt(Int64Builder),
    Real(Float32Builder),
    Double(Float64Builder),
    Text(StringBuilder),
    Bytea(BinaryBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Numeric(Decimal128Builder, u8),
}

impl ColumnBuilder {
    /// A builder for `ty`, with room for `len` values.
    pub fn new(ty: ColumnType, len: usize) -> ColumnBuilder {
        match ty {
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(len)),
            ColumnType::SmallInt => ColumnBuilder::SmallInt(Int16Builder::with_capacity(len)),
            ColumnType::Integer => ColumnBuilder::Integer(Int32Builder::with_capacity(len)),
            ColumnType::BigInt => ColumnBuilder::BigInt(Int64Builder::with_capacity(len)),
            ColumnType::Real => ColumnBuilder::Real(Float32Builder::with_capacity(len)),
            ColumnType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(len)),
            ColumnType::Text | ColumnType::Json | ColumnType::Jsonb | ColumnType::Uuid => {
                ColumnBuilder::Text(StringBuilder::with_capacity(len, len * 16))
            }
            ColumnType::Bytea => ColumnBuilder::Bytea(BinaryBuilder::with_capacity(len, len * 16)),
            ColumnType::Timestamp => ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(len)),
            ColumnType::TimestampTz => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(len).with_timezone(UTC))
            }
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(len)),
            ColumnType::Numeric { precision, scale } => ColumnBuilder::Numeric(
                Decimal128Builder::with_capacity(len)
                    .with_precision_and_scale(precision, scale as i8)
                    .expect("a column's precision and scale are valid for Arrow"),
                scale,
            ),
        }
    }

    /// Appends one value.
    pub fn append(&mut self, v: FieldRef<'_>) {
        match (self, v) {
            (ColumnBuilder::Boolean(b), FieldRef::Boolean(x)) => b.append_value(x),
            (ColumnBuilder::SmallInt(b), FieldRef::Int(x)) => b.append_value(x as i16),
            (ColumnBuilder::Integer(b), FieldRef::Int(x)) => b.append_value(x as i32),
            (ColumnBuilder::BigInt(b), FieldRef::Int(x)) => b.append_value(x),
            (ColumnBuilder::Real(b), FieldRef::Float(x)) => b.append_value(x as f32),
            (ColumnBuilder::Double(b), FieldRef::Float(x)) => b.append_value(x),
            (ColumnBuilder::Text(b), FieldRef::Text(x)) => b.append_value(x),
            (ColumnBuilder::Bytea(b), FieldRef::Bytes(x)) => b.append_value(x),
            (ColumnBuilder::Timestamp(b), FieldRef::Timestamp(x)) => b.append_value(x),
            (ColumnBuilder::Date(b), FieldRef::Date(x)) => b.append_value(x),
            (ColumnBuilder::Numeric(b, scale), FieldRef::Numeric { units, scale: s }) if s == *scale => {
                b.append_value(units)
            }
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::SmallInt(b) => b.append_null(),
            ColumnBuilder::Integer(b) => b.append_null(),
            ColumnBuilder::BigInt(b) => b.append_null(),
            ColumnBuilder::Real(b) => b.append_null(),
            ColumnBuilder::Double(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Bytea(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Numeric(b, _) => b.append_null(),
        }
    }

    /// The column of the values appended so far; the builder starts over
    /// empty.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::SmallInt(b) => Arc::new(b.finish()),
            ColumnBuilder::Integer(b) => Arc::new(b.finish()),
            ColumnBuilder::BigInt(b) => Arc::new(b.finish()),
            ColumnBuilder::Real(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Bytea(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Numeric(b, _) => Arc::new(b.finish()),
        }
    }
}

/// The Arrow column of `len` values of type `ty` ([`ColumnBuilder`]).
pub fn build_array(ty: ColumnType, values: impl Iterator<Item = Value>, len: usize) -> ArrayRef {
    let mut b = ColumnBuilder::new(ty, len);
    for v in values {
        b.append(v.as_field());
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_read_in_every_postgres_spelling() {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for spelling in [
            canonical,
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        ] {
            assert_eq!(uuid_text(spelling).unwrap(), canonical, "{spelling}");
        }
        for bad in [
            "",
            "a0eebc99",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "-a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0e-ebc999c0b4ef8bb6d6bb9bd380a11",
            "g0eebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert!(matches!(uuid_text(bad), Err(Error::InvalidText(_))), "{bad}");
        }
        let bytes: Vec<u8> = (0..16).collect();
        assert_eq!(uuid_of_bytes(&bytes).unwrap(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(uuid_of_bytes(&bytes[..15]), None);
    }

    #[test]
    fn assignment_follows_postgres() {
        let int = |s: &str| ScalarValue::Utf8(Some(s.into()));
        assert_eq!(assign(ScalarValue::Int64(Some(5)), ColumnType::SmallInt, "c").unwrap(), Value::Int(5));
        assert!(matches!(
            assign(ScalarValue::Int64(Some(70000)), ColumnType::SmallInt, "c"),
            Err(Error::OutOfRange(_))
        ));
        assert!(matches!(assign(int("abc"), ColumnType::Integer, "c"), Err(Error::InvalidText(_))));
        assert_eq!(assign(int(" 42 "), ColumnType::Integer, "c").unwrap(), Value::Int(42));
        assert_eq!(assign(ScalarValue::Float64(Some(2.5)), ColumnType::BigInt, "c").unwrap(), Value::Int(2));
        assert!(matches!(
            assign(ScalarValue::Boolean(Some(true)), ColumnType::Integer, "c"),
            Err(Error::TypeMismatch(_))
        ));
        assert_eq!(assign(ScalarValue::Int64(Some(7)), ColumnType::Text, "c").unwrap(), Value::Text("7".into()));
        assert_eq!(assign(int("yes"), ColumnType::Boolean, "c").unwrap(), Value::Boolean(true));
        assert_eq!(assign(int("\\x0aff"), ColumnType::Bytea, "c").unwrap(), Value::Bytes(vec![10, 255]));
        assert!(matches!(assign(int("2026-01-02 03:04:05"), ColumnType::Timestamp, "c").unwrap(), Value::Timestamp(_)));
        assert!(matches!(assign(int("not a date"), ColumnType::Date, "c"), Err(Error::InvalidText(_))));
        assert_eq!(assign(ScalarValue::Utf8(None), ColumnType::Integer, "c").unwrap(), Value::Null);
    }
}
