//! Expressions over one table row, compiled once and evaluated per
//! Execute without planning a query.
//!
//! A DML statement's expressions (SET values, WHERE, RETURNING, ON CONFLICT
//! updates) are planned by DataFusion against the row's schema — the table
//! under its name or alias, and for `ON CONFLICT` also the `excluded` row.
//! Parameters become extra columns (`$1`, `$2`, …) of the batch the
//! expressions run on, so a prepared statement compiles its physical
//! expressions at Parse and only binds values at Execute. Expressions that
//! call functions which are not immutable (`now()`, `random()`) are
//! simplified and compiled at each Execute instead, so they see that
//! statement's time.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DFSchemaRef, TableReference};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable, Volatility};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, SelectItem};

use crate::error::{Error, Result};
use crate::sql::parser::normalize;

/// The row schema a statement's expressions are written against.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// The row fields, qualified (table name or alias; `excluded`).
    row: DFSchemaRef,
}

impl Scope {
    /// A scope of `parts`: each a qualifier and the Arrow schema of the row
    /// it names, side by side in the evaluation batch.
    pub(crate) fn new(parts: &[(&str, SchemaRef)]) -> Result<Scope> {
        let mut fields = Vec::new();
        for (qualifier, schema) in parts {
            let q = TableReference::bare(*qualifier);
            fields.extend(schema.fields().iter().map(|f| (Some(q.clone()), f.clone())));
        }
        Ok(Scope { row: Arc::new(DFSchema::new_with_metadata(fields, Default::default())?) })
    }

    /// Plans an expression of the statement. Parameters it uses get the
    /// type of what they are compared with, where DataFusion can tell.
    pub(crate) fn plan(&self, state: &SessionState, e: &ast::Expr) -> Result<Expr> {
        // Refused before planning: DataFusion would plan the subquery
        // without a catalog and report its tables as unknown.
        if has_subquery(e) {
            return Err(Error::Unsupported("a subquery in UPDATE, DELETE or ON CONFLICT of a table".into()));
        }
        let with_alias = ast::ExprWithAlias { expr: e.clone(), alias: None };
        let expr = state.create_logical_expr_from_sql_expr(with_alias, &self.row)?;
        if expr.exists(|e| Ok(matches!(e, Expr::AggregateFunction(_) | Expr::WindowFunction(_))))? {
            return Err(Error::Plan("aggregate and window functions are not allowed here".into()));
        }
        let expr = crate::types::uuid_literals(expr, &[&self.row])?;
        Ok(expr.infer_placeholder_types(&self.row)?.0)
    }

    /// The row schema, with qualifiers.
    pub(crate) fn df_schema(&self) -> DFSchemaRef {
        self.row.clone()
    }

    /// The Arrow type of `e` in this scope.
    pub(crate) fn type_of(&self, e: &Expr) -> Result<DataType> {
        Ok(e.to_field(&self.row)?.1.data_type().clone())
    }

    /// The output field of `e` (name, type, metadata) for RETURNING.
    pub(crate) fn field_of(&self, e: &Expr) -> Result<Field> {
        Ok(e.to_field(&self.row)?.1.as_ref().clone())
    }
}

/// Whether `e` holds a subquery (scalar, `IN (SELECT …)`, `EXISTS`).
fn has_subquery(e: &ast::Expr) -> bool {
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &ast::Expr) -> std::ops::ControlFlow<()> {
            match e {
                ast::Expr::Subquery(_) | ast::Expr::InSubquery { .. } | ast::Expr::Exists { .. } => {
                    std::ops::ControlFlow::Break(())
                }
                _ => std::ops::ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Find).is_break()
}

/// The zero-based index of parameter `id` (`$1` is 0).
pub(crate) fn param_index(id: &str) -> Option<usize> {
    id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).and_then(|n| n.checked_sub(1))
}

/// The placeholders of `e` with the types DataFusion inferred, as
/// (zero-based index, type).
pub(crate) fn placeholders(e: &Expr, out: &mut Vec<(usize, Option<DataType>)>) -> Result<()> {
    e.apply(|e| {
        if let Expr::Placeholder(Placeholder { id, field }) = e {
            let idx = param_index(id)
                .ok_or_else(|| datafusion::error::DataFusionError::Plan(format!("invalid parameter {id}")))?;
            out.push((idx, field.as_ref().map(|f| f.data_type().clone())));
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    Ok(())
}

/// Expressions of one statement compiled against one [`Scope`] and the
/// statement's parameter types.
#[derive(Debug, Clone)]
pub(crate) struct RowExprs {
    scope: Scope,
    /// Row fields plus one field per parameter (`$1`, …).
    eval: DFSchemaRef,
    /// `eval` as an Arrow schema, built once for every evaluation.
    eval_arrow: SchemaRef,
    exprs: Vec<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    /// Parameters as columns of the evaluation batch.
    logical: Expr,
    /// Compiled once, or `None` when it must be compiled per execution.
    physical: Option<Arc<dyn PhysicalExpr>>,
    /// The expression's shape when it is a [`FieldPlus`].
    field_plus: Option<FieldPlus>,
}

/// An expression simple enough for a caller to evaluate on one row's values
/// without building Arrow arrays: field `field` of the row (an index into
/// the scope's row fields), plus `delta` when it is `Some` (a 64-bit integer
/// field plus or minus an integer literal, such as `version + 1`).
///
/// Evaluating it by hand must give what the compiled expression gives:
/// the field's value, or for `delta` the field's `Int64` value with
/// two's-complement wrapping, as DataFusion's integer `+` does, and NULL
/// for NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldPlus {
    pub(crate) field: usize,
    pub(crate) delta: Option<i64>,
}

impl FieldPlus {
    /// `e` as a [`FieldPlus`] over the fields of `row`, if it is one.
    fn of(e: &Expr, row: &DFSchema) -> Option<FieldPlus> {
        use datafusion::logical_expr::{BinaryExpr, Operator};
        let field = |e: &Expr| match e {
            Expr::Column(c) => row.index_of_column(c).ok(),
            _ => None,
        };
        match e {
            Expr::Column(_) => Some(FieldPlus { field: field(e)?, delta: None }),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (col, n) = match (left.as_ref(), op, right.as_ref()) {
                    (c, Operator::Plus, Expr::Literal(ScalarValue::Int64(Some(n)), _)) => (c, *n),
                    (Expr::Literal(ScalarValue::Int64(Some(n)), _), Operator::Plus, c) => (c, *n),
                    (c, Operator::Minus, Expr::Literal(ScalarValue::Int64(Some(n)), _)) => (c, n.wrapping_neg()),
                    _ => return None,
                };
                let f = field(col)?;
                (row.field(f).data_type() == &DataType::Int64).then_some(FieldPlus { field: f, delta: Some(n) })
            }
            _ => None,
        }
    }
}

fn param_name(i: usize) -> String {
    format!("${}", i + 1)
}

/// Whether `e` calls a function whose result can change between two
/// executions (`now()`, `random()`).
fn varies(e: &Expr) -> Result<bool> {
    Ok(e.exists(|e| {
        Ok(matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable))
    })?)
}

impl RowExprs {
    /// Compiles `exprs` (planned by `scope.plan`) for parameters of
    /// `param_types` (`$1` first).
    pub(crate) fn compile(
        state: &SessionState,
        scope: &Scope,
        exprs: Vec<Expr>,
        param_types: &[DataType],
    ) -> Result<RowExprs> {
        let mut fields: Vec<(Option<TableReference>, Arc<Field>)> =
            scope.row.iter().map(|(q, f)| (q.cloned(), f.clone())).collect();
        for (i, t) in param_types.iter().enumerate() {
            fields.push((None, Arc::new(Field::new(param_name(i), t.clone(), true))));
        }
        let eval = Arc::new(DFSchema::new_with_metadata(fields, Default::default())?);
        let mut compiled = Vec::with_capacity(exprs.len());
        for e in exprs {
            let logical = e
                .transform(|e| match e {
                    Expr::Placeholder(Placeholder { id, field }) => {
                        let idx = id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
                        let col = Expr::Column(Column::from_name(format!("${idx}")));
                        let want = field.map(|f| f.data_type().clone());
                        let have = param_types.get(idx.wrapping_sub(1)).cloned();
                        Ok(Transformed::yes(match (want, have) {
                            (Some(w), Some(h)) if w != h => datafusion::logical_expr::cast(col, w),
                            _ => col,
                        }))
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data;
            // Recognized before the rewrite below, which hides `col + n`
            // behind a checked call; the direct path checks its own sums.
            let field_plus = FieldPlus::of(&logical, &scope.row);
            let logical = crate::checked::rewrite(logical, &eval)?;
            let logical = crate::datetime::rewrite_datetimes(logical, crate::zone::zone_of(state), &eval)?;
            let physical =
                if varies(&logical)? { None } else { Some(state.create_physical_expr(logical.clone(), &eval)?) };
            compiled.push(Compiled { logical, physical, field_plus });
        }
        let eval_arrow = Arc::new(Schema::new(eval.fields().clone()));
        Ok(RowExprs { scope: scope.clone(), eval, eval_arrow, exprs: compiled })
    }

    /// No expressions yet: a placeholder that only carries `scope`.
    pub(crate) fn empty(scope: &Scope) -> RowExprs {
        let eval_arrow = Arc::new(Schema::new(scope.row.fields().clone()));
        RowExprs { scope: scope.clone(), eval: scope.row.clone(), eval_arrow, exprs: Vec::new() }
    }

    /// Evaluates expression `i` on every row of `rows` (a batch of the
    /// scope's row schema) with `params` bound. Returns one value per row.
    pub(crate) fn eval(
        &self,
        state: &SessionState,
        i: usize,
        rows: &RecordBatch,
        params: &[ScalarValue],
    ) -> Result<ArrayRef> {
        Ok(self.eval_many(state, [i], rows, params)?.pop().expect("one expression"))
    }

    /// Evaluates each expression of `which` on every row of `rows`, binding
    /// `params` once for all of them. Returns one array per expression.
    pub(crate) fn eval_many(
        &self,
        state: &SessionState,
        which: impl IntoIterator<Item = usize>,
        rows: &RecordBatch,
        params: &[ScalarValue],
    ) -> Result<Vec<ArrayRef>> {
        let n = rows.num_rows();
        let mut columns = rows.columns().to_vec();
        let param_fields = &self.eval.fields()[rows.num_columns()..];
        for (j, f) in param_fields.iter().enumerate() {
            let v = params.get(j).cloned().unwrap_or(ScalarValue::Null);
            let v = if v.data_type() == *f.data_type() { v } else { v.cast_to(f.data_type())? };
            columns.push(v.to_array_of_size(n)?);
        }
        let batch = RecordBatch::try_new_with_options(
            self.eval_arrow.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        which.into_iter().map(|i| self.eval_one(state, i, &batch)).collect()
    }

    fn eval_one(&self, state: &SessionState, i: usize, batch: &RecordBatch) -> Result<ArrayRef> {
        let n = batch.num_rows();
        let c = &self.exprs[i];
        let physical = match &c.physical {
            Some(p) => p.clone(),
            None => {
                let ctx = SimplifyContext::builder()
                    .with_schema(self.eval.clone())
                    .with_config_options(state.config_options().clone())
                    .with_current_time()
                    .build();
                let simplified = ExprSimplifier::new(ctx).simplify(c.logical.clone())?;
                state.create_physical_expr(simplified, &self.eval)?
            }
        };
        Ok(physical.evaluate(batch)?.into_array(n)?)
    }

    /// Expression `i` as a [`FieldPlus`], if it is that simple.
    pub(crate) fn field_plus(&self, i: usize) -> Option<FieldPlus> {
        self.exprs[i].field_plus
    }

    /// The scope these expressions are written in.
    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }
}

/// A statement's RETURNING clause, compiled over its row scope.
#[derive(Debug, Clone)]
pub(crate) struct Returning {
    exprs: RowExprs,
    pub(crate) schema: SchemaRef,
}

/// RETURNING expressions with their output names, `*` expanded to
/// `columns` (of the relation `qualifier`).
pub(crate) fn returning_exprs(
    items: Option<&[SelectItem]>,
    scope: &Scope,
    columns: &[&str],
    qualifier: &str,
    state: &SessionState,
) -> Result<Vec<(Expr, String)>> {
    let Some(items) = items else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                for c in columns {
                    let e = ast::Expr::CompoundIdentifier(vec![
                        ast::Ident::new(qualifier),
                        ast::Ident::with_quote('"', *c),
                    ]);
                    out.push((scope.plan(state, &e)?, c.to_string()));
                }
            }
            SelectItem::UnnamedExpr(e) => {
                let name = match e {
                    ast::Expr::Identifier(i) => normalize(i),
                    ast::Expr::CompoundIdentifier(p) => p.last().map(normalize).unwrap_or_default(),
                    _ => crate::sql::colnames::item_name(e),
                };
                out.push((scope.plan(state, e)?, name));
            }
            SelectItem::ExprWithAlias { expr, alias } => out.push((scope.plan(state, expr)?, normalize(alias))),
            SelectItem::ExprWithAliases { .. } => return Err(Error::Unsupported("this RETURNING item".into())),
        }
    }
    Ok(out)
}

impl Returning {
    pub(crate) fn new(
        state: &SessionState,
        scope: &Scope,
        exprs: Vec<(Expr, String)>,
        params: &[DataType],
    ) -> Result<Option<Returning>> {
        if exprs.is_empty() {
            return Ok(None);
        }
        let mut fields = Vec::with_capacity(exprs.len());
        for (e, name) in &exprs {
            let f = scope.field_of(e)?;
            fields.push(f.with_name(name.clone()).with_nullable(true));
        }
        let compiled = RowExprs::compile(state, scope, exprs.into_iter().map(|(e, _)| e).collect(), params)?;
        Ok(Some(Returning { exprs: compiled, schema: Arc::new(Schema::new(fields)) }))
    }

    /// The RETURNING rows of `batch` (rows of the scope it was planned in).
    pub(crate) fn eval(
        &self,
        state: &SessionState,
        batch: &RecordBatch,
        params: &[ScalarValue],
    ) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for i in 0..self.schema.fields().len() {
            let a = if n == 0 {
                datafusion::arrow::array::new_empty_array(self.schema.field(i).data_type())
            } else {
                self.exprs.eval(state, i, batch, params)?
            };
            let want = self.schema.field(i).data_type();
            columns.push(if a.data_type() == want { a } else { datafusion::arrow::compute::cast(&a, want)? });
        }
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}
