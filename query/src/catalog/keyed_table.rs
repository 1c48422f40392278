//! A table with a primary key as a DataFusion table, and its scan.
//!
//! ```text
//!  table "board" (PRIMARY KEY topic)
//!   _offset | _timestamp | topic | fact | author | version
//!   ^ version and time of the row's last change (not in SELECT *)
//! ```
//!
//! Equality (or `IN`) filters that pin every primary key column become
//! point lookups: `KeyScanExec: table=board, lookup=[topic = 'plan']`; any
//! other scan reads the rows in primary key order. Inside a transaction the
//! scan also sees the transaction's own pending changes ([`TxnRows`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use brikk_storage::{Store, TableHandle, Value};
use datafusion::arrow::array::{ArrayRef, Int64Array, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use datafusion::scalar::ScalarValue;

use crate::tables::{Current, PendingRows, TxnRows};
use crate::types::{assign, build_array, column_field, UTC};

/// The columns every table has before its own. Left out of `SELECT *`.
pub const TABLE_SYSTEM_COLUMNS: [&str; 2] = ["_offset", "_timestamp"];

/// Rows read per RocksDB pass of a full scan; one Arrow batch each.
const CHUNK: usize = 4096;
/// More lookup keys than this (a long IN list) scan the table instead.
const MAX_LOOKUPS: usize = 1024;

/// The Arrow schema of a table: system columns, then the user's columns.
pub fn table_schema(table: &TableHandle) -> SchemaRef {
    let mut fields = vec![
        Field::new("_offset", DataType::Int64, true),
        Field::new("_timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), true),
    ];
    fields.extend(table.def.columns.iter().map(|c| column_field(&c.name, c.ty, c.nullable)));
    Arc::new(Schema::new(fields))
}

/// A `TableProvider` over one table.
#[derive(Debug)]
pub struct KeyedTable {
    store: Store,
    table: Arc<TableHandle>,
    schema: SchemaRef,
}

impl KeyedTable {
    pub fn new(store: Store, table: Arc<TableHandle>) -> KeyedTable {
        let schema = table_schema(&table);
        KeyedTable { store, table, schema }
    }
}

/// The literal values a filter allows for column `name`, if it is an
/// equality, an IN list, or an OR of those.
fn pinned_values(e: &Expr, name: &str) -> Option<Vec<ScalarValue>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) if c.name == name => {
                Some(vec![v.clone()])
            }
            _ => None,
        },
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let mut l = pinned_values(left, name)?;
            l.extend(pinned_values(right, name)?);
            Some(l)
        }
        Expr::InList(list) if !list.negated => match list.expr.as_ref() {
            Expr::Column(c) if c.name == name => list
                .list
                .iter()
                .map(|v| match v {
                    Expr::Literal(v, _) => Some(v.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        },
        _ => None,
    }
}

/// The encoded primary keys that `filters` pin, if they pin every key
/// column to a short list of values. A value that cannot be a key (wrong
/// type, NULL) matches no row and is left out.
pub fn lookup_keys(table: &TableHandle, filters: &[Expr]) -> Option<Vec<(Vec<u8>, String)>> {
    let mut per_column: Vec<Vec<Value>> = Vec::new();
    for &k in &table.def.primary_key {
        let col = &table.def.columns[k];
        let values = filters.iter().find_map(|f| pinned_values(f, &col.name))?;
        let mut seen = Vec::new();
        for v in values {
            if let Ok(v) = assign(v, col.ty, &col.name) {
                if v != Value::Null && !seen.contains(&v) {
                    seen.push(v);
                }
            }
        }
        per_column.push(seen);
    }
    let combos = crate::tables::cartesian(&per_column, MAX_LOOKUPS)?;
    let mut keys = BTreeSet::new();
    for combo in combos {
        let refs: Vec<&Value> = combo.iter().collect();
        if let Ok(key) = table.key_from(&refs) {
            let shown = table
                .def
                .primary_key
                .iter()
                .zip(&combo)
                .map(|(&k, v)| format!("{} = {}", table.def.columns[k].name, show_value(v)))
                .collect::<Vec<_>>()
                .join(" AND ");
            keys.insert((key, shown));
        }
    }
    Some(keys.into_iter().collect())
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        other => other.key_text().unwrap_or_else(|| "NULL".into()),
    }
}

#[async_trait]
impl TableProvider for KeyedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filter still runs above the scan, so a lookup only
        // has to return a superset of the matching rows.
        let key_columns: Vec<&str> =
            self.table.def.primary_key.iter().map(|&k| self.table.def.columns[k].name.as_str()).collect();
        Ok(filters
            .iter()
            .map(|f| {
                if key_columns.iter().any(|c| pinned_values(f, c).is_some()) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let pending =
            state.config().get_extension::<TxnRows>().and_then(|t| t.table(self.table.def.id).cloned()).map(Arc::new);
        let lookups = lookup_keys(&self.table, filters);
        Ok(Arc::new(KeyScanExec::new(
            self.store.clone(),
            self.table.clone(),
            &self.schema,
            projection,
            lookups,
            pending,
            limit,
        )?))
    }
}

/// Reads a table: point lookups by primary key, or every row in key order.
#[derive(Debug)]
pub struct KeyScanExec {
    store: Store,
    table: Arc<TableHandle>,
    projection: Vec<usize>,
    /// `Some`: only these keys (encoded, and as shown in EXPLAIN).
    lookups: Option<Vec<(Vec<u8>, String)>>,
    /// The transaction's own pending rows of this table, by encoded key.
    pending: Option<Arc<PendingRows>>,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl KeyScanExec {
    pub fn new(
        store: Store,
        table: Arc<TableHandle>,
        table_schema: &SchemaRef,
        projection: Vec<usize>,
        lookups: Option<Vec<(Vec<u8>, String)>>,
        pending: Option<Arc<PendingRows>>,
        limit: Option<usize>,
    ) -> Result<KeyScanExec> {
        let schema = Arc::new(table_schema.project(&projection)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(KeyScanExec { store, table, projection, lookups, pending, limit, properties })
    }

    /// Whether this scan reads only the rows of given keys.
    pub fn is_lookup(&self) -> bool {
        self.lookups.is_some()
    }
}

impl DisplayAs for KeyScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KeyScanExec: table={}", self.table.def.name)?;
        match &self.lookups {
            Some(keys) => {
                let shown: Vec<&str> = keys.iter().map(|(_, s)| s.as_str()).collect();
                write!(f, ", lookup=[{}]", shown.join(", "))?;
            }
            None => write!(f, ", full scan")?,
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for KeyScanExec {
    super::leaf::leaf_exec!("KeyScanExec");

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        if partition != 0 {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::empty())));
        }
        let reader = RowReader {
            store: self.store.clone(),
            table: self.table.clone(),
            schema: schema.clone(),
            projection: self.projection.clone(),
            lookups: self.lookups.clone().map(|k| k.into_iter().map(|(k, _)| k).collect()),
            pending: self.pending.clone(),
            after: None,
            done: false,
            remaining: self.limit.unwrap_or(usize::MAX),
        };
        let batches = futures::stream::try_unfold(reader, |mut r| async move {
            if r.done || r.remaining == 0 || r.table.is_dropped() {
                return Ok(None);
            }
            let (rows, r) = tokio::task::spawn_blocking(move || {
                let rows = r.next_rows();
                (rows, r)
            })
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let rows = rows?;
            let mut r = r;
            if rows.is_empty() {
                return Ok(None);
            }
            r.remaining = r.remaining.saturating_sub(rows.len());
            let batch = rows_to_batch(&r.schema, &r.projection, &r.table, rows)?;
            Ok(Some((batch, r)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

struct RowReader {
    store: Store,
    table: Arc<TableHandle>,
    schema: SchemaRef,
    projection: Vec<usize>,
    lookups: Option<Vec<Vec<u8>>>,
    pending: Option<Arc<PendingRows>>,
    after: Option<Vec<u8>>,
    done: bool,
    remaining: usize,
}

impl RowReader {
    /// The next rows of the scan (blocking), with pending changes applied.
    fn next_rows(&mut self) -> Result<Vec<Current>> {
        let pending = self.pending.clone();
        let pending_row = |key: &[u8]| pending.as_ref().and_then(|p| p.get(key).cloned());
        if let Some(keys) = self.lookups.take() {
            self.done = true;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                match pending_row(&key) {
                    Some(Some(values)) => out.push(Current::pending(values)),
                    Some(None) => {}
                    None => {
                        if let Some(row) = self.store.table_get(&self.table, &key).map_err(ext)? {
                            out.push(Current::stored(row));
                        }
                    }
                }
            }
            return Ok(out);
        }
        let n = CHUNK.min(self.remaining);
        let stored = self.store.table_scan(&self.table, self.after.as_deref(), n).map_err(ext)?;
        let end = if stored.len() < n { None } else { stored.last().map(|(k, _)| k.clone()) };
        // Pending rows between the previous chunk and the end of this one
        // (or the end of the table) merge in key order.
        let mut merged: BTreeMap<Vec<u8>, Current> = BTreeMap::new();
        for (k, row) in stored {
            merged.insert(k, Current::stored(row));
        }
        if let Some(p) = &self.pending {
            let lower = match &self.after {
                Some(a) => std::ops::Bound::Excluded(a.clone()),
                None => std::ops::Bound::Unbounded,
            };
            let upper = match &end {
                Some(e) => std::ops::Bound::Included(e.clone()),
                None => std::ops::Bound::Unbounded,
            };
            for (k, v) in p.range((lower, upper)) {
                match v {
                    Some(values) => merged.insert(k.clone(), Current::pending(values.clone())),
                    None => merged.remove(k),
                };
            }
        }
        match end {
            Some(e) => self.after = Some(e),
            None => self.done = true,
        }
        Ok(merged.into_values().take(self.remaining).collect())
    }
}

fn ext(e: brikk_storage::Error) -> DataFusionError {
    DataFusionError::External(Box::new(crate::error::Error::from(e)))
}

/// Builds the projected batch of table rows (system columns first).
pub(crate) fn rows_to_batch(
    schema: &SchemaRef,
    projection: &[usize],
    table: &TableHandle,
    mut rows: Vec<Current>,
) -> Result<RecordBatch> {
    let n = rows.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(projection.len());
    for &i in projection {
        let col: ArrayRef = match i {
            0 => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.version.map(|v| v as i64)))),
            1 => Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.timestamp)).with_timezone(UTC)),
            j => {
                let c = j - TABLE_SYSTEM_COLUMNS.len();
                let ty = table.types()[c];
                build_array(ty, rows.iter_mut().map(|r| std::mem::replace(&mut r.values[c], Value::Null)), n)
            }
        };
        columns.push(col);
    }
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &RecordBatchOptions::new().with_row_count(Some(n)))?)
}
