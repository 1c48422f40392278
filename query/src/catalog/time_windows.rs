//! `TUMBLE(rel, time, size)` and `HOP(rel, time, slide, size)` as table
//! functions of ordinary (batch) queries: the relation's rows, each once
//! per time window that contains it, with `window_start` and `window_end`.
//!
//! ```text
//!  SELECT window_start, auction, count(*)
//!  FROM HOP(bid, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds')
//!  GROUP BY window_start, auction
//! ```
//!
//! The same text is a continuous query's windowed aggregation
//! (`crate::continuous::window`), so a query can be tried over history
//! before it is made continuous. Windows start at multiples of the slide
//! since the Unix epoch and include their start, not their end, as in the
//! continuous form; a row whose time is NULL is in no window.
//!
//! The expansion is one pass per window offset over each input batch: the
//! relation's columns are shared, not copied, and only `window_start` /
//! `window_end` are computed.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Statistics;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use crate::catalog::BrikkSchema;
use crate::error::{Error, ObjectKind};

/// Names of the two table functions.
pub const TUMBLE_FUNCTION: &str = "tumble";
pub const HOP_FUNCTION: &str = "hop";

/// The columns a windowing function adds after the relation's own.
pub const WINDOW_COLUMNS: [&str; 2] = ["window_start", "window_end"];

fn plan_err(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// `TUMBLE` (`hop == false`) or `HOP` over any relation of the schema.
#[derive(Debug)]
pub struct WindowFunction {
    pub schema: Arc<BrikkSchema>,
    pub hop: bool,
}

impl WindowFunction {
    fn usage(&self) -> Error {
        Error::Syntax(if self.hop {
            "HOP(relation, time_column, slide, size)".into()
        } else {
            "TUMBLE(relation, time_column, size)".into()
        })
    }
}

/// A positive duration in microseconds from an `INTERVAL` literal (or a
/// string such as `'10s'`). Months are refused: they have no fixed length.
fn duration_arg(e: &Expr) -> Result<i64> {
    let micros = match e {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            i64::from(v.days) * 86_400_000_000 + v.nanoseconds / 1000
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            i64::from(v.days) * 86_400_000_000 + i64::from(v.milliseconds) * 1000
        }
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => crate::sql::parse_duration(s).map_err(plan_err)?,
        other => {
            return Err(plan_err(Error::InvalidParameter(format!(
                "a window's slide and size are intervals of fixed length (e.g. INTERVAL '10 seconds'), not {other}"
            ))))
        }
    };
    if micros <= 0 {
        return Err(plan_err(Error::InvalidParameter(format!("a window's slide and size must be positive, got {e}"))));
    }
    Ok(micros)
}

fn name_arg(e: &Expr, what: &str) -> Result<String> {
    match e {
        Expr::Column(c) if c.relation.is_none() => Ok(c.name.clone()),
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Ok(s.clone()),
        other => Err(plan_err(Error::InvalidParameter(format!("the {what} of a window is a name, not {other}")))),
    }
}

impl TableFunctionImpl for WindowFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != if self.hop { 4 } else { 3 } {
            return Err(plan_err(self.usage()));
        }
        let name = name_arg(&exprs[0], "relation")?;
        let inner = self
            .schema
            .relation(&name)?
            .ok_or_else(|| plan_err(Error::NotFound { kind: ObjectKind::Relation, name: name.clone() }))?;
        let time = name_arg(&exprs[1], "time column")?;
        let (slide, size) = if self.hop {
            (duration_arg(&exprs[2])?, duration_arg(&exprs[3])?)
        } else {
            let s = duration_arg(&exprs[2])?;
            (s, s)
        };
        if slide > size {
            return Err(plan_err(Error::InvalidParameter("a HOP window's slide cannot exceed its size".into())));
        }
        WindowedTable::new(inner, &time, Windows { slide, size }).map(|t| Arc::new(t) as Arc<dyn TableProvider>)
    }
}

/// Windows of `size` µs starting every `slide` µs from the epoch.
#[derive(Debug, Clone, Copy)]
struct Windows {
    slide: i64,
    size: i64,
}

impl Windows {
    /// How many windows can contain one instant: a row is expanded once
    /// per `k` in `0..per_row()`, into the window starting `k` slides
    /// before the last one that contains it (if that one still does).
    fn per_row(self) -> i64 {
        (self.size + self.slide - 1) / self.slide
    }
}

/// A relation seen through `TUMBLE`/`HOP`: its columns, then
/// `window_start` and `window_end` (of the time column's type).
#[derive(Debug)]
struct WindowedTable {
    inner: Arc<dyn TableProvider>,
    /// The time column's index in `inner`.
    time: usize,
    windows: Windows,
    schema: SchemaRef,
}

impl WindowedTable {
    fn new(inner: Arc<dyn TableProvider>, time: &str, windows: Windows) -> Result<WindowedTable> {
        let inner_schema = inner.schema();
        let (time, field) = inner_schema
            .column_with_name(time)
            .ok_or_else(|| plan_err(Error::NotFound { kind: ObjectKind::Column, name: time.to_string() }))?;
        let ty = field.data_type().clone();
        if !matches!(ty, DataType::Timestamp(TimeUnit::Microsecond, _)) {
            return Err(plan_err(Error::TypeMismatch(format!(
                "a window's time column must be a timestamp, but {} is {ty}",
                field.name()
            ))));
        }
        let mut fields: Vec<Field> = inner_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in WINDOW_COLUMNS {
            if inner_schema.column_with_name(name).is_some() {
                return Err(plan_err(Error::InvalidParameter(format!(
                    "the relation already has a column {name}, which the window would add"
                ))));
            }
            fields.push(Field::new(name, ty.clone(), false));
        }
        Ok(WindowedTable { inner, time, windows, schema: Arc::new(Schema::new(fields)) })
    }

    fn inner_width(&self) -> usize {
        self.inner.schema().fields().len()
    }

    /// Whether `e` reads only the relation's own columns (not the window's).
    fn on_inner_columns(e: &Expr) -> bool {
        e.column_refs().iter().all(|c| !WINDOW_COLUMNS.contains(&c.name.as_str()))
    }
}

#[async_trait]
impl TableProvider for WindowedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    /// Filters on the relation's columns hold before the expansion as
    /// after it, so they go to the relation (inexactly: DataFusion still
    /// applies them above); filters on the window columns stay above.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        let inner: Vec<&Expr> = filters.iter().copied().filter(|f| Self::on_inner_columns(f)).collect();
        let mut answers = self.inner.supports_filters_pushdown(&inner)?.into_iter();
        Ok(filters
            .iter()
            .map(|f| match Self::on_inner_columns(f).then(|| answers.next()).flatten() {
                Some(TableProviderFilterPushDown::Unsupported) | None => TableProviderFilterPushDown::Unsupported,
                Some(_) => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let width = self.inner_width();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        // The relation's columns to read: those wanted, and the time.
        let mut read: Vec<usize> = wanted.iter().copied().filter(|&i| i < width).collect();
        if !read.contains(&self.time) {
            read.push(self.time);
        }
        read.sort_unstable();
        let output = wanted
            .iter()
            .map(|&i| match i.checked_sub(width) {
                None => Out::Input(read.binary_search(&i).expect("wanted columns are read")),
                Some(0) => Out::Start,
                Some(_) => Out::End,
            })
            .collect();
        let pushed: Vec<Expr> = filters.iter().filter(|f| Self::on_inner_columns(f)).cloned().collect();
        let input = self.inner.scan(state, Some(&read), &pushed, None).await?;
        let time = read.binary_search(&self.time).expect("the time column is read");
        let schema = Arc::new(self.schema.project(&wanted)?);
        Ok(Arc::new(WindowExpandExec::new(input, time, self.windows, output, schema)))
    }
}

/// Where an output column comes from.
#[derive(Debug, Clone, Copy)]
enum Out {
    /// The input batch's column at this index.
    Input(usize),
    Start,
    End,
}

/// Expands each input row into one row per window containing its time.
#[derive(Debug)]
pub struct WindowExpandExec {
    input: Arc<dyn ExecutionPlan>,
    /// Index of the time column in the input.
    time: usize,
    windows: Windows,
    output: Vec<Out>,
    properties: Arc<PlanProperties>,
}

impl WindowExpandExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        time: usize,
        windows: Windows,
        output: Vec<Out>,
        schema: SchemaRef,
    ) -> WindowExpandExec {
        let properties = Arc::new(Self::properties_of(&input, schema));
        WindowExpandExec { input, time, windows, output, properties }
    }

    /// The input's partitioning and boundedness; no ordering survives.
    fn properties_of(input: &Arc<dyn ExecutionPlan>, schema: SchemaRef) -> PlanProperties {
        PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            input.pipeline_behavior(),
            input.boundedness(),
        )
    }
}

impl DisplayAs for WindowExpandExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let w = self.windows;
        let (slide, size) = (crate::sql::format_duration(w.slide), crate::sql::format_duration(w.size));
        write!(f, "WindowExpandExec: slide='{slide}', size='{size}'")
    }
}

/// The rows of `batch` in window `k` (see [`Windows::per_row`]), with the
/// columns of `output`.
fn expand(
    batch: &RecordBatch,
    time: usize,
    w: Windows,
    k: i64,
    output: &[Out],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let times = batch
        .column(time)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| DataFusionError::Internal("window time column is not a microsecond timestamp".into()))?;
    let tz = match times.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let values = times.values();
    let starts = TimestampMicrosecondArray::from_iter_values(
        values.iter().map(|&t| t.div_euclid(w.slide) * w.slide - k * w.slide),
    )
    .with_timezone_opt(tz.clone());
    // Which rows are in this window: a NULL time is in none, and the
    // oldest window may end at or before the row's time when the size is
    // no multiple of the slide.
    let every = w.size % w.slide == 0 || k + 1 < w.per_row();
    let keep: Option<BooleanArray> = (!every || times.null_count() > 0).then(|| {
        let s = starts.values();
        (0..times.len()).map(|i| Some(times.is_valid(i) && s[i] + w.size > values[i])).collect()
    });
    let ends: ArrayRef = match output.iter().any(|o| matches!(o, Out::End)) {
        true => Arc::new(
            TimestampMicrosecondArray::from_iter_values(starts.values().iter().map(|s| s + w.size))
                .with_timezone_opt(tz),
        ),
        false => Arc::new(TimestampMicrosecondArray::new_null(0)),
    };
    let starts: ArrayRef = Arc::new(starts);
    let columns: Vec<ArrayRef> = output
        .iter()
        .map(|o| match o {
            Out::Input(i) => batch.column(*i).clone(),
            Out::Start => starts.clone(),
            Out::End => ends.clone(),
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let out = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
    Ok(match keep {
        Some(k) => filter_record_batch(&out, &k)?,
        None => out,
    })
}

impl ExecutionPlan for WindowExpandExec {
    fn name(&self) -> &'static str {
        "WindowExpandExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    crate::catalog::leaf::no_expressions!();

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::catalog::leaf::only_child(children, "WindowExpandExec")?;
        Ok(Arc::new(WindowExpandExec::new(input, self.time, self.windows, self.output.clone(), self.schema())))
    }

    crate::catalog::leaf::with_new_children_recomputed!();

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    /// About `per_row` rows out per row in: enough for join ordering.
    fn statistics_from_inputs(&self, inputs: &[Arc<Statistics>], _args: &StatisticsArgs) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema());
        if let Some(rows) = inputs.first().and_then(|s| s.num_rows.get_value().copied()) {
            stats.num_rows = Precision::Inexact(rows.saturating_mul(self.windows.per_row() as usize));
        }
        Ok(Arc::new(stats))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (time, w, output, schema) = (self.time, self.windows, self.output.clone(), self.schema());
        let per_row = w.per_row();
        let out_schema = schema.clone();
        let batches = input
            .map(move |batch| {
                let expanded: Vec<Result<RecordBatch>> = match batch {
                    Ok(b) => (0..per_row).map(|k| expand(&b, time, w, k, &output, &out_schema)).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(expanded)
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}
