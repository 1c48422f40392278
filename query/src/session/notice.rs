//! Notices: what a statement tells the client besides its result, as
//! Postgres's `NOTICE` and `WARNING` messages. The statement succeeds; the
//! server sends the notices it raised before its result.

/// What a notice is about; the server maps each kind to its severity and
/// SQLSTATE (its one SQLSTATE table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// `DROP … IF EXISTS` found nothing to drop (NOTICE).
    DoesNotExist,
    /// `CREATE … IF NOT EXISTS` found the relation already there (NOTICE).
    AlreadyExists,
    /// `BEGIN` inside a transaction (WARNING; the transaction goes on).
    ActiveTransaction,
    /// `COMMIT`, `ROLLBACK` or `SET LOCAL` outside a transaction (WARNING;
    /// nothing happens).
    NoActiveTransaction,
    /// `DROP … CASCADE` dropped a dependent object too (NOTICE).
    Cascade,
    /// DDL inside a transaction block: it took effect at once and a
    /// ROLLBACK will not undo it (WARNING).
    NotTransactional,
}

/// One notice, with the text Postgres gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub message: String,
}

impl Notice {
    pub(crate) fn new(kind: NoticeKind, message: impl Into<String>) -> Notice {
        Notice { kind, message: message.into() }
    }

    /// `DROP … IF EXISTS` of `name`, a `what` (`table`, `stream`, …).
    pub(crate) fn skipped_drop(what: &str, name: &str) -> Notice {
        Notice::new(NoticeKind::DoesNotExist, format!("{what} \"{name}\" does not exist, skipping"))
    }

    /// `CREATE … IF NOT EXISTS` of `name`.
    pub(crate) fn skipped_create(name: &str) -> Notice {
        Notice::new(NoticeKind::AlreadyExists, format!("relation \"{name}\" already exists, skipping"))
    }

    /// `ADD COLUMN IF NOT EXISTS` of a column that exists.
    pub(crate) fn skipped_column(column: &str, relation: &str) -> Notice {
        Notice::new(
            NoticeKind::AlreadyExists,
            format!("column \"{column}\" of relation \"{relation}\" already exists, skipping"),
        )
    }

    /// DDL (`what`) that ran inside a transaction block.
    pub(crate) fn not_transactional(what: &str) -> Notice {
        Notice::new(
            NoticeKind::NotTransactional,
            format!("{what} is not transactional: it took effect now, and ROLLBACK will not undo it"),
        )
    }

    /// A view dropped by `DROP … CASCADE`.
    pub(crate) fn cascaded(view: &str) -> Notice {
        Notice::new(NoticeKind::Cascade, format!("drop cascades to view {view}"))
    }

    pub(crate) fn no_transaction() -> Notice {
        Notice::new(NoticeKind::NoActiveTransaction, "there is no transaction in progress")
    }
}
