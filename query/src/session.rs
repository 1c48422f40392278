//! Sessions: one client's statements, its transaction and its parameters.
//!
//! ## The life of a statement
//! 1. [`Session::execute`] splits and parses the text ([`crate::sql::parse`]).
//! 2. Each statement is dispatched: transaction control and `SET`/`SHOW`
//!    are handled here; `CREATE`/`DROP STREAM` go to the storage catalog;
//!    `INSERT` into a stream becomes appends ([`insert::InsertPlan`]);
//!    queries are planned and run by DataFusion over the stream tables.
//! 3. Appends are committed at once (autocommit) or kept in the session's
//!    [`WriteSet`] until `COMMIT`, which sends them to the storage committer
//!    as one atomic, durable write. A statement that fails inside a
//!    transaction aborts it (`25P02` until `ROLLBACK`), as in Postgres.
//!
//! `COPY (SUBSCRIBE …) TO STDOUT` returns a [`Subscription`]: rows that
//! keep coming as records are committed, until its owner drops it.
//!
//! Several statements in one query string without `BEGIN` run as one
//! implicit transaction, as Postgres does for the simple query protocol.
//! Reads inside a transaction see committed data only, not the
//! transaction's own pending appends.

pub mod cursors;
pub(crate) mod exec;
pub mod groups;
pub mod insert;
pub mod listen;
pub mod notice;
pub(crate) mod output;
pub mod prepared;
pub(crate) mod statements;
pub mod subscribe;
pub mod vars;

pub use exec::{Session, StreamFailure};
pub use insert::InsertPlan;
pub use listen::Notification;
pub use notice::{Notice, NoticeKind};
pub use output::{Output, TxnStatus};
pub use prepared::Prepared;
pub use subscribe::Subscription;
pub use vars::Vars;
