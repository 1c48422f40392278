//! System tables: the catalog and the log's shape, queryable from psql.
//!
//! - `brikk_streams`: one row per stream (name, partitions, key column,
//!   retention, records, created_at).
//! - `brikk_partitions`: one row per stream partition (start offset = the
//!   oldest offset retention has kept, end offset = the next offset to be
//!   written, last commit timestamp).

use std::sync::Arc;

use brikk_storage::Store;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use crate::types::UTC;

/// Names of the system tables, as they appear in `public`.
pub const NAMES: [&str; 2] = ["brikk_streams", "brikk_partitions"];

fn ts_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), nullable)
}

/// A snapshot of system table `name`, or `None` if there is no such table.
pub fn table(store: &Store, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
    let catalog = store.catalog();
    let batch = match name {
        "brikk_streams" => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("partitions", DataType::Int32, false),
                Field::new("key", DataType::Utf8, true),
                Field::new("retention", DataType::Utf8, true),
                Field::new("records", DataType::Int64, false),
                ts_field("created_at", false),
            ]));
            let streams: Vec<_> = catalog.streams().collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(streams.iter().map(|s| s.def.name.clone()))),
                Arc::new(Int32Array::from_iter_values(streams.iter().map(|s| s.def.partitions as i32))),
                Arc::new(StringArray::from_iter(
                    streams.iter().map(|s| s.def.key_column.map(|k| s.def.columns[k].name.clone())),
                )),
                Arc::new(StringArray::from_iter(
                    streams.iter().map(|s| s.def.retention_micros.map(crate::sql::format_duration)),
                )),
                Arc::new(Int64Array::from_iter_values(streams.iter().map(|s| s.heads().iter().sum::<u64>() as i64))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(streams.iter().map(|s| s.def.created_at_micros))
                        .with_timezone(UTC),
                ),
            ];
            RecordBatch::try_new(schema, columns)?
        }
        "brikk_partitions" => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("stream", DataType::Utf8, false),
                Field::new("partition", DataType::Int32, false),
                Field::new("start_offset", DataType::Int64, false),
                Field::new("end_offset", DataType::Int64, false),
                ts_field("last_timestamp", true),
            ]));
            let (mut names, mut parts, mut starts, mut ends, mut stamps) = (vec![], vec![], vec![], vec![], vec![]);
            for s in catalog.streams() {
                for p in 0..s.def.partitions {
                    names.push(s.def.name.clone());
                    parts.push(p as i32);
                    starts.push(s.low(p) as i64);
                    ends.push(s.head(p) as i64);
                    let ts = s.last_timestamp(p);
                    stamps.push((ts != i64::MIN).then_some(ts));
                }
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(names)),
                Arc::new(Int32Array::from(parts)),
                Arc::new(Int64Array::from(starts)),
                Arc::new(Int64Array::from(ends)),
                Arc::new(TimestampMicrosecondArray::from(stamps).with_timezone(UTC)),
            ];
            RecordBatch::try_new(schema, columns)?
        }
        _ => return Ok(None),
    };
    let schema = batch.schema();
    Ok(Some(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?)))
}
