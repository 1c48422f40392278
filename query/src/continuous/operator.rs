//! Operators: what a continuous query does with each step's records.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use brikk_storage::{StateWrite, StreamHandle, Value};
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{provider_as_source, TableType};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use futures::TryStreamExt;

use crate::catalog::stream_table::stream_schema;
use crate::continuous::input::InputRecord;
use crate::error::Result;
use crate::types::{build_array, UTC};

/// What one step produced.
#[derive(Debug, Default)]
pub struct StepOutput {
    /// Rows for the sink, in output order.
    pub rows: Vec<Vec<ScalarValue>>,
    /// Operator state changes, committed with the rows.
    pub state: Vec<StateWrite>,
    /// Input records dropped as late.
    pub late: u64,
}

/// A continuous query's operator. `process` sees every input record
/// exactly once, in the order of [`crate::continuous::input::Inputs::read`];
/// its in-memory state must match what its committed state writes
/// describe, because after a crash the operator is rebuilt from them.
#[async_trait]
pub trait Operator: Send {
    /// The schema of the rows it produces.
    fn output_schema(&self) -> SchemaRef;

    /// The streams it reads, in input order.
    fn inputs(&self) -> Vec<Arc<StreamHandle>>;

    /// Processes one step's records.
    async fn process(&mut self, records: Vec<InputRecord>, out: &mut StepOutput) -> Result<()>;

    /// Wall-clock time `now_micros` has come with no new input: operators
    /// whose results wait on time (windows over commit time) emit them.
    fn on_time(&mut self, _now_micros: i64, _out: &mut StepOutput) -> Result<()> {
        Ok(())
    }

    /// When `on_time` next has something to do, in wall-clock microseconds.
    fn next_deadline(&self) -> Option<i64> {
        None
    }
}

/// The records of one stream as a batch of the stream's schema (system
/// columns first), in the order given.
pub fn records_batch(stream: &StreamHandle, records: &[InputRecord]) -> Result<RecordBatch> {
    let schema = stream_schema(stream);
    let n = records.len();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(records.iter().map(|r| r.partition as i32))),
        Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.record.offset as i64))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(records.iter().map(|r| r.record.timestamp_micros))
                .with_timezone(UTC),
        ),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.record.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned())),
        )),
    ];
    for (c, ty) in stream.types().iter().enumerate() {
        columns.push(build_array(
            *ty,
            records.iter().map(|r| r.record.values.get(c).cloned().unwrap_or(Value::Null)),
            n,
        ));
    }
    Ok(RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(n)))?)
}

/// The rows of `batches` as values.
pub fn batch_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<ScalarValue>>> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, r))
                    .collect::<datafusion::error::Result<_>>()?,
            );
        }
    }
    Ok(out)
}

/// A table whose rows are set before each execution: a step's input
/// records, standing in for the input stream in a planned query.
#[derive(Debug)]
pub struct DeltaTable {
    schema: SchemaRef,
    batch: Mutex<Option<RecordBatch>>,
}

impl DeltaTable {
    pub fn new(schema: SchemaRef) -> DeltaTable {
        DeltaTable { schema, batch: Mutex::new(None) }
    }

    pub fn set(&self, batch: RecordBatch) {
        *self.batch.lock().expect("delta lock") = Some(batch);
    }
}

#[async_trait]
impl TableProvider for DeltaTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batch = self.batch.lock().expect("delta lock").clone();
        let partitions = vec![batch.into_iter().collect::<Vec<_>>()];
        Ok(MemorySourceConfig::try_new_exec(&partitions, self.schema.clone(), projection.cloned())?)
    }
}

/// Replaces the scans of stream `input` in `plan` by `delta`.
pub fn scan_delta(plan: LogicalPlan, input: &str, delta: Arc<DeltaTable>) -> Result<LogicalPlan> {
    let source = provider_as_source(delta);
    Ok(plan
        .transform_up(|p| match p {
            LogicalPlan::TableScan(mut scan) if scan.table_name.table() == input => {
                scan.source = source.clone();
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

/// Filters, projections, functions and joins with tables: the query's
/// SELECT planned once over one input stream, run on each step's records.
pub struct MapOperator {
    pub input: Arc<StreamHandle>,
    plan: LogicalPlan,
    delta: Arc<DeltaTable>,
    state: SessionState,
    schema: SchemaRef,
}

impl MapOperator {
    /// `plan` reads `input` (by name); it is rewired to read each step.
    pub fn new(input: Arc<StreamHandle>, plan: LogicalPlan, state: SessionState) -> Result<MapOperator> {
        let delta = Arc::new(DeltaTable::new(stream_schema(&input)));
        let plan = scan_delta(plan, &input.def.name, delta.clone())?;
        let schema = plan.schema().inner().clone();
        Ok(MapOperator { input, plan, delta, state, schema })
    }

    /// Runs the plan over `records` and returns its result batches.
    pub async fn run(&self, records: &[InputRecord]) -> Result<Vec<RecordBatch>> {
        self.delta.set(records_batch(&self.input, records)?);
        let mut state = self.state.clone();
        state.mark_start_execution();
        let physical = state.create_physical_plan(&self.plan).await?;
        Ok(datafusion::physical_plan::execute_stream(physical, state.task_ctx())?.try_collect().await?)
    }
}

#[async_trait]
impl Operator for MapOperator {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn inputs(&self) -> Vec<Arc<StreamHandle>> {
        vec![self.input.clone()]
    }

    async fn process(&mut self, records: Vec<InputRecord>, out: &mut StepOutput) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let batches = self.run(&records).await?;
        out.rows.extend(batch_rows(&batches)?);
        Ok(())
    }
}
