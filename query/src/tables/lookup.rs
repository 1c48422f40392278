//! Prepared primary-key lookups that skip query planning.
//!
//! `SELECT cols FROM board WHERE topic = $1 [AND …]` — columns of one
//! table, a WHERE that pins the whole primary key — is what agents run most
//! against a blackboard. Prepared, it becomes a [`LookupPlan`]: each
//! Execute binds the key, reads the row (point read, or the transaction's
//! own row), checks the rest of the WHERE with expressions compiled at
//! Parse, and returns the columns — no DataFusion planning per execution.
//! Anything else goes through DataFusion, where the same WHERE still
//! becomes a point lookup in the scan (`KeyScanExec … lookup=[…]`).

use std::sync::Arc;

use brikk_storage::{Store, TableHandle, Value};
use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, SelectItem, SetExpr, TableFactor};

use crate::catalog::keyed_table::{rows_to_batch, table_schema, TABLE_SYSTEM_COLUMNS};
use crate::error::{Error, Result};
use crate::session::insert::Operand;
use crate::session::prepared::uuid_params;
use crate::sql::parser::normalize;
use crate::tables::dml::{and_terms, key_target, param_types, Target};
use crate::tables::expr::{RowExprs, Scope};
use crate::tables::{Current, TxnRows};
use crate::types::{arrow_type, assign_in};
use crate::zone::zone_of;
use brikk_storage::ColumnType;

/// A planned primary-key lookup.
#[derive(Debug, Clone)]
pub struct LookupPlan {
    table: Arc<TableHandle>,
    keys: Vec<Vec<Operand>>,
    /// The whole WHERE clause, checked on each row found; `None` when the
    /// key alone decides it (see [`key_decides`]).
    filter: Option<RowExprs>,
    /// Indexes into the table's schema (system columns first).
    projection: Vec<usize>,
    /// The table's schema, system columns first.
    full: SchemaRef,
    schema: SchemaRef,
    pub param_types: Vec<DataType>,
    /// Parameters bound to a `uuid` column ([`crate::Prepared::uuid_params`]).
    pub uuid_params: Vec<usize>,
}

/// Whether finding the row by key already proves `selection` true: it is
/// nothing but `key_column = $n` terms joined by AND, each parameter of the
/// column's own type (so binding it is no conversion) and the column of a
/// type whose SQL equality is equality of the stored key (text, integers).
fn key_decides(table: &TableHandle, selection: &ast::Expr, param_types: &[DataType]) -> bool {
    let all = and_terms(selection);
    let key_param = |column: &ast::Expr, value: &ast::Expr| -> bool {
        let name = match column {
            ast::Expr::Identifier(i) => normalize(i),
            ast::Expr::CompoundIdentifier(p) if p.len() == 2 => p.last().map(normalize).unwrap_or_default(),
            _ => return false,
        };
        let Some(c) = table.def.primary_key.iter().map(|&k| &table.def.columns[k]).find(|c| c.name == name) else {
            return false;
        };
        let exact = matches!(c.ty, ColumnType::Text | ColumnType::BigInt | ColumnType::Integer | ColumnType::SmallInt);
        match crate::session::insert::operand(value) {
            Some(Operand::Param(i)) => exact && param_types.get(i) == Some(&arrow_type(c.ty)),
            _ => false,
        }
    };
    all.len() == table.def.primary_key.len()
        && all.iter().all(|t| match t {
            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } => {
                key_param(left, right) || key_param(right, left)
            }
            _ => false,
        })
}

impl LookupPlan {
    /// A lookup plan for `query`, or `None` if it is not a plain
    /// primary-key lookup on one table.
    pub fn try_new(
        query: &ast::Query,
        store: &Store,
        state: &SessionState,
        declared: &[Option<DataType>],
    ) -> Result<Option<LookupPlan>> {
        let plain = query.with.is_none()
            && query.order_by.is_none()
            && query.limit_clause.is_none()
            && query.fetch.is_none()
            && query.locks.is_empty();
        let SetExpr::Select(select) = query.body.as_ref() else { return Ok(None) };
        let grouped = match &select.group_by {
            ast::GroupByExpr::Expressions(e, m) => !e.is_empty() || !m.is_empty(),
            ast::GroupByExpr::All(_) => true,
        };
        if !plain
            || grouped
            || select.distinct.is_some()
            || select.having.is_some()
            || select.qualify.is_some()
            || select.from.len() != 1
            || !select.from[0].joins.is_empty()
        {
            return Ok(None);
        }
        let Some(selection) = &select.selection else { return Ok(None) };
        let TableFactor::Table { name, alias, args: None, .. } = &select.from[0].relation else { return Ok(None) };
        let Some(relation) = name.0.last().and_then(|p| p.as_ident()).map(normalize) else { return Ok(None) };
        let Some(table) = store.table(&relation) else { return Ok(None) };
        let Target::Keys(keys) = key_target(&table, Some(selection)) else { return Ok(None) };
        let full = table_schema(&table);
        let mut projection = Vec::new();
        let mut fields = Vec::new();
        let column = |e: &ast::Expr| -> Option<usize> {
            let c = match e {
                ast::Expr::Identifier(i) => normalize(i),
                ast::Expr::CompoundIdentifier(p) if p.len() == 2 => p.last().map(normalize)?,
                _ => return None,
            };
            full.index_of(&c).ok()
        };
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(o)
                    if o.opt_exclude.is_none() && o.opt_except.is_none() && o.opt_replace.is_none() =>
                {
                    for i in TABLE_SYSTEM_COLUMNS.len()..full.fields().len() {
                        projection.push(i);
                        fields.push(full.field(i).clone());
                    }
                }
                SelectItem::UnnamedExpr(e) => match column(e) {
                    Some(i) => {
                        projection.push(i);
                        fields.push(full.field(i).clone());
                    }
                    None => return Ok(None),
                },
                SelectItem::ExprWithAlias { expr, alias } => match column(expr) {
                    Some(i) => {
                        projection.push(i);
                        fields.push(full.field(i).clone().with_name(normalize(alias)));
                    }
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        let qualifier = alias.as_ref().map(|a| normalize(&a.name)).unwrap_or_else(|| relation.clone());
        let scope = Scope::new(&[(&qualifier, full.clone())])?;
        let filter = match scope.plan(state, selection) {
            Ok(f) => f,
            // Let DataFusion report whatever is wrong with the query.
            Err(_) => return Ok(None),
        };
        let all: Vec<&Expr> = vec![&filter];
        let param_types = param_types(&all, declared, &[], 0)?;
        let mut uuid = Vec::new();
        uuid_params(all, &[scope.df_schema().as_ref()], &mut uuid);
        let filter = match key_decides(&table, selection, &param_types) {
            true => None,
            false => Some(RowExprs::compile(state, &scope, vec![filter], &param_types)?),
        };
        Ok(Some(LookupPlan {
            table,
            keys,
            filter,
            projection,
            full,
            schema: Arc::new(Schema::new(fields)),
            param_types,
            uuid_params: uuid,
        }))
    }

    /// The schema of the rows returned.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Runs the lookup with `params` bound, seeing `txn`'s own rows.
    pub fn execute(
        &self,
        store: &Store,
        state: &SessionState,
        txn: &TxnRows,
        params: &[ScalarValue],
    ) -> Result<RecordBatch> {
        if self.table.is_dropped() {
            return Err(Error::NotFound {
                kind: crate::error::ObjectKind::Relation,
                name: self.table.def.name.clone(),
            });
        }
        let mut rows = Vec::with_capacity(self.keys.len());
        let mut seen: Vec<Vec<u8>> = Vec::with_capacity(self.keys.len());
        'keys: for ops in &self.keys {
            let mut values = Vec::with_capacity(ops.len());
            for (op, &k) in ops.iter().zip(&self.table.def.primary_key) {
                let c = &self.table.def.columns[k];
                match assign_in(op.bind(params)?, c.ty, &c.name, zone_of(state)) {
                    Ok(Value::Null) | Err(_) => continue 'keys,
                    Ok(v) => values.push(v),
                }
            }
            let refs: Vec<&Value> = values.iter().collect();
            let key = self.table.key_from(&refs)?;
            if seen.contains(&key) {
                continue;
            }
            let row = match txn.get(self.table.def.id, &key) {
                Some(pending) => pending.clone().map(Current::pending),
                None => store.table_get(&self.table, &key)?.map(Current::stored),
            };
            seen.push(key);
            rows.extend(row);
        }
        let all = || (0..self.full.fields().len()).collect::<Vec<usize>>();
        let Some(filter) = &self.filter else {
            // Only the columns returned are built, unless one is returned
            // twice (building a column takes the rows' values).
            let unique = self.projection.iter().enumerate().all(|(i, c)| !self.projection[..i].contains(c));
            if unique {
                return Ok(rows_to_batch(&self.schema, &self.projection, &self.table, rows)?);
            }
            return self.project(&rows_to_batch(&self.full, &all(), &self.table, rows)?);
        };
        let batch = rows_to_batch(&self.full, &all(), &self.table, rows)?;
        let batch = if batch.num_rows() == 0 {
            batch
        } else {
            let keep = filter.eval(state, 0, &batch, params)?;
            let keep = keep
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| Error::TypeMismatch("argument of WHERE must be type boolean".into()))?;
            // NULL counts as false, as in WHERE.
            let keep: BooleanArray = (0..keep.len()).map(|i| Some(keep.is_valid(i) && keep.value(i))).collect();
            filter_record_batch(&batch, &keep)?
        };
        self.project(&batch)
    }

    /// The returned columns of `batch`, a batch of every column.
    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = self.projection.iter().map(|&i| batch.column(i).clone()).collect();
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }
}
