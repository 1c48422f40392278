//! Key layout of every column family.
//!
//! All integers are big-endian so RocksDB's byte order is numeric order and a
//! range scan over keys is a scan over offsets:
//!
//! ```text
//!  cf "log"         stream_id u64 | partition u32 | offset u64      -> chunk of records
//!                   (offset = the chunk's first record; see codec)
//!  cf "time_index"  stream_id u64 | partition u32 | timestamp i64^  -> first offset u64
//!  cf "catalog"     "stream/" name                                  -> StreamDef (JSON)
//!                   "table/" name                                   -> TableDef (JSON)
//!                   "view/" name                                    -> ViewDef (JSON)
//!                   "next_stream_id"                                -> u64
//!  cf "groups"      stream_id u64 | kind u8 | group name | 0x00 | ...
//!                     kind 'd'                                      -> GroupDef (JSON)
//!                     kind 'o' ... partition u32                    -> committed offset u64
//!                     kind 'c' ... partition u32                    -> claim cursor u64
//!                     kind 'l' ... partition u32 | offset u64       -> Claim
//!  cf "archive"     stream_id u64 | partition u32 | first u64       -> ArchivedFile (JSON)
//!                   (the manifest: offsets first..=last of the partition live
//!                   in that Parquet file, not in "log")
//!  cf "tables"      table_id u64 | primary key (memcomparable)      -> version u64 | row
//!  cf "continuous"  "q/", "s/" ...  continuous queries (see the query crate)
//!                   "seq/" table_id u64 | column u32                -> next unreserved i64
//! ```
//! (The primary key encoding is in [`crate::tables::key`]; `version` is the
//! changelog offset of the row's last change.)
//! (`i64^` is the timestamp with its sign bit flipped, so negative values sort
//! first.)

use crate::catalog::{StreamId, TableId};

/// Length of a key in the `log` column family.
pub const LOG_KEY_LEN: usize = 20;

/// The `log` key of the chunk whose first record has `offset`.
pub fn log_key(stream: StreamId, partition: u32, offset: u64) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[0..8].copy_from_slice(&stream.0.to_be_bytes());
    key[8..12].copy_from_slice(&partition.to_be_bytes());
    key[12..20].copy_from_slice(&offset.to_be_bytes());
    key
}

/// The `archive` (manifest) key of the file whose first offset is `first`;
/// laid out like a `log` key, so a partition's files sort by offset.
pub fn manifest_key(stream: StreamId, partition: u32, first: u64) -> [u8; LOG_KEY_LEN] {
    log_key(stream, partition, first)
}

/// Splits a `log` (or `archive`) key back into its parts.
pub fn parse_log_key(key: &[u8]) -> Option<(StreamId, u32, u64)> {
    if key.len() != LOG_KEY_LEN {
        return None;
    }
    let stream = u64::from_be_bytes(key[0..8].try_into().ok()?);
    let partition = u32::from_be_bytes(key[8..12].try_into().ok()?);
    let offset = u64::from_be_bytes(key[12..20].try_into().ok()?);
    Some((StreamId(stream), partition, offset))
}

/// The first key of a stream in `log` or `time_index`.
pub fn stream_start(stream: StreamId) -> Vec<u8> {
    stream.0.to_be_bytes().to_vec()
}

/// The first key after every key of a stream.
pub fn stream_end(stream: StreamId) -> Vec<u8> {
    (stream.0 + 1).to_be_bytes().to_vec()
}

/// The `time_index` key for the first record of a partition at `ts_micros`.
pub fn time_key(stream: StreamId, partition: u32, ts_micros: i64) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[0..8].copy_from_slice(&stream.0.to_be_bytes());
    key[8..12].copy_from_slice(&partition.to_be_bytes());
    key[12..20].copy_from_slice(&((ts_micros as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// Catalog key of a stream definition.
pub fn catalog_stream_key(name: &str) -> Vec<u8> {
    let mut key = b"stream/".to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

/// Catalog key of a table definition.
pub fn catalog_table_key(name: &str) -> Vec<u8> {
    let mut key = CATALOG_TABLE_PREFIX.to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

/// Catalog key prefix of all table definitions.
pub const CATALOG_TABLE_PREFIX: &[u8] = b"table/";

/// Catalog key prefix of all view definitions.
pub const CATALOG_VIEW_PREFIX: &[u8] = b"view/";

/// Catalog key of a view definition.
pub fn catalog_view_key(name: &str) -> Vec<u8> {
    let mut key = CATALOG_VIEW_PREFIX.to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

/// The `tables` key of the row of `table` whose encoded primary key is `pk`.
pub fn row_key(table: TableId, pk: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + pk.len());
    key.extend_from_slice(&table.0.to_be_bytes());
    key.extend_from_slice(pk);
    key
}

/// The first `tables` key of a table, and the first key after all of its rows.
pub fn table_range(table: TableId) -> (Vec<u8>, Vec<u8>) {
    (table.0.to_be_bytes().to_vec(), (table.0 + 1).to_be_bytes().to_vec())
}

/// The `continuous` key of the sequence of identity column `column` of
/// `table` (see [`crate::tables::sequence`]).
pub fn sequence_key(table: TableId, column: usize) -> Vec<u8> {
    let mut key = sequence_prefix(table);
    key.extend_from_slice(&(column as u32).to_be_bytes());
    key
}

/// The prefix of the sequence keys of every identity column of `table`.
pub fn sequence_prefix(table: TableId) -> Vec<u8> {
    let mut key = b"seq/".to_vec();
    key.extend_from_slice(&table.0.to_be_bytes());
    key
}

/// Catalog key prefix of all stream definitions.
pub const CATALOG_STREAM_PREFIX: &[u8] = b"stream/";
/// Catalog key of the stream id allocator.
pub const CATALOG_NEXT_STREAM_ID: &[u8] = b"next_stream_id";

/// What a key of the `groups` column family holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKey {
    /// The group's definition.
    Def,
    /// The committed offset of a partition.
    Offset(u32),
    /// The next never-claimed offset of a partition (work queues).
    Cursor(u32),
    /// A claimed, not yet acknowledged record (work queues).
    Claim(u32, u64),
}

/// The `groups` key of `what` for group `name` of `stream`. Group names
/// never contain NUL (see `GroupDef::validate`), so the terminator is
/// unambiguous.
pub fn group_key(stream: StreamId, name: &str, what: GroupKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + 1 + name.len() + 1 + 12);
    key.extend_from_slice(&stream.0.to_be_bytes());
    key.push(match what {
        GroupKey::Def => b'd',
        GroupKey::Offset(_) => b'o',
        GroupKey::Cursor(_) => b'c',
        GroupKey::Claim(..) => b'l',
    });
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    match what {
        GroupKey::Def => {}
        GroupKey::Offset(p) | GroupKey::Cursor(p) => key.extend_from_slice(&p.to_be_bytes()),
        GroupKey::Claim(p, o) => {
            key.extend_from_slice(&p.to_be_bytes());
            key.extend_from_slice(&o.to_be_bytes());
        }
    }
    key
}

/// Splits a `groups` key into stream, group name and what it holds.
pub fn parse_group_key(key: &[u8]) -> Option<(StreamId, String, GroupKey)> {
    let stream = StreamId(u64::from_be_bytes(key.get(0..8)?.try_into().ok()?));
    let kind = *key.get(8)?;
    let rest = key.get(9..)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let name = std::str::from_utf8(&rest[..nul]).ok()?.to_string();
    let tail = &rest[nul + 1..];
    let u32_at = |i: usize| Some(u32::from_be_bytes(tail.get(i..i + 4)?.try_into().ok()?));
    let what = match (kind, tail.len()) {
        (b'd', 0) => GroupKey::Def,
        (b'o', 4) => GroupKey::Offset(u32_at(0)?),
        (b'c', 4) => GroupKey::Cursor(u32_at(0)?),
        (b'l', 12) => GroupKey::Claim(u32_at(0)?, u64::from_be_bytes(tail[4..12].try_into().ok()?)),
        _ => return None,
    };
    Some((stream, name, what))
}

/// The first and one-past-last `groups` keys of one group.
pub fn group_range(stream: StreamId, name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    [b'c', b'd', b'l', b'o']
        .iter()
        .map(|kind| {
            let mut start = stream.0.to_be_bytes().to_vec();
            start.push(*kind);
            start.extend_from_slice(name.as_bytes());
            start.push(0);
            let mut end = start.clone();
            *end.last_mut().expect("non-empty") = 1;
            (start, end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_stream_partition_offset() {
        let a = log_key(StreamId(1), 0, 255);
        let b = log_key(StreamId(1), 0, 256);
        let c = log_key(StreamId(1), 1, 0);
        let d = log_key(StreamId(2), 0, 0);
        assert!(a < b && b < c && c < d);
        assert_eq!(parse_log_key(&b), Some((StreamId(1), 0, 256)));
        assert!(stream_start(StreamId(1)).as_slice() < &a[..]);
        assert!(&c[..] < stream_end(StreamId(1)).as_slice());
    }

    #[test]
    fn group_keys_round_trip() {
        for what in [GroupKey::Def, GroupKey::Offset(7), GroupKey::Cursor(1), GroupKey::Claim(3, 1041)] {
            let k = group_key(StreamId(9), "workers", what);
            assert_eq!(parse_group_key(&k), Some((StreamId(9), "workers".to_string(), what)));
            assert!(group_range(StreamId(9), "workers")
                .iter()
                .any(|(s, e)| s.as_slice() <= &k[..] && &k[..] < e.as_slice()));
            assert!(!group_range(StreamId(9), "worker")
                .iter()
                .any(|(s, e)| s.as_slice() <= &k[..] && &k[..] < e.as_slice()));
        }
        assert!(
            group_key(StreamId(9), "g", GroupKey::Claim(0, 255)) < group_key(StreamId(9), "g", GroupKey::Claim(0, 256))
        );
    }

    #[test]
    fn time_keys_sort_numerically_across_sign() {
        let neg = time_key(StreamId(1), 0, -5);
        let zero = time_key(StreamId(1), 0, 0);
        let pos = time_key(StreamId(1), 0, 1_700_000_000_000_000);
        assert!(neg < zero && zero < pos);
    }
}
