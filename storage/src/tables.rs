//! Tables with a primary key: the blackboard's storage.
//!
//! A table's current rows live in the `tables` column family, one key per
//! row (`table_id | primary key`, see [`key`]); every change is also
//! appended to the table's changelog stream (one partition), and the
//! changelog offset of a row's last change is the row's **version**.
//!
//! ## The life of an UPDATE
//! 1. The query layer reads the row ([`Store::table_get`] or
//!    [`Store::table_scan`]) and with it the version it saw.
//! 2. It sends a [`RowWrite`] that **expects** that version (or, for an
//!    INSERT, that the key is absent) inside a [`crate::WriteSet`].
//! 3. The committer — the only writer — checks every expectation of the
//!    set against the current rows, including rows changed earlier in the
//!    same commit group; one failed expectation refuses the whole set with
//!    [`crate::Error::RowConflict`] and nothing of it is written.
//! 4. Otherwise it appends the change to the changelog, which assigns the
//!    new version, and puts (or deletes) the row in the same `WriteBatch`:
//!    the table and its changelog can never disagree, even after a crash.
//!
//! Writes to one row are therefore serializable: of two compare-and-set
//! updates that read the same version, exactly one commits.
//!
//! Rows the committer wrote lately are also kept in memory ([`cache`]), so
//! point reads and the committer's expectation checks of hot rows do not
//! walk RocksDB's memtable.

pub(crate) mod cache;
pub mod handle;
pub mod key;
pub mod read;
pub mod sequence;
pub mod write;

pub use handle::TableHandle;
pub use read::Row;
pub use write::{Expect, RowWrite};
