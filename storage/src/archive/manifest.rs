//! Manifest entries: which offsets of a partition live in which file.

use std::collections::HashMap;

use rocksdb::DB;
use serde::{Deserialize, Serialize};

use crate::catalog::StreamId;
use crate::error::{Error, Result};
use crate::keys;
use crate::store::CF_ARCHIVE;

/// One archived file: offsets `first..=last` of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedFile {
    pub partition: u32,
    /// First offset in the file.
    pub first: u64,
    /// Last offset in the file (inclusive).
    pub last: u64,
    /// Path relative to the stream's archive root; see [`file_path`].
    pub path: String,
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Commit timestamps of the first and last record (µs since the epoch).
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// Encoded size of the records in the live log before the hand-over.
    pub live_bytes: u64,
    /// When the file was written (µs since the epoch).
    pub archived_at: i64,
}

impl ArchivedFile {
    /// Whether `offset` is in this file.
    pub fn contains(&self, offset: u64) -> bool {
        self.first <= offset && offset <= self.last
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("ArchivedFile serializes")
    }

    fn from_bytes(bytes: &[u8]) -> Result<ArchivedFile> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("archive manifest entry: {e}")))
    }
}

/// The relative path of a partition segment's file:
/// `<stream>/<partition>/<first>-<last>.parquet`. Bytes other than ASCII
/// letters, digits, `_`, `-` and `.` (not first) in the stream name are
/// written as `~XX` (hex), so every name maps to one directory and no
/// object store or URL decodes it into another.
pub fn file_path(stream: &str, partition: u32, first: u64, last: u64) -> String {
    format!("{}/{partition}/{first}-{last}.parquet", stream_dir(stream))
}

/// The directory of a stream's files under its archive root (see
/// [`file_path`]).
pub fn stream_dir(stream: &str) -> String {
    let mut name = String::with_capacity(stream.len());
    for b in stream.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && !name.is_empty()) {
            name.push(b as char);
        } else {
            name.push_str(&format!("~{b:02X}"));
        }
    }
    name
}

/// A sealed segment's file, ready to replace the segment in the live log.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    pub stream: StreamId,
    pub file: ArchivedFile,
}

/// Every manifest entry, by stream and partition, in offset order.
pub(crate) fn load_manifest(db: &DB) -> Result<HashMap<(StreamId, u32), Vec<ArchivedFile>>> {
    let cf = db.cf_handle(CF_ARCHIVE).expect("archive cf");
    let mut out: HashMap<(StreamId, u32), Vec<ArchivedFile>> = HashMap::new();
    for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (key, value) = item?;
        let (stream, partition, first) =
            keys::parse_log_key(&key).ok_or_else(|| Error::Corrupt("malformed archive manifest key".into()))?;
        let file = ArchivedFile::from_bytes(&value)?;
        if file.partition != partition || file.first != first {
            return Err(Error::Corrupt(format!("archive manifest entry for {} is filed under another key", file.path)));
        }
        out.entry((stream, partition)).or_default().push(file);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_follow_the_layout_and_escape_names() {
        assert_eq!(file_path("bids", 3, 0, 999), "bids/3/0-999.parquet");
        assert_eq!(file_path("a/b c", 0, 1, 2), "a~2Fb~20c/0/1-2.parquet");
        assert_eq!(file_path("..", 0, 1, 2), "~2E./0/1-2.parquet");
    }
}
