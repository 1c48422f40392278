//! Two standard ways of taking fewer rows that DataFusion does not plan:
//!
//! - `FETCH FIRST n ROWS ONLY` (also `NEXT`, `ROW`, and without `n`: one
//!   row) becomes `LIMIT n`. `WITH TIES` and `PERCENT` are refused
//!   (`0A000`).
//! - `FROM t TABLESAMPLE BERNOULLI (p)` (or `SYSTEM (p)`) keeps each row of
//!   `t` with probability `p`%: the query gets the filter `random() * 100 <
//!   p`. Postgres' `SYSTEM` samples pages; Brikk samples rows for it too,
//!   which is the same in expectation. `p` outside 0–100 is `2202H`, as in
//!   Postgres. Refused with `0A000`: `REPEATABLE (seed)` (the sample could
//!   not be repeated), other methods, and a sampled table joined with
//!   others, where the filter would sample the join's rows instead.
//!   DataFusion would otherwise ignore the clause and return every row.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, LimitClause, Query, Select, SetExpr, Statement, TableFactor, TableSample, TableSampleKind,
    TableSampleMethod, Value, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::error::{Error, Result};
use crate::sql::pg_compat::call;

/// Refuses the forms the module docs name.
pub fn check(stmt: &Statement) -> Result<()> {
    struct Pass;
    impl Visitor for Pass {
        type Break = Error;

        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Error> {
            if let Some(fetch) = &query.fetch {
                if fetch.with_ties || fetch.percent {
                    let what = if fetch.with_ties { "WITH TIES" } else { "PERCENT" };
                    return ControlFlow::Break(Error::Unsupported(format!("FETCH FIRST … {what}")));
                }
            }
            if let SetExpr::Select(select) = query.body.as_ref() {
                let joined = select.from.len() > 1 || select.from.iter().any(|f| !f.joins.is_empty());
                let mut factors = select
                    .from
                    .iter()
                    .flat_map(|f| std::iter::once(&f.relation).chain(f.joins.iter().map(|j| &j.relation)));
                if joined && factors.any(|f| sample_of(f).is_some()) {
                    return ControlFlow::Break(Error::Unsupported(
                        "TABLESAMPLE on a table joined with others (sample it in a subquery)".into(),
                    ));
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Error> {
            match sample_of(factor).map(percentage) {
                Some(Err(e)) => ControlFlow::Break(e),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match stmt.visit(&mut Pass) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Rewrites the forms the module docs name; [`check`] has passed.
pub fn rewrite(stmt: &mut Statement) {
    struct Pass;
    impl VisitorMut for Pass {
        type Break = ();

        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            if let (Some(fetch), None) = (&query.fetch, &query.limit_clause) {
                let one = || Expr::value(Value::Number("1".into(), false));
                let limit = fetch.quantity.clone().unwrap_or_else(one);
                query.limit_clause =
                    Some(LimitClause::LimitOffset { limit: Some(limit), offset: None, limit_by: vec![] });
                query.fetch = None;
            } else if let (Some(fetch), Some(LimitClause::LimitOffset { limit: limit @ None, .. })) =
                (&query.fetch, &mut query.limit_clause)
            {
                // OFFSET n ROWS FETCH FIRST m ROWS ONLY.
                *limit = Some(fetch.quantity.clone().unwrap_or_else(|| Expr::value(Value::Number("1".into(), false))));
                query.fetch = None;
            }
            if let SetExpr::Select(select) = query.body.as_mut() {
                sample(select);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Pass);
}

/// Turns the sample of `select`'s one table into a filter.
fn sample(select: &mut Select) {
    let [item] = select.from.as_mut_slice() else { return };
    if !item.joins.is_empty() {
        return;
    }
    let TableFactor::Table { sample, .. } = &mut item.relation else { return };
    let Some(Ok(percent)) = sample.as_ref().map(|s| percentage(sample_ref(s))) else { return };
    *sample = None;
    let draw = Expr::BinaryOp {
        left: Box::new(call("random", vec![], vec![])),
        op: BinaryOperator::Multiply,
        right: Box::new(Expr::value(Value::Number("100".into(), false))),
    };
    let keep = Expr::BinaryOp { left: Box::new(draw), op: BinaryOperator::Lt, right: Box::new(percent) };
    select.selection = Some(match select.selection.take() {
        Some(cond) => Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(cond))),
            op: BinaryOperator::And,
            right: Box::new(keep),
        },
        None => keep,
    });
}

fn sample_ref(kind: &TableSampleKind) -> &TableSample {
    match kind {
        TableSampleKind::BeforeTableAlias(s) | TableSampleKind::AfterTableAlias(s) => s,
    }
}

fn sample_of(factor: &TableFactor) -> Option<&TableSample> {
    match factor {
        TableFactor::Table { sample: Some(kind), .. } => Some(sample_ref(kind)),
        _ => None,
    }
}

/// The percentage of rows `sample` keeps, if Brikk can take it so.
fn percentage(sample: &TableSample) -> Result<Expr> {
    let unsupported = |what: &str| Err(Error::Unsupported(format!("TABLESAMPLE {what}")));
    if sample.seed.is_some() {
        return unsupported("… REPEATABLE");
    }
    if sample.bucket.is_some() || sample.offset.is_some() {
        return unsupported("with BUCKET or OFFSET");
    }
    match sample.name {
        Some(TableSampleMethod::Bernoulli | TableSampleMethod::System) => {}
        _ => return unsupported("without BERNOULLI or SYSTEM"),
    }
    let Some(quantity) = &sample.quantity else { return unsupported("without a percentage") };
    if quantity.unit.is_some() {
        return unsupported("with ROWS or PERCENT (write the percentage alone: BERNOULLI (10))");
    }
    if let Expr::Value(v) = &quantity.value {
        if let Value::Number(n, _) = &v.value {
            if !n.parse::<f64>().is_ok_and(|p| (0.0..=100.0).contains(&p)) {
                return Err(Error::InvalidSample("sample percentage must be between 0 and 100".into()));
            }
        }
    }
    Ok(quantity.value.clone())
}
