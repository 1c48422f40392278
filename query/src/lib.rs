//! # brikk-query
//!
//! Brikk's meaning layer and its embedded API: SQL over streams, planned and
//! run by DataFusion over the storage log.
//!
//! ## The life of an INSERT
//! 1. [`Session::execute`] splits the text and parses each statement
//!    ([`sql::parse`]); `INSERT` into a stream becomes an
//!    [`session::InsertPlan`].
//! 2. The plan coerces each value to its column ([`types::assign`]), encodes
//!    the row, and picks its partition by key hash or round-robin.
//! 3. In autocommit the appends go straight to
//!    [`brikk_storage::Store::commit`]; inside `BEGIN … COMMIT` they wait in
//!    the session's write set and go as one atomic write at `COMMIT`.
//!
//! ## The life of a SELECT
//! 1. Wildcards over streams are rewritten to leave out the system columns
//!    ([`sql::rewrite`]); DataFusion plans the statement against
//!    [`catalog::BrikkSchema`], where each stream is a
//!    [`catalog::StreamTable`].
//! 2. Filters on `_partition`, `_offset` and `_timestamp` are pushed into
//!    the scan and become per-partition offset ranges; `EXPLAIN` shows them
//!    on the `StreamScanExec` line.
//! 3. Each stream partition is read as one DataFusion partition, in offset
//!    order, in chunks, up to the head committed when the query was planned.
//!
//! ## The life of a live subscription
//! 1. `COPY (SUBSCRIBE tasks FROM OFFSET 100) TO STDOUT` parses to
//!    [`sql::subscribe::CopySubscribe`]; the session answers with
//!    [`Output::Subscription`], a [`Subscription`] positioned at offset 100
//!    of every partition.
//! 2. [`Subscription::next`] reads past the positions with
//!    [`brikk_storage::Store::read`]; finding nothing, it waits on the
//!    stream's append notification, which the committer fires after each
//!    durable write — it never polls.
//! 3. The server streams each batch as COPY data; dropping the
//!    subscription (cancel request, closed connection) ends it and takes it
//!    out of `brikk_subscriptions`.
//!
//! ```text
//!  stream "tasks" (partitions = 8)
//!   _partition | _offset | _timestamp | _key | task_id | kind | payload
//!   ^ system columns (not in SELECT *)      ^ user columns
//! ```

pub mod activity;
pub mod catalog;
pub mod checked;
pub mod continuous;
pub mod copy;
pub mod datetime;
pub mod db;
pub mod defaults;
pub mod error;
pub mod floats;
pub mod format;
pub mod json;
pub mod market;
pub mod session;
pub mod shared_subplans;
pub mod sleep;
pub mod sql;
pub mod tables;
pub mod types;
mod udf;
pub mod zone;

pub use db::{Brikk, DATABASE, USER};
pub use error::{Error, ObjectKind, Result};
pub use session::{Notice, NoticeKind, Notification, Output, Prepared, Session, Subscription, TxnStatus};

/// The version string reported as `server_version`: the Postgres protocol
/// level Brikk speaks, and Brikk's own version.
pub const SERVER_VERSION: &str = concat!("15.0 (Brikk ", env!("CARGO_PKG_VERSION"), ")");

/// [`SERVER_VERSION`] as `server_version_num` gives it.
pub const SERVER_VERSION_NUM: &str = "150000";
