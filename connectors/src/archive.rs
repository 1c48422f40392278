//! The Parquet archive: where files live, writing a segment, reading files
//! back, and the archiver task. See the crate docs for the life of a segment.

mod archiver;
mod convert;
mod install;
mod location;
mod read;
mod write;

pub use archiver::{Archiver, ArchiverOptions};
pub use install::install;
pub use location::{Location, Locations};
pub use read::ParquetArchive;
pub use write::{write_segment, KEY_FIRST, KEY_LAST, KEY_PARTITION, KEY_STREAM};
