//! A relation's name as a value: a whole row as JSON, as Postgres gives it.
//!
//! `row_to_json(b)`, `to_json(b)` and `to_jsonb(b)`, where `b` names an item
//! of the FROM list, are the row as a JSON object, one member per column;
//! `json_agg(b)` and `jsonb_agg(b)` the group's rows as an array of them
//! (`SELECT json_agg(b) FROM board b` is a table as one JSON document).
//! DataFusion has no whole-row values, so the name becomes
//! `json_build_object('topic', b.topic, 'fact', b.fact, …)` (`jsonb_…` for
//! the `jsonb` forms), with the columns of the item: a stream's or table's
//! own columns (not its system columns), or the named items of a derived
//! table's select list (or its alias's column list).
//!
//! A column of that name in any FROM item wins, as in Postgres; an item whose
//! columns cannot be named (a function, a derived table with an unnamed
//! expression) is left alone, and DataFusion reports the unknown column.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectNamePart, Query, Select, SelectItem,
    SetExpr, Statement, TableFactor, Value, VisitMut, VisitorMut,
};

use crate::sql::parser::normalize;
use crate::sql::pg_compat::call;

/// The user columns of the stream or table called `name`, if there is one.
pub type ColumnsOf<'a> = dyn Fn(&str) -> Option<Vec<String>> + 'a;

/// [`ColumnsOf`] for the relations of `store`.
pub fn columns_in(store: &brikk_storage::Store) -> impl Fn(&str) -> Option<Vec<String>> + '_ {
    move |name: &str| {
        let columns = match (store.table(name), store.stream(name)) {
            (Some(t), _) => t.def.columns.clone(),
            (None, Some(s)) => s.def.columns.clone(),
            (None, None) => return None,
        };
        Some(columns.into_iter().map(|c| c.name).collect())
    }
}

/// Rewrites every whole-row use in `stmt`, as the module describes.
pub fn rewrite(stmt: &mut Statement, columns_of: &ColumnsOf) {
    struct Pass<'a>(&'a ColumnsOf<'a>);
    impl VisitorMut for Pass<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            if let SetExpr::Select(select) = query.body.as_mut() {
                in_select(select, self.0);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Pass(columns_of));
}

/// The FROM items of `select` whose columns are known: (label, columns).
fn relations(select: &Select, columns_of: &ColumnsOf) -> Vec<(String, Option<Vec<String>>)> {
    let mut out = Vec::new();
    for item in &select.from {
        for factor in std::iter::once(&item.relation).chain(item.joins.iter().map(|j| &j.relation)) {
            if let Some(r) = relation(factor, columns_of) {
                out.push(r);
            }
        }
    }
    out
}

fn relation(factor: &TableFactor, columns_of: &ColumnsOf) -> Option<(String, Option<Vec<String>>)> {
    match factor {
        TableFactor::Table { name, alias, args: None, .. } => {
            let table = normalize(name.0.last()?.as_ident()?);
            let label = alias.as_ref().map_or_else(|| table.clone(), |a| normalize(&a.name));
            let mut columns = columns_of(&table);
            if let (Some(cols), Some(a)) = (&mut columns, alias) {
                // `FROM board AS b(t, f)` renames the first columns.
                for (c, given) in cols.iter_mut().zip(&a.columns) {
                    *c = normalize(&given.name);
                }
            }
            Some((label, columns))
        }
        TableFactor::Derived { subquery, alias: Some(a), .. } => {
            let columns = match a.columns.is_empty() {
                false => Some(a.columns.iter().map(|c| normalize(&c.name)).collect()),
                true => select_list_names(subquery, columns_of),
            };
            Some((normalize(&a.name), columns))
        }
        _ => None,
    }
}

/// The names of a query's result columns, where each can be told from the
/// text: columns, aliased expressions, `*` over one known relation.
fn select_list_names(query: &Query, columns_of: &ColumnsOf) -> Option<Vec<String>> {
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let mut names = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::ExprWithAlias { alias, .. } => names.push(normalize(alias)),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => names.push(normalize(i)),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => names.push(normalize(parts.last()?)),
            SelectItem::Wildcard(_) => match relations(select, columns_of).as_slice() {
                [(_, Some(columns))] => names.extend(columns.iter().cloned()),
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(names)
}

fn in_select(select: &mut Select, columns_of: &ColumnsOf) {
    let relations = relations(select, columns_of);
    if relations.is_empty() {
        return;
    }
    let mut rows = WholeRows { relations: &relations };
    for item in &mut select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                // Headed as Postgres heads the call, not as what it becomes.
                if let Some(name) = rows.call_name(e) {
                    let _ = e.visit(&mut rows);
                    *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: Ident::new(name) };
                } else {
                    let _ = e.visit(&mut rows);
                }
            }
            SelectItem::ExprWithAlias { expr, .. } => {
                let _ = expr.visit(&mut rows);
            }
            _ => {}
        }
    }
    if let Some(h) = &mut select.having {
        let _ = h.visit(&mut rows);
    }
}

struct WholeRows<'a> {
    relations: &'a [(String, Option<Vec<String>>)],
}

impl WholeRows<'_> {
    /// The columns of the relation `name` stands for as a whole row, if it
    /// does: a FROM item's label that no item has a column of.
    fn row_of(&self, name: &Ident) -> Option<(String, &[String])> {
        let name = normalize(name);
        if self.relations.iter().any(|(_, cols)| cols.as_ref().is_some_and(|c| c.contains(&name))) {
            return None;
        }
        let (label, columns) = self.relations.iter().find(|(label, _)| *label == name)?;
        Some((label.clone(), columns.as_deref()?))
    }

    /// The function name of a whole-row call `expr` is, in lower case.
    fn call_name(&self, expr: &Expr) -> Option<String> {
        let (name, _) = self.whole_row_call(expr)?;
        Some(name)
    }

    /// `expr` as a whole-row call: its function's name and its relation.
    fn whole_row_call(&self, expr: &Expr) -> Option<(String, String)> {
        let Expr::Function(f) = expr else { return None };
        let [ObjectNamePart::Identifier(fname)] = f.name.0.as_slice() else { return None };
        let fname = normalize(fname);
        if !matches!(fname.as_str(), "row_to_json" | "to_json" | "to_jsonb" | "json_agg" | "jsonb_agg") {
            return None;
        }
        let FunctionArguments::List(list) = &f.args else { return None };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(arg)))] = list.args.as_slice() else {
            return None;
        };
        let (label, _) = self.row_of(arg)?;
        Some((fname, label))
    }
}

impl VisitorMut for WholeRows<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Some((fname, label)) = self.whole_row_call(expr) else { return ControlFlow::Continue(()) };
        let columns = self.relations.iter().find(|(l, _)| *l == label).and_then(|(_, c)| c.clone()).unwrap_or_default();
        let jsonb = fname.contains("jsonb");
        let mut members = Vec::with_capacity(columns.len() * 2);
        for c in &columns {
            members.push(Expr::value(Value::SingleQuotedString(c.clone())));
            members.push(Expr::CompoundIdentifier(vec![Ident::new(label.clone()), Ident::with_quote('"', c.clone())]));
        }
        let object = call(if jsonb { "jsonb_build_object" } else { "json_build_object" }, members, vec![]);
        match fname.as_str() {
            "json_agg" | "jsonb_agg" => {
                let Expr::Function(Function { args: FunctionArguments::List(list), .. }) = expr else {
                    unreachable!("a call")
                };
                list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(object))];
            }
            _ => *expr = object,
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        let columns = |name: &str| (name == "board").then(|| vec!["topic".to_string(), "fact".to_string()]);
        rewrite(&mut stmt, &columns);
        stmt.to_string()
    }

    #[test]
    fn a_relation_name_becomes_its_row_as_json() {
        assert_eq!(
            rewritten("SELECT row_to_json(b) FROM board b"),
            "SELECT json_build_object('topic', b.\"topic\", 'fact', b.\"fact\") AS row_to_json FROM board AS b"
                .replace("board AS b", "board b")
        );
        assert_eq!(
            rewritten("SELECT jsonb_agg(board ORDER BY topic) AS rows FROM board"),
            "SELECT jsonb_agg(jsonb_build_object('topic', board.\"topic\", 'fact', board.\"fact\") ORDER BY topic) \
             AS rows FROM board"
        );
        assert_eq!(
            rewritten("SELECT json_agg(q) FROM (SELECT topic, length(fact) AS n FROM board) q"),
            "SELECT json_agg(json_build_object('topic', q.\"topic\", 'n', q.\"n\")) AS json_agg \
             FROM (SELECT topic, length(fact) AS n FROM board) AS q"
                .replace("AS q", "q")
        );
    }

    #[test]
    fn columns_and_unknown_relations_are_left_alone() {
        for sql in [
            "SELECT to_json(topic) FROM board",
            "SELECT to_json(x) FROM other x",
            "SELECT json_agg(q) FROM (SELECT topic, length(fact) FROM board) q",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }
}
