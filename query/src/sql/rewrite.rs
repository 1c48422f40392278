//! AST rewrites applied before DataFusion plans a statement.
//!
//! System columns (`_partition`, `_offset`, `_timestamp`, `_key`) are part of
//! every stream's schema, but `SELECT *` should give the user's columns, as
//! the system columns of Kafka-style records are metadata. A wildcard over a
//! stream therefore gets an `EXCLUDE` of the system columns; with several
//! relations in `FROM`, `*` becomes one qualified wildcard per relation.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    ExcludeSelectItem, Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, VisitMut, VisitorMut,
    WildcardAdditionalOptions,
};

use crate::catalog::{time_windows, SYSTEM_COLUMNS, TABLE_SYSTEM_COLUMNS};
use crate::sql::parser::normalize;

/// The system columns of a relation by (unqualified, normalized) name, if
/// it has any: a stream's, a table's, or those of a table function's result.
pub type SystemColumnsOf<'a> = dyn Fn(&str) -> Option<&'static [&'static str]> + 'a;

/// Every rewrite a statement gets before DataFusion plans it, in order:
/// [`crate::sql::select_subqueries::rewrite`],
/// [`fold_table_function_names`], [`crate::sql::whole_rows::rewrite`]
/// (while FROM is as written), [`hide_system_columns`], then
/// [`crate::sql::table_functions::rewrite`] (last: a relation it joins a
/// function's rows to keeps its system columns for the query's references,
/// while the query's wildcards, already rewritten, leave them out).
pub fn before_planning(stmt: &mut Statement, store: &brikk_storage::Store) -> crate::Result<()> {
    crate::sql::select_subqueries::rewrite(stmt);
    fold_table_function_names(stmt);
    crate::sql::whole_rows::rewrite(stmt, &crate::sql::whole_rows::columns_in(store));
    hide_system_columns(stmt, &system_columns_in(store));
    crate::sql::table_functions::rewrite(stmt)
}

/// The rewrites of [`before_planning`] that need no catalog, for a query a
/// table write plans on its own (its source, its subqueries).
pub fn before_planning_alone(stmt: &mut Statement) -> crate::Result<()> {
    crate::sql::select_subqueries::rewrite(stmt);
    fold_table_function_names(stmt);
    crate::sql::table_functions::rewrite(stmt)
}

/// Lower-cases unquoted table-function names (`HOP(…)` is `hop(…)`), as
/// Postgres folds every unquoted name; DataFusion looks them up as written.
pub fn fold_table_function_names(stmt: &mut Statement) {
    struct Folder;
    impl VisitorMut for Folder {
        type Break = ();

        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, args: Some(_), .. } = factor {
                for part in &mut name.0 {
                    if let ObjectNamePart::Identifier(ident) = part {
                        if ident.quote_style.is_none() {
                            ident.value = ident.value.to_lowercase();
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Folder);
}

/// Rewrites every wildcard over a relation with system columns in `stmt`.
pub fn hide_system_columns(stmt: &mut Statement, system_columns: &SystemColumnsOf) {
    let mut v = Hider { system_columns };
    let _ = stmt.visit(&mut v);
}

/// [`SystemColumnsOf`] for the relations of `store`.
pub fn system_columns_in(store: &brikk_storage::Store) -> impl Fn(&str) -> Option<&'static [&'static str]> + '_ {
    move |name: &str| {
        if store.stream(name).is_some() {
            Some(&SYSTEM_COLUMNS[..])
        } else if store.table(name).is_some() || name == crate::tables::history::AS_OF_FUNCTION {
            Some(&TABLE_SYSTEM_COLUMNS[..])
        } else {
            None
        }
    }
}

struct Hider<'a> {
    system_columns: &'a SystemColumnsOf<'a>,
}

impl VisitorMut for Hider<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// A relation in FROM: the name wildcards use for it, and its system columns.
struct Relation {
    label: ObjectName,
    system: Option<&'static [&'static str]>,
}

impl Hider<'_> {
    fn set_expr(&self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => self.select(select),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            _ => {}
        }
    }

    fn select(&self, select: &mut Select) {
        let mut relations = Vec::new();
        for twj in &select.from {
            relations.push(self.relation(&twj.relation));
            for j in &twj.joins {
                relations.push(self.relation(&j.relation));
            }
        }
        if !relations.iter().flatten().any(|r| r.system.is_some()) {
            return;
        }
        let mut items = Vec::with_capacity(select.projection.len());
        for item in std::mem::take(&mut select.projection) {
            match item {
                // The Postgres-compatibility parser aliases bare columns
                // next to a wildcard (`oid, *` would repeat `oid`). System
                // columns are never in the wildcard, so keep their names.
                SelectItem::ExprWithAlias { expr, alias } if is_system_alias(&expr, &alias) => {
                    items.push(SelectItem::UnnamedExpr(expr));
                }
                SelectItem::Wildcard(opts) if plain(&opts) && relations.len() == 1 => {
                    let system = relations[0].as_ref().and_then(|r| r.system).unwrap_or(&[]);
                    items.push(SelectItem::Wildcard(excluding(opts, system)));
                }
                SelectItem::Wildcard(opts) if plain(&opts) && relations.iter().all(Option::is_some) => {
                    for r in relations.iter().flatten() {
                        let o = WildcardAdditionalOptions {
                            wildcard_token: opts.wildcard_token.clone(),
                            ..Default::default()
                        };
                        let o = match r.system {
                            Some(cols) => excluding(o, cols),
                            None => o,
                        };
                        items.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(r.label.clone()),
                            o,
                        ));
                    }
                }
                SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), opts)
                    if plain(&opts) =>
                {
                    let system = relations.iter().flatten().find(|r| same(&r.label, &name)).and_then(|r| r.system);
                    let opts = match system {
                        Some(cols) => excluding(opts, cols),
                        None => opts,
                    };
                    items.push(SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), opts));
                }
                other => items.push(other),
            }
        }
        select.projection = items;
    }

    fn relation(&self, factor: &TableFactor) -> Option<Relation> {
        match factor {
            TableFactor::Table { name, alias, args, .. } => {
                let last = normalize(name.0.last()?.as_ident()?);
                let system = match args {
                    None => (self.system_columns)(&last),
                    Some(_) if last == crate::tables::history::AS_OF_FUNCTION => (self.system_columns)(&last),
                    // A window over a relation has the relation's.
                    Some(a) if last == time_windows::TUMBLE_FUNCTION || last == time_windows::HOP_FUNCTION => {
                        match a.args.first() {
                            Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i)))) => {
                                (self.system_columns)(&normalize(i))
                            }
                            _ => None,
                        }
                    }
                    Some(_) => None,
                };
                let label = match alias {
                    Some(a) => ObjectName::from(vec![a.name.clone()]),
                    None => name.clone(),
                };
                Some(Relation { label, system })
            }
            TableFactor::Derived { alias: Some(a), .. } => {
                Some(Relation { label: ObjectName::from(vec![a.name.clone()]), system: None })
            }
            TableFactor::Function { alias, name, .. } => {
                let label = alias.as_ref().map_or_else(|| name.clone(), |a| ObjectName::from(vec![a.name.clone()]));
                Some(Relation { label, system: None })
            }
            TableFactor::UNNEST { alias, .. } => {
                let label = alias.as_ref().map_or_else(|| Ident::new("unnest"), |a| a.name.clone());
                Some(Relation { label: ObjectName::from(vec![label]), system: None })
            }
            _ => None,
        }
    }
}

fn is_system_alias(expr: &Expr, alias: &Ident) -> bool {
    let name = match expr {
        Expr::Identifier(i) => i,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => i,
            None => return false,
        },
        _ => return false,
    };
    (SYSTEM_COLUMNS.contains(&name.value.as_str()) || TABLE_SYSTEM_COLUMNS.contains(&name.value.as_str()))
        && alias.value == format!("__alias_{}", name.value)
}

fn plain(o: &WildcardAdditionalOptions) -> bool {
    o.opt_ilike.is_none()
        && o.opt_exclude.is_none()
        && o.opt_except.is_none()
        && o.opt_replace.is_none()
        && o.opt_rename.is_none()
}

fn excluding(mut o: WildcardAdditionalOptions, columns: &[&str]) -> WildcardAdditionalOptions {
    if columns.is_empty() {
        return o;
    }
    o.opt_exclude =
        Some(ExcludeSelectItem::Multiple(columns.iter().map(|c| ObjectName::from(vec![Ident::new(*c)])).collect()));
    o
}

fn same(a: &ObjectName, b: &ObjectName) -> bool {
    let last = |n: &ObjectName| n.0.last().and_then(|p| p.as_ident()).map(normalize);
    last(a) == last(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewrite(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        hide_system_columns(&mut stmt, &|n| n.starts_with('s').then_some(&SYSTEM_COLUMNS[..]));
        stmt.to_string()
    }

    #[test]
    fn hides_system_columns_from_wildcards_over_streams() {
        assert_eq!(
            rewrite("SELECT _offset, * FROM s1"),
            "SELECT _offset, * EXCLUDE (_partition, _offset, _timestamp, _key) FROM s1"
        );
        assert_eq!(rewrite("SELECT * FROM t1"), "SELECT * FROM t1");
        assert_eq!(
            rewrite("SELECT * FROM s1 AS a JOIN t1 ON a.x = t1.x"),
            "SELECT a.* EXCLUDE (_partition, _offset, _timestamp, _key), t1.* FROM s1 AS a JOIN t1 ON a.x = t1.x"
        );
        assert_eq!(
            rewrite("INSERT INTO x SELECT * FROM (SELECT * FROM s2) AS q"),
            "INSERT INTO x SELECT * FROM (SELECT * EXCLUDE (_partition, _offset, _timestamp, _key) FROM s2) AS q"
        );
    }
}
