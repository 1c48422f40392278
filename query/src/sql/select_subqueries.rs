//! `EXISTS (…)` and `x [NOT] IN (SELECT …)` outside `WHERE`: in a select
//! list (`SELECT EXISTS (SELECT 1 FROM tasks WHERE state = 'open')`), a
//! `CASE`, an `ORDER BY`. DataFusion plans both only as filters (a semi or
//! mark join); anywhere else its physical planner refuses them. They are
//! rewritten into scalar subqueries, which it plans everywhere:
//!
//! - `EXISTS (SELECT … FROM f WHERE w)` of a plain query (no grouping,
//!   aggregate, `DISTINCT`, window or `LIMIT`) becomes
//!   `coalesce((SELECT count(*) FROM f WHERE w), 0) > 0` (`= 0` for `NOT
//!   EXISTS`). Its `FROM` and `WHERE` stay as written, so a subquery that
//!   refers to the outer row by equality stays correlated. Any other query
//!   `q` becomes `coalesce((SELECT count(*) FROM (q) AS e), 0) > 0`, which
//!   holds for an uncorrelated one.
//! - `x IN (q)` becomes a `CASE` over `a = (SELECT array_agg(v) FROM (q) AS
//!   s(v))` and the number of NULLs `q` gives, with SQL's three-valued
//!   result: false when `q` is empty, NULL when `x` is NULL, true when `a`
//!   holds `x`, NULL when `q` gave a NULL, false otherwise. `x` stays where
//!   it was, in the outer query's scope.
//!
//! In `WHERE` (and `JOIN … ON`) DataFusion plans them itself, better: they
//! are left alone there, as are the subqueries' own `WHERE`s.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArguments, GroupByExpr, LimitClause, Query, Select, SelectItem, SetExpr, Statement, Value,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrites the `EXISTS` and `IN (SELECT …)` of `stmt` that are outside
/// `WHERE` and `ON`; see the module documentation.
pub fn rewrite(stmt: &mut Statement) {
    let _ = stmt.visit(&mut Pass);
}

/// Rewrites each query of a statement as the visit reaches it, before its
/// children: the subqueries a rewrite makes are then visited in turn.
struct Pass;

impl VisitorMut for Pass {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        rewrite_query(query);
        ControlFlow::Continue(())
    }
}

/// Rewrites the expressions of `query`'s own select lists and `ORDER BY`;
/// nested queries are visited on their own by [`Pass`].
fn rewrite_query(query: &mut Query) {
    rewrite_set_expr(&mut query.body);
    if let Some(order_by) = &mut query.order_by {
        if let datafusion::sql::sqlparser::ast::OrderByKind::Expressions(exprs) = &mut order_by.kind {
            for e in exprs {
                rewrite_expr(&mut e.expr);
            }
        }
    }
}

fn rewrite_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => rewrite_expr(e),
                    _ => {}
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left);
            rewrite_set_expr(right);
        }
        SetExpr::Query(q) => rewrite_query(q),
        _ => {}
    }
}

/// Rewrites the `EXISTS` and `IN (SELECT …)` nodes of `expr`, not looking
/// into subqueries (their own levels are rewritten when visited).
fn rewrite_expr(expr: &mut Expr) {
    struct Nodes;
    impl VisitorMut for Nodes {
        type Break = ();

        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let replacement = match expr {
                Expr::Exists { subquery, negated } => exists(subquery, *negated),
                Expr::InSubquery { expr: x, subquery, negated } => in_subquery(x, subquery, *negated),
                _ => None,
            };
            if let Some(r) = replacement {
                *expr = r;
            }
            ControlFlow::Continue(())
        }
    }
    // Nested queries' own select lists are rewritten when `Pass` reaches
    // them; their filters are DataFusion's to plan.
    let _ = expr.visit(&mut Skipping { inner: Nodes, depth: 0 });
}

/// Passes expressions to `inner` only outside nested queries.
struct Skipping<V> {
    inner: V,
    depth: usize,
}

impl<V: VisitorMut<Break = ()>> VisitorMut for Skipping<V> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match self.depth {
            0 => self.inner.post_visit_expr(expr),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// `[NOT] EXISTS (query)` as a count of its rows. A `LIMIT` of one row or
/// more does not change whether there is one, and is dropped.
fn exists(query: &Query, negated: bool) -> Option<Expr> {
    let op = if negated { "=" } else { ">" };
    let mut unlimited;
    let mut query = query;
    if let Some(LimitClause::LimitOffset { limit: Some(Expr::Value(v)), offset: None, limit_by }) = &query.limit_clause
    {
        let positive = matches!(&v.value, Value::Number(n, _) if n.parse::<u64>().is_ok_and(|n| n > 0));
        if positive && limit_by.is_empty() {
            unlimited = query.clone();
            unlimited.limit_clause = None;
            query = &unlimited;
        }
    }
    let count = match plain_select(query) {
        Some(_) => selecting(query, "count(*)")?,
        None => format!("SELECT count(*) FROM ({query}) AS brikk_exists"),
    };
    parse_expr(&format!("coalesce(({count}), 0) {op} 0"))
}

/// `x [NOT] IN (query)` of a one-column query, with SQL's NULL semantics.
fn in_subquery(x: &Expr, query: &Query, negated: bool) -> Option<Expr> {
    let (values, nulls) = match plain_select(query).map(|s| s.projection.as_slice()) {
        Some([SelectItem::UnnamedExpr(v) | SelectItem::ExprWithAlias { expr: v, .. }]) => (
            format!("({})", selecting(query, &format!("array_agg({v})"))?),
            format!("({})", selecting(query, &format!("count(*) - count({v})"))?),
        ),
        _ => (
            format!("(SELECT array_agg(brikk_in.v) FROM ({query}) AS brikk_in(v))"),
            format!("(SELECT count(*) - count(brikk_in.v) FROM ({query}) AS brikk_in(v))"),
        ),
    };
    let case = format!(
        "CASE WHEN {values} IS NULL THEN false WHEN ({x}) IS NULL THEN NULL \
         WHEN array_has({values}, {x}) THEN true WHEN {nulls} > 0 THEN NULL ELSE false END"
    );
    parse_expr(&match negated {
        true => format!("NOT ({case})"),
        false => case,
    })
}

/// The text of plain `query` ([`plain_select`]) with `item` as its one
/// select item and no `ORDER BY`.
fn selecting(query: &Query, item: &str) -> Option<String> {
    let mut q = query.clone();
    let SetExpr::Select(select) = q.body.as_mut() else { return None };
    select.projection = vec![SelectItem::UnnamedExpr(parse_expr(item)?)];
    q.order_by = None;
    Some(q.to_string())
}

/// The select of `query` if it is one plain `SELECT … FROM … WHERE …`,
/// whose row count a `count(*)` in its place gives: no `WITH`, grouping,
/// `HAVING`, `DISTINCT`, aggregate or window function, `LIMIT`, `OFFSET`
/// or `FETCH`.
fn plain_select(query: &Query) -> Option<&Select> {
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if query.with.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || grouped
        || select.having.is_some()
        || select.distinct.is_some()
        || select.qualify.is_some()
        || !select.named_window.is_empty()
        || select.projection.iter().any(aggregates)
    {
        return None;
    }
    Some(select)
}

/// Whether a select item calls an aggregate or window function (or one
/// that might be: any call with `OVER`, `FILTER` or `WITHIN GROUP`).
fn aggregates(item: &SelectItem) -> bool {
    struct Finder(bool);
    impl datafusion::sql::sqlparser::ast::Visitor for Finder {
        type Break = ();

        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = expr {
                if is_aggregate(f) {
                    self.0 = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder(false);
    let _ = datafusion::sql::sqlparser::ast::Visit::visit(item, &mut finder);
    finder.0
}

/// Postgres's and DataFusion's aggregate functions, by name: a call of one
/// without `GROUP BY` gives one row.
pub(crate) const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "median",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "first_value",
    "last_value",
    "nth_value",
];

fn is_aggregate(f: &Function) -> bool {
    let name = f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_lowercase()).unwrap_or_default();
    let ordered_or_filtered = f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty();
    let distinct_args = matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment.is_some());
    ordered_or_filtered || distinct_args || AGGREGATES.contains(&name.as_str()) || name.starts_with("regr_")
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()?.parse_expr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().pop().unwrap();
        rewrite(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn exists_in_a_select_list_becomes_a_count() {
        assert_eq!(
            rewritten("SELECT EXISTS (SELECT 1 FROM t WHERE a = 1 ORDER BY b) AS e"),
            "SELECT coalesce((SELECT count(*) FROM t WHERE a = 1), 0) > 0 AS e"
        );
        // NOT EXISTS; a LIMIT of rows does not change the answer.
        assert_eq!(
            rewritten("SELECT NOT EXISTS (SELECT 1 FROM t WHERE t.a = x.a LIMIT 1) FROM x"),
            "SELECT coalesce((SELECT count(*) FROM t WHERE t.a = x.a), 0) = 0 FROM x"
        );
        assert_eq!(
            rewritten("SELECT EXISTS (SELECT 1 FROM t LIMIT 0)"),
            "SELECT coalesce((SELECT count(*) FROM (SELECT 1 FROM t LIMIT 0) AS brikk_exists), 0) > 0"
        );
        // An aggregate without GROUP BY gives a row: counted as a whole.
        assert_eq!(
            rewritten("SELECT EXISTS (SELECT max(a) FROM t WHERE false)"),
            "SELECT coalesce((SELECT count(*) FROM (SELECT max(a) FROM t WHERE false) AS brikk_exists), 0) > 0"
        );
    }

    #[test]
    fn filters_are_left_to_datafusion() {
        for sql in [
            "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a)",
            "SELECT a FROM t WHERE a IN (SELECT a FROM u)",
            "SELECT (SELECT count(*) FROM u WHERE EXISTS (SELECT 1 FROM v)) FROM t",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }

    #[test]
    fn in_keeps_the_value_in_its_scope() {
        let out = rewritten("SELECT a IN (SELECT b FROM u WHERE c) FROM t");
        assert!(out.contains("WHEN (a) IS NULL THEN NULL"), "{out}");
        assert!(out.contains("array_has((SELECT array_agg(b) FROM u WHERE c), a)"), "{out}");
        assert!(out.contains("(SELECT count(*) - count(b) FROM u WHERE c) > 0 THEN NULL"), "{out}");
        assert!(rewritten("SELECT a NOT IN (SELECT b FROM u) FROM t").starts_with("SELECT NOT (CASE"));
    }
}
