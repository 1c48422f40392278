//! Subqueries in a table's UPDATE (SET values and WHERE) or DELETE.
//!
//! ```sql
//! DELETE FROM board WHERE author IN (SELECT id FROM agents WHERE retired);
//! UPDATE tasks SET state = 'stale' WHERE updated_at < (SELECT min(at) FROM beats);
//! UPDATE counters SET n = (SELECT count(*) FROM events) WHERE k = 'events';
//! ```
//!
//! A table's DML evaluates its expressions row by row without planning a
//! query ([`super::expr`]). A subquery that does not refer to the row being
//! changed (uncorrelated) has one answer per execution, so each execution
//! first runs every such subquery as a query of its own (seeing the
//! transaction's own writes), puts the answers in its place as literals
//! (`x IN (SELECT …)` becomes `x IN (v1, v2, …)`, a scalar subquery its
//! value, `EXISTS` true or false) and only then plans and evaluates the
//! expressions on the candidate rows. Each changed row still expects the version
//! it was read at, so compare-and-set stays exact.
//!
//! Refused with `0A000`: a correlated subquery (naming the table or its
//! alias, or a column of the row that the subquery's own relations lack),
//! and parameters inside a subquery.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Visit, VisitMut, Visitor, VisitorMut};
use futures::TryStreamExt;

use crate::error::{Error, ObjectKind, Result};
use crate::sql::parser::normalize;

/// The expressions of an UPDATE (SET values, then WHERE) or a DELETE
/// (WHERE), when one of them holds a subquery.
#[derive(Debug, Clone)]
pub(crate) struct Subqueries {
    exprs: Vec<ast::Expr>,
    /// The columns of the row being changed.
    columns: Vec<String>,
}

impl Subqueries {
    /// `exprs`, if one of them holds a subquery; checked for what is
    /// refused. `outer` are the names of the row being changed, `columns`
    /// its columns.
    pub(crate) fn new(exprs: &[&ast::Expr], outer: &[String], columns: Vec<String>) -> Result<Option<Subqueries>> {
        let found = outermost(exprs.iter().copied());
        if found.is_empty() {
            return Ok(None);
        }
        for q in &found {
            if has_placeholder(q) {
                return Err(Error::Unsupported("a parameter inside a subquery of UPDATE or DELETE".into()));
            }
            if names_any(q, outer) {
                return Err(correlated());
            }
        }
        Ok(Some(Subqueries { exprs: exprs.iter().map(|e| (*e).clone()).collect(), columns }))
    }

    /// The expressions with each subquery replaced by a stand-in of its
    /// type, for Parse: a scalar subquery by a NULL of its column's type,
    /// `x IN (…)` by `(x = that NULL) IS NULL`, `EXISTS` by TRUE. Each
    /// subquery is planned (not run) for its type, so the rest of the
    /// statement is checked, and its parameters typed (`(SELECT max(v) …) +
    /// $1` makes `$1` that type), before any execution.
    pub(crate) async fn stand_ins(&self, state: &SessionState) -> Result<Vec<ast::Expr>> {
        let found = outermost(&self.exprs);
        let mut types = Vec::with_capacity(found.len());
        for q in found {
            let plan = plan(state, q).await.map_err(|e| self.correlated_if_outer(e))?;
            let typed = plan.schema().fields().first().and_then(|f| sql_type(f.data_type()));
            types.push(typed);
        }
        let mut types = types.into_iter();
        let mut out = self.exprs.clone();
        let mut replace = Replace::new(|s: &ast::Expr| {
            let null = match types.next().flatten() {
                Some(data_type) => ast::Expr::Cast {
                    kind: ast::CastKind::Cast,
                    expr: Box::new(ast::Expr::Value(ast::Value::Null.into())),
                    data_type,
                    array: false,
                    format: None,
                },
                None => ast::Expr::Value(ast::Value::Null.into()),
            };
            Ok(match s {
                ast::Expr::InSubquery { expr, .. } => ast::Expr::IsNull(Box::new(ast::Expr::BinaryOp {
                    left: expr.clone(),
                    op: ast::BinaryOperator::Eq,
                    right: Box::new(null),
                })),
                ast::Expr::Exists { .. } => ast::Expr::Value(ast::Value::Boolean(true).into()),
                _ => null,
            })
        });
        for e in &mut out {
            if let ControlFlow::Break(err) = VisitMut::visit(e, &mut replace) {
                return Err(err);
            }
        }
        Ok(out)
    }

    /// `e`, or the correlated-subquery error when `e` is an unknown column
    /// that the changed row has (named in a subquery without its table).
    fn correlated_if_outer(&self, e: Error) -> Error {
        match e {
            Error::NotFound { kind: ObjectKind::Column, ref name }
                if self.columns.iter().any(|c| name.rsplit('.').next() == Some(c)) =>
            {
                correlated()
            }
            e => e,
        }
    }

    /// The expressions with each subquery run (in `state`) and replaced by
    /// its answer.
    pub(crate) async fn resolve(&self, state: &SessionState) -> Result<Vec<ast::Expr>> {
        let found = outermost(&self.exprs);
        let mut answers = Vec::with_capacity(found.len());
        for q in found {
            let answer = run(state, q).await.map_err(|e| self.correlated_if_outer(e))?;
            answers.push(answer);
        }
        let mut answers = answers.into_iter();
        let mut out = self.exprs.clone();
        let mut replace = Replace::new(|s: &ast::Expr| {
            let batches = answers.next().ok_or_else(|| Error::Internal("a subquery without an answer".into()))?;
            answer(s, batches)
        });
        for e in &mut out {
            if let ControlFlow::Break(err) = VisitMut::visit(e, &mut replace) {
                return Err(err);
            }
        }
        Ok(out)
    }
}

fn correlated() -> Error {
    Error::Unsupported("a correlated subquery in UPDATE or DELETE of a table (it names the row being changed)".into())
}

/// The SQL type of a value of Arrow type `t`, for a typed NULL; `None`
/// for types without one here.
fn sql_type(t: &DataType) -> Option<ast::DataType> {
    use ast::DataType as D;
    Some(match t {
        DataType::Boolean => D::Boolean,
        DataType::Int16 => D::SmallInt(None),
        DataType::Int32 => D::Int(None),
        DataType::Int64 => D::BigInt(None),
        DataType::Float32 => D::Real,
        DataType::Float64 => D::DoublePrecision,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => D::Text,
        DataType::Date32 => D::Date,
        DataType::Timestamp(_, None) => D::Timestamp(None, ast::TimezoneInfo::None),
        DataType::Timestamp(_, Some(_)) => D::Timestamp(None, ast::TimezoneInfo::WithTimeZone),
        DataType::Decimal128(p, s) if *s >= 0 => {
            D::Numeric(ast::ExactNumberInfo::PrecisionAndScale(*p as u64, *s as i64))
        }
        _ => return None,
    })
}

/// Plans one subquery as a query of its own.
async fn plan(state: &SessionState, q: ast::Query) -> Result<LogicalPlan> {
    let mut stmt = ast::Statement::Query(Box::new(q));
    crate::sql::rewrite::before_planning_alone(&mut stmt)?;
    Ok(state.statement_to_plan(DfStatement::Statement(Box::new(stmt))).await?)
}

/// Runs one subquery as a query of its own.
async fn run(state: &SessionState, q: ast::Query) -> Result<Vec<RecordBatch>> {
    let plan = plan(state, q).await?;
    let mut state = state.clone();
    state.mark_start_execution();
    let physical = state.create_physical_plan(&plan).await?;
    Ok(datafusion::physical_plan::execute_stream(physical, state.task_ctx())?.try_collect().await?)
}

/// The literal expression that takes the place of subquery `s`, whose rows
/// are `batches`.
fn answer(s: &ast::Expr, batches: Vec<RecordBatch>) -> Result<ast::Expr> {
    let columns = batches.first().map(|b| b.num_columns()).unwrap_or(1);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if columns != 1 && !matches!(s, ast::Expr::Exists { .. }) {
        return Err(Error::Syntax("subquery must return only one column".into()));
    }
    let values = || -> Result<Vec<ast::Expr>> {
        let mut out = Vec::with_capacity(rows);
        for b in &batches {
            for r in 0..b.num_rows() {
                out.push(literal(ScalarValue::try_from_array(b.column(0), r)?)?);
            }
        }
        Ok(out)
    };
    Ok(match s {
        ast::Expr::InSubquery { expr, negated, .. } => {
            let list = values()?;
            if list.is_empty() {
                // Nothing is in an empty set (even NULL is not).
                ast::Expr::Value(ast::Value::Boolean(*negated).into())
            } else {
                ast::Expr::InList { expr: expr.clone(), list, negated: *negated }
            }
        }
        ast::Expr::Exists { negated, .. } => ast::Expr::Value(ast::Value::Boolean((rows > 0) != *negated).into()),
        _ if rows > 1 => {
            return Err(Error::Cardinality("more than one row returned by a subquery used as an expression".into()))
        }
        _ => values()?.pop().unwrap_or(ast::Expr::Value(ast::Value::Null.into())),
    })
}

/// A value as a SQL literal of its type.
fn literal(v: ScalarValue) -> Result<ast::Expr> {
    let value = |v: ast::Value| ast::Expr::Value(v.into());
    if v.is_null() {
        return Ok(value(ast::Value::Null));
    }
    let typed = |text: String, data_type: ast::DataType| ast::Expr::Cast {
        kind: ast::CastKind::DoubleColon,
        expr: Box::new(value(ast::Value::SingleQuotedString(text))),
        data_type,
        array: false,
        format: None,
    };
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => value(ast::Value::Boolean(b)),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            value(ast::Value::SingleQuotedString(s))
        }
        ScalarValue::Float32(Some(f)) => typed(f.to_string(), ast::DataType::Real),
        ScalarValue::Float64(Some(f)) => typed(f.to_string(), ast::DataType::DoublePrecision),
        v if v.data_type().is_integer() || matches!(v, ScalarValue::Decimal128(..)) => {
            value(ast::Value::Number(v.to_string(), false))
        }
        ScalarValue::TimestampMicrosecond(Some(_), ref tz) => {
            let tz = if tz.is_some() { ast::TimezoneInfo::WithTimeZone } else { ast::TimezoneInfo::None };
            let text = v.to_string();
            typed(text, ast::DataType::Timestamp(None, tz))
        }
        ScalarValue::Date32(Some(_)) => typed(v.to_string(), ast::DataType::Date),
        ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) => {
            typed(format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()), ast::DataType::Bytea)
        }
        other => {
            return Err(Error::Unsupported(format!(
                "subquery values of type {} in UPDATE or DELETE",
                crate::types::pg_name_of(&other.data_type())
            )))
        }
    })
}

/// The outermost subqueries of `exprs`, in the order they are written.
fn outermost<'a>(exprs: impl IntoIterator<Item = &'a ast::Expr>) -> Vec<ast::Query> {
    let mut found = Outermost::default();
    for e in exprs {
        let _ = e.visit(&mut found);
    }
    found.subqueries
}

/// Collects the outermost subqueries of an expression, in the order they
/// are written.
#[derive(Default)]
struct Outermost {
    depth: usize,
    subqueries: Vec<ast::Query>,
}

impl Visitor for Outermost {
    type Break = ();

    fn pre_visit_query(&mut self, _q: &ast::Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &ast::Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            if let Some(q) = subquery_of(e) {
                self.subqueries.push(q.clone());
            }
        }
        ControlFlow::Continue(())
    }
}

/// Replaces each outermost subquery expression with what `with` makes of
/// it, in the order they are written.
struct Replace<F> {
    depth: usize,
    with: F,
}

impl<F: FnMut(&ast::Expr) -> Result<ast::Expr>> Replace<F> {
    fn new(with: F) -> Replace<F> {
        Replace { depth: 0, with }
    }
}

impl<F: FnMut(&ast::Expr) -> Result<ast::Expr>> VisitorMut for Replace<F> {
    type Break = Error;

    fn pre_visit_query(&mut self, _q: &mut ast::Query) -> ControlFlow<Error> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &mut ast::Query) -> ControlFlow<Error> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<Error> {
        if self.depth == 0 && subquery_of(e).is_some() {
            match (self.with)(e) {
                Ok(new) => *e = ast::Expr::Nested(Box::new(new)),
                Err(err) => return ControlFlow::Break(err),
            }
        }
        ControlFlow::Continue(())
    }
}

fn subquery_of(e: &ast::Expr) -> Option<&ast::Query> {
    match e {
        ast::Expr::Subquery(q) | ast::Expr::InSubquery { subquery: q, .. } | ast::Expr::Exists { subquery: q, .. } => {
            Some(q)
        }
        _ => None,
    }
}

/// Whether `q` holds a parameter (`$1`).
fn has_placeholder(q: &ast::Query) -> bool {
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_value(&mut self, v: &ast::ValueWithSpan) -> ControlFlow<()> {
            match &v.value {
                ast::Value::Placeholder(_) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    q.visit(&mut Find).is_break()
}

/// Whether `q` names one of `outer` as the qualifier of a column
/// (`board.topic`) that its own FROM does not define: a correlated
/// subquery.
fn names_any(q: &ast::Query, outer: &[String]) -> bool {
    #[derive(Default)]
    struct Names {
        defined: Vec<String>,
        qualifiers: Vec<String>,
    }
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &ast::TableFactor) -> ControlFlow<()> {
            if let ast::TableFactor::Table { name, alias, .. } = t {
                let own = match alias {
                    Some(a) => Some(normalize(&a.name)),
                    None => name.0.last().and_then(|p| p.as_ident()).map(normalize),
                };
                self.defined.extend(own);
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
            if let ast::Expr::CompoundIdentifier(parts) = e {
                if parts.len() >= 2 {
                    self.qualifiers.push(normalize(&parts[parts.len() - 2]));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names::default();
    let _ = q.visit(&mut names);
    names.qualifiers.iter().any(|n| outer.contains(n) && !names.defined.contains(n))
}
