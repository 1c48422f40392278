//! System tables: the catalog and the log's shape, queryable from psql.
//!
//! - `brikk_streams`: one row per stream (name, partitions, key column,
//!   retention, records, created_at).
//! - `brikk_partitions`: one row per stream partition (start offset = the
//!   oldest offset retention has kept, end offset = the next offset to be
//!   written, last commit timestamp, first offset in the live log and in
//!   the tail cache).
//! - `brikk_groups`: one row per group and partition (owner, committed
//!   offset, end offset, lag, generation).
//! - `brikk_members`: one row per member of a consumer group (partitions it
//!   owns, when it joined and was last heard from).
//! - `brikk_claims`: one row per claimed, unacknowledged record of a work
//!   queue (claimant, deliveries, lease).
//! - `brikk_queries`: one row per continuous query (status, input offsets,
//!   lag, records in and out, the last error).
//! - `brikk_archive`: one row per archived Parquet file (stream, partition,
//!   offsets, rows, bytes, timestamps, path, location): the manifest.
//! - `brikk_subscriptions`: one row per live `COPY (SUBSCRIBE …)` (stream,
//!   records sent, next offset per partition, lag).

use std::sync::Arc;

use brikk_storage::Store;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;

use crate::session::subscribe::LiveSubscriptions;
use crate::types::UTC;

/// Names of the system tables, as they appear in `public`.
pub const NAMES: [&str; 8] = [
    "brikk_streams",
    "brikk_partitions",
    "brikk_groups",
    "brikk_members",
    "brikk_claims",
    "brikk_queries",
    "brikk_archive",
    "brikk_subscriptions",
];

/// Where a stream's archive lives, as `brikk_archive` and `brikk_streams`
/// show it: its URL, or the `archive` directory of the data directory.
pub fn archive_location(store: &Store, def: &brikk_storage::StreamDef) -> Option<String> {
    let a = def.archive.as_ref()?;
    Some(a.location.clone().unwrap_or_else(|| store.path().join("archive").display().to_string()))
}

fn ts_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), nullable)
}

/// System table `name`, or `None` if there is no such table. Its rows are
/// read when a plan over it runs: a prepared statement sees them as they
/// are at each execution, not as they were when it was prepared.
pub fn table(store: &Store, live: &Arc<LiveSubscriptions>, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
    let Some(first) = rows(store, live, name)? else { return Ok(None) };
    let schema = first.schema();
    let (store, live, name, empty) = (store.downgrade(), live.clone(), name.to_string(), schema.clone());
    let read = move || match store.upgrade() {
        Some(store) => Ok(rows(&store, &live, &name)?.unwrap_or_else(|| RecordBatch::new_empty(empty.clone()))),
        None => Err(datafusion::error::DataFusionError::Execution("the database is closed".into())),
    };
    Ok(Some(Arc::new(Snapshot::new(schema, read))))
}

/// A table whose rows are computed each time a plan over it is run
/// (`scan`), by `read`.
pub struct Snapshot {
    schema: SchemaRef,
    read: Box<dyn Fn() -> Result<RecordBatch> + Send + Sync>,
}

impl Snapshot {
    pub fn new(schema: SchemaRef, read: impl Fn() -> Result<RecordBatch> + Send + Sync + 'static) -> Snapshot {
        Snapshot { schema, read: Box::new(read) }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("schema", &self.schema).finish()
    }
}

#[async_trait::async_trait]
impl TableProvider for Snapshot {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.read)()?;
        MemTable::try_new(self.schema.clone(), vec![vec![batch]])?.scan(state, projection, filters, limit).await
    }
}

/// The rows of system table `name` now, or `None` if there is no such table.
fn rows(store: &Store, live: &LiveSubscriptions, name: &str) -> Result<Option<RecordBatch>> {
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
                Field::new("retention_bytes", DataType::Int64, true),
                Field::new("archive", DataType::Utf8, true),
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
                Arc::new(Int64Array::from_iter(streams.iter().map(|s| s.def.retention_bytes.map(|b| b as i64)))),
                Arc::new(StringArray::from_iter(streams.iter().map(|s| archive_location(store, &s.def)))),
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
                Field::new("live_start_offset", DataType::Int64, false),
                Field::new("live_bytes", DataType::Int64, false),
                Field::new("cached_start_offset", DataType::Int64, true),
            ]));
            let (mut names, mut parts, mut starts, mut ends, mut stamps) = (vec![], vec![], vec![], vec![], vec![]);
            let (mut live_starts, mut live_bytes, mut cached) = (vec![], vec![], vec![]);
            for s in catalog.streams() {
                for p in 0..s.def.partitions {
                    names.push(s.def.name.clone());
                    parts.push(p as i32);
                    live_starts.push(s.live_low(p) as i64);
                    live_bytes.push(s.live_bytes(p) as i64);
                    cached.push(s.cached_start(p).map(|o| o as i64));
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
                Arc::new(Int64Array::from(live_starts)),
                Arc::new(Int64Array::from(live_bytes)),
                Arc::new(Int64Array::from(cached)),
            ];
            RecordBatch::try_new(schema, columns)?
        }
        "brikk_archive" => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("stream", DataType::Utf8, false),
                Field::new("partition", DataType::Int32, false),
                Field::new("first_offset", DataType::Int64, false),
                Field::new("last_offset", DataType::Int64, false),
                Field::new("rows", DataType::Int64, false),
                Field::new("bytes", DataType::Int64, false),
                ts_field("min_timestamp", false),
                ts_field("max_timestamp", false),
                Field::new("path", DataType::Utf8, false),
                Field::new("location", DataType::Utf8, false),
                ts_field("archived_at", false),
            ]));
            let mut c = (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for s in catalog.streams() {
                let Some(location) = archive_location(store, &s.def) else { continue };
                for p in 0..s.def.partitions {
                    for f in s.archived(p).iter() {
                        c.0.push(s.def.name.clone());
                        c.1.push(p as i32);
                        c.2.push(f.first as i64);
                        c.3.push(f.last as i64);
                        c.4.push(f.rows as i64);
                        c.5.push(f.bytes as i64);
                        c.6.push(f.min_timestamp);
                        c.7.push(f.max_timestamp);
                        c.8.push(f.path.clone());
                        c.9.push(location.clone());
                        c.10.push(f.archived_at);
                    }
                }
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(c.0)),
                Arc::new(Int32Array::from(c.1)),
                Arc::new(Int64Array::from(c.2)),
                Arc::new(Int64Array::from(c.3)),
                Arc::new(Int64Array::from(c.4)),
                Arc::new(Int64Array::from(c.5)),
                Arc::new(TimestampMicrosecondArray::from(c.6).with_timezone(UTC)),
                Arc::new(TimestampMicrosecondArray::from(c.7).with_timezone(UTC)),
                Arc::new(StringArray::from(c.8)),
                Arc::new(StringArray::from(c.9)),
                Arc::new(TimestampMicrosecondArray::from(c.10).with_timezone(UTC)),
            ];
            RecordBatch::try_new(schema, columns)?
        }
        "brikk_groups" => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("stream", DataType::Utf8, false),
                Field::new("group_name", DataType::Utf8, false),
                Field::new("mode", DataType::Utf8, false),
                Field::new("partition", DataType::Int32, false),
                Field::new("owner", DataType::Utf8, true),
                Field::new("committed_offset", DataType::Int64, true),
                Field::new("end_offset", DataType::Int64, false),
                Field::new("lag", DataType::Int64, false),
                Field::new("generation", DataType::Int64, false),
            ]));
            let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for g in store.groups().all() {
                let snap = g.snapshot();
                for p in snap.partitions {
                    cols.0.push(g.stream.def.name.clone());
                    cols.1.push(g.def.name.clone());
                    cols.2.push(g.def.mode.as_str());
                    cols.3.push(p.partition as i32);
                    cols.4.push(p.owner);
                    cols.5.push(p.committed.map(|c| c as i64));
                    cols.6.push(p.end as i64);
                    cols.7.push(p.lag as i64);
                    cols.8.push(snap.generation as i64);
                }
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(cols.0)),
                Arc::new(StringArray::from(cols.1)),
                Arc::new(StringArray::from(cols.2)),
                Arc::new(Int32Array::from(cols.3)),
                Arc::new(StringArray::from(cols.4)),
                Arc::new(Int64Array::from(cols.5)),
                Arc::new(Int64Array::from(cols.6)),
                Arc::new(Int64Array::from(cols.7)),
                Arc::new(Int64Array::from(cols.8)),
            ];
            RecordBatch::try_new(schema, columns)?
        }
        "brikk_members" => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("stream", DataType::Utf8, false),
                Field::new("group_name", DataType::Utf8, false),
                Field::new("member", DataType::Utf8, false),
                Field::new("generation", DataType::Int64, false),
                Field::new("partitions", DataType::Utf8, false),
                ts_field("joined_at", false),
                ts_field("last_seen", false),
            ]));
            let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for g in store.groups().all() {
                let snap = g.snapshot();
                for m in snap.members {
                    cols.0.push(g.stream.def.name.clone());
                    cols.1.push(g.def.name.clone());
                    cols.2.push(m.member);
                    cols.3.push(snap.generation as i64);
                    cols.4.push(m.partitions.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
                    cols.5.push(m.joined_at);
                    cols.6.push(m.last_seen);
                }
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(cols.0)),
                Arc::new(StringArray::from(cols.1)),
                Arc::new(StringArray::from(cols.2)),
                Arc::new(Int64Array::from(cols.3)),
                Arc::new(StringArray::from(cols.4)),
                Arc::new(TimestampMicrosecondArray::from(cols.5).with_timezone(UTC)),
                Arc::new(TimestampMicrosecondArray::from(cols.6).with_timezone(UTC)),
            ];
            RecordBatch::try_new(schema, columns)?
        }
        "brikk_claims" => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("stream", DataType::Utf8, false),
                Field::new("group_name", DataType::Utf8, false),
                Field::new("partition", DataType::Int32, false),
                Field::new("offset", DataType::Int64, false),
                Field::new("claimant", DataType::Utf8, false),
                Field::new("deliveries", DataType::Int32, false),
                Field::new("state", DataType::Utf8, false),
                ts_field("lease_until", true),
                Field::new("reason", DataType::Utf8, true),
            ]));
            let now = brikk_storage::now_micros();
            let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for g in store.groups().all() {
                for (p, o, c) in g.snapshot().claims {
                    cols.0.push(g.stream.def.name.clone());
                    cols.1.push(g.def.name.clone());
                    cols.2.push(p as i32);
                    cols.3.push(o as i64);
                    cols.4.push(c.claimant);
                    cols.5.push(c.deliveries as i32);
                    cols.6.push(match c.lease_until {
                        0 => "nacked",
                        t if t <= now => "expired",
                        _ => "leased",
                    });
                    cols.7.push((c.lease_until != 0).then_some(c.lease_until));
                    cols.8.push(c.reason);
                }
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(cols.0)),
                Arc::new(StringArray::from(cols.1)),
                Arc::new(Int32Array::from(cols.2)),
                Arc::new(Int64Array::from(cols.3)),
                Arc::new(StringArray::from(cols.4)),
                Arc::new(Int32Array::from(cols.5)),
                Arc::new(StringArray::from(cols.6)),
                Arc::new(TimestampMicrosecondArray::from(cols.7).with_timezone(UTC)),
                Arc::new(StringArray::from(cols.8)),
            ];
            RecordBatch::try_new(schema, columns)?
        }
        "brikk_queries" => crate::continuous::system::queries(store)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
        "brikk_subscriptions" => subscriptions(live)?,
        _ => return Ok(None),
    };
    Ok(Some(batch))
}

fn subscriptions(live: &LiveSubscriptions) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("stream", DataType::Utf8, false),
        ts_field("started_at", false),
        Field::new("sent", DataType::Int64, false),
        Field::new("next_offsets", DataType::Utf8, false),
        Field::new("lag", DataType::Int64, false),
    ]));
    let subs = live.snapshot();
    let positions = subs
        .iter()
        .map(|s| s.positions().iter().enumerate().map(|(p, o)| format!("{p}:{o}")).collect::<Vec<_>>().join(","));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(subs.iter().map(|s| s.id as i64))),
        Arc::new(StringArray::from_iter_values(subs.iter().map(|s| s.stream.def.name.clone()))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(subs.iter().map(|s| s.started_at_micros)).with_timezone(UTC),
        ),
        Arc::new(Int64Array::from_iter_values(subs.iter().map(|s| s.sent() as i64))),
        Arc::new(StringArray::from_iter_values(positions)),
        Arc::new(Int64Array::from_iter_values(subs.iter().map(|s| s.lag() as i64))),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
