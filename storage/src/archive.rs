//! The archive's half in storage: the manifest of archived files, the
//! atomic hand-over of a sealed segment from the live log to its file, the
//! sealing policy, and reads of archived offsets.
//!
//! Storage never touches Parquet or object stores: `brikk-connectors`
//! writes the files and implements [`ArchiveReader`]; this crate records
//! which offsets live where and keeps every offset in exactly one place.
//!
//! ## The life of a segment
//! 1. [`Store::sealed_segment`] finds the oldest sealed segment of a
//!    partition's live log (by rows, bytes, age or retention; see
//!    [`crate::ArchiveDef`]). Segments end at chunk boundaries.
//! 2. The archiver writes the segment's records to a Parquet file under a
//!    temporary name and renames it to its final name.
//! 3. [`Store::hand_over`] sends the committer a [`Handover`]: in **one**
//!    synced `WriteBatch` it puts the manifest entry and deletes the
//!    segment's range from the `log` column family. Before that write the
//!    offsets are read from RocksDB; after it, from the file.
//! 4. A crash between 2 and 3 leaves a file that no manifest entry names;
//!    the archiver deletes such files when it starts and archives the range
//!    again.
//!
//! ```text
//!  partition 0:  [ archived files (manifest) ][ live log (cf "log")      ]
//!                 0-999  1000-1999  2000-2499   2500 ........... head-1
//!                 ^ low                         ^ live_low
//! ```

mod manifest;
mod reader;
mod segment;

pub use manifest::{file_path, stream_dir, ArchivedFile, Handover};
pub use reader::ArchiveReader;
pub use segment::{SealState, Segment};

pub(crate) use manifest::load_manifest;
