//! The one table from errors to SQLSTATE codes.
//!
//! Every error a client sees passes through [`sqlstate`]; no other place
//! names a code. The match is exhaustive, so a new error variant does not
//! compile until it has a code here.

use brikk_query::{Error, NoticeKind, ObjectKind};

/// SQLSTATE codes Brikk reports (Postgres appendix A names).
pub mod code {
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
    pub const WARNING: &str = "01000";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const UNDEFINED_PSTATEMENT: &str = "26000";
    pub const DUPLICATE_PSTATEMENT: &str = "42P05";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const DUPLICATE_CURSOR: &str = "42P03";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const GENERATED_ALWAYS: &str = "428C9";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
    pub const RESERVED_NAME: &str = "42939";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const INVALID_OBJECT_DEFINITION: &str = "42P17";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const SEQUENCE_GENERATOR_LIMIT_EXCEEDED: &str = "2200H";
    pub const INVALID_TABLESAMPLE_ARGUMENT: &str = "2202H";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const NULL_VALUE_NOT_ALLOWED: &str = "22004";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
    pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const IO_ERROR: &str = "58030";
    pub const UNDEFINED_FILE: &str = "58P01";
    pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
    pub const DATA_CORRUPTED: &str = "XX001";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const DUPLICATE_DATABASE: &str = "42P04";
}

/// The severity and SQLSTATE of a notice.
pub fn notice_state(kind: NoticeKind) -> (&'static str, &'static str) {
    use code::*;
    match kind {
        NoticeKind::DoesNotExist => ("NOTICE", SUCCESSFUL_COMPLETION),
        NoticeKind::AlreadyExists => ("NOTICE", DUPLICATE_TABLE),
        NoticeKind::ActiveTransaction => ("WARNING", ACTIVE_SQL_TRANSACTION),
        NoticeKind::NoActiveTransaction => ("WARNING", NO_ACTIVE_SQL_TRANSACTION),
        NoticeKind::NotTransactional => ("WARNING", WARNING),
        NoticeKind::Cascade => ("NOTICE", SUCCESSFUL_COMPLETION),
    }
}

/// The SQLSTATE of an error.
pub fn sqlstate(e: &Error) -> &'static str {
    use code::*;
    match e {
        Error::Syntax(_) => SYNTAX_ERROR,
        Error::NotFound { kind, .. } => match kind {
            ObjectKind::Relation => UNDEFINED_TABLE,
            ObjectKind::Column => UNDEFINED_COLUMN,
            ObjectKind::Function => UNDEFINED_FUNCTION,
            ObjectKind::Parameter | ObjectKind::Group | ObjectKind::Query => UNDEFINED_OBJECT,
            ObjectKind::Statement => UNDEFINED_PSTATEMENT,
            ObjectKind::Cursor => INVALID_CURSOR_NAME,
            ObjectKind::Database => INVALID_CATALOG_NAME,
        },
        Error::AlreadyExists { kind, .. } => match kind {
            ObjectKind::Relation => DUPLICATE_TABLE,
            ObjectKind::Column => DUPLICATE_COLUMN,
            ObjectKind::Cursor => DUPLICATE_CURSOR,
            ObjectKind::Statement => DUPLICATE_PSTATEMENT,
            ObjectKind::Database => DUPLICATE_DATABASE,
            ObjectKind::Function | ObjectKind::Parameter | ObjectKind::Group | ObjectKind::Query => DUPLICATE_OBJECT,
        },
        Error::TypeMismatch(_) => DATATYPE_MISMATCH,
        Error::InvalidText(_) => INVALID_TEXT_REPRESENTATION,
        Error::OutOfRange(_) => NUMERIC_VALUE_OUT_OF_RANGE,
        Error::NotNull { .. } | Error::ColumnHasNulls { .. } => NOT_NULL_VIOLATION,
        Error::UniqueViolation { .. } => UNIQUE_VIOLATION,
        Error::Cardinality(_) => CARDINALITY_VIOLATION,
        Error::RowChanged { .. } => SERIALIZATION_FAILURE,
        Error::GeneratedColumn(_) | Error::IdentityColumn(_) => GENERATED_ALWAYS,
        Error::WrongObjectType(_) => WRONG_OBJECT_TYPE,
        Error::InvalidColumnReference(_) => INVALID_COLUMN_REFERENCE,
        Error::ReservedName(_) => RESERVED_NAME,
        Error::InvalidTableDefinition(_) => INVALID_TABLE_DEFINITION,
        Error::InvalidObjectDefinition(_) => INVALID_OBJECT_DEFINITION,
        Error::InvalidParameter(_) => INVALID_PARAMETER_VALUE,
        Error::InvalidSample(_) => INVALID_TABLESAMPLE_ARGUMENT,
        Error::SequenceLimit(_) => SEQUENCE_GENERATOR_LIMIT_EXCEEDED,
        Error::DivisionByZero => DIVISION_BY_ZERO,
        Error::NullValue(_) => NULL_VALUE_NOT_ALLOWED,
        Error::Unsupported(_) | Error::PlanChanged => FEATURE_NOT_SUPPORTED,
        Error::ActiveTransaction(_) | Error::WrittenInTransaction { .. } => ACTIVE_SQL_TRANSACTION,
        Error::InFailedTransaction => IN_FAILED_SQL_TRANSACTION,
        Error::DependentObjects { .. } => DEPENDENT_OBJECTS_STILL_EXIST,
        Error::NoTransaction(_) => NO_ACTIVE_SQL_TRANSACTION,
        Error::NoSavepoint(_) => INVALID_SAVEPOINT_SPECIFICATION,
        Error::Plan(_) => SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
        Error::Conflict(_) => SERIALIZATION_FAILURE,
        Error::WrongState(_) => OBJECT_NOT_IN_PREREQUISITE_STATE,
        Error::Canceled | Error::StatementTimeout => QUERY_CANCELED,
        Error::ShuttingDown => ADMIN_SHUTDOWN,
        Error::Storage(s) => match s {
            brikk_storage::Error::Corrupt(_) | brikk_storage::Error::ArchiveCorrupt { .. } => DATA_CORRUPTED,
            brikk_storage::Error::ArchiveMissing { .. } => UNDEFINED_FILE,
            _ => IO_ERROR,
        },
        Error::BadCopyData(_) => BAD_COPY_FILE_FORMAT,
        Error::FileNotFound(_) => UNDEFINED_FILE,
        Error::FileIo(_) => IO_ERROR,
        Error::Internal(_) => INTERNAL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nf(kind: ObjectKind) -> Error {
        Error::NotFound { kind, name: "x".into() }
    }

    #[test]
    fn every_row_of_the_table() {
        let rows: Vec<(Error, &str)> = vec![
            (Error::Syntax("x".into()), "42601"),
            (nf(ObjectKind::Relation), "42P01"),
            (nf(ObjectKind::Column), "42703"),
            (nf(ObjectKind::Function), "42883"),
            (nf(ObjectKind::Parameter), "42704"),
            (nf(ObjectKind::Statement), "26000"),
            (nf(ObjectKind::Group), "42704"),
            (nf(ObjectKind::Query), "42704"),
            (nf(ObjectKind::Cursor), "34000"),
            (nf(ObjectKind::Database), "3D000"),
            (Error::AlreadyExists { kind: ObjectKind::Query, name: "x".into() }, "42710"),
            (Error::AlreadyExists { kind: ObjectKind::Group, name: "x".into() }, "42710"),
            (Error::Conflict("x".into()), "40001"),
            (Error::WrongState("x".into()), "55000"),
            (Error::AlreadyExists { kind: ObjectKind::Relation, name: "x".into() }, "42P07"),
            (Error::AlreadyExists { kind: ObjectKind::Column, name: "x".into() }, "42701"),
            (Error::AlreadyExists { kind: ObjectKind::Function, name: "x".into() }, "42710"),
            (Error::TypeMismatch("x".into()), "42804"),
            (Error::InvalidText("x".into()), "22P02"),
            (Error::OutOfRange("x".into()), "22003"),
            (Error::NotNull { relation: "r".into(), column: "c".into() }, "23502"),
            (Error::UniqueViolation { constraint: "t_pkey".into(), detail: "d".into() }, "23505"),
            (Error::Cardinality("x".into()), "21000"),
            (Error::RowChanged { table: "t".into(), exists: true }, "40001"),
            (Error::GeneratedColumn("x".into()), "428C9"),
            (Error::WrongObjectType("x".into()), "42809"),
            (Error::InvalidColumnReference("x".into()), "42P10"),
            (Error::ReservedName("x".into()), "42939"),
            (Error::InvalidParameter("x".into()), "22023"),
            (Error::InvalidSample("x".into()), "2202H"),
            (Error::SequenceLimit("x".into()), "2200H"),
            (Error::IdentityColumn("x".into()), "428C9"),
            (Error::DivisionByZero, "22012"),
            (Error::Unsupported("x".into()), "0A000"),
            (Error::ActiveTransaction("x".into()), "25001"),
            (Error::WrittenInTransaction { what: "DROP TABLE".into(), name: "t".into() }, "25001"),
            (Error::InFailedTransaction, "25P02"),
            (Error::DependentObjects { message: "x".into(), detail: "y".into() }, "2BP01"),
            (Error::NoTransaction("x".into()), "25P01"),
            (Error::NoSavepoint("x".into()), "3B001"),
            (Error::Plan("x".into()), "42000"),
            (Error::Canceled, "57014"),
            (Error::StatementTimeout, "57014"),
            (Error::ShuttingDown, "57P01"),
            (Error::Storage(brikk_storage::Error::Corrupt("x".into())), "XX001"),
            (Error::Storage(brikk_storage::Error::Unavailable), "58030"),
            (Error::Storage(brikk_storage::Error::ArchiveMissing { file: "f".into(), detail: "x".into() }), "58P01"),
            (Error::Storage(brikk_storage::Error::ArchiveCorrupt { file: "f".into(), detail: "x".into() }), "XX001"),
            (Error::Storage(brikk_storage::Error::ArchiveUnavailable("x".into())), "58030"),
            (Error::BadCopyData("x".into()), "22P04"),
            (Error::FileNotFound("x".into()), "58P01"),
            (Error::FileIo("x".into()), "58030"),
            (Error::Internal("x".into()), "XX000"),
            (Error::NullValue("x".into()), "22004"),
        ];
        for (e, want) in rows {
            assert_eq!(sqlstate(&e), want, "{e:?}");
        }
    }
}
