//! Arrow rows of an archived file back into storage records.

use brikk_storage::{ColumnType, Error, Record, Result, StreamDef, Value};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType,
};

/// The records of `batch`, which has the full stream schema (system
/// columns first), in row order. `file` names the file in errors.
pub fn records(def: &StreamDef, batch: &RecordBatch, file: &str) -> Result<Vec<Record>> {
    let bad = |what: &str| Error::ArchiveCorrupt { file: file.to_string(), detail: what.to_string() };
    if batch.num_columns() != 4 + def.columns.len() {
        return Err(bad("column count does not match the stream"));
    }
    let offsets = batch.column(1).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("_offset is not bigint"))?;
    let stamps = batch
        .column(2)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| bad("_timestamp is not a timestamp"))?;
    let keys = batch.column(3).as_string_opt::<i32>().ok_or_else(|| bad("_key is not text"))?;
    let n = batch.num_rows();
    let mut out: Vec<Record> = (0..n)
        .map(|i| Record {
            offset: offsets.value(i) as u64,
            timestamp_micros: stamps.value(i),
            key: (!keys.is_null(i)).then(|| keys.value(i).as_bytes().to_vec()),
            values: Vec::with_capacity(def.columns.len()),
        })
        .collect();
    for (c, col) in def.columns.iter().enumerate() {
        let a = batch.column(4 + c);
        let mismatch = || bad(&format!("column {} is not {}", col.name, col.ty.sql_name()));
        macro_rules! fill {
            ($arr:expr, $conv:expr) => {{
                let arr = $arr.ok_or_else(mismatch)?;
                for (i, r) in out.iter_mut().enumerate() {
                    r.values.push(if arr.is_null(i) { Value::Null } else { $conv(arr.value(i)) });
                }
            }};
        }
        match col.ty {
            ColumnType::Boolean => fill!(a.as_boolean_opt(), Value::Boolean),
            ColumnType::SmallInt => fill!(a.as_primitive_opt::<Int16Type>(), |v: i16| Value::Int(v as i64)),
            ColumnType::Integer => fill!(a.as_primitive_opt::<Int32Type>(), |v: i32| Value::Int(v as i64)),
            ColumnType::BigInt => fill!(a.as_primitive_opt::<Int64Type>(), Value::Int),
            ColumnType::Real => fill!(a.as_primitive_opt::<Float32Type>(), |v: f32| Value::Float(v as f64)),
            ColumnType::Double => fill!(a.as_primitive_opt::<Float64Type>(), Value::Float),
            ColumnType::Text | ColumnType::Json | ColumnType::Jsonb | ColumnType::Uuid => {
                fill!(a.as_string_opt::<i32>(), |v: &str| Value::Text(v.to_string()))
            }
            ColumnType::Bytea => fill!(a.as_binary_opt::<i32>(), |v: &[u8]| Value::Bytes(v.to_vec())),
            ColumnType::Timestamp | ColumnType::TimestampTz => {
                fill!(a.as_primitive_opt::<TimestampMicrosecondType>(), Value::Timestamp)
            }
            ColumnType::Date => fill!(a.as_primitive_opt::<Date32Type>(), Value::Date),
            ColumnType::Numeric { precision, scale } => {
                let typed = (a.data_type() == &DataType::Decimal128(precision, scale as i8))
                    .then(|| a.as_primitive_opt::<Decimal128Type>())
                    .flatten();
                fill!(typed, |units: i128| Value::Numeric { units, scale })
            }
        }
    }
    Ok(out)
}
