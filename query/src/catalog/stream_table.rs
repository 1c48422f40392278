//! A stream as a DataFusion table.

use std::sync::Arc;

use async_trait::async_trait;
use brikk_storage::{Store, StreamDef, StreamHandle};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::archive::{plan_archive, ArchiveScan};
use crate::catalog::scan::{understood, ScanBounds, StreamScanExec};
use crate::types::{column_field, UTC};

/// The columns every stream has before its own, in this order. They are
/// left out of `SELECT *`; name them to see them.
pub const SYSTEM_COLUMNS: [&str; 4] = ["_partition", "_offset", "_timestamp", "_key"];

/// The Arrow schema of a stream: system columns, then the user's columns.
/// Archived Parquet files have exactly this schema.
pub fn stream_schema(stream: &StreamHandle) -> SchemaRef {
    stream_schema_of(&stream.def)
}

/// [`stream_schema`] from a definition alone.
pub fn stream_schema_of(def: &StreamDef) -> SchemaRef {
    let mut fields = vec![
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new("_timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), false),
        Field::new("_key", DataType::Utf8, true),
    ];
    fields.extend(def.columns.iter().map(|c| column_field(&c.name, c.ty, c.nullable)));
    Arc::new(Schema::new(fields))
}

/// A `TableProvider` over one stream. Filters on `_partition`, `_offset`
/// and `_timestamp` are pushed into the scan as key ranges (inexactly: the
/// filter still runs above the scan, so the pushdown only has to be safe).
#[derive(Debug)]
pub struct StreamTable {
    store: Store,
    stream: Arc<StreamHandle>,
    schema: SchemaRef,
    archive: Option<Arc<dyn ArchiveScan>>,
}

impl StreamTable {
    pub fn new(store: Store, stream: Arc<StreamHandle>, archive: Option<Arc<dyn ArchiveScan>>) -> StreamTable {
        let schema = stream_schema(&stream);
        StreamTable { store, stream, schema, archive }
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if understood(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut bounds = ScanBounds::new(self.stream.def.partitions);
        for f in filters {
            bounds.apply(f);
        }
        let projection = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let store = self.store.clone();
        let stream = self.stream.clone();
        // Resolving timestamps to offsets reads the time index; keep that
        // off the async worker threads.
        let (ts_lo, ts_hi) = bounds.timestamps();
        let ranges = tokio::task::spawn_blocking(move || bounds.resolve(&store, &stream))
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))??;
        // Offsets below each partition's live low are read from archived
        // files: those outside the ranges are pruned here, from the
        // manifest, and their row groups by the files' statistics.
        let archive = plan_archive(self.archive.as_ref(), &self.stream, &ranges, (ts_lo, ts_hi)).await?;
        Ok(Arc::new(StreamScanExec::new(
            self.store.clone(),
            self.stream.clone(),
            self.schema.clone(),
            projection,
            ranges,
            limit,
            (archive, self.archive.clone()),
        )?))
    }
}
