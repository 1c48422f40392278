//! Wiring the archive into a database.

use std::sync::Arc;

use crate::archive::{Archiver, ArchiverOptions, Locations, ParquetArchive};

/// Makes `db` read its archive (SQL scans and record reads) and starts the
/// archiver on the current Tokio runtime. The archiver stops when the
/// returned handle is dropped; reads keep working.
pub fn install(db: &brikk_query::Brikk, options: ArchiverOptions) -> crate::Result<Archiver> {
    let archive = Arc::new(ParquetArchive::new(Locations::new(db.store().path())?)?);
    db.store().set_archive_reader(archive.clone());
    db.set_archive_scan(archive.clone());
    Ok(Archiver::start(db.store().clone(), archive, options))
}
