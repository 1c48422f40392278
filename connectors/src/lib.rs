//! # brikk-connectors
//!
//! Moves data between Brikk and the outside. Today: the **Parquet archive**,
//! where sealed segments of a stream's live log go (under the data
//! directory by default, or at an object-store URL), readable by Brikk and
//! by any Parquet reader (DuckDB, pyarrow, pandas).
//!
//! ## The life of a segment
//! 1. The [`Archiver`] task wakes every interval and, for each stream with
//!    `archive`, asks storage for the oldest sealed segment of each partition
//!    ([`brikk_storage::Store::sealed_segment`]).
//! 2. It reads the segment's records, writes them as one Parquet file
//!    ([`archive::write_segment`]): the stream's schema with its system
//!    columns, row groups with statistics on `_offset` and `_timestamp`,
//!    written under a temporary name, synced, and renamed to
//!    `<root>/<stream>/<partition>/<first>-<last>.parquet`.
//! 3. It hands the file over ([`brikk_storage::Store::hand_over`]): the
//!    manifest entry and the deletion of the range from RocksDB are one
//!    synced write. Only then does the file count.
//! 4. Reads of archived offsets go through [`ParquetArchive`]: SQL scans
//!    read pruned row groups as Arrow batches
//!    ([`brikk_query::catalog::ArchiveScan`]); consumer groups, `LISTEN`
//!    and replays read records ([`brikk_storage::ArchiveReader`]).
//!
//! ```text
//!  <data dir>/archive/            (or the stream's archive URL)
//!    bids/0/0-999999.parquet
//!    bids/0/1000000-1999999.parquet
//!    bids/1/0-999999.parquet
//! ```
//!
//! A crash between 2 and 3 leaves a file no manifest entry names; when the
//! archiver starts it deletes such files (and temporary ones) under each
//! stream's directory, and archives the range again.
//!
//! Embedding: `brikk_connectors::install(&db, ArchiverOptions::default())`
//! makes an embedded [`brikk_query::Brikk`] archive and read its archive, as
//! `brikk serve` does.

pub mod archive;
pub mod error;

pub use archive::{install, Archiver, ArchiverOptions, ParquetArchive};
pub use error::{Error, Result};
