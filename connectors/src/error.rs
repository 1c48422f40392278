//! The connectors crate's error type.

/// What can go wrong moving data to or from the archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A location or option that cannot be used (bad URL, unsupported scheme).
    #[error("{0}")]
    InvalidInput(String),
    /// The file or object store failed.
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
    /// Writing Parquet failed.
    #[error("writing {path}: {detail}")]
    Write { path: String, detail: String },
    /// The storage engine refused or failed.
    #[error(transparent)]
    Storage(#[from] brikk_storage::Error),
}

/// Result alias for the connectors crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
