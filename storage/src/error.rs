//! The storage crate's error type.

/// Everything that can go wrong below the query layer.
///
/// Variants are named by meaning, so the layers above can map each one to a
/// client-facing code without inspecting messages.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The caller asked for something malformed (bad option, bad value).
    #[error("{0}")]
    InvalidInput(String),
    /// An identity column's sequence has no value left for its type.
    #[error("{0}")]
    SequenceLimit(String),
    /// A named object (stream, partition) does not exist.
    #[error("{kind} \"{name}\" does not exist")]
    NotFound { kind: &'static str, name: String },
    /// `ALTER TABLE … ADD COLUMN … NOT NULL` without a default, on a
    /// relation that has rows: they would hold NULL there.
    #[error("column \"{column}\" of relation \"{relation}\" contains null values")]
    NullsInColumn { relation: String, column: String },
    /// A named object already exists.
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// The request lost a race it cannot win by retrying as is: a group
    /// was rebalanced or reset under it. Fetch again and retry.
    #[error("{0}")]
    Conflict(String),
    /// A row write's expectation did not hold when it was to commit: the
    /// row changed (or appeared, or went) since the writer read it. Nothing
    /// of the write set was applied; re-read and retry.
    #[error("could not serialize access due to concurrent update of a row of \"{table}\"")]
    RowConflict {
        table: String,
        /// Whether the row exists now (an INSERT that expected no row finds one).
        exists: bool,
    },
    /// The object is not in a state that allows the request (not a member,
    /// not the holder of a claim, wrong group mode).
    #[error("{0}")]
    WrongState(String),
    /// The store is shutting down or has been closed; nothing was written.
    #[error("the database is shutting down")]
    Unavailable,
    /// RocksDB reported an I/O or corruption error. A write that fails with
    /// this error was not applied.
    #[error("storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    /// RocksDB reported an error through a call of its C API that
    /// `rocksdb` does not wrap (see the `engine` module).
    #[error("storage error: {0}")]
    Engine(String),
    /// The group write this request was part of failed; nothing of it was
    /// applied.
    #[error("write failed: {0}")]
    WriteFailed(String),
    /// Bytes on disk do not decode: a bug or corruption, never user input.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A file the archive manifest names is not there.
    #[error("archive file \"{file}\" is missing: {detail}")]
    ArchiveMissing { file: String, detail: String },
    /// An archived file does not decode, or does not hold the offsets the
    /// manifest says it holds.
    #[error("archive file \"{file}\" is corrupt: {detail}")]
    ArchiveCorrupt { file: String, detail: String },
    /// Archived offsets were asked for and the archive cannot be read (no
    /// reader installed, object store unreachable).
    #[error("archive unavailable: {0}")]
    ArchiveUnavailable(String),
}

/// Result alias for the storage crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
