//! Where a continuous query's rows go: appends to its sink stream.

use std::sync::Arc;

use brikk_storage::{Append, Store, StreamHandle};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast;

use crate::catalog::SYSTEM_COLUMNS;
use crate::defaults::Defaults;
use crate::error::{Error, ObjectKind, Result};
use crate::session::insert::{encode_append, target_columns};
use crate::sql::parser::normalize;

/// The sink stream of a query and the column each output column fills.
#[derive(Debug, Clone)]
pub struct Sink {
    pub stream: Arc<StreamHandle>,
    targets: Vec<usize>,
}

impl Sink {
    /// The sink of `INSERT INTO name [(cols)]`, checked against the width of
    /// the rows the query produces. `filled`: how many columns the rows
    /// filled when the query was created (`None` at CREATE): without a
    /// column list, the rows go on filling those first columns after
    /// `ALTER … ADD COLUMN` widened the sink, which leaves the new ones NULL.
    pub fn new(
        store: &Store,
        name: &ast::ObjectName,
        columns: &[ast::ObjectName],
        output: &SchemaRef,
        filled: Option<usize>,
    ) -> Result<Sink> {
        let relation = name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
        let stream = store.stream(&relation).ok_or_else(|| {
            if store.table(&relation).is_some() {
                Error::WrongObjectType(format!("the sink of a continuous query is a stream; \"{relation}\" is a table"))
            } else {
                Error::NotFound { kind: ObjectKind::Relation, name: relation.clone() }
            }
        })?;
        if stream.def.changelog_of.is_some() {
            return Err(Error::WrongObjectType(format!("\"{relation}\" is the changelog of a table")));
        }
        let mut targets = target_columns(&stream.def.columns, &stream.def.name, columns, &SYSTEM_COLUMNS)?;
        let width = output.fields().len();
        if let Some(n) = filled.filter(|n| columns.is_empty() && *n == width && *n < targets.len()) {
            targets.truncate(n);
        }
        if width != targets.len() {
            return Err(Error::Syntax(format!(
                "the query produces {width} columns, the sink \"{relation}\" takes {}",
                targets.len()
            )));
        }
        // A default differs on each run (now(), a random UUID), and a query
        // replayed after a crash must write what it wrote before.
        let defaulted =
            stream.def.columns.iter().enumerate().find(|(i, c)| c.default.is_some() && !targets.contains(i));
        if let Some((_, c)) = defaulted {
            return Err(Error::Unsupported(format!(
                "a continuous query leaving out column \"{}\" of its sink, which has a DEFAULT (name the column)",
                c.name
            )));
        }
        Ok(Sink { stream, targets })
    }

    /// How many columns of the sink the rows fill.
    pub fn filled(&self) -> usize {
        self.targets.len()
    }

    /// The appends of `rows`.
    pub fn appends(&self, rows: Vec<Vec<ScalarValue>>) -> Result<Vec<Append>> {
        rows.into_iter()
            .map(|row| {
                let none = Defaults::default();
                encode_append(&self.stream, &self.targets, row.into_iter().map(Ok), crate::types::UTC, &none, None)
            })
            .collect()
    }
}
