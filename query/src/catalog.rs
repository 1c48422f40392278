//! How Brikk's objects appear to DataFusion: a schema provider that reads
//! the storage catalog on every lookup, a `TableProvider` per stream with
//! system columns, the scan that turns filters into RocksDB range reads,
//! system tables, and Brikk's amendments to the Postgres catalog.

pub mod archive;
pub mod keyed_table;
pub(crate) mod leaf;
pub mod pg;
pub mod scan;
pub mod schema;
pub mod stream_columns;
pub mod stream_table;
pub mod system;
pub mod time_windows;
pub mod views;

pub use archive::{ArchivePart, ArchiveScan, PartitionArchive, RowGroups};
pub use keyed_table::{KeyScanExec, KeyedTable, TABLE_SYSTEM_COLUMNS};
pub use scan::StreamScanExec;
pub use schema::BrikkSchema;
pub use stream_table::{stream_schema, stream_schema_of, StreamTable, SYSTEM_COLUMNS};
