//! Prepared statements (the extended protocol's Parse/Bind/Execute).
//!
//! A statement is parsed and planned once at Parse; Execute binds
//! parameters into the kept plan. INSERTs keep an [`InsertPlan`] and never
//! touch DataFusion again; queries keep their logical plan.

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::LogicalPlan;

use crate::error::Result;
use crate::session::insert::InsertPlan;
use crate::sql::Statement;

/// A statement ready to execute many times.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    pub(crate) kind: PreparedKind,
    param_types: Vec<DataType>,
}

#[derive(Debug, Clone)]
pub(crate) enum PreparedKind {
    Empty,
    Insert(Box<InsertPlan>),
    Query(Box<LogicalPlan>),
    /// Statements without parameters or planning (BEGIN, SET, DDL): run as is.
    Other(Box<Statement>, Option<SchemaRef>),
}

impl Prepared {
    pub(crate) fn new(sql: String, kind: PreparedKind) -> Result<Prepared> {
        let param_types = match &kind {
            PreparedKind::Insert(p) => p.param_types.clone(),
            PreparedKind::Query(plan) => param_types(plan, &[])?,
            PreparedKind::Empty | PreparedKind::Other(..) => Vec::new(),
        };
        Ok(Prepared { sql, kind, param_types })
    }

    /// Types of `$1..$n`, as they should be described to the client.
    pub fn param_types(&self) -> &[DataType] {
        &self.param_types
    }

    /// The schema of the rows this statement returns, or `None` if it
    /// returns none (a command).
    pub fn result_schema(&self) -> Option<SchemaRef> {
        match &self.kind {
            PreparedKind::Query(plan) => Some(plan.schema().inner().clone()),
            PreparedKind::Other(_, schema) => schema.clone(),
            PreparedKind::Empty | PreparedKind::Insert(_) => None,
        }
    }

    /// Whether the statement is empty (no SQL at all).
    pub fn is_empty(&self) -> bool {
        matches!(self.kind, PreparedKind::Empty)
    }
}

/// Parameter types of a plan, `$1` first; a parameter DataFusion cannot type
/// takes the client's declared type, or text.
pub(crate) fn param_types(plan: &LogicalPlan, declared: &[Option<DataType>]) -> Result<Vec<DataType>> {
    let inferred = plan.get_parameter_types()?;
    let count = inferred
        .keys()
        .filter_map(|k| k.strip_prefix('$')?.parse::<usize>().ok())
        .max()
        .unwrap_or(0)
        .max(declared.len());
    Ok((1..=count)
        .map(|i| {
            declared
                .get(i - 1)
                .cloned()
                .flatten()
                .or_else(|| inferred.get(&format!("${i}")).cloned().flatten())
                .unwrap_or(DataType::Utf8)
        })
        .collect())
}

/// A one-column text schema, for `SHOW name`.
pub(crate) fn show_schema(name: &str) -> SchemaRef {
    std::sync::Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]))
}
