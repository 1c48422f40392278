//! Cursors: `DECLARE name CURSOR FOR query`, `FETCH`, `CLOSE`.
//!
//! A cursor holds its query's result stream and hands it out a few rows at
//! a time, so a client (psycopg's named cursors, for one) reads a large
//! result without holding it all. As in Postgres, a cursor lives until the
//! end of the transaction that declared it, unless it was declared `WITH
//! HOLD`, in which case it lives until `CLOSE`, `DISCARD ALL` or the end of
//! the session, or until its transaction rolls back.
//! Cursors only move forward: `SCROLL`, `BACKWARD` and absolute positions
//! are refused.
//!
//! `FETCH … FROM stream GROUP g` is the consumer-group read
//! ([`super::groups`]); a `FETCH` without `GROUP` reads a cursor.

use std::collections::HashMap;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, CloseCursor, FetchDirection};
use futures::StreamExt;

use super::exec::Session;
use super::output::Output;
use crate::error::{Error, ObjectKind, Result};

/// One open cursor.
pub(crate) struct Cursor {
    schema: SchemaRef,
    /// In a mutex only so that a session stays `Sync`; taken with
    /// `get_mut`, never locked.
    rows: std::sync::Mutex<SendableRecordBatchStream>,
    /// Rows taken from the stream and not fetched yet.
    left: Option<RecordBatch>,
    /// The serial of the transaction that declared it (0: none).
    declared_in: u64,
    /// `WITH HOLD`: it outlives a transaction that commits.
    hold: bool,
}

/// A session's cursors by name.
#[derive(Default)]
pub(crate) struct Cursors {
    open: HashMap<String, Cursor>,
}

impl Cursors {
    /// Closes the cursors of transactions other than `live` (the open
    /// transaction's serial, if one is open).
    pub(crate) fn end_others(&mut self, live: Option<u64>) {
        if !self.open.is_empty() {
            self.open.retain(|_, c| c.hold || Some(c.declared_in) == live);
        }
    }

    /// Closes every cursor transaction `serial` declared, `WITH HOLD` or not:
    /// it rolled back.
    pub(crate) fn rolled_back(&mut self, serial: u64) {
        self.open.retain(|_, c| c.declared_in != serial);
    }

    /// `CLOSE ALL`, `DISCARD ALL`.
    pub(crate) fn close_all(&mut self) {
        self.open.clear();
    }
}

/// How many rows a forward `FETCH`/`MOVE` direction asks for (`None`: all).
fn forward_count(direction: &FetchDirection) -> Result<Option<usize>> {
    let count = |v: &ast::ValueWithSpan| -> Result<i64> {
        v.to_string().parse::<i64>().map_err(|_| Error::Syntax(format!("invalid FETCH count {v}")))
    };
    let backward = || Error::WrongState("cursor can only scan forward (declare cursors without SCROLL)".into());
    Ok(match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => match count(limit)? {
            n if n < 0 => return Err(backward()),
            n => Some(n as usize),
        },
        FetchDirection::All | FetchDirection::ForwardAll => None,
        _ => return Err(backward()),
    })
}

impl Session {
    /// `DECLARE name [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`.
    /// `params` are bound to the query's `$1…`.
    pub(crate) async fn declare(&mut self, declare: ast::Declare, params: &[ScalarValue]) -> Result<Output> {
        let name = match declare.names.as_slice() {
            [n] => n.value.clone(),
            _ => return Err(Error::Syntax("DECLARE names one cursor".into())),
        };
        let Some(query) = declare.for_query else {
            return Err(Error::Unsupported(format!("DECLARE {name} without FOR query")));
        };
        if declare.scroll == Some(true) {
            return Err(Error::Unsupported("SCROLL cursors".into()));
        }
        if declare.binary == Some(true) {
            return Err(Error::Unsupported("BINARY cursors".into()));
        }
        let hold = declare.hold == Some(true);
        let txn = self.open_transaction();
        if txn.is_none() && !hold {
            return Err(Error::NoTransaction("DECLARE CURSOR".into()));
        }
        self.cursors.end_others(txn);
        if self.cursors.open.contains_key(&name) {
            return Err(Error::AlreadyExists { kind: ObjectKind::Cursor, name });
        }
        let rows = match self.query(ast::Statement::Query(query), params).await? {
            Output::Rows(rows) => rows,
            other => return Err(Error::Internal(format!("a cursor's query gave {other:?}"))),
        };
        let cursor = Cursor {
            schema: rows.schema(),
            rows: std::sync::Mutex::new(rows),
            left: None,
            declared_in: txn.unwrap_or(0),
            hold,
        };
        self.cursors.open.insert(name, cursor);
        Ok(Output::Command { tag: "DECLARE CURSOR".into(), rows: None })
    }

    /// `FETCH [direction] [FROM | IN] name`: the cursor's next rows.
    pub(crate) async fn fetch_cursor(&mut self, name: &ast::Ident, direction: &FetchDirection) -> Result<Output> {
        let wanted = forward_count(direction)?;
        let (schema, batches) = self.take(&name.value, wanted).await?;
        let rows = RecordBatchStreamAdapter::new(schema, futures::stream::iter(batches.into_iter().map(Ok)));
        Ok(Output::Returning { tag: "FETCH".into(), rows: Box::pin(rows) })
    }

    /// `MOVE [direction] [FROM | IN] name`: skips what the same `FETCH`
    /// would return; the tag counts the rows skipped.
    pub(crate) async fn move_cursor(&mut self, fetch: &ast::Statement) -> Result<Output> {
        let ast::Statement::Fetch { name, direction, .. } = fetch else {
            return Err(Error::Internal("MOVE holds a FETCH".into()));
        };
        let (_, skipped) = self.take(&name.value, forward_count(direction)?).await?;
        Ok(Output::Command { tag: "MOVE".into(), rows: Some(skipped.iter().map(RecordBatch::num_rows).sum()) })
    }

    /// `CLOSE name` or `CLOSE ALL`.
    pub(crate) fn close_cursor(&mut self, which: &CloseCursor) -> Result<Output> {
        self.cursors.end_others(self.open_transaction());
        match which {
            CloseCursor::All => self.cursors.close_all(),
            CloseCursor::Specific { name } => {
                if self.cursors.open.remove(&name.value).is_none() {
                    return Err(self.no_cursor(&name.value));
                }
            }
        }
        Ok(Output::Command { tag: "CLOSE CURSOR".into(), rows: None })
    }

    /// The result schema of fetching from cursor `name`, if it is open.
    pub fn cursor_schema(&self, name: &str) -> Option<SchemaRef> {
        self.cursors.open.get(name).map(|c| c.schema.clone())
    }

    /// Up to `wanted` (or all) of cursor `name`'s next rows, with its schema.
    async fn take(&mut self, name: &str, wanted: Option<usize>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.cursors.end_others(self.open_transaction());
        let Some(cursor) = self.cursors.open.get_mut(name) else { return Err(self.no_cursor(name)) };
        let schema = cursor.schema.clone();
        let rows = cursor.rows.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        let mut need = wanted.unwrap_or(usize::MAX);
        while need > 0 {
            let batch = match cursor.left.take() {
                Some(b) => b,
                None => match rows.next().await {
                    Some(b) => b?,
                    None => break,
                },
            };
            if batch.num_rows() > need {
                cursor.left = Some(batch.slice(need, batch.num_rows() - need));
                out.push(batch.slice(0, need));
                break;
            }
            need -= batch.num_rows();
            out.push(batch);
        }
        Ok((schema, out))
    }

    /// No cursor `name`; when a stream has that name, the user most likely
    /// meant a consumer-group read and left out `GROUP`.
    fn no_cursor(&self, name: &str) -> Error {
        match self.db.shared().store.stream(name) {
            Some(_) => Error::Syntax(format!(
                "FETCH from stream \"{name}\" needs a group: FETCH n FROM {name} GROUP g \
                 (without GROUP, FETCH reads a cursor)"
            )),
            None => Error::NotFound { kind: ObjectKind::Cursor, name: name.to_string() },
        }
    }
}
