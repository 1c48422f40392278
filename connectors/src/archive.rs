//! The Parquet archive: where files live, writing a segment, reading files
//! back, and the archiver task. See the crate docs for the life of a segment.

mod archiver;
mod convert;
mod location;
mod read;
mod write;

use std::sync::Arc;

pub use archiver::{Archiver, ArchiverOptions};
pub use location::{Location, Locations};
pub use read::ParquetArchive;
pub use write::{write_segment, KEY_FIRST, KEY_LAST, KEY_PARTITION, KEY_STREAM};

/// Makes `db` read its archive (SQL scans and record reads) and starts the
/// archiver. The archiver stops when the returned handle is dropped.
pub fn install(db: &brikk_query::Brikk, options: ArchiverOptions) -> crate::Result<Archiver> {
    let archive = Arc::new(ParquetArchive::new(Locations::new(db.store().path())?)?);
    db.store().set_archive_reader(archive.clone());
    db.set_archive_scan(archive.clone());
    Ok(Archiver::start(db.store().clone(), archive, options))
}
