//! INSERT (with ON CONFLICT), UPDATE and DELETE on tables, with RETURNING.
//!
//! A statement is planned once into a [`DmlPlan`] and built into row writes
//! at each execution ([`DmlPlan::build`]): read the target rows, evaluate the
//! statement's expressions on them ([`super::expr`]), and emit one
//! [`RowWrite`] per changed row that expects the version it read. Nothing
//! is written here; the session commits the writes or keeps them in its
//! transaction.
//!
//! The rows a statement targets are found by primary key when its WHERE
//! pins every key column to literals or parameters (`topic = $1`, `id IN
//! (1, 2)`), and by a scan of the table otherwise; the WHERE clause is then
//! evaluated on each candidate row either way.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use brikk_storage::tables::write::{OP_INSERT, OP_UPDATE};
use brikk_storage::{ColumnType, Expect, Identity, RowWrite, Store, TableHandle, Value};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, SetExpr, TableFactor, TableObject};
use futures::TryStreamExt;

use crate::catalog::keyed_table::{rows_to_batch, table_schema, TABLE_SYSTEM_COLUMNS};
use crate::defaults::Defaults;
use crate::error::{Error, ObjectKind, Result};
use crate::session::insert::{
    check_width, implicit_query_targets, implicit_targets, simple_rows, target_columns, without_default_cells, Operand,
};
use crate::session::prepared::{uuid_params, uuid_params_of_plan};
use crate::sql::parser::normalize;
use crate::tables::expr::{placeholders, returning_exprs, Returning, RowExprs, Scope};
use crate::tables::joined::JoinedPlan;
use crate::tables::subquery::Subqueries;
use crate::tables::{Current, PendingRows, TxnRows};
use crate::types::{arrow_type, assign_in};
use crate::zone::{zone_of, zoned_batch, zoned_schema};

/// A planned INSERT, UPDATE or DELETE on a table.
#[derive(Debug, Clone)]
pub struct DmlPlan {
    pub table: Arc<TableHandle>,
    /// Parameter types, `$1` first.
    pub param_types: Vec<DataType>,
    /// Parameters bound to a `uuid` column ([`crate::Prepared::uuid_params`]).
    pub uuid_params: Vec<usize>,
    kind: Kind,
    returning: Option<Returning>,
    /// The table's row schema (system columns first) as stored, with
    /// `timestamptz` in UTC.
    stored: SchemaRef,
    /// The row schema the statement's expressions see: `timestamptz` in
    /// the zone it was planned in ([`crate::zone::zoned_schema`]), so text
    /// without an offset compared with a column is a local time there.
    row: SchemaRef,
    /// The row schema, and the ON CONFLICT row (existing row, then the
    /// excluded row), built on first use.
    schemas: OnceLock<(SchemaRef, SchemaRef)>,
    /// An UPDATE's or DELETE's expressions when they hold subqueries: run
    /// and compiled at each execution ([`Subqueries`]).
    subqueries: Option<StatementSubqueries>,
}

/// What [`DmlPlan::joined`] plans: the target relation, the other
/// relations, the SETs, WHERE, RETURNING, and whether it deletes.
type Joined<'a> = (
    &'a ast::TableFactor,
    &'a [ast::TableWithJoins],
    Vec<(usize, ast::Expr)>,
    Option<&'a ast::Expr>,
    Option<&'a [ast::SelectItem]>,
    bool,
);

/// The expressions of a statement with subqueries (in the order of the
/// compiled ones: SET values, then WHERE), and the scope they are planned in.
type StatementSubqueries = Arc<(Subqueries, Scope)>;

#[derive(Debug, Clone)]
enum Kind {
    Insert {
        targets: Vec<usize>,
        source: Source,
        conflict: Conflict,
        /// The defaults of the columns the INSERT leaves out.
        defaults: Defaults,
    },
    /// `sets` are (column, expression index); `filter` an expression index.
    Update {
        target: Target,
        filter: Option<usize>,
        sets: Vec<(usize, usize)>,
        exprs: RowExprs,
    },
    Delete {
        target: Target,
        filter: Option<usize>,
        exprs: RowExprs,
    },
    /// UPDATE … FROM (`delete` false) or DELETE … USING: the rows a join
    /// picks ([`super::joined`]).
    Joined {
        join: JoinedPlan,
        delete: bool,
    },
}

#[derive(Debug, Clone)]
enum Source {
    Values(Vec<Vec<Operand>>),
    Query(Box<LogicalPlan>),
}

#[derive(Debug, Clone)]
enum Conflict {
    Error,
    Nothing,
    /// Expressions over the existing row and `excluded`.
    Update {
        sets: Vec<(usize, usize)>,
        filter: Option<usize>,
        exprs: RowExprs,
        /// Every SET value as a [`RowSet`], when all are that simple and
        /// there is no WHERE: then an upsert builds no Arrow batch.
        direct: Option<Vec<RowSet>>,
    },
}

/// A SET of ON CONFLICT DO UPDATE computed straight from the two rows:
/// `column = <existing or excluded>.source [+ delta]`, where `source` has
/// the type of `column`.
#[derive(Debug, Clone, Copy)]
struct RowSet {
    column: usize,
    excluded: bool,
    source: usize,
    delta: Option<i64>,
}

impl RowSet {
    /// The SETs `sets` of `exprs` (over the existing row with its system
    /// columns, then `excluded`) as [`RowSet`]s, if every one is simple.
    fn all(table: &TableHandle, sets: &[(usize, usize)], exprs: &RowExprs) -> Option<Vec<RowSet>> {
        let (system, n) = (TABLE_SYSTEM_COLUMNS.len(), table.def.columns.len());
        sets.iter()
            .map(|&(column, e)| {
                let f = exprs.field_plus(e)?;
                let (excluded, source) = match f.field.checked_sub(system)? {
                    i if i < n => (false, i),
                    i => (true, i - n),
                };
                (table.def.columns.get(source)?.ty == table.def.columns[column].ty).then_some(RowSet {
                    column,
                    excluded,
                    source,
                    delta: f.delta,
                })
            })
            .collect()
    }

    /// The new value of the column from the existing row and `excluded`.
    fn value(&self, existing: &[Value], excluded: &[Value]) -> Result<Value> {
        let v = if self.excluded { &excluded[self.source] } else { &existing[self.source] };
        match (self.delta, v) {
            (None, v) => Ok(v.clone()),
            (Some(_), Value::Null) => Ok(Value::Null),
            (Some(d), Value::Int(i)) => {
                i.checked_add(d).map(Value::Int).ok_or_else(|| Error::OutOfRange("bigint out of range".into()))
            }
            (Some(_), other) => Err(Error::Internal(format!("integer column holds {other:?}"))),
        }
    }
}

/// Which rows an UPDATE or DELETE reads.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The rows of these keys (one operand per primary key column each).
    Keys(Vec<Vec<Operand>>),
    Scan,
}

/// What one execution of a [`DmlPlan`] does.
#[derive(Debug)]
pub struct Built {
    /// Each write with the new state of its row (`None`: deleted), which a
    /// transaction keeps for its own reads.
    pub writes: Vec<(RowWrite, Option<Vec<Value>>)>,
    /// Rows inserted, updated or deleted (the command tag's count).
    pub count: usize,
    /// The RETURNING rows, if the statement has a RETURNING clause.
    pub returned: Option<RecordBatch>,
}

/// The table a DML statement writes, if `name` is a table.
pub fn table_of(store: &Store, name: &ast::ObjectName) -> Option<Arc<TableHandle>> {
    let relation = name.0.last().and_then(|p| p.as_ident()).map(normalize)?;
    store.table(&relation)
}

/// The name of the relation of a DML statement's target, if it names one.
pub fn target_name(stmt: &ast::Statement) -> Option<&ast::ObjectName> {
    match stmt {
        ast::Statement::Insert(i) => match &i.table {
            TableObject::TableName(n) => Some(n),
            _ => None,
        },
        ast::Statement::Update(u) => match &u.table.relation {
            TableFactor::Table { name, .. } => Some(name),
            _ => None,
        },
        ast::Statement::Delete(d) => match &d.from {
            ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => match t.first()?.relation {
                TableFactor::Table { ref name, .. } => Some(name),
                _ => None,
            },
        },
        _ => None,
    }
}

/// Collects the parameter types of `exprs`: declared by the client first,
/// then inferred, then `hints` (the column a bare parameter is assigned
/// to), then text.
pub(crate) fn param_types(
    exprs: &[&Expr],
    declared: &[Option<DataType>],
    hints: &[(usize, ColumnType)],
    extra: usize,
) -> Result<Vec<DataType>> {
    let mut found = Vec::new();
    for e in exprs {
        placeholders(e, &mut found)?;
    }
    let count = found.iter().map(|(i, _)| i + 1).max().unwrap_or(0).max(declared.len()).max(extra);
    Ok((0..count)
        .map(|i| {
            declared
                .get(i)
                .cloned()
                .flatten()
                .or_else(|| found.iter().find(|(j, t)| *j == i && t.is_some()).and_then(|(_, t)| t.clone()))
                .or_else(|| hints.iter().find(|(j, _)| *j == i).map(|(_, t)| arrow_type(*t)))
                .unwrap_or(DataType::Utf8)
        })
        .collect())
}

/// The parameters `hints` assign to a `uuid` column.
fn uuid_hints(hints: &[(usize, ColumnType)]) -> Vec<usize> {
    hints.iter().filter(|(_, t)| *t == ColumnType::Uuid).map(|(i, _)| *i).collect()
}

/// A bare `$n` as a zero-based parameter index.
fn bare_param(e: &ast::Expr) -> Option<usize> {
    match crate::session::insert::operand(e)? {
        Operand::Param(i) => Some(i),
        Operand::Const(_) => None,
    }
}

fn column_index(table: &TableHandle, name: &ast::ObjectName) -> Result<usize> {
    let col = name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
    if TABLE_SYSTEM_COLUMNS.contains(&col.as_str()) {
        return Err(Error::GeneratedColumn(col));
    }
    table.def.columns.iter().position(|c| c.name == col).ok_or_else(|| Error::NotFound {
        kind: ObjectKind::Column,
        name: format!("{col}\" of relation \"{}", table.def.name),
    })
}

/// The assignments as (column, value expression), checking each column
/// is assigned once.
fn assignments(table: &TableHandle, list: &[ast::Assignment]) -> Result<Vec<(usize, ast::Expr)>> {
    let mut out: Vec<(usize, ast::Expr)> = Vec::with_capacity(list.len());
    for a in list {
        let ast::AssignmentTarget::ColumnName(name) = &a.target else {
            return Err(Error::Unsupported("assigning to a tuple of columns".into()));
        };
        let idx = column_index(table, name)?;
        if table.def.columns[idx].identity == Some(Identity::Always) {
            return Err(Error::IdentityColumn(format!(
                "column \"{}\" can only be updated to DEFAULT (it is GENERATED ALWAYS AS IDENTITY)",
                table.def.columns[idx].name
            )));
        }
        if out.iter().any(|(i, _)| *i == idx) {
            return Err(Error::Syntax(format!(
                "multiple assignments to same column \"{}\"",
                table.def.columns[idx].name
            )));
        }
        out.push((idx, a.value.clone()));
    }
    Ok(out)
}

/// Plans SET expressions (then WHERE, if any) in `scope`: the planned
/// expressions, (column, expression index) per SET, and the WHERE's index.
/// A bare `$n` assigned to a column takes the column's type (`hints`).
#[allow(clippy::type_complexity)]
fn plan_sets(
    table: &TableHandle,
    scope: &Scope,
    state: &SessionState,
    sets: &[(usize, ast::Expr)],
    selection: Option<&ast::Expr>,
    hints: &mut Vec<(usize, ColumnType)>,
) -> Result<(Vec<Expr>, Vec<(usize, usize)>, Option<usize>)> {
    let mut exprs = Vec::with_capacity(sets.len() + 1);
    let mut set_idx = Vec::with_capacity(sets.len());
    for (col, e) in sets {
        if let Some(p) = bare_param(e) {
            hints.push((p, table.def.columns[*col].ty));
        }
        set_idx.push((*col, exprs.len()));
        exprs.push(scope.plan(state, e)?);
    }
    let filter = match selection {
        Some(w) => {
            exprs.push(boolean(scope.plan(state, w)?, scope)?);
            Some(exprs.len() - 1)
        }
        None => None,
    };
    Ok((exprs, set_idx, filter))
}

/// The top-level terms of `e` joined by AND (parentheses looked through).
pub(crate) fn and_terms(e: &ast::Expr) -> Vec<&ast::Expr> {
    fn walk<'a>(e: &'a ast::Expr, out: &mut Vec<&'a ast::Expr>) {
        match e {
            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::And, right } => {
                walk(left, out);
                walk(right, out);
            }
            ast::Expr::Nested(inner) => walk(inner, out),
            other => out.push(other),
        }
    }
    let mut out = Vec::new();
    walk(e, &mut out);
    out
}

/// The rows `where` pins by primary key, if it pins every key column:
/// top-level AND terms `key = literal/parameter` or `key IN (…)`.
pub(crate) fn key_target(table: &TableHandle, selection: Option<&ast::Expr>) -> Target {
    fn column_name(e: &ast::Expr) -> Option<String> {
        match e {
            ast::Expr::Identifier(i) => Some(normalize(i)),
            ast::Expr::CompoundIdentifier(parts) => parts.last().map(normalize),
            _ => None,
        }
    }
    let Some(selection) = selection else { return Target::Scan };
    let all = and_terms(selection);
    let mut per_column: Vec<Vec<Operand>> = Vec::new();
    for &k in &table.def.primary_key {
        let name = &table.def.columns[k].name;
        let values = all.iter().find_map(|t| match t {
            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } => {
                match (column_name(left), column_name(right)) {
                    (Some(c), _) if &c == name => crate::session::insert::operand(right).map(|o| vec![o]),
                    (_, Some(c)) if &c == name => crate::session::insert::operand(left).map(|o| vec![o]),
                    _ => None,
                }
            }
            ast::Expr::InList { expr, list, negated: false } if column_name(expr).as_ref() == Some(name) => {
                list.iter().map(crate::session::insert::operand).collect()
            }
            _ => None,
        });
        match values {
            Some(v) => per_column.push(v),
            None => return Target::Scan,
        }
    }
    match crate::tables::cartesian(&per_column, MAX_KEYS) {
        Some(combos) => Target::Keys(combos),
        None => Target::Scan,
    }
}

/// More keys than this (long IN lists) make a statement scan instead.
const MAX_KEYS: usize = 1024;

/// The subqueries of an UPDATE's or DELETE's expressions (`exprs`: SET
/// values, then WHERE), if they hold any, with the stand-ins to plan at
/// Parse ([`Subqueries::stand_ins`]), one per expression. `name` is the
/// table as written, `q` the name its row goes by.
async fn statement_subqueries(
    exprs: &[&ast::Expr],
    name: &ast::ObjectName,
    q: &str,
    scope: &Scope,
    state: &SessionState,
) -> Result<Option<(StatementSubqueries, Vec<ast::Expr>)>> {
    let outer = [qualifier(name, None), q.to_string()];
    let columns = scope.df_schema().fields().iter().map(|f| f.name().clone()).collect();
    let Some(found) = Subqueries::new(exprs, &outer, columns)? else { return Ok(None) };
    let stand_ins = found.stand_ins(state).await?;
    Ok(Some((Arc::new((found, scope.clone())), stand_ins)))
}

/// The qualifier expressions use for the target table.
fn qualifier(name: &ast::ObjectName, alias: Option<&ast::Ident>) -> String {
    match alias {
        Some(a) => normalize(a),
        None => name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default(),
    }
}

impl DmlPlan {
    /// Plans `stmt`, an INSERT, UPDATE or DELETE whose target is `table`.
    pub async fn new(
        stmt: &ast::Statement,
        table: Arc<TableHandle>,
        state: &SessionState,
        declared: &[Option<DataType>],
    ) -> Result<DmlPlan> {
        let stored = table_schema(&table);
        let schema = zoned_schema(&stored, zone_of(state));
        match stmt {
            ast::Statement::Insert(insert) => Self::insert(insert, table, (stored, schema), state, declared).await,
            ast::Statement::Update(u) => {
                if !u.table.joins.is_empty() {
                    return Err(Error::Unsupported("joins in UPDATE (use UPDATE … FROM)".into()));
                }
                if let Some(ast::UpdateTableFromKind::BeforeSet(from) | ast::UpdateTableFromKind::AfterSet(from)) =
                    &u.from
                {
                    if u.limit.is_some() || !u.order_by.is_empty() {
                        return Err(Error::Unsupported("UPDATE … ORDER BY / LIMIT".into()));
                    }
                    let sets = assignments(&table, &u.assignments)?;
                    let (relation, returning) = (&u.table.relation, u.returning.as_deref());
                    let joined = (relation, from.as_slice(), sets, u.selection.as_ref(), returning, false);
                    return Self::joined(table, joined, (stored, schema), state, declared).await;
                }
                if u.limit.is_some() || !u.order_by.is_empty() {
                    return Err(Error::Unsupported("UPDATE … ORDER BY / LIMIT".into()));
                }
                let TableFactor::Table { name, alias, .. } = &u.table.relation else {
                    return Err(Error::Unsupported("UPDATE of this relation".into()));
                };
                let q = qualifier(name, alias.as_ref().map(|a| &a.name));
                let scope = Scope::new(&[(&q, schema.clone())])?;
                let mut sets = assignments(&table, &u.assignments)?;
                let mut selection = u.selection.clone();
                let mut asts: Vec<&ast::Expr> = sets.iter().map(|(_, e)| e).collect();
                asts.extend(u.selection.as_ref());
                let subqueries = match statement_subqueries(&asts, name, &q, &scope, state).await? {
                    Some((found, mut stand_ins)) => {
                        if selection.is_some() {
                            selection = stand_ins.pop();
                        }
                        sets = sets.into_iter().map(|(c, _)| c).zip(stand_ins).collect();
                        Some(found)
                    }
                    None => None,
                };
                let mut hints = Vec::new();
                let (exprs, set_idx, filter) = plan_sets(&table, &scope, state, &sets, selection.as_ref(), &mut hints)?;
                let returning = u.returning.as_deref();
                let ret_exprs = returning_exprs(returning, &scope, &column_names(&table), &q, state)?;
                let all: Vec<&Expr> = exprs.iter().chain(ret_exprs.iter().map(|(e, _)| e)).collect();
                let param_types = param_types(&all, declared, &hints, 0)?;
                let mut uuid = uuid_hints(&hints);
                uuid_params(all, &[scope.df_schema().as_ref()], &mut uuid);
                let compiled = RowExprs::compile(state, &scope, exprs, &param_types)?;
                let returning = Returning::new(state, &scope, ret_exprs, &param_types)?;
                let target = key_target(&table, u.selection.as_ref());
                Ok(DmlPlan {
                    table,
                    param_types,
                    uuid_params: uuid,
                    kind: Kind::Update { target, filter, sets: set_idx, exprs: compiled },
                    returning,
                    stored: stored.clone(),
                    row: schema.clone(),
                    schemas: OnceLock::new(),
                    subqueries,
                })
            }
            ast::Statement::Delete(d) => {
                if d.limit.is_some() || !d.order_by.is_empty() || !d.tables.is_empty() {
                    return Err(Error::Unsupported("DELETE … ORDER BY / LIMIT".into()));
                }
                let (ast::FromTable::WithFromKeyword(from) | ast::FromTable::WithoutKeyword(from)) = &d.from;
                let [twj] = from.as_slice() else {
                    return Err(Error::Unsupported("DELETE from several relations".into()));
                };
                let TableFactor::Table { name, alias, .. } = &twj.relation else {
                    return Err(Error::Unsupported("DELETE from this relation".into()));
                };
                if !twj.joins.is_empty() {
                    return Err(Error::Unsupported("joins in DELETE (use DELETE … USING)".into()));
                }
                if let Some(using) = &d.using {
                    let returning = d.returning.as_deref();
                    let joined = (&twj.relation, using.as_slice(), Vec::new(), d.selection.as_ref(), returning, true);
                    return Self::joined(table, joined, (stored, schema), state, declared).await;
                }
                let q = qualifier(name, alias.as_ref().map(|a| &a.name));
                let scope = Scope::new(&[(&q, schema.clone())])?;
                let asts: Vec<&ast::Expr> = d.selection.iter().collect();
                let (subqueries, stand_in) = match statement_subqueries(&asts, name, &q, &scope, state).await? {
                    Some((found, mut stand_ins)) => (Some(found), stand_ins.pop()),
                    None => (None, None),
                };
                let mut exprs = Vec::new();
                let filter = match stand_in.as_ref().or(d.selection.as_ref()) {
                    Some(w) => {
                        exprs.push(boolean(scope.plan(state, w)?, &scope)?);
                        Some(0)
                    }
                    None => None,
                };
                let ret_exprs = returning_exprs(d.returning.as_deref(), &scope, &column_names(&table), &q, state)?;
                let all: Vec<&Expr> = exprs.iter().chain(ret_exprs.iter().map(|(e, _)| e)).collect();
                let param_types = param_types(&all, declared, &[], 0)?;
                let mut uuid = Vec::new();
                uuid_params(all, &[scope.df_schema().as_ref()], &mut uuid);
                let compiled = RowExprs::compile(state, &scope, exprs, &param_types)?;
                let returning = Returning::new(state, &scope, ret_exprs, &param_types)?;
                let target = key_target(&table, d.selection.as_ref());
                Ok(DmlPlan {
                    table,
                    param_types,
                    uuid_params: uuid,
                    kind: Kind::Delete { target, filter, exprs: compiled },
                    returning,
                    stored: stored.clone(),
                    row: schema.clone(),
                    schemas: OnceLock::new(),
                    subqueries,
                })
            }
            _ => Err(Error::Internal("DmlPlan::new on a statement that is not DML".into())),
        }
    }

    /// `schemas`: the table's row schema as stored, and as the statement
    /// sees it (in its zone).
    /// An UPDATE … FROM or DELETE … USING ([`super::joined`]): the target
    /// as written, the other relations, the SETs, WHERE, RETURNING, and
    /// whether it deletes.
    async fn joined(
        table: Arc<TableHandle>,
        (relation, from, sets, selection, returning, delete): Joined<'_>,
        (stored, schema): (SchemaRef, SchemaRef),
        state: &SessionState,
        declared: &[Option<DataType>],
    ) -> Result<DmlPlan> {
        let TableFactor::Table { name, alias, .. } = relation else {
            return Err(Error::Unsupported("UPDATE or DELETE of this relation".into()));
        };
        let q = qualifier(name, alias.as_ref().map(|a| &a.name));
        let join = JoinedPlan::new(&table, relation, &q, from, &sets, selection, state).await?;
        let scope = Scope::new(&[(&q, schema.clone())])?;
        let ret_exprs = returning_exprs(returning, &scope, &column_names(&table), &q, state)?;
        let query_types = crate::session::prepared::param_types(&join.query, declared)?;
        let ret: Vec<&Expr> = ret_exprs.iter().map(|(e, _)| e).collect();
        let returning_types = param_types(&ret, declared, &[], query_types.len())?;
        let param_types: Vec<DataType> =
            returning_types.iter().enumerate().map(|(i, t)| query_types.get(i).unwrap_or(t).clone()).collect();
        let mut uuid = uuid_params_of_plan(&join.query);
        uuid_params(ret, &[scope.df_schema().as_ref()], &mut uuid);
        let returning = Returning::new(state, &scope, ret_exprs, &param_types)?;
        Ok(DmlPlan {
            table,
            param_types,
            uuid_params: uuid,
            kind: Kind::Joined { join, delete },
            returning,
            stored,
            row: schema,
            schemas: OnceLock::new(),
            subqueries: None,
        })
    }

    async fn insert(
        insert: &ast::Insert,
        table: Arc<TableHandle>,
        (stored, schema): (SchemaRef, SchemaRef),
        state: &SessionState,
        declared: &[Option<DataType>],
    ) -> Result<DmlPlan> {
        let TableObject::TableName(name) = &insert.table else {
            return Err(Error::Unsupported("INSERT INTO a table function".into()));
        };
        let q = qualifier(name, insert.table_alias.as_ref().map(|a| &a.alias));
        let mut targets = target_columns(&table.def.columns, &table.def.name, &insert.columns, &TABLE_SYSTEM_COLUMNS)?;
        implicit_targets(insert, &mut targets);
        let rewritten = without_default_cells(insert, &mut targets)?;
        let insert = rewritten.as_ref().unwrap_or(insert);
        // Parameters of VALUES take the type of their column.
        let mut hints = Vec::new();
        let simple = match insert.source.as_deref() {
            // DEFAULT VALUES: one row of nothing but defaults.
            None => {
                targets.clear();
                Some(vec![Vec::new()])
            }
            Some(source) => match source.body.as_ref() {
                SetExpr::Values(values) if source.order_by.is_none() && source.limit_clause.is_none() => {
                    simple_rows(&values.rows)
                }
                _ => None,
            },
        };
        let mut uuid = Vec::new();
        let (source_plan, mut extra) = match simple {
            Some(rows) => {
                check_width(rows.iter().map(Vec::len), targets.len())?;
                for row in &rows {
                    for (op, &col) in row.iter().zip(&targets) {
                        if let Operand::Param(i) = op {
                            hints.push((*i, table.def.columns[col].ty));
                        }
                    }
                }
                (Source::Values(rows), 0)
            }
            None => {
                let source = insert.source.as_ref().expect("DEFAULT VALUES is simple");
                let mut stmt = ast::Statement::Query(source.clone());
                crate::sql::rewrite::before_planning_alone(&mut stmt)?;
                let plan =
                    state.statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(stmt))).await?;
                let width = plan.schema().fields().len();
                implicit_query_targets(insert, width, &mut targets);
                check_width(std::iter::once(width), targets.len())?;
                let n = crate::session::prepared::param_types(&plan, declared)?.len();
                uuid = uuid_params_of_plan(&plan);
                (Source::Query(Box::new(plan)), n)
            }
        };
        extra = extra.max(hints.iter().map(|(i, _)| i + 1).max().unwrap_or(0));
        let table_scope = Scope::new(&[(&q, schema.clone())])?;
        let ret_exprs = returning_exprs(insert.returning.as_deref(), &table_scope, &column_names(&table), &q, state)?;
        let (conflict, conflict_exprs) = match &insert.on {
            None => (None, Vec::new()),
            Some(ast::OnInsert::OnConflict(oc)) => {
                if let Some(ast::ConflictTarget::Columns(cols)) = &oc.conflict_target {
                    let mut named: Vec<usize> = Vec::new();
                    for c in cols {
                        let n = normalize(c);
                        let idx =
                            table.def.columns.iter().position(|d| d.name == n).ok_or_else(|| Error::NotFound {
                                kind: ObjectKind::Column,
                                name: format!("{n}\" of relation \"{}", table.def.name),
                            })?;
                        named.push(idx);
                    }
                    let mut pk = table.def.primary_key.clone();
                    named.sort();
                    pk.sort();
                    if named != pk {
                        return Err(Error::InvalidColumnReference(
                            "there is no unique or exclusion constraint matching the ON CONFLICT specification".into(),
                        ));
                    }
                }
                match &oc.action {
                    ast::OnConflictAction::DoNothing => (Some(Conflict::Nothing), Vec::new()),
                    ast::OnConflictAction::DoUpdate(du) => {
                        if oc.conflict_target.is_none() {
                            return Err(Error::Syntax(
                                "ON CONFLICT DO UPDATE requires inference specification or constraint name".into(),
                            ));
                        }
                        let user: SchemaRef = Arc::new(
                            schema.project(&(TABLE_SYSTEM_COLUMNS.len()..schema.fields().len()).collect::<Vec<_>>())?,
                        );
                        let scope = Scope::new(&[(&q, schema.clone()), ("excluded", user)])?;
                        let sets = assignments(&table, &du.assignments)?;
                        if sets.iter().any(|(c, _)| table.def.primary_key.contains(c)) {
                            return Err(Error::Unsupported("changing the primary key in ON CONFLICT DO UPDATE".into()));
                        }
                        let (exprs, set_idx, filter) =
                            plan_sets(&table, &scope, state, &sets, du.selection.as_ref(), &mut hints)?;
                        uuid_params(&exprs, &[scope.df_schema().as_ref()], &mut uuid);
                        let update =
                            Conflict::Update { sets: set_idx, filter, exprs: RowExprs::empty(&scope), direct: None };
                        (Some(update), exprs)
                    }
                }
            }
            Some(_) => return Err(Error::Unsupported("this ON clause of INSERT (use ON CONFLICT)".into())),
        };
        let all: Vec<&Expr> = conflict_exprs.iter().chain(ret_exprs.iter().map(|(e, _)| e)).collect();
        let param_types = param_types(&all, declared, &hints, extra)?;
        uuid.extend(uuid_hints(&hints));
        uuid_params(ret_exprs.iter().map(|(e, _)| e), &[table_scope.df_schema().as_ref()], &mut uuid);
        let conflict = match conflict {
            None => Conflict::Error,
            Some(Conflict::Update { sets, filter, exprs, .. }) => {
                let exprs = RowExprs::compile(state, exprs.scope(), conflict_exprs, &param_types)?;
                let direct = if filter.is_none() { RowSet::all(&table, &sets, &exprs) } else { None };
                Conflict::Update { sets, filter, exprs, direct }
            }
            Some(other) => other,
        };
        let returning = Returning::new(state, &table_scope, ret_exprs, &param_types)?;
        if let Some(c) = targets.iter().map(|&i| &table.def.columns[i]).find(|c| c.identity == Some(Identity::Always)) {
            return Err(Error::IdentityColumn(format!(
                "cannot insert a non-DEFAULT value into column \"{}\" (it is GENERATED ALWAYS AS IDENTITY)",
                c.name
            )));
        }
        let defaults = Defaults::compile(state, &table.def.columns, &targets)?;
        Ok(DmlPlan {
            table,
            param_types,
            uuid_params: uuid,
            kind: Kind::Insert { targets, source: source_plan, conflict, defaults },
            returning,
            stored,
            row: schema,
            schemas: OnceLock::new(),
            subqueries: None,
        })
    }

    /// Values for the identity columns an INSERT of `rows` rows leaves out
    /// (`targets` are the columns it gives), one per row in order, taken
    /// from each column's sequence (see [`brikk_storage::tables::sequence`]).
    async fn identity_values(
        &self,
        store: &Store,
        targets: &[usize],
        rows: usize,
    ) -> Result<Vec<(usize, std::vec::IntoIter<i64>)>> {
        let mut out = Vec::new();
        for (col, c) in self.table.def.columns.iter().enumerate() {
            if c.identity.is_some() && !targets.contains(&col) && rows > 0 {
                let (_, max) = crate::types::integer_range(c.ty).unwrap_or((0, i64::MAX));
                // Boxed, as every rare await of `build` is (see there).
                let taken = Box::pin(store.sequence_take(&self.table, col, rows, max)).await?;
                out.push((col, taken.into_iter()));
            }
        }
        Ok(out)
    }

    /// The command tag of this statement.
    pub fn tag(&self) -> &'static str {
        match self.kind {
            Kind::Insert { .. } => "INSERT",
            Kind::Update { .. } | Kind::Joined { delete: false, .. } => "UPDATE",
            Kind::Delete { .. } | Kind::Joined { delete: true, .. } => "DELETE",
        }
    }

    /// The schema of the RETURNING rows, if there is a RETURNING clause.
    pub fn returning_schema(&self) -> Option<SchemaRef> {
        self.returning.as_ref().map(|r| r.schema.clone())
    }

    /// A one-line description for EXPLAIN: how the target rows are found.
    pub fn explain(&self) -> String {
        let name = &self.table.def.name;
        let how = match &self.kind {
            Kind::Insert { .. } => "point lookup of each inserted key".to_string(),
            Kind::Update { target, .. } | Kind::Delete { target, .. } => match target {
                Target::Keys(k) => format!("primary key lookup of {} key(s), no scan", k.len()),
                Target::Scan => "full scan of the table".to_string(),
            },
            Kind::Joined { .. } => "the rows a join picks, each by primary key".to_string(),
        };
        format!("{} {name}: {how}", self.tag())
    }

    /// Builds the writes of one execution with `params` bound, reading the
    /// table as of now plus the transaction's own rows `txn`.
    ///
    /// Its future sits inline in every prepared INSERT, UPDATE and DELETE's
    /// and is copied once per execution (pgwire boxes each Execute), so the
    /// awaits that run DataFusion (queries, subqueries, joins) or take from
    /// a sequence are boxed: a key upsert's future stays small.
    pub async fn build(
        &self,
        store: &Store,
        state: &SessionState,
        txn: &TxnRows,
        params: &[ScalarValue],
    ) -> Result<Built> {
        if self.table.is_dropped() {
            return Err(Error::NotFound { kind: ObjectKind::Relation, name: self.table.def.name.clone() });
        }
        let mut b = Builder {
            table: &self.table,
            store,
            txn,
            written: HashMap::new(),
            count: 0,
            out: self.returning.as_ref().map(|_| Vec::new()),
            writes: Vec::new(),
        };
        match &self.kind {
            Kind::Insert { targets, source, conflict, defaults } => {
                let rows = self.source_rows(source, state, params).await?;
                let defaults = defaults.resolved(state)?;
                let mut identities = self.identity_values(store, targets, rows.len()).await?;
                for row in rows {
                    let mut values = vec![Value::Null; self.table.def.columns.len()];
                    for (v, &col) in row.into_iter().zip(targets) {
                        let c = &self.table.def.columns[col];
                        values[col] = assign_in(v, c.ty, &c.name, zone_of(state))?;
                    }
                    for (col, next) in identities.iter_mut() {
                        values[*col] = Value::Int(next.next().expect("one value per row"));
                    }
                    defaults.fill(&mut values, &self.table.def.columns, zone_of(state))?;
                    self.check_not_null(&values)?;
                    let key = self.table.key_of(&values)?;
                    match b.lookup(&key)? {
                        (None, expect) => b.put(OP_INSERT, key, values, expect)?,
                        (Some(existing), expect) => match conflict {
                            Conflict::Error => return Err(self.duplicate(&values)),
                            Conflict::Nothing => {}
                            Conflict::Update { sets, filter, exprs, direct } => {
                                if b.written.contains_key(&key) {
                                    return Err(Error::Cardinality(
                                        "ON CONFLICT DO UPDATE command cannot affect row a second time".into(),
                                    ));
                                }
                                let mut new = existing.values.clone();
                                if let Some(direct) = direct {
                                    for set in direct {
                                        new[set.column] = set.value(&existing.values, &values)?;
                                    }
                                } else {
                                    let batch = self.conflict_batch(&existing, &values)?;
                                    if let Some(f) = filter {
                                        if !selected(&exprs.eval(state, *f, &batch, params)?, 0)? {
                                            continue;
                                        }
                                    }
                                    let which = sets.iter().map(|&(_, i)| i);
                                    let values = exprs.eval_many(state, which, &batch, params)?;
                                    for ((col, _), a) in sets.iter().zip(values) {
                                        let c = &self.table.def.columns[*col];
                                        new[*col] = assign_in(
                                            ScalarValue::try_from_array(&a, 0)?,
                                            c.ty,
                                            &c.name,
                                            zone_of(state),
                                        )?;
                                    }
                                }
                                self.check_not_null(&new)?;
                                b.put(OP_UPDATE, key, new, expect)?;
                            }
                        },
                    }
                }
            }
            Kind::Update { target, filter, sets, exprs } => {
                let rows = self.target_rows(&mut b, target, state, params).await?;
                let batch = self.row_batch(&rows)?;
                let resolved = self.resolved_exprs(*filter, state, rows.is_empty()).await?;
                let exprs = resolved.as_ref().unwrap_or(exprs);
                let keep = self.filtered(exprs, *filter, state, &batch, params)?;
                let which = sets.iter().map(|&(_, i)| i);
                let set_values: Vec<(usize, ArrayRef)> =
                    sets.iter().map(|&(col, _)| col).zip(exprs.eval_many(state, which, &batch, params)?).collect();
                for (i, (key, row)) in rows.into_iter().enumerate() {
                    if !keep[i] {
                        continue;
                    }
                    let mut new = row.values.clone();
                    for (col, a) in &set_values {
                        let c = &self.table.def.columns[*col];
                        new[*col] = assign_in(ScalarValue::try_from_array(a, i)?, c.ty, &c.name, zone_of(state))?;
                    }
                    self.check_not_null(&new)?;
                    let new_key = self.table.key_of(&new)?;
                    if new_key != key {
                        let (taken, expect) = b.lookup(&new_key)?;
                        if taken.is_some() {
                            return Err(self.duplicate(&new));
                        }
                        // One row updated: its old key goes, its new one comes.
                        b.delete(key, &row, false)?;
                        b.put(OP_INSERT, new_key, new, expect)?;
                    } else {
                        let expect = b.expect_for(&key, &row);
                        b.put(OP_UPDATE, key, new, expect)?;
                    }
                }
            }
            Kind::Joined { join, delete } => Box::pin(self.build_joined(&mut b, join, *delete, state, params)).await?,
            Kind::Delete { target, filter, exprs } => {
                let rows = self.target_rows(&mut b, target, state, params).await?;
                let batch = self.row_batch(&rows)?;
                let resolved = self.resolved_exprs(*filter, state, rows.is_empty()).await?;
                let exprs = resolved.as_ref().unwrap_or(exprs);
                let keep = self.filtered(exprs, *filter, state, &batch, params)?;
                for (i, (key, row)) in rows.into_iter().enumerate() {
                    if keep[i] {
                        b.delete(key, &row, true)?;
                    }
                }
            }
        }
        let returned = match &self.returning {
            Some(r) => {
                let rows: Vec<Current> = b.out.unwrap_or_default().into_iter().map(Current::pending).collect();
                let batch = self.row_batch_of(rows)?;
                Some(r.eval(state, &batch, params)?)
            }
            None => None,
        };
        Ok(Built { writes: b.writes, count: b.count, returned })
    }

    /// The writes of an UPDATE … FROM or DELETE … USING: each row the join
    /// picks, changed once, expecting the version the join read.
    async fn build_joined(
        &self,
        b: &mut Builder<'_>,
        join: &JoinedPlan,
        delete: bool,
        state: &SessionState,
        params: &[ScalarValue],
    ) -> Result<()> {
        let rows = self.source_rows(&Source::Query(join.query.clone()), state, params).await?;
        let key_width = self.table.def.primary_key.len();
        for row in rows {
            let mut key_values = Vec::with_capacity(key_width);
            for (v, &k) in row[1..=key_width].iter().zip(&self.table.def.primary_key) {
                let c = &self.table.def.columns[k];
                key_values.push(assign_in(v.clone(), c.ty, &c.name, zone_of(state))?);
            }
            let refs: Vec<&Value> = key_values.iter().collect();
            let key = self.table.key_from(&refs)?;
            if b.written.contains_key(&key) {
                continue; // matched again: changed once, by its first match
            }
            let Some(current) = b.current(&key)? else { continue };
            // The version the join read (none for the transaction's own
            // rows): the write is refused if the row changed since.
            let expect = match (&row[0], b.txn.get(self.table.def.id, &key)) {
                (ScalarValue::Int64(Some(v)), None) => Expect::Version(*v as u64),
                _ => Expect::Any,
            };
            if delete {
                b.delete_expecting(key, &current, expect)?;
                continue;
            }
            let mut new = current.values.clone();
            for (v, &col) in row[1 + key_width..].iter().zip(&join.sets) {
                let c = &self.table.def.columns[col];
                new[col] = assign_in(v.clone(), c.ty, &c.name, zone_of(state))?;
            }
            self.check_not_null(&new)?;
            b.put(OP_UPDATE, key, new, expect)?;
        }
        Ok(())
    }

    async fn source_rows(
        &self,
        source: &Source,
        state: &SessionState,
        params: &[ScalarValue],
    ) -> Result<Vec<Vec<ScalarValue>>> {
        match source {
            Source::Values(rows) => {
                rows.iter().map(|row| row.iter().map(|op| op.bind(params)).collect::<Result<Vec<_>>>()).collect()
            }
            Source::Query(plan) => Box::pin(Self::query_rows(plan, state, params)).await,
        }
    }

    /// The rows of an `INSERT … SELECT`'s query (or of an UPDATE … FROM's
    /// join), as values.
    async fn query_rows(
        plan: &LogicalPlan,
        state: &SessionState,
        params: &[ScalarValue],
    ) -> Result<Vec<Vec<ScalarValue>>> {
        let plan = if params.is_empty() { plan.clone() } else { plan.clone().with_param_values(params.to_vec())? };
        // A query's now() is the time it starts.
        let mut state = state.clone();
        state.mark_start_execution();
        let physical = state.create_physical_plan(&plan).await?;
        let batches: Vec<RecordBatch> =
            datafusion::physical_plan::execute_stream(physical, state.task_ctx())?.try_collect().await?;
        let mut out = Vec::new();
        for batch in batches {
            for r in 0..batch.num_rows() {
                out.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| ScalarValue::try_from_array(c, r))
                        .collect::<datafusion::error::Result<Vec<_>>>()?,
                );
            }
        }
        Ok(out)
    }

    /// The candidate rows of an UPDATE or DELETE, with their keys.
    async fn target_rows(
        &self,
        b: &mut Builder<'_>,
        target: &Target,
        state: &SessionState,
        params: &[ScalarValue],
    ) -> Result<Vec<(Vec<u8>, Current)>> {
        match target {
            Target::Keys(keys) => {
                let mut out: Vec<(Vec<u8>, Current)> = Vec::with_capacity(keys.len());
                for ops in keys {
                    let mut values = Vec::with_capacity(ops.len());
                    for (op, &k) in ops.iter().zip(&self.table.def.primary_key) {
                        let c = &self.table.def.columns[k];
                        // A value that cannot be a key matches no row (the
                        // WHERE clause still decides, and reports bad text).
                        match assign_in(op.bind(params)?, c.ty, &c.name, zone_of(state)) {
                            Ok(Value::Null) | Err(_) => values.clear(),
                            Ok(v) => values.push(v),
                        }
                        if values.is_empty() {
                            break;
                        }
                    }
                    if values.len() != ops.len() {
                        continue;
                    }
                    let refs: Vec<&Value> = values.iter().collect();
                    let key = self.table.key_from(&refs)?;
                    if out.iter().any(|(k, _)| *k == key) {
                        continue;
                    }
                    if let Some(row) = b.current(&key)? {
                        out.push((key, row));
                    }
                }
                Ok(out)
            }
            Target::Scan => {
                let (store, table) = (b.store.clone(), self.table.clone());
                let pending = b.txn.table(table.def.id).cloned();
                tokio::task::spawn_blocking(move || scan_all(&store, &table, pending.as_ref()))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
            }
        }
    }

    fn row_batch(&self, rows: &[(Vec<u8>, Current)]) -> Result<RecordBatch> {
        self.row_batch_of(rows.iter().map(|(_, r)| r.clone()).collect())
    }

    fn schemas(&self) -> &(SchemaRef, SchemaRef) {
        self.schemas.get_or_init(|| {
            let row = self.row.clone();
            let mut fields: Vec<_> = row.fields().iter().cloned().collect();
            fields.extend(row.fields()[TABLE_SYSTEM_COLUMNS.len()..].iter().cloned());
            (row, Arc::new(Schema::new(fields)))
        })
    }

    fn row_batch_of(&self, rows: Vec<Current>) -> Result<RecordBatch> {
        let projection: Vec<usize> = (0..self.stored.fields().len()).collect();
        let batch = rows_to_batch(&self.stored, &projection, &self.table, rows)?;
        Ok(zoned_batch(batch, &self.schemas().0)?)
    }

    /// One row: the existing row (with system columns), then the excluded row.
    fn conflict_batch(&self, existing: &Current, excluded: &[Value]) -> Result<RecordBatch> {
        let left = self.row_batch_of(vec![existing.clone()])?;
        let right = self.row_batch_of(vec![Current::pending(excluded.to_vec())])?;
        let mut columns = left.columns().to_vec();
        columns.extend(right.columns()[TABLE_SYSTEM_COLUMNS.len()..].iter().cloned());
        Ok(RecordBatch::try_new_with_options(
            self.schemas().1.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?)
    }

    /// Which rows of `batch` the WHERE (`filter` of `exprs`) keeps.
    fn filtered(
        &self,
        exprs: &RowExprs,
        filter: Option<usize>,
        state: &SessionState,
        batch: &RecordBatch,
        params: &[ScalarValue],
    ) -> Result<Vec<bool>> {
        let n = batch.num_rows();
        match filter {
            None => Ok(vec![true; n]),
            Some(_) if n == 0 => Ok(Vec::new()),
            Some(f) => {
                let a = exprs.eval(state, f, batch, params)?;
                (0..n).map(|i| selected(&a, i)).collect()
            }
        }
    }

    /// The statement's expressions with their subqueries run now, planned
    /// and compiled; `filter` is the index of the WHERE among them. `None`
    /// for a statement without subqueries, or with no candidate rows
    /// (`no_rows`: nothing to evaluate).
    async fn resolved_exprs(
        &self,
        filter: Option<usize>,
        state: &SessionState,
        no_rows: bool,
    ) -> Result<Option<RowExprs>> {
        let Some(subqueries) = self.subqueries.as_ref().filter(|_| !no_rows) else { return Ok(None) };
        let (found, scope) = subqueries.as_ref();
        let planned = Box::pin(found.resolve(state))
            .await?
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let planned = scope.plan(state, e)?;
                if Some(i) == filter {
                    boolean(planned, scope)
                } else {
                    Ok(planned)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        RowExprs::compile(state, scope, planned, &self.param_types).map(Some)
    }

    fn check_not_null(&self, values: &[Value]) -> Result<()> {
        for (c, v) in self.table.def.columns.iter().zip(values) {
            if !c.nullable && *v == Value::Null {
                return Err(Error::NotNull { relation: self.table.def.name.clone(), column: c.name.clone() });
            }
        }
        Ok(())
    }

    fn duplicate(&self, values: &[Value]) -> Error {
        let cols: Vec<&str> =
            self.table.def.primary_key.iter().map(|&k| self.table.def.columns[k].name.as_str()).collect();
        Error::UniqueViolation {
            constraint: format!("{}_pkey", self.table.def.name),
            detail: format!("Key ({})=({}) already exists.", cols.join(", "), self.table.key_text(values)),
        }
    }
}

fn selected(a: &ArrayRef, i: usize) -> Result<bool> {
    let b = a
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| Error::TypeMismatch("argument of WHERE must be type boolean".into()))?;
    Ok(b.is_valid(i) && b.value(i))
}

/// `e` as a condition: an error unless it is boolean.
fn boolean(e: Expr, scope: &Scope) -> Result<Expr> {
    match scope.type_of(&e)? {
        DataType::Boolean | DataType::Null => Ok(e),
        other => Err(Error::TypeMismatch(format!(
            "argument of WHERE must be type boolean, not type {}",
            crate::types::pg_name_of(&other)
        ))),
    }
}

/// Every row of a table (blocking), with a transaction's pending rows.
fn scan_all(store: &Store, table: &TableHandle, pending: Option<&PendingRows>) -> Result<Vec<(Vec<u8>, Current)>> {
    let mut rows: std::collections::BTreeMap<Vec<u8>, Current> = std::collections::BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let chunk = store.table_scan(table, after.as_deref(), 4096)?;
        let done = chunk.len() < 4096;
        after = chunk.last().map(|(k, _)| k.clone());
        for (k, row) in chunk {
            rows.insert(k, Current::stored(row));
        }
        if done {
            break;
        }
    }
    for (k, v) in pending.into_iter().flatten() {
        match v {
            Some(values) => rows.insert(k.clone(), Current::pending(values.clone())),
            None => rows.remove(k),
        };
    }
    Ok(rows.into_iter().collect())
}

/// Collects one execution's writes, reading through what it wrote so far.
struct Builder<'a> {
    table: &'a TableHandle,
    store: &'a Store,
    txn: &'a TxnRows,
    /// Rows this statement wrote: the index in `writes` of each key's last.
    written: HashMap<Vec<u8>, usize>,
    /// Rows inserted, updated or deleted (the command tag's count).
    count: usize,
    /// The new rows (or deleted rows) for RETURNING; `None` without it.
    out: Option<Vec<Vec<Value>>>,
    writes: Vec<(RowWrite, Option<Vec<Value>>)>,
}

impl Builder<'_> {
    /// The row of `key` as this statement sees it (its own writes, then the
    /// transaction's, then the table), and what a write of it must expect.
    fn lookup(&self, key: &[u8]) -> Result<(Option<Current>, Expect)> {
        if let Some(&i) = self.written.get(key) {
            return Ok((self.writes[i].1.clone().map(Current::pending), Expect::Any));
        }
        if let Some(v) = self.txn.get(self.table.def.id, key) {
            return Ok((v.clone().map(Current::pending), Expect::Any));
        }
        Ok(match self.store.table_get(self.table, key)? {
            Some(row) => {
                let v = row.version;
                (Some(Current::stored(row)), Expect::Version(v))
            }
            None => (None, Expect::Absent),
        })
    }

    fn current(&self, key: &[u8]) -> Result<Option<Current>> {
        Ok(self.lookup(key)?.0)
    }

    /// What a write of a row read as `row` must expect.
    fn expect_for(&self, key: &[u8], row: &Current) -> Expect {
        match row.version {
            Some(v) if !self.written.contains_key(key) => Expect::Version(v),
            _ => Expect::Any,
        }
    }

    fn put(&mut self, op: &'static str, key: Vec<u8>, values: Vec<Value>, expect: Expect) -> Result<()> {
        let w = RowWrite::put(self.table, op, expect, &values)?;
        self.written.insert(key, self.writes.len());
        self.count += 1;
        if let Some(out) = &mut self.out {
            out.push(values.clone());
        }
        self.writes.push((w, Some(values)));
        Ok(())
    }

    /// Deletes `old`; `counted`: the deletion is a row the statement
    /// reports (not the old key of a row whose key an UPDATE changed).
    fn delete(&mut self, key: Vec<u8>, old: &Current, counted: bool) -> Result<()> {
        let expect = self.expect_for(&key, old);
        self.delete_row(key, old, expect, counted)
    }

    /// Deletes `old`, a row the statement reports, expecting `expect`.
    fn delete_expecting(&mut self, key: Vec<u8>, old: &Current, expect: Expect) -> Result<()> {
        self.delete_row(key, old, expect, true)
    }

    fn delete_row(&mut self, key: Vec<u8>, old: &Current, expect: Expect, counted: bool) -> Result<()> {
        let w = RowWrite::delete(self.table, expect, &old.values)?;
        self.written.insert(key, self.writes.len());
        if counted {
            self.count += 1;
            if let Some(out) = &mut self.out {
                out.push(old.values.clone());
            }
        }
        self.writes.push((w, None));
        Ok(())
    }
}

/// The names of `table`'s columns, which `RETURNING *` lists.
fn column_names(table: &TableHandle) -> Vec<&str> {
    table.def.columns.iter().map(|c| c.name.as_str()).collect()
}
