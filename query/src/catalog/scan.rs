//! Scanning a stream: filters on system columns become key ranges, and each
//! selected partition is read as one DataFusion partition.
//!
//! ```text
//!  WHERE _partition IN (1,3) AND _offset >= 100 AND _timestamp < t
//!    -> partition 1: log keys [s|1|100, s|1|off(t))   (off(t) from time_index)
//!       partition 3: log keys [s|3|100, s|3|off(t))
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use brikk_storage::{ChunkHint, Record, RecordSink, Store, StreamHandle};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Statistics;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use datafusion::scalar::ScalarValue;

use crate::catalog::archive::{ArchiveScan, PartitionArchive};
use crate::catalog::stream_columns::StreamColumns;
use futures::StreamExt;

/// Records read per RocksDB pass; one Arrow batch each.
const CHUNK: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
enum SysCol {
    Partition,
    Offset,
    Timestamp,
}

fn sys_col(e: &Expr) -> Option<SysCol> {
    match e {
        Expr::Column(c) => match c.name.as_str() {
            "_partition" => Some(SysCol::Partition),
            "_offset" => Some(SysCol::Offset),
            "_timestamp" => Some(SysCol::Timestamp),
            _ => None,
        },
        Expr::Cast(c) => sys_col(&c.expr),
        Expr::TryCast(c) => sys_col(&c.expr),
        _ => None,
    }
}

/// An integer or timestamp literal as a number: offsets and partitions as
/// themselves, timestamps in microseconds (rounded down).
fn literal(e: &Expr) -> Option<i128> {
    let Expr::Literal(v, _) = e else { return None };
    Some(match v {
        ScalarValue::Int8(Some(x)) => *x as i128,
        ScalarValue::Int16(Some(x)) => *x as i128,
        ScalarValue::Int32(Some(x)) => *x as i128,
        ScalarValue::Int64(Some(x)) => *x as i128,
        ScalarValue::UInt8(Some(x)) => *x as i128,
        ScalarValue::UInt16(Some(x)) => *x as i128,
        ScalarValue::UInt32(Some(x)) => *x as i128,
        ScalarValue::UInt64(Some(x)) => *x as i128,
        ScalarValue::TimestampSecond(Some(x), _) => *x as i128 * 1_000_000,
        ScalarValue::TimestampMillisecond(Some(x), _) => *x as i128 * 1_000,
        ScalarValue::TimestampMicrosecond(Some(x), _) => *x as i128,
        ScalarValue::TimestampNanosecond(Some(x), _) => (*x as i128).div_euclid(1_000),
        _ => return None,
    })
}

fn flip(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::Eq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    })
}

/// The partitions an OR of `_partition` equalities and IN lists allows
/// (DataFusion rewrites short IN lists to ORs).
fn partition_set(e: &Expr) -> Option<BTreeSet<i128>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let mut l = partition_set(left)?;
            l.extend(partition_set(right)?);
            Some(l)
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            match (sys_col(left), literal(right), literal(left), sys_col(right)) {
                (Some(SysCol::Partition), Some(v), _, _) | (_, _, Some(v), Some(SysCol::Partition)) => {
                    Some(BTreeSet::from([v]))
                }
                _ => None,
            }
        }
        Expr::InList(list) if !list.negated && sys_col(&list.expr) == Some(SysCol::Partition) => {
            list.list.iter().map(literal).collect()
        }
        _ => None,
    }
}

/// Whether the scan can narrow its key ranges with `e`.
pub fn understood(e: &Expr) -> bool {
    ScanBounds::new(1).constrain(e)
}

/// What the filters of a query allow the scan to skip.
#[derive(Debug, Clone)]
pub struct ScanBounds {
    partitions: BTreeSet<u32>,
    offset_lo: i128,
    offset_hi: i128,
    ts_lo: i128,
    ts_hi: i128,
}

impl ScanBounds {
    pub fn new(partitions: u32) -> ScanBounds {
        ScanBounds {
            partitions: (0..partitions).collect(),
            offset_lo: 0,
            offset_hi: u64::MAX as i128,
            ts_lo: i64::MIN as i128,
            ts_hi: i64::MAX as i128,
        }
    }

    /// Narrows the bounds with `e` if it is understood; ignores it otherwise.
    pub fn apply(&mut self, e: &Expr) {
        let mut tmp = self.clone();
        if tmp.constrain(e) {
            *self = tmp;
        }
    }

    fn constrain(&mut self, e: &Expr) -> bool {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
                // Each side narrows independently; an unknown side is fine
                // only if the other is applied, which `apply` handles.
                let l = self.constrain(left);
                let r = self.constrain(right);
                l && r
            }
            Expr::BinaryExpr(BinaryExpr { op: Operator::Or, .. }) => match partition_set(e) {
                Some(set) => {
                    self.partitions.retain(|p| set.contains(&(*p as i128)));
                    true
                }
                None => false,
            },
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if let (Some(c), Some(v)) = (sys_col(left), literal(right)) {
                    self.compare(c, *op, v)
                } else if let (Some(v), Some(c)) = (literal(left), sys_col(right)) {
                    flip(*op).is_some_and(|op| self.compare(c, op, v))
                } else {
                    false
                }
            }
            Expr::Between(Between { expr, negated: false, low, high }) => {
                match (sys_col(expr), literal(low), literal(high)) {
                    (Some(c), Some(lo), Some(hi)) => {
                        self.compare(c, Operator::GtEq, lo) && self.compare(c, Operator::LtEq, hi)
                    }
                    _ => false,
                }
            }
            Expr::InList(list) if !list.negated && sys_col(&list.expr) == Some(SysCol::Partition) => {
                let values: Option<BTreeSet<i128>> = list.list.iter().map(literal).collect();
                match values {
                    Some(vs) => {
                        self.partitions.retain(|p| vs.contains(&(*p as i128)));
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    fn compare(&mut self, c: SysCol, op: Operator, v: i128) -> bool {
        // [lo, hi) for this comparison.
        let (lo, hi) = match op {
            Operator::Eq => (v, v + 1),
            Operator::Gt => (v + 1, i128::MAX),
            Operator::GtEq => (v, i128::MAX),
            Operator::Lt => (i128::MIN, v),
            Operator::LtEq => (i128::MIN, v + 1),
            _ => return false,
        };
        match c {
            SysCol::Partition => self.partitions.retain(|p| (*p as i128) >= lo && (*p as i128) < hi),
            SysCol::Offset => {
                self.offset_lo = self.offset_lo.max(lo);
                self.offset_hi = self.offset_hi.min(hi);
            }
            SysCol::Timestamp => {
                self.ts_lo = self.ts_lo.max(lo);
                self.ts_hi = self.ts_hi.min(hi);
            }
        }
        true
    }

    /// The timestamp bounds `[lo, hi)` in microseconds.
    pub fn timestamps(&self) -> (i64, i64) {
        let c = |x: i128| x.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        (c(self.ts_lo), c(self.ts_hi))
    }

    /// Turns the bounds into one offset range per partition, reading the time
    /// index for timestamp bounds and capping each range at the partition's
    /// committed head now, so the whole query sees one snapshot.
    pub fn resolve(&self, store: &Store, stream: &StreamHandle) -> Result<Vec<PartitionRange>> {
        let clamp = |x: i128| x.clamp(0, u64::MAX as i128) as u64;
        let mut out = Vec::new();
        for &p in &self.partitions {
            let head = stream.head(p);
            let mut from = clamp(self.offset_lo);
            let mut to = clamp(self.offset_hi).min(head);
            if self.ts_lo > i64::MIN as i128 {
                let ts = self.ts_lo.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
                from = from.max(store.offset_for_timestamp(stream, p, ts).map_err(ext)?);
            }
            if self.ts_hi < i64::MAX as i128 {
                let ts = self.ts_hi.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
                to = to.min(store.offset_for_timestamp(stream, p, ts).map_err(ext)?);
            }
            out.push(PartitionRange { partition: p, from, to: to.max(from) });
        }
        Ok(out)
    }
}

fn ext(e: brikk_storage::Error) -> DataFusionError {
    DataFusionError::External(Box::new(crate::error::Error::from(e)))
}

/// The offsets `[from, to)` of one partition that a scan reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionRange {
    pub partition: u32,
    pub from: u64,
    pub to: u64,
}

/// Reads offset ranges of a stream's partitions, one output partition per
/// stream partition, each in offset order: first the kept row groups of
/// archived files ([`crate::catalog::archive`]), then the live log.
#[derive(Debug)]
pub struct StreamScanExec {
    store: Store,
    stream: Arc<StreamHandle>,
    projection: Vec<usize>,
    ranges: Vec<PartitionRange>,
    limit: Option<usize>,
    archive: Vec<PartitionArchive>,
    scanner: Option<Arc<dyn ArchiveScan>>,
    properties: Arc<PlanProperties>,
}

impl StreamScanExec {
    pub fn new(
        store: Store,
        stream: Arc<StreamHandle>,
        table_schema: SchemaRef,
        projection: Vec<usize>,
        ranges: Vec<PartitionRange>,
        limit: Option<usize>,
        archive: (Vec<PartitionArchive>, Option<Arc<dyn ArchiveScan>>),
    ) -> Result<StreamScanExec> {
        let (archive, scanner) = archive;
        let schema = Arc::new(table_schema.project(&projection)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(ranges.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(StreamScanExec { store, stream, projection, ranges, limit, archive, scanner, properties })
    }

    /// The archived files (and row groups) each partition reads.
    pub fn archive(&self) -> &[PartitionArchive] {
        &self.archive
    }

    /// The ranges this scan reads, for tests and EXPLAIN.
    pub fn ranges(&self) -> &[PartitionRange] {
        &self.ranges
    }
}

impl DisplayAs for StreamScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let ranges: Vec<String> =
            self.ranges.iter().map(|r| format!("p{}:{}..{}", r.partition, r.from, r.to)).collect();
        write!(f, "StreamScanExec: stream={}, ranges=[{}]", self.stream.def.name, ranges.join(", "))?;
        if self.archive.iter().any(|a| !a.parts.is_empty() || a.pruned_files > 0) {
            let kept: Vec<String> = self
                .archive
                .iter()
                .flat_map(|a| a.parts.iter())
                .map(|p| {
                    let name = p.file.path.rsplit('/').next().unwrap_or(&p.file.path);
                    format!("p{}:{name} rg {}/{}", p.file.partition, p.row_groups.kept.len(), p.row_groups.total)
                })
                .collect();
            let pruned: usize = self.archive.iter().map(|a| a.pruned_files).sum();
            write!(f, ", archive=[{}], pruned_files={pruned}", kept.join(", "))?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for StreamScanExec {
    super::leaf::leaf_exec!("StreamScanExec");

    /// The row count is the width of the offset ranges read (capped by the
    /// limit): inexact, as retention may have dropped some of them, but
    /// enough for the optimizer to build joins on the smaller side.
    fn statistics_from_inputs(&self, _inputs: &[Arc<Statistics>], args: &StatisticsArgs) -> Result<Arc<Statistics>> {
        let width = |r: &PartitionRange| (r.to - r.from) as usize;
        let rows = match args.partition() {
            Some(p) => self.ranges.get(p).map(width).unwrap_or(0),
            None => self.ranges.iter().map(width).sum(),
        };
        let rows = self.limit.map_or(rows, |l| rows.min(l));
        let mut stats = Statistics::new_unknown(&self.schema());
        stats.num_rows = Precision::Inexact(rows);
        Ok(Arc::new(stats))
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        let Some(range) = self.ranges.get(partition).copied() else {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::empty())));
        };
        let archive = self.archive.get(partition).cloned().unwrap_or_default();
        let archived = match (&self.scanner, archive.parts.is_empty()) {
            (_, true) => futures::stream::empty().boxed(),
            (None, false) => return Err(DataFusionError::Internal("archived parts planned without a reader".into())),
            (Some(scanner), false) => {
                let (scanner, def, projection) = (scanner.clone(), self.stream.def.clone(), self.projection.clone());
                futures::stream::iter(archive.parts)
                    .map(move |p| scanner.read(&def, &p.file, p.row_groups.kept, projection.clone(), p.from, p.to))
                    .flatten()
                    .boxed()
            }
        };
        let limit = self.limit.unwrap_or(usize::MAX);
        let reader = ChunkReader {
            store: self.store.clone(),
            stream: self.stream.clone(),
            schema: schema.clone(),
            projection: self.projection.clone(),
            next: range.from.max(archive.live_from),
            hint: ChunkHint::default(),
            range,
            remaining: limit,
        };
        let batches = futures::stream::try_unfold(reader, |mut r| async move {
            if r.next >= r.range.to || r.remaining == 0 || r.stream.is_dropped() {
                return Ok(None);
            }
            let (store, stream, range, from) = (r.store.clone(), r.stream.clone(), r.range, r.next);
            let (schema, projection, mut hint) = (r.schema.clone(), r.projection.clone(), r.hint);
            let n = CHUNK.min(r.remaining);
            let (batch, last, hint) = tokio::task::spawn_blocking(move || -> Result<_> {
                let capacity = n.min(range.to.min(stream.head(range.partition)).saturating_sub(from) as usize);
                let mut columns = StreamColumns::new(&schema, &projection, range.partition, &stream, capacity);
                let last = store
                    .read_into(&stream, range.partition, from, range.to, n, &mut hint, &mut columns)
                    .map_err(ext)?;
                Ok((columns.finish()?, last, hint))
            })
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))??;
            let Some(last) = last else { return Ok(None) };
            r.next = last + 1;
            r.hint = hint;
            r.remaining = r.remaining.saturating_sub(batch.num_rows());
            Ok(Some((batch, r)))
        });
        let all = archived.chain(batches).scan(limit, |left, batch| {
            let out = match batch {
                Ok(_) if *left == 0 => None,
                Ok(b) if b.num_rows() > *left => {
                    let b = b.slice(0, *left);
                    *left = 0;
                    Some(Ok(b))
                }
                Ok(b) => {
                    *left -= b.num_rows();
                    Some(Ok(b))
                }
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, all)))
    }
}

struct ChunkReader {
    store: Store,
    stream: Arc<StreamHandle>,
    schema: SchemaRef,
    projection: Vec<usize>,
    range: PartitionRange,
    next: u64,
    /// Where the last read stopped in the log.
    hint: ChunkHint,
    remaining: usize,
}

/// Builds the projected batch (columns of [`crate::catalog::stream_schema`]
/// by index) for records of one partition.
pub fn to_batch(
    schema: &SchemaRef,
    projection: &[usize],
    partition: u32,
    stream: &StreamHandle,
    records: Vec<Record>,
) -> Result<RecordBatch> {
    let mut columns = StreamColumns::new(schema, projection, partition, stream, records.len());
    columns.push_records(records);
    columns.finish()
}
