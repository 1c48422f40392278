//! # brikk-storage
//!
//! Brikk's bytes on disk: a RocksDB database holding a catalog of streams and
//! a partitioned, append-only log. Nothing here knows SQL.
//!
//! ## The life of an append
//!
//! 1. The query layer encodes each row with [`codec::encode_row`] and picks
//!    its partition with [`StreamHandle::choose_partition`] (murmur2 of the
//!    key, as Kafka does, or round-robin for unkeyed rows).
//! 2. A transaction collects its appends in a [`WriteSet`]; `COMMIT` calls
//!    [`Store::commit`].
//! 3. The committer thread ([`log::commit`]) drains every request queued so
//!    far, assigns each append the next offset of its partition and the
//!    commit timestamp, packs each partition's new records into one chunk,
//!    and writes the whole group as **one** `WriteBatch` with `sync = true`
//!    (to a recycled WAL file, so the sync is a cheap overwrite; see the
//!    `engine` module).
//! 4. Only after that write returns are the partition heads advanced
//!    ([`StreamHandle::head`]) and the callers answered: an acknowledged
//!    append is durable, and a reader never sees an offset that is not.
//!
//! ## Key layout
//!
//! ```text
//!  log         [stream_id u64][partition u32][offset u64]  -> chunk of records
//!                                       (offset of its first record; codec)
//!  time_index  [stream_id u64][partition u32][ts i64^]     -> first offset
//!  catalog     "stream/<name>"                            -> StreamDef (JSON)
//!  groups      [stream_id u64][kind u8][group name]\0[...]  -> group state
//!  archive     [stream_id u64][partition u32][first u64]   -> ArchivedFile (JSON)
//!  tables      [table_id u64][primary key, memcomparable]   -> version | row
//!  continuous  "q/" name, "s/" id ...                       -> continuous queries
//! ```
//!
//! Tables (the blackboard) keep their current rows in `tables` and every
//! change in a changelog stream; see [`tables`] for how a compare-and-set
//! UPDATE commits.
//! Big-endian integers make a RocksDB range scan an offset scan; see [`keys`].
//!
//! ## The life of an archived segment
//!
//! For a stream with `archive`, [`Store::sealed_segment`] picks the oldest
//! sealed segment of a partition; `brikk-connectors` writes it to a Parquet
//! file and calls [`Store::hand_over`], which puts the manifest entry and
//! deletes the range from the log in one synced write. [`Store::read`]
//! serves any offset from wherever it lives. See [`archive`].
//!
//! ## Promises
//! - Offsets are dense per partition, start at 0 and never change.
//! - Commit timestamps never decrease along a partition, so
//!   [`Store::offset_for_timestamp`] is exact.
//! - A crash at any moment loses nothing that was acknowledged; recovery is
//!   RocksDB's WAL replay plus a seek to the end of each partition.
//! - Every offset is in exactly one place: the live log or one archived
//!   file (after a crash too).

pub mod archive;
pub mod catalog;
pub mod codec;
mod engine;
pub mod error;
pub mod groups;
pub mod keys;
pub mod log;
pub mod numeric;
mod sizes;
pub mod state;
pub mod store;
pub mod tables;

pub use archive::{ArchiveReader, ArchivedFile, Handover, SealState, Segment};
pub use catalog::{
    changelog_name, AlterColumns, ArchiveDef, ColumnDef, ColumnType, Identity, StreamDef, StreamId, TableDef, TableId,
    ViewDef, MAX_PARTITIONS,
};
pub use codec::{FieldRef, Record, RecordHead, RowLayout, Value};
pub use error::{Error, Result};
pub use groups::{Group, GroupDef, GroupMode, GroupWrite, Groups, MemberId, StartAt};
pub use log::read::{ChunkHint, RecordSink};
pub use log::tail::DEFAULT_TAIL_CACHE_BYTES;
pub use log::{now_micros, Append, CommitReceipt, StreamHandle, WriteSet};
pub use state::StateWrite;
pub use store::{Catalog, Store, StoreOptions, WeakStore};
pub use tables::{Expect, Row, RowWrite, TableHandle};

#[cfg(test)]
mod tests;
