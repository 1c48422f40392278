//! Reading archived offsets: the trait the archive implements.

use crate::archive::ArchivedFile;
use crate::catalog::StreamDef;
use crate::codec::Record;
use crate::error::Result;

/// Reads records back from archived files. Implemented by
/// `brikk-connectors` (Parquet through `object_store`) and installed with
/// [`crate::Store::set_archive_reader`].
///
/// Contract: returns at most `limit` records of `file` with offsets in
/// `[from, to)`, in offset order, each exactly as it was in the live log.
/// Blocking (file or network I/O); async callers run it on a blocking
/// thread. A missing file fails with [`crate::Error::ArchiveMissing`], one
/// that does not decode (or holds other offsets than the manifest says)
/// with [`crate::Error::ArchiveCorrupt`]; both name the file. It never
/// returns a partial or wrong answer.
pub trait ArchiveReader: Send + Sync {
    fn read(&self, stream: &StreamDef, file: &ArchivedFile, from: u64, to: u64, limit: usize) -> Result<Vec<Record>>;
}
