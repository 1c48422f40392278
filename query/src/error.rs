//! The query crate's error type, and how DataFusion and storage errors are
//! classified into it.
//!
//! Variants are named by meaning; the server maps each to a SQLSTATE in one
//! table (`server/src/sqlstate.rs`). Classification of foreign errors happens
//! here, once, in [`Error::from_datafusion`] and `From<brikk_storage::Error>`.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// What kind of object a `NotFound`/`AlreadyExists` error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A stream or any other relation (table, view, system table).
    Relation,
    Column,
    Function,
    /// A configuration parameter (`SHOW x`, `SET x`).
    Parameter,
    /// A prepared statement or portal.
    Statement,
    /// A consumer group or work queue.
    Group,
    /// A continuous query.
    Query,
    /// A cursor (`DECLARE`).
    Cursor,
    /// A database other than `brikk` (`pg_database_size('other')`).
    Database,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Relation => "relation",
            ObjectKind::Column => "column",
            ObjectKind::Function => "function",
            ObjectKind::Parameter => "configuration parameter",
            ObjectKind::Statement => "prepared statement",
            ObjectKind::Group => "group",
            ObjectKind::Query => "continuous query",
            ObjectKind::Cursor => "cursor",
            ObjectKind::Database => "database",
        })
    }
}

/// Everything a statement can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The text is not valid SQL.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A named object does not exist.
    #[error("{kind} \"{name}\" does not exist")]
    NotFound { kind: ObjectKind, name: String },
    /// A named object already exists.
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists { kind: ObjectKind, name: String },
    /// An expression's type cannot be used where it appears.
    #[error("{0}")]
    TypeMismatch(String),
    /// A value's text cannot be read as the required type.
    #[error("{0}")]
    InvalidText(String),
    /// A number does not fit its type.
    #[error("{0}")]
    OutOfRange(String),
    /// A row with this primary key exists already.
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation { constraint: String, detail: String },
    /// One statement would change the same row twice (`ON CONFLICT DO
    /// UPDATE` with a key repeated in its rows).
    #[error("{0}")]
    Cardinality(String),
    /// A row this statement or transaction read was changed by another
    /// writer before the write committed; nothing was written.
    #[error("could not serialize access due to concurrent update of a row of \"{table}\"")]
    RowChanged { table: String, exists: bool },
    /// NULL given for a NOT NULL column.
    #[error("null value in column \"{column}\" of relation \"{relation}\" violates not-null constraint")]
    NotNull { relation: String, column: String },
    /// `ADD COLUMN … NOT NULL` without a default on a relation with rows.
    #[error("column \"{column}\" of relation \"{relation}\" contains null values")]
    ColumnHasNulls { relation: String, column: String },
    /// A column list names no constraint (ON CONFLICT on a non-key column).
    #[error("{0}")]
    InvalidColumnReference(String),
    /// The statement does not apply to this kind of relation (UPDATE of a
    /// stream, DROP TABLE of a stream).
    #[error("{0}")]
    WrongObjectType(String),
    /// A system column (`_offset`, ...) was the target of a write.
    #[error("column \"{0}\" is assigned by Brikk and cannot be written")]
    GeneratedColumn(String),
    /// A write gave a `GENERATED ALWAYS AS IDENTITY` column its own value.
    #[error("{0}")]
    IdentityColumn(String),
    /// A prepared statement planned again after an `ALTER` would take other
    /// parameters or give other columns than the client was told.
    #[error("cached plan must not change result type")]
    PlanChanged,
    /// A view that would read itself.
    #[error("{0}")]
    InvalidObjectDefinition(String),
    /// A definition that cannot hold (`DROP NOT NULL` of a key column).
    #[error("{0}")]
    InvalidTableDefinition(String),
    /// A name is reserved for Brikk's own use.
    #[error("{0}")]
    ReservedName(String),
    /// A statement option or argument has a bad value.
    #[error("{0}")]
    InvalidParameter(String),
    /// A `TABLESAMPLE` percentage outside 0–100.
    #[error("{0}")]
    InvalidSample(String),
    /// An identity column's sequence reached the largest value of its type.
    #[error("{0}")]
    SequenceLimit(String),
    /// NULL where a function takes no NULL (`format('%I', NULL)`).
    #[error("{0}")]
    NullValue(String),
    /// Division by zero during evaluation.
    #[error("division by zero")]
    DivisionByZero,
    /// Valid SQL that Brikk does not implement.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// DROP of a relation other objects (views) depend on, without
    /// CASCADE; `detail` lists them.
    #[error("{message}")]
    DependentObjects { message: String, detail: String },
    /// The statement is not allowed in a transaction block.
    #[error("{0} cannot run inside a transaction block")]
    ActiveTransaction(String),
    /// DDL of a relation the open transaction block has written to: it
    /// would take effect before those writes commit.
    #[error("{what} cannot change \"{name}\" inside a transaction block that has written to it")]
    WrittenInTransaction { what: String, name: String },
    /// The statement needs a transaction block and there is none.
    #[error("{0} can only be used in transaction blocks")]
    NoTransaction(String),
    /// ROLLBACK TO or RELEASE names no savepoint of this transaction.
    #[error("savepoint \"{0}\" does not exist")]
    NoSavepoint(String),
    /// A previous statement of this transaction failed.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    /// Another planning error (ambiguous name, wrong argument count, ...).
    #[error("{0}")]
    Plan(String),
    /// A concurrent change won: the group was rebalanced or reset, or the
    /// member timed out. Retrying after fetching again can succeed.
    #[error("{0}")]
    Conflict(String),
    /// The object is not in a state that allows the statement (not
    /// subscribed, record not claimed by this consumer, wrong group mode).
    #[error("{0}")]
    WrongState(String),
    /// The statement was canceled.
    #[error("canceling statement due to user request")]
    Canceled,
    /// The statement ran longer than the session's `statement_timeout`.
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    /// The database is shutting down; nothing was written.
    #[error("the database is shutting down")]
    ShuttingDown,
    /// COPY input does not fit the table: wrong column count, a malformed
    /// line; nothing of the COPY was written.
    #[error("{0}")]
    BadCopyData(String),
    /// A file named by COPY does not exist.
    #[error("{0}")]
    FileNotFound(String),
    /// A file named by COPY cannot be read or written.
    #[error("{0}")]
    FileIo(String),
    /// The storage engine failed; the statement's writes were not applied.
    #[error("{0}")]
    Storage(brikk_storage::Error),
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias for the query crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<brikk_storage::Error> for Error {
    fn from(e: brikk_storage::Error) -> Error {
        use brikk_storage::Error as S;
        match e {
            S::InvalidInput(m) => Error::InvalidParameter(m),
            S::SequenceLimit(m) => Error::SequenceLimit(m),
            S::NotFound { kind: "group", name } => Error::NotFound { kind: ObjectKind::Group, name },
            S::NotFound { kind: "column", name } => Error::NotFound { kind: ObjectKind::Column, name },
            S::NotFound { kind: "view", name } => Error::NotFound { kind: ObjectKind::Relation, name },
            S::NotFound { name, .. } => Error::NotFound { kind: ObjectKind::Relation, name },
            S::AlreadyExists { kind: "group", name } => Error::AlreadyExists { kind: ObjectKind::Group, name },
            S::AlreadyExists { kind: "column", name } => Error::AlreadyExists { kind: ObjectKind::Column, name },
            S::NullsInColumn { relation, column } => Error::ColumnHasNulls { relation, column },
            S::AlreadyExists { name, .. } => Error::AlreadyExists { kind: ObjectKind::Relation, name },
            S::Conflict(m) => Error::Conflict(m),
            S::RowConflict { table, exists } => Error::RowChanged { table, exists },
            S::WrongState(m) => Error::WrongState(m),
            S::Unavailable => Error::ShuttingDown,
            other => Error::Storage(other),
        }
    }
}

impl From<ParserError> for Error {
    fn from(e: ParserError) -> Error {
        match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => Error::Syntax(m),
            ParserError::RecursionLimitExceeded => Error::Syntax("statement is nested too deeply".into()),
        }
    }
}

impl From<datafusion::sql::sqlparser::tokenizer::TokenizerError> for Error {
    fn from(e: datafusion::sql::sqlparser::tokenizer::TokenizerError) -> Error {
        Error::Syntax(e.to_string())
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Error {
        Error::from_arrow(e)
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Error {
        Error::from_datafusion(e)
    }
}

impl Error {
    /// Classifies a DataFusion error by its variant and, where DataFusion
    /// gives no finer structure, by its message.
    pub fn from_datafusion(e: DataFusionError) -> Error {
        use datafusion::common::SchemaError;
        match e {
            DataFusionError::Context(_, inner) => Error::from_datafusion(*inner),
            DataFusionError::Diagnostic(_, inner) => Error::from_datafusion(*inner),
            // An error of ours shared between partitions keeps its kind;
            // other shared errors only have their text.
            DataFusionError::Shared(inner) => match inner.as_ref() {
                DataFusionError::External(e) if e.is::<Error>() => e.downcast_ref::<Error>().expect("checked").clone(),
                _ => Error::from_datafusion_message(inner.to_string()),
            },
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => match other.downcast::<DataFusionError>() {
                    Ok(df) => Error::from_datafusion(*df),
                    Err(other) => Error::from_datafusion_message(other.to_string()),
                },
            },
            DataFusionError::SQL(p, _) => Error::from(*p),
            DataFusionError::SchemaError(s, _) => match *s {
                SchemaError::FieldNotFound { field, .. } => {
                    Error::NotFound { kind: ObjectKind::Column, name: field.name().to_string() }
                }
                SchemaError::AmbiguousReference { field } => {
                    Error::Plan(format!("column reference \"{}\" is ambiguous", field.name()))
                }
                SchemaError::DuplicateQualifiedField { name, .. } | SchemaError::DuplicateUnqualifiedField { name } => {
                    Error::AlreadyExists { kind: ObjectKind::Column, name }
                }
            },
            DataFusionError::NotImplemented(m) => Error::Unsupported(m),
            DataFusionError::ArrowError(a, _) => Error::from_arrow(*a),
            DataFusionError::ResourcesExhausted(m) => Error::Internal(format!("resources exhausted: {m}")),
            DataFusionError::Internal(m) => Error::Internal(m),
            other => Error::from_datafusion_message(other.to_string()),
        }
    }

    pub(crate) fn from_arrow(e: datafusion::arrow::error::ArrowError) -> Error {
        use datafusion::arrow::error::ArrowError as A;
        match e {
            A::DivideByZero => Error::DivisionByZero,
            A::CastError(m) | A::ParseError(m) => {
                if m.contains("overflow") || m.contains("out of range") || m.contains("Overflow") {
                    Error::OutOfRange(m)
                } else {
                    Error::invalid_text(m)
                }
            }
            A::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => Error::OutOfRange(m),
            A::ExternalError(inner) => match inner.downcast::<DataFusionError>() {
                Ok(df) => Error::from_datafusion(*df),
                Err(other) => Error::Internal(other.to_string()),
            },
            other => Error::Plan(other.to_string()),
        }
    }

    /// `22P02` for Arrow's message of text a cast could not read, in
    /// Postgres' words when Arrow names the text and a type Postgres has
    /// (`Cannot cast string 'x' to value of Int64 type` → `invalid input
    /// syntax for type bigint: "x"`).
    fn invalid_text(m: String) -> Error {
        let parts = m
            .split_once("Cannot cast string '")
            .and_then(|(_, rest)| rest.rsplit_once("' to value of "))
            .and_then(|(text, ty)| Some((text, ty.strip_suffix(" type")?)));
        let pg = |ty: &str| {
            Some(match ty {
                "Int16" => "smallint",
                "Int32" => "integer",
                "Int64" => "bigint",
                "Float32" => "real",
                "Float64" => "double precision",
                "Boolean" => "boolean",
                _ => return None,
            })
        };
        match parts.and_then(|(text, ty)| Some((text, pg(ty)?))) {
            Some((text, ty)) => Error::InvalidText(format!("invalid input syntax for type {ty}: \"{text}\"")),
            None => Error::InvalidText(m),
        }
    }

    /// Last resort for errors DataFusion only describes in prose. Each
    /// pattern below is a message DataFusion 55 produces.
    fn from_datafusion_message(msg: String) -> Error {
        let m = msg.strip_prefix("Error during planning: ").unwrap_or(&msg).to_string();
        let m = m.strip_prefix("Execution error: ").unwrap_or(&m).to_string();
        if let Some(rest) = m.strip_prefix("table '").and_then(|r| r.strip_suffix("' not found")) {
            let name = rest.rsplit('.').next().unwrap_or(rest).to_string();
            return Error::NotFound { kind: ObjectKind::Relation, name };
        }
        if let Some(rest) = m.strip_prefix("table function '").and_then(|r| r.strip_suffix("' not found")) {
            return Error::NotFound { kind: ObjectKind::Function, name: rest.to_string() };
        }
        if let Some(rest) = m.strip_prefix("Invalid function '") {
            // "Invalid function 'name'.\nDid you mean 'other'?": the name only.
            let name = rest.split('\'').next().unwrap_or(rest).to_string();
            return Error::NotFound { kind: ObjectKind::Function, name };
        }
        if m.contains("function") && m.contains("not found") {
            return Error::NotFound { kind: ObjectKind::Function, name: m };
        }
        if m.contains("Divide by zero") || m.contains("division by zero") {
            return Error::DivisionByZero;
        }
        if m.contains("Scalar subquery returned more than one row") {
            return Error::Cardinality("more than one row returned by a subquery used as an expression".into());
        }
        if m.contains("Cannot infer common")
            || m.contains("Cannot coerce")
            || m.contains("No function matches")
            || m.contains("does not support")
            || m.contains("Failed to coerce")
            || m.contains("type_coercion")
            || m.contains("Cannot automatically convert")
        {
            return Error::TypeMismatch(m);
        }
        if m.contains("Cannot cast string") || m.contains("Cannot cast to") {
            return Error::invalid_text(m);
        }
        if m.contains("Unsupported") || m.contains("not supported") || m.contains("Not implemented") {
            return Error::Unsupported(m);
        }
        Error::Plan(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_table_not_found() {
        let e = Error::from_datafusion(DataFusionError::Plan("table 'brikk.public.nope' not found".into()));
        assert!(matches!(e, Error::NotFound { kind: ObjectKind::Relation, ref name } if name == "nope"), "{e:?}");
    }

    #[test]
    fn cast_failures_read_as_postgres_says_them() {
        let arrow = |m: &str| Error::from_arrow(datafusion::arrow::error::ArrowError::CastError(m.into()));
        let e = arrow("Cannot cast string 'x' to value of Int64 type");
        assert!(matches!(&e, Error::InvalidText(m) if m == "invalid input syntax for type bigint: \"x\""), "{e:?}");
        let e = arrow("Cannot cast string 'it's' to value of Boolean type");
        assert!(matches!(&e, Error::InvalidText(m) if m == "invalid input syntax for type boolean: \"it's\""), "{e:?}");
        let e = arrow("Cannot cast string 'x' to value of Decimal128(10, 2) type");
        assert!(matches!(&e, Error::InvalidText(m) if m.starts_with("Cannot cast")), "{e:?}");
    }

    #[test]
    fn classifies_coercion_as_type_mismatch() {
        let e = Error::from_datafusion(DataFusionError::Plan("Cannot infer common argument type".into()));
        assert!(matches!(e, Error::TypeMismatch(_)), "{e:?}");
    }
}
