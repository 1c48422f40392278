//! `brikk_queries`: every continuous query as committed — status, input
//! offsets and lag, records in/out/late, the last error.

use std::sync::Arc;

use brikk_storage::Store;
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::continuous::def::{Progress, QueryDef};
use crate::error::Result;
use crate::types::UTC;

/// One row per continuous query. Blocking (reads the committed state).
pub fn queries(store: &Store) -> Result<RecordBatch> {
    let ts =
        |name: &str, nullable| Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), nullable);
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("sink", DataType::Utf8, false),
        Field::new("inputs", DataType::Utf8, false),
        Field::new("input_offsets", DataType::Utf8, false),
        Field::new("lag", DataType::Int64, false),
        Field::new("records_in", DataType::Int64, false),
        Field::new("records_out", DataType::Int64, false),
        Field::new("records_late", DataType::Int64, false),
        Field::new("last_error", DataType::Utf8, true),
        ts("created_at", false),
        ts("updated_at", true),
        Field::new("definition", DataType::Utf8, false),
    ]));
    let defs = QueryDef::load_all(store)?;
    let mut c =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for d in defs {
        let p = Progress::load(store, d.id)?.unwrap_or_default();
        let catalog = store.catalog();
        let mut offsets = Vec::new();
        let mut lag = 0u64;
        for name in &d.inputs {
            let Some(s) = catalog.get(name) else { continue };
            let next = p.inputs.iter().find(|(id, _)| *id == s.def.id).map(|(_, n)| n.clone());
            let next = next.unwrap_or_else(|| (0..s.def.partitions).map(|p| s.low(p)).collect());
            let parts: Vec<String> = next.iter().enumerate().map(|(i, n)| format!("{i}:{n}")).collect();
            offsets.push(format!("{name}({})", parts.join(",")));
            lag += s.heads().iter().zip(&next).map(|(h, n)| h.saturating_sub(*n)).sum::<u64>();
        }
        c.0.push(d.name.clone());
        c.1.push(d.status.as_str());
        c.2.push(d.sink.clone());
        c.3.push(d.inputs.join(", "));
        c.4.push(offsets.join(" "));
        c.5.push(lag as i64);
        c.6.push(p.records_in as i64);
        c.7.push(p.records_out as i64);
        c.8.push(p.records_late as i64);
        c.9.push(d.error.clone());
        c.10.push(d.created_at_micros);
        c.11.push((p.updated_at_micros != 0).then_some(p.updated_at_micros));
        c.12.push(d.body.clone());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(c.0)),
        Arc::new(StringArray::from(c.1)),
        Arc::new(StringArray::from(c.2)),
        Arc::new(StringArray::from(c.3)),
        Arc::new(StringArray::from(c.4)),
        Arc::new(Int64Array::from(c.5)),
        Arc::new(Int64Array::from(c.6)),
        Arc::new(Int64Array::from(c.7)),
        Arc::new(Int64Array::from(c.8)),
        Arc::new(StringArray::from(c.9)),
        Arc::new(TimestampMicrosecondArray::from(c.10).with_timezone(UTC)),
        Arc::new(TimestampMicrosecondArray::from(c.11).with_timezone(UTC)),
        Arc::new(StringArray::from(c.12)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
