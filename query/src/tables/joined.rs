//! `UPDATE t SET … FROM other … WHERE …` and `DELETE FROM t USING other …
//! WHERE …`: changes to a table's rows driven by a join with other
//! relations (streams, tables, derived tables).
//!
//! The join is one query that DataFusion plans at Parse and runs at each
//! execution ([`JoinedPlan::query`]): it returns, for every target row the
//! join matches, the row's version (`_offset`), its primary key and (for
//! UPDATE) the new values of the SET columns, computed from the row as the
//! query read it. A row matched more than once is changed once, with the
//! first match, as in Postgres. Each write expects the version the query
//! read: if another writer changed the row in between, the commit is
//! refused and the statement runs again on the new rows (in autocommit), or
//! the transaction fails with `40001` at COMMIT, as for any UPDATE.

use brikk_storage::TableHandle;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};
use crate::sql::table_functions::ident;

/// The planned join of an UPDATE … FROM or DELETE … USING.
#[derive(Debug, Clone)]
pub(crate) struct JoinedPlan {
    /// Rows of `_offset`, the primary key columns, then the SET values.
    pub query: Box<LogicalPlan>,
    /// The columns the SET values go to, in the query's order (empty for
    /// DELETE).
    pub sets: Vec<usize>,
}

impl JoinedPlan {
    /// Plans the join: `relation` is the target as written (with its
    /// alias), `q` the name its row goes by, `from` the other relations,
    /// `sets` (column, value) pairs. A SET of a primary key column is
    /// refused: the join names rows by their key.
    pub async fn new(
        table: &TableHandle,
        relation: &ast::TableFactor,
        q: &str,
        from: &[ast::TableWithJoins],
        sets: &[(usize, ast::Expr)],
        selection: Option<&ast::Expr>,
        state: &SessionState,
    ) -> Result<JoinedPlan> {
        if let Some((c, _)) = sets.iter().find(|(c, _)| table.def.primary_key.contains(c)) {
            return Err(Error::Unsupported(format!(
                "UPDATE … FROM of primary key column \"{}\"",
                table.def.columns[*c].name
            )));
        }
        let q = ident(q);
        let mut items = vec![format!("{q}._offset")];
        items.extend(table.def.primary_key.iter().map(|&k| format!("{q}.{}", ident(&table.def.columns[k].name))));
        items.extend(sets.iter().map(|(_, e)| e.to_string()));
        let from: Vec<String> =
            std::iter::once(relation.to_string()).chain(from.iter().map(|f| f.to_string())).collect();
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), from.join(", "));
        if let Some(w) = selection {
            sql.push_str(&format!(" WHERE {w}"));
        }
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql)?;
        let (Some(mut stmt), true) = (statements.pop(), statements.is_empty()) else {
            return Err(Error::Internal(format!("the join of an UPDATE … FROM is not one query: {sql}")));
        };
        crate::sql::rewrite::before_planning_alone(&mut stmt)?;
        let plan = state.statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(stmt))).await?;
        Ok(JoinedPlan { query: Box::new(plan), sets: sets.iter().map(|(c, _)| *c).collect() })
    }
}
