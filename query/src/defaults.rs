//! Column defaults: `DEFAULT expr` in `CREATE STREAM` and `CREATE TABLE`.
//!
//! The catalog keeps each default as SQL text ([`brikk_storage::ColumnDef`]).
//! An INSERT (or COPY) that leaves a column with a default out compiles the
//! expression once, when it is planned ([`Defaults::compile`]), fixes the
//! statement's time in it when it runs ([`Defaults::resolved`]), and
//! evaluates it for every row it writes ([`Defaults::fill`]), so
//! `gen_random_uuid()` differs per row and `now()` is the statement's time,
//! as in Postgres. A default names no column, no parameter and no
//! subquery; `CREATE` checks that it plans and that its value fits the
//! column ([`check`]).

use std::sync::Arc;

use brikk_storage::{ColumnDef, Value};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::DFSchema;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, Volatility};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};
use crate::types::assign_in;
use crate::zone::zone_of;

/// The compiled defaults of the columns one INSERT leaves out.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    columns: Vec<Default>,
}

#[derive(Debug, Clone)]
struct Default {
    column: usize,
    logical: Expr,
    /// `None` until [`Defaults::resolved`] when the expression reads the
    /// statement's time (`now()`), which is fixed once per statement.
    physical: Option<Arc<dyn PhysicalExpr>>,
}

impl Defaults {
    /// The defaults of the columns of `columns` not in `targets`, compiled
    /// in `state` (its zone reads their date/time text).
    pub fn compile(state: &SessionState, columns: &[ColumnDef], targets: &[usize]) -> Result<Defaults> {
        let mut out = Vec::new();
        for (i, c) in columns.iter().enumerate() {
            if let (Some(text), false) = (&c.default, targets.contains(&i)) {
                let logical = compile(state, &c.name, text)?;
                let physical = match reads_the_time(&logical)? {
                    true => None,
                    false => Some(state.create_physical_expr(logical.clone(), &DFSchema::empty())?),
                };
                out.push(Default { column: i, logical, physical });
            }
        }
        Ok(Defaults { columns: out })
    }

    /// Whether there are no defaults to fill.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// These defaults for one statement starting now: `now()` is fixed,
    /// volatile functions (`gen_random_uuid()`) still run for each row.
    pub fn resolved(&self, state: &SessionState) -> Result<Defaults> {
        let mut columns = self.columns.clone();
        for d in columns.iter_mut().filter(|d| d.physical.is_none()) {
            let schema = Arc::new(DFSchema::empty());
            let ctx = SimplifyContext::builder()
                .with_schema(schema.clone())
                .with_config_options(state.config_options().clone())
                .with_current_time()
                .build();
            let simplified = ExprSimplifier::new(ctx).simplify(d.logical.clone())?;
            d.physical = Some(state.create_physical_expr(simplified, &schema)?);
        }
        Ok(Defaults { columns })
    }

    /// Sets each defaulted column of `values` (a row of `columns` being
    /// inserted) to its default, evaluated now, assigned to the column's
    /// type in `zone`. The defaults must be [`Defaults::resolved`].
    pub fn fill(&self, values: &mut [Value], columns: &[ColumnDef], zone: &str) -> Result<()> {
        for d in &self.columns {
            let c = &columns[d.column];
            let physical = d.physical.as_ref().ok_or_else(|| Error::Internal("an unresolved default".into()))?;
            values[d.column] = assign_in(evaluate(physical.as_ref())?, c.ty, &c.name, zone)?;
        }
        Ok(())
    }
}

/// Checks, for `CREATE`, that each default of `columns` plans in `state`
/// and gives a value its column takes.
pub fn check(state: &SessionState, columns: &[ColumnDef]) -> Result<()> {
    let defaults = Defaults::compile(state, columns, &[])?.resolved(state)?;
    let mut row = vec![Value::Null; columns.len()];
    defaults.fill(&mut row, columns, zone_of(state))
}

/// The value of `column`'s default evaluated once, now: what rows that
/// exist when `ALTER TABLE … ADD COLUMN` adds it read there (`None`
/// without a default). A volatile default (`random()`,
/// `gen_random_uuid()`) would need a value per existing row, which Brikk
/// does not write, and is refused.
pub fn value_once(state: &SessionState, column: &ColumnDef) -> Result<Option<Value>> {
    let Some(text) = &column.default else { return Ok(None) };
    let logical = compile(state, &column.name, text)?;
    let volatile = logical.exists(|e| {
        Ok(matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility == Volatility::Volatile))
    })?;
    if volatile {
        return Err(Error::Unsupported(format!(
            "ADD COLUMN \"{}\" with a volatile DEFAULT ({text}), which would need a value per existing row",
            column.name
        )));
    }
    let columns = std::slice::from_ref(column);
    let defaults = Defaults::compile(state, columns, &[])?.resolved(state)?;
    let mut row = vec![Value::Null];
    defaults.fill(&mut row, columns, zone_of(state))?;
    Ok(row.pop().filter(|v| *v != Value::Null))
}

/// Whether `e` calls a function whose value is fixed per statement
/// (`now()`, `current_date`): DataFusion folds those before running.
fn reads_the_time(e: &Expr) -> Result<bool> {
    Ok(e.exists(|e| Ok(matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility == Volatility::Stable)))?)
}

/// The SQL text `expr` is kept as.
pub fn text_of(expr: &ast::Expr) -> String {
    expr.to_string()
}

fn compile(state: &SessionState, column: &str, text: &str) -> Result<Expr> {
    let invalid = |why: String| Error::Plan(format!("DEFAULT of column \"{column}\": {why}"));
    // Parsed as the one item of a SELECT, so Postgres's casts DataFusion
    // lacks (`::uuid`, `::jsonb`) are rewritten as in any statement.
    let mut statements =
        Parser::parse_sql(&PostgreSqlDialect {}, &format!("SELECT {text}")).map_err(|e| invalid(e.to_string()))?;
    let (Some(mut stmt), None) = (statements.pop(), statements.pop()) else {
        return Err(invalid(format!("{text} is not one expression")));
    };
    crate::sql::pg_compat::rewrite(&mut stmt);
    let expr = match stmt {
        ast::Statement::Query(q) => match *q.body {
            ast::SetExpr::Select(s) if s.projection.len() == 1 && s.from.is_empty() => {
                match s.projection.into_iter().next() {
                    Some(ast::SelectItem::UnnamedExpr(e)) => Some(e),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| invalid(format!("{text} is not one expression")))?;
    let mut names_a_column = false;
    let _ = ast::visit_expressions(&expr, |e| {
        names_a_column |= matches!(e, ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_));
        std::ops::ControlFlow::<()>::Continue(())
    });
    if names_a_column {
        return Err(Error::Unsupported(format!("a column reference in the DEFAULT of column \"{column}\"")));
    }
    let schema = DFSchema::empty();
    let logical = state.create_logical_expr_from_sql_expr(ast::ExprWithAlias { expr, alias: None }, &schema)?;
    let not_constant = logical.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::InSubquery(_)
                | Expr::Exists(_)
                | Expr::Placeholder(_)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_)
        ))
    })?;
    if not_constant {
        return Err(invalid("only an expression of constants and functions can be a default".into()));
    }
    let logical = crate::checked::rewrite(logical, &schema)?;
    Ok(crate::datetime::rewrite_datetimes(logical, zone_of(state), &schema)?)
}

/// The value of a compiled default, now.
fn evaluate(expr: &dyn PhysicalExpr) -> Result<ScalarValue> {
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let array = expr.evaluate(&one_row)?.into_array(1)?;
    Ok(ScalarValue::try_from_array(&array, 0)?)
}
