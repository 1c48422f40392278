//! A table's history: `changes(board)`, the stream of its changes, and
//! `board AS OF OFFSET n` / `AS OF TIMESTAMP t`, the table as it was.
//!
//! `AS OF` is not Postgres syntax, so [`rewrite_as_of`] turns
//! `board AS OF OFFSET 1200` into the table function call
//! `brikk_as_of('board', 'offset', 1200) AS board` before the statement is
//! parsed; the function replays the changelog up to that version.

use std::sync::Arc;

use async_trait::async_trait;
use brikk_storage::{Store, TableHandle, WeakStore};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Word};

use crate::catalog::keyed_table::{rows_to_batch, table_schema};
use crate::catalog::StreamTable;
use crate::error::{Error, ObjectKind};
use crate::tables::Current;

/// Name of the table function `AS OF` is rewritten to.
pub const AS_OF_FUNCTION: &str = "brikk_as_of";
/// Name of the table function over a table's changelog.
pub const CHANGES_FUNCTION: &str = "changes";

fn plan_err(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn store_of(weak: &WeakStore) -> Result<Store> {
    weak.upgrade().ok_or_else(|| plan_err(Error::ShuttingDown))
}

/// The table named by a table function's argument: `changes(board)` or
/// `changes('board')`.
fn table_arg(store: &Store, e: Option<&Expr>, function: &str) -> Result<Arc<TableHandle>> {
    let name = match e {
        Some(Expr::Column(c)) if c.relation.is_none() => c.name.clone(),
        Some(Expr::Literal(ScalarValue::Utf8(Some(s)), _)) => s.clone(),
        _ => return Err(plan_err(Error::InvalidParameter(format!("{function}() takes the name of a table")))),
    };
    store.table(&name).ok_or_else(|| plan_err(Error::NotFound { kind: ObjectKind::Relation, name }))
}

/// `changes(board)`: every change of a table, in order. Columns: `_offset`
/// and `_timestamp` of the change, `op` (`insert`, `update`, `delete`),
/// then the row (the new row; the old one for a delete).
#[derive(Debug)]
pub struct ChangesFunction {
    pub store: WeakStore,
}

impl TableFunctionImpl for ChangesFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let store = store_of(&self.store)?;
        if args.exprs().len() != 1 {
            return Err(plan_err(Error::InvalidParameter("changes() takes one argument, a table".into())));
        }
        let table = table_arg(&store, args.exprs().first(), CHANGES_FUNCTION)?;
        // A changelog is never archived: it has no retention of its own.
        let inner = StreamTable::new(store, table.changelog.clone(), None);
        // The changelog's columns without `_partition` (always 0) and `_key`.
        let keep: Vec<usize> =
            std::iter::once(1).chain(std::iter::once(2)).chain(4..inner.schema().fields().len()).collect();
        let schema = Arc::new(inner.schema().project(&keep)?);
        Ok(Arc::new(ChangesTable { inner, keep, schema }))
    }
}

/// A table's changelog stream seen through `changes()`.
#[derive(Debug)]
struct ChangesTable {
    inner: StreamTable,
    /// For each column of this table, its index in the changelog stream.
    keep: Vec<usize>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for ChangesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mapped: Vec<usize> = match projection {
            Some(p) => p.iter().map(|&i| self.keep[i]).collect(),
            None => self.keep.clone(),
        };
        self.inner.scan(state, Some(&mapped), filters, limit).await
    }
}

/// `brikk_as_of('board', 'offset' | 'timestamp', value)`: the table as it
/// was right after the change at that offset, or at that time.
#[derive(Debug)]
pub struct AsOfFunction {
    pub store: WeakStore,
}

impl TableFunctionImpl for AsOfFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let store = store_of(&self.store)?;
        let exprs = args.exprs();
        if exprs.len() != 3 {
            return Err(plan_err(Error::InvalidParameter("AS OF needs OFFSET n or TIMESTAMP 'time'".into())));
        }
        let table = table_arg(&store, exprs.first(), "AS OF")?;
        let literal = |e: &Expr| match e {
            Expr::Literal(v, _) => Ok(v.clone()),
            Expr::Placeholder(_) => {
                Err(plan_err(Error::Unsupported("a parameter in AS OF (write the offset or time as a literal)".into())))
            }
            other => Err(plan_err(Error::InvalidParameter(format!("AS OF needs a literal, not {other}")))),
        };
        let kind = literal(&exprs[1])?;
        let value = literal(&exprs[2])?;
        let log = &table.changelog;
        // The newest change to include, or None for "before any change".
        let upto: Option<u64> = match kind {
            ScalarValue::Utf8(Some(k)) if k == "offset" => {
                let n = match value.cast_to(&datafusion::arrow::datatypes::DataType::Int64) {
                    Ok(ScalarValue::Int64(Some(n))) => n,
                    _ => {
                        return Err(plan_err(Error::InvalidParameter(format!(
                            "AS OF OFFSET needs an integer, not {value}"
                        ))))
                    }
                };
                if n < 0 {
                    return Err(plan_err(Error::InvalidParameter(format!("AS OF OFFSET {n}: offsets start at 0"))));
                }
                Some(n as u64)
            }
            ScalarValue::Utf8(Some(k)) if k == "timestamp" => {
                let ts = crate::types::assign(value.clone(), brikk_storage::ColumnType::TimestampTz, "AS OF TIMESTAMP")
                    .map_err(plan_err)?;
                let brikk_storage::Value::Timestamp(micros) = ts else {
                    return Err(plan_err(Error::InvalidParameter(format!(
                        "AS OF TIMESTAMP needs a time, not {value}"
                    ))));
                };
                let first_after =
                    store.offset_for_timestamp(log, 0, micros.saturating_add(1)).map_err(|e| plan_err(e.into()))?;
                first_after.checked_sub(1)
            }
            _ => return Err(plan_err(Error::InvalidParameter("AS OF needs OFFSET or TIMESTAMP".into()))),
        };
        let rows = match upto {
            Some(v) => store.table_as_of(&table, v).map_err(|e| plan_err(e.into()))?,
            None => Default::default(),
        };
        let schema = table_schema(&table);
        let projection: Vec<usize> = (0..schema.fields().len()).collect();
        let batch = rows_to_batch(&schema, &projection, &table, rows.into_values().map(Current::stored).collect())?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

/// Rewrites `name AS OF OFFSET n` and `name AS OF TIMESTAMP 't'` in a
/// statement's tokens into a call of [`AS_OF_FUNCTION`]. Returns `None` if
/// the statement has no `AS OF`.
pub fn rewrite_as_of(tokens: &[TokenWithSpan]) -> Option<String> {
    let significant: Vec<usize> =
        tokens.iter().enumerate().filter(|(_, t)| !matches!(t.token, Token::Whitespace(_))).map(|(i, _)| i).collect();
    let word = |i: usize, kw: Keyword| matches!(&tokens[i].token, Token::Word(Word { keyword, .. }) if *keyword == kw);
    let mut out = String::new();
    let mut changed = false;
    let mut next = 0usize; // next token index not yet copied
    let mut s = 0usize;
    while s + 4 < significant.len() {
        let (name, as_, of, kind, value) =
            (significant[s], significant[s + 1], significant[s + 2], significant[s + 3], significant[s + 4]);
        let is_as_of = word(as_, Keyword::AS)
            && word(of, Keyword::OF)
            && (word(kind, Keyword::OFFSET) || word(kind, Keyword::TIMESTAMP))
            && matches!(tokens[name].token, Token::Word(_));
        if !is_as_of {
            s += 1;
            continue;
        }
        let Token::Word(table) = &tokens[name].token else { unreachable!() };
        for t in &tokens[next..name] {
            out.push_str(&t.token.to_string());
        }
        let kind = if word(kind, Keyword::OFFSET) { "offset" } else { "timestamp" };
        let quoted = table.value.replace('\'', "''");
        // A negative number is two tokens.
        let (value_text, value) = match (&tokens[value].token, significant.get(s + 5)) {
            (Token::Minus, Some(&n)) => {
                s += 1;
                (format!("-{}", tokens[n].token), n)
            }
            (t, _) => (t.to_string(), value),
        };
        out.push_str(&format!("{AS_OF_FUNCTION}('{quoted}', '{kind}', {value_text})"));
        // Keep the user's alias if one follows; otherwise name the result
        // after the table, so `board.topic` still resolves.
        let alias_follows = significant.get(s + 5).is_some_and(|&i| {
            matches!(&tokens[i].token, Token::Word(Word { keyword: Keyword::AS | Keyword::NoKeyword, .. }))
        });
        if !alias_follows {
            out.push_str(&format!(" AS {}", tokens[name].token));
        }
        next = value + 1;
        changed = true;
        s += 5;
    }
    if !changed {
        return None;
    }
    for t in &tokens[next..] {
        out.push_str(&t.token.to_string());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    fn rewrite(sql: &str) -> Option<String> {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().unwrap();
        rewrite_as_of(&tokens)
    }

    #[test]
    fn as_of_becomes_a_table_function() {
        assert_eq!(
            rewrite("SELECT * FROM board AS OF OFFSET 12 WHERE topic = 'x'").as_deref(),
            Some("SELECT * FROM brikk_as_of('board', 'offset', 12) AS board WHERE topic = 'x'")
        );
        assert_eq!(
            rewrite("SELECT b.fact FROM board AS OF TIMESTAMP '2026-01-01' AS b").as_deref(),
            Some("SELECT b.fact FROM brikk_as_of('board', 'timestamp', '2026-01-01') AS b")
        );
        assert_eq!(rewrite("SELECT * FROM board AS b"), None);
        assert_eq!(rewrite("SELECT 1"), None);
    }
}
