//! AST rewrites applied before DataFusion plans a statement.
//!
//! System columns (`_partition`, `_offset`, `_timestamp`, `_key`) are part of
//! every stream's schema, but `SELECT *` should give the user's columns, as
//! the system columns of Kafka-style records are metadata. A wildcard over a
//! stream therefore gets an `EXCLUDE` of the system columns; with several
//! relations in `FROM`, `*` becomes one qualified wildcard per relation.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    ExcludeSelectItem, Expr, Ident, ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    Statement, TableFactor, VisitMut, VisitorMut, WildcardAdditionalOptions,
};

use crate::catalog::SYSTEM_COLUMNS;
use crate::sql::parser::normalize;

/// Rewrites every wildcard over a stream in `stmt`. `is_stream` answers
/// whether an (unqualified, normalized) relation name is a stream.
pub fn hide_system_columns(stmt: &mut Statement, is_stream: &dyn Fn(&str) -> bool) {
    let mut v = Hider { is_stream };
    let _ = stmt.visit(&mut v);
}

struct Hider<'a> {
    is_stream: &'a dyn Fn(&str) -> bool,
}

impl VisitorMut for Hider<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// A relation in FROM: the name wildcards use for it, and whether it is a stream.
struct Relation {
    label: ObjectName,
    stream: bool,
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
        if !relations.iter().flatten().any(|r| r.stream) {
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
                    items.push(SelectItem::Wildcard(excluding(opts)));
                }
                SelectItem::Wildcard(opts) if plain(&opts) && relations.iter().all(Option::is_some) => {
                    for r in relations.iter().flatten() {
                        let o = WildcardAdditionalOptions {
                            wildcard_token: opts.wildcard_token.clone(),
                            ..Default::default()
                        };
                        let o = if r.stream { excluding(o) } else { o };
                        items.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(r.label.clone()),
                            o,
                        ));
                    }
                }
                SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), opts)
                    if plain(&opts) =>
                {
                    let is_stream = relations.iter().flatten().any(|r| r.stream && same(&r.label, &name));
                    let opts = if is_stream { excluding(opts) } else { opts };
                    items.push(SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), opts));
                }
                other => items.push(other),
            }
        }
        select.projection = items;
    }

    fn relation(&self, factor: &TableFactor) -> Option<Relation> {
        match factor {
            TableFactor::Table { name, alias, args: None, .. } => {
                let last = name.0.last()?.as_ident()?;
                let stream = (self.is_stream)(&normalize(last));
                let label = match alias {
                    Some(a) => ObjectName::from(vec![a.name.clone()]),
                    None => name.clone(),
                };
                Some(Relation { label, stream })
            }
            TableFactor::Derived { alias: Some(a), .. } => {
                Some(Relation { label: ObjectName::from(vec![a.name.clone()]), stream: false })
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
    SYSTEM_COLUMNS.contains(&name.value.as_str()) && alias.value == format!("__alias_{}", name.value)
}

fn plain(o: &WildcardAdditionalOptions) -> bool {
    o.opt_ilike.is_none()
        && o.opt_exclude.is_none()
        && o.opt_except.is_none()
        && o.opt_replace.is_none()
        && o.opt_rename.is_none()
}

fn excluding(mut o: WildcardAdditionalOptions) -> WildcardAdditionalOptions {
    o.opt_exclude = Some(ExcludeSelectItem::Multiple(
        SYSTEM_COLUMNS.iter().map(|c| ObjectName::from(vec![Ident::new(*c)])).collect(),
    ));
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
        hide_system_columns(&mut stmt, &|n| n.starts_with('s'));
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
