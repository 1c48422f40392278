//! INSERT into a stream.
//!
//! `INSERT … VALUES` whose values are literals or parameters is planned once
//! into an [`InsertPlan`] of operands and executed without DataFusion: bind
//! parameters, coerce each value to its column ([`crate::types::assign`]),
//! encode, pick the partition, append. This is what a prepared INSERT runs
//! on every Execute. Any other source (`VALUES` with expressions,
//! `INSERT … SELECT`) is planned by DataFusion and its rows coerced the same
//! way.

use std::sync::Arc;

use brikk_storage::codec::encode_row;
use brikk_storage::{Append, ColumnType, CommitReceipt, StreamHandle, Value, WriteSet};
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, Expr, SetExpr, TableObject, UnaryOperator};
use futures::TryStreamExt;

use crate::catalog::{stream_schema, SYSTEM_COLUMNS};
use crate::defaults::Defaults;
use crate::error::{Error, ObjectKind, Result};
use crate::sql::parser::normalize;
use crate::tables::expr::{returning_exprs, Returning, Scope};
use crate::types::{arrow_type, assign_in, build_array, UTC};

/// A planned INSERT into a stream.
#[derive(Debug, Clone)]
pub struct InsertPlan {
    pub stream: Arc<StreamHandle>,
    /// For each source column, the stream column it fills.
    targets: Vec<usize>,
    source: Source,
    /// Parameter types, `$1` first, as the client should send them.
    pub param_types: Vec<DataType>,
    /// Parameters bound to a `uuid` column ([`crate::Prepared::uuid_params`]).
    pub uuid_params: Vec<usize>,
    /// How many times each parameter appears in VALUES: a parameter used
    /// once is moved into its row instead of copied.
    param_uses: Vec<usize>,
    /// `RETURNING`, over the stream's row: system columns, then its own.
    returning: Option<Returning>,
    /// Whether `RETURNING` names `_offset` or `_timestamp`, which the
    /// commit assigns.
    returns_commit_columns: bool,
    /// The defaults of the columns the INSERT leaves out.
    defaults: Defaults,
}

/// What one execution of an [`InsertPlan`] appends.
#[derive(Debug)]
pub struct Inserted {
    pub writes: WriteSet,
    /// With `RETURNING`: each appended row's values and key.
    pub rows: Option<Vec<(Vec<Value>, Option<String>)>>,
}

#[derive(Debug, Clone)]
enum Source {
    Values(Vec<Vec<Operand>>),
    Query(Box<LogicalPlan>),
}

/// A value of VALUES known without evaluation: a literal or a parameter.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Const(ScalarValue),
    Param(usize),
}

impl InsertPlan {
    /// Plans `insert` against the current catalog; a source other than
    /// literal VALUES is planned by DataFusion in `ctx`.
    pub async fn new(
        insert: &ast::Insert,
        store: &brikk_storage::Store,
        ctx: &SessionContext,
        declared: &[Option<DataType>],
    ) -> Result<InsertPlan> {
        let TableObject::TableName(name) = &insert.table else {
            return Err(Error::Unsupported("INSERT INTO a table function".into()));
        };
        let relation = name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
        let stream = store.stream(&relation).ok_or_else(|| {
            if crate::catalog::system::NAMES.contains(&relation.as_str()) {
                Error::Unsupported(format!("INSERT into system table \"{relation}\""))
            } else if store.view(&relation).is_some() {
                Error::WrongState(format!("cannot insert into view \"{relation}\": views are read-only"))
            } else {
                Error::NotFound { kind: ObjectKind::Relation, name: relation.clone() }
            }
        })?;
        if insert.on.is_some() {
            return Err(Error::Unsupported("ON CONFLICT on a stream (streams have no keys to conflict on)".into()));
        }
        let mut targets = target_columns(&stream.def.columns, &stream.def.name, &insert.columns, &SYSTEM_COLUMNS)?;
        implicit_targets(insert, &mut targets);
        let rewritten = without_default_cells(insert, &mut targets)?;
        let insert = rewritten.as_ref().unwrap_or(insert);
        if insert.source.is_none() {
            // DEFAULT VALUES: one row of nothing but defaults.
            targets.clear();
        }
        let (returning, returns_commit_columns) = plan_returning(insert, &stream, ctx, declared)?;
        let defaults = match stream.def.columns.iter().any(|c| c.default.is_some()) {
            true => Defaults::compile(&ctx.state(), &stream.def.columns, &targets)?,
            false => Defaults::default(),
        };
        let Some(source) = &insert.source else {
            return Ok(InsertPlan {
                stream,
                targets,
                source: Source::Values(vec![Vec::new()]),
                param_types: Vec::new(),
                uuid_params: Vec::new(),
                param_uses: Vec::new(),
                returning,
                returns_commit_columns,
                defaults,
            });
        };
        if let SetExpr::Values(values) = source.body.as_ref() {
            if source.order_by.is_none() && source.limit_clause.is_none() && source.with.is_none() {
                if let Some(rows) = simple_rows(&values.rows) {
                    check_width(rows.iter().map(Vec::len), targets.len())?;
                    let mut param_types: Vec<Option<DataType>> = declared.to_vec();
                    let mut uuid_params = Vec::new();
                    for row in &rows {
                        for (op, &col) in row.iter().zip(&targets) {
                            if let Operand::Param(i) = op {
                                if param_types.len() <= *i {
                                    param_types.resize(i + 1, None);
                                }
                                let ty = stream.def.columns[col].ty;
                                param_types[*i].get_or_insert_with(|| arrow_type(ty));
                                if ty == ColumnType::Uuid {
                                    uuid_params.push(*i);
                                }
                            }
                        }
                    }
                    uuid_params.sort_unstable();
                    uuid_params.dedup();
                    let param_types: Vec<DataType> =
                        param_types.into_iter().map(|t| t.unwrap_or(DataType::Utf8)).collect();
                    let mut param_uses = vec![0; param_types.len()];
                    for op in rows.iter().flatten() {
                        if let Operand::Param(i) = op {
                            param_uses[*i] += 1;
                        }
                    }
                    return Ok(InsertPlan {
                        stream,
                        targets,
                        source: Source::Values(rows),
                        param_types,
                        uuid_params,
                        param_uses,
                        returning,
                        returns_commit_columns,
                        defaults,
                    });
                }
            }
        }
        let mut stmt = ast::Statement::Query(source.clone());
        crate::sql::rewrite::before_planning(&mut stmt, store)?;
        let plan = ctx.state().statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(stmt))).await?;
        let width = plan.schema().fields().len();
        let defaults = match implicit_query_targets(insert, width, &mut targets) {
            true => Defaults::compile(&ctx.state(), &stream.def.columns, &targets)?,
            false => defaults,
        };
        check_width(std::iter::once(width), targets.len())?;
        let param_types = crate::session::prepared::param_types(&plan, declared)?;
        Ok(InsertPlan {
            stream,
            targets,
            uuid_params: crate::session::prepared::uuid_params_of_plan(&plan),
            source: Source::Query(Box::new(plan)),
            param_types,
            param_uses: Vec::new(),
            returning,
            returns_commit_columns,
            defaults,
        })
    }

    /// Builds the appends of this INSERT with `params` bound (and, with
    /// `RETURNING`, keeps their rows). Nothing is written; the caller
    /// commits the returned set or adds it to its transaction. Text without
    /// an offset for a `timestamptz` column is a local time of `zone` (the
    /// session's `TimeZone`).
    pub async fn execute(&self, ctx: &SessionContext, mut params: Vec<ScalarValue>, zone: &str) -> Result<Inserted> {
        let mut writes = WriteSet::default();
        let mut kept = self.returning.as_ref().map(|_| Vec::new());
        let resolved;
        let defaults = match self.defaults.is_empty() {
            true => &self.defaults,
            false => {
                resolved = self.defaults.resolved(&ctx.state())?;
                &resolved
            }
        };
        match &self.source {
            Source::Values(rows) => {
                writes.appends.reserve(rows.len());
                for row in rows {
                    let values: Vec<Result<ScalarValue>> = row
                        .iter()
                        .map(|op| match op {
                            Operand::Const(v) => Ok(v.clone()),
                            Operand::Param(i) => match params.get_mut(*i) {
                                Some(v) if self.param_uses[*i] == 1 => Ok(std::mem::replace(v, ScalarValue::Null)),
                                Some(v) => Ok(v.clone()),
                                None => Err(Error::InvalidParameter(format!("there is no parameter ${}", i + 1))),
                            },
                        })
                        .collect();
                    writes.appends.push(encode_append(
                        &self.stream,
                        &self.targets,
                        values.into_iter(),
                        zone,
                        defaults,
                        kept.as_mut(),
                    )?);
                }
            }
            Source::Query(plan) => {
                let plan =
                    if params.is_empty() { (**plan).clone() } else { (**plan).clone().with_param_values(params)? };
                let df = ctx.execute_logical_plan(plan).await?;
                let mut stream = df.execute_stream().await?;
                while let Some(batch) = stream.try_next().await? {
                    for row in 0..batch.num_rows() {
                        let values = batch.columns().iter().map(|c| Ok(ScalarValue::try_from_array(c, row)?));
                        writes.appends.push(encode_append(
                            &self.stream,
                            &self.targets,
                            values,
                            zone,
                            defaults,
                            kept.as_mut(),
                        )?);
                    }
                }
            }
        }
        Ok(Inserted { writes, rows: kept })
    }

    /// The columns `RETURNING` gives, if the INSERT has one.
    pub fn returning_schema(&self) -> Option<SchemaRef> {
        self.returning.as_ref().map(|r| r.schema.clone())
    }

    /// Whether this INSERT's `RETURNING` needs what only a commit assigns
    /// (`_offset`, `_timestamp`): refused inside a transaction block.
    pub fn returns_commit_columns(&self) -> bool {
        self.returns_commit_columns
    }

    /// The `RETURNING` rows of `rows` (kept by [`InsertPlan::execute`]),
    /// appended as `appends` at the places `receipt` gives (none inside a
    /// transaction: `_offset` and `_timestamp` are NULL then, and
    /// [`InsertPlan::returns_commit_columns`] keeps them from being asked).
    pub fn returned(
        &self,
        state: &SessionState,
        params: &[ScalarValue],
        rows: Vec<(Vec<Value>, Option<String>)>,
        appends: &[Append],
        receipt: Option<&CommitReceipt>,
    ) -> Result<Option<RecordBatch>> {
        let Some(returning) = &self.returning else { return Ok(None) };
        let n = rows.len();
        let partitions: ArrayRef = Arc::new(Int32Array::from_iter_values(appends.iter().map(|a| a.partition as i32)));
        let offsets: ArrayRef = Arc::new(match receipt {
            Some(r) => Int64Array::from_iter_values(r.positions.iter().map(|(_, o)| *o as i64)),
            None => Int64Array::new_null(n),
        });
        let timestamps: ArrayRef = Arc::new(
            match receipt {
                Some(r) => TimestampMicrosecondArray::from_value(r.timestamp_micros, n),
                None => TimestampMicrosecondArray::new_null(n),
            }
            .with_timezone(UTC),
        );
        let (values, keys): (Vec<Vec<Value>>, Vec<Option<String>>) = rows.into_iter().unzip();
        let mut columns = vec![partitions, offsets, timestamps, Arc::new(StringArray::from(keys)) as ArrayRef];
        for (i, c) in self.stream.def.columns.iter().enumerate() {
            columns.push(build_array(c.ty, values.iter().map(|row| row[i].clone()), n));
        }
        let batch = RecordBatch::try_new(returned_row_schema(&self.stream), columns)?;
        Ok(Some(returning.eval(state, &batch, params)?))
    }
}

/// The row `RETURNING` sees: [`stream_schema`], every column nullable, as
/// inside a transaction `_offset` and `_timestamp` are not known yet.
fn returned_row_schema(stream: &StreamHandle) -> SchemaRef {
    let fields: Vec<Field> =
        stream_schema(stream).fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    Arc::new(Schema::new(fields))
}

/// The `RETURNING` of `insert` into `stream`, compiled over the stream's
/// row (system columns, then its own; `*` is its own, as in `SELECT *`),
/// and whether it names `_offset` or `_timestamp`.
fn plan_returning(
    insert: &ast::Insert,
    stream: &StreamHandle,
    ctx: &SessionContext,
    declared: &[Option<DataType>],
) -> Result<(Option<Returning>, bool)> {
    let Some(items) = insert.returning.as_deref() else { return Ok((None, false)) };
    let state = ctx.state();
    let name = stream.def.name.as_str();
    let scope = Scope::new(&[(name, returned_row_schema(stream))])?;
    let columns: Vec<&str> = stream.def.columns.iter().map(|c| c.name.as_str()).collect();
    let exprs = returning_exprs(Some(items), &scope, &columns, name, &state)?;
    let commit_columns =
        exprs.iter().any(|(e, _)| e.column_refs().iter().any(|c| c.name == "_offset" || c.name == "_timestamp"));
    let params: Vec<DataType> = declared.iter().map(|t| t.clone().unwrap_or(DataType::Utf8)).collect();
    Ok((Returning::new(&state, &scope, exprs, &params)?, commit_columns))
}

/// One row for `stream` as an append: each source value assigned to its
/// target column (`targets[i]` for the i-th value; others their
/// `defaults`, or NULL), NOT NULL
/// checked, encoded, and given its partition. `zone` is the zone of
/// `timestamptz` text without an offset ([`assign_in`]).
pub(crate) fn encode_append(
    stream: &StreamHandle,
    targets: &[usize],
    source: impl Iterator<Item = Result<ScalarValue>>,
    zone: &str,
    defaults: &Defaults,
    keep: Option<&mut Vec<(Vec<Value>, Option<String>)>>,
) -> Result<Append> {
    let def = &stream.def;
    let mut values = vec![Value::Null; def.columns.len()];
    for (v, &col) in source.zip(targets) {
        values[col] = assign_in(v?, def.columns[col].ty, &def.columns[col].name, zone)?;
    }
    defaults.fill(&mut values, &def.columns, zone)?;
    for (c, v) in def.columns.iter().zip(&values) {
        if !c.nullable && *v == Value::Null {
            return Err(Error::NotNull { relation: def.name.clone(), column: c.name.clone() });
        }
    }
    let key = def.key_column.and_then(|k| values[k].key_text());
    let record = encode_row(stream.types(), key.as_deref().map(str::as_bytes), &values)?;
    let partition = stream.choose_partition(key.as_deref().map(str::as_bytes));
    if let Some(keep) = keep {
        keep.push((values, key));
    }
    Ok(Append { stream: def.id, partition, record })
}

/// The column index each named INSERT target fills (all columns in order
/// when none are named); system columns cannot be targets.
pub(crate) fn target_columns(
    defs: &[brikk_storage::ColumnDef],
    relation: &str,
    columns: &[ast::ObjectName],
    system: &[&str],
) -> Result<Vec<usize>> {
    if columns.is_empty() {
        return Ok((0..defs.len()).collect());
    }
    let mut out = Vec::with_capacity(columns.len());
    for column in columns {
        let name = column.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
        if system.contains(&name.as_str()) {
            return Err(Error::GeneratedColumn(name));
        }
        let idx = defs.iter().position(|c| c.name == name).ok_or_else(|| Error::NotFound {
            kind: ObjectKind::Column,
            name: format!("{name}\" of relation \"{relation}"),
        })?;
        if out.contains(&idx) {
            return Err(Error::Syntax(format!("column \"{name}\" specified more than once")));
        }
        out.push(idx);
    }
    Ok(out)
}

/// Without a column list, the values of `VALUES` rows shorter than the
/// relation go to its first columns and the rest take their defaults, as
/// in Postgres. (`INSERT … SELECT`: [`implicit_query_targets`].)
pub(crate) fn implicit_targets(insert: &ast::Insert, targets: &mut Vec<usize>) {
    if !insert.columns.is_empty() {
        return;
    }
    let Some(SetExpr::Values(values)) = insert.source.as_ref().map(|s| s.body.as_ref()) else {
        return;
    };
    let width = values.rows.first().map_or(0, |r| r.content.len());
    if width < targets.len() && values.rows.iter().all(|r| r.content.len() == width) {
        targets.truncate(width);
    }
}

/// Without a column list, the `width` columns of an `INSERT … SELECT`
/// query narrower than the relation go to its first columns, as in
/// Postgres. Whether `targets` was cut.
pub(crate) fn implicit_query_targets(insert: &ast::Insert, width: usize, targets: &mut Vec<usize>) -> bool {
    let narrower = insert.columns.is_empty() && width < targets.len();
    if narrower {
        targets.truncate(width);
    }
    narrower
}

/// `DEFAULT` as a value of `INSERT … VALUES`: a column that is `DEFAULT` in
/// every row is taken out of `targets` and of the rows, so it gets its
/// default (or identity value, or NULL) like a column the INSERT leaves
/// out. Returns the INSERT without those cells, or `None` when no value is
/// `DEFAULT` (or the rows' widths do not match, which planning reports).
/// `DEFAULT` in some rows of a column but not in others is refused
/// (0A000).
pub(crate) fn without_default_cells(insert: &ast::Insert, targets: &mut Vec<usize>) -> Result<Option<ast::Insert>> {
    fn is_default(e: &Expr) -> bool {
        matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
    }
    let Some(SetExpr::Values(values)) = insert.source.as_ref().map(|s| s.body.as_ref()) else {
        return Ok(None);
    };
    let rows = &values.rows;
    if rows.iter().any(|r| r.content.len() != targets.len()) || !rows.iter().flat_map(|r| &r.content).any(is_default) {
        return Ok(None);
    }
    let defaulted: Vec<bool> = (0..targets.len()).map(|i| is_default(&rows[0].content[i])).collect();
    if rows.iter().any(|r| r.content.iter().zip(&defaulted).any(|(e, d)| is_default(e) != *d)) {
        return Err(Error::Unsupported("DEFAULT in some rows of a column of VALUES but not in others".into()));
    }
    let mut out = insert.clone();
    let Some(SetExpr::Values(values)) = out.source.as_mut().map(|s| s.body.as_mut()) else {
        unreachable!("checked above")
    };
    fn without_defaulted<T>(items: &mut Vec<T>, defaulted: &[bool]) {
        let kept = std::mem::take(items).into_iter().zip(defaulted).filter(|(_, d)| !**d).map(|(x, _)| x);
        *items = kept.collect();
    }
    for row in &mut values.rows {
        without_defaulted(&mut row.content, &defaulted);
    }
    without_defaulted(targets, &defaulted);
    Ok(Some(out))
}

pub(crate) fn check_width(widths: impl Iterator<Item = usize>, targets: usize) -> Result<()> {
    for w in widths {
        if w > targets {
            return Err(Error::Syntax("INSERT has more expressions than target columns".into()));
        }
        if w < targets {
            return Err(Error::Syntax("INSERT has more target columns than expressions".into()));
        }
    }
    Ok(())
}

/// The rows as operands, if every value is a literal or a parameter.
pub(crate) fn simple_rows(rows: &[ast::Parens<Vec<Expr>>]) -> Option<Vec<Vec<Operand>>> {
    rows.iter().map(|row| row.content.iter().map(operand).collect()).collect()
}

pub(crate) fn operand(e: &Expr) -> Option<Operand> {
    use ast::Value as V;
    match e {
        Expr::Value(v) => Some(match &v.value {
            V::Placeholder(p) => Operand::Param(p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)?),
            V::Number(n, _) => Operand::Const(number(n, false)?),
            V::SingleQuotedString(s) | V::EscapedStringLiteral(s) => Operand::Const(ScalarValue::Utf8(Some(s.clone()))),
            V::DollarQuotedString(d) => Operand::Const(ScalarValue::Utf8(Some(d.value.clone()))),
            V::Boolean(b) => Operand::Const(ScalarValue::Boolean(Some(*b))),
            V::Null => Operand::Const(ScalarValue::Null),
            _ => return None,
        }),
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                V::Number(n, _) => Some(Operand::Const(number(n, true)?)),
                _ => None,
            },
            _ => None,
        },
        Expr::Nested(inner) => operand(inner),
        _ => None,
    }
}

fn number(text: &str, negative: bool) -> Option<ScalarValue> {
    let signed = if negative { format!("-{text}") } else { text.to_string() };
    if let Ok(i) = signed.parse::<i64>() {
        return Some(ScalarValue::Int64(Some(i)));
    }
    signed.parse::<f64>().ok().map(|f| ScalarValue::Float64(Some(f)))
}

impl Operand {
    /// The operand's value with `params` bound (`$1` is `params[0]`).
    pub(crate) fn bind(&self, params: &[ScalarValue]) -> Result<ScalarValue> {
        match self {
            Operand::Const(v) => Ok(v.clone()),
            Operand::Param(i) => params
                .get(*i)
                .cloned()
                .ok_or_else(|| Error::InvalidParameter(format!("there is no parameter ${}", i + 1))),
        }
    }
}
