//! Reading the log: offset range scans and timestamp lookups.

use rocksdb::{Direction, IteratorMode, ReadOptions};

use crate::codec::{self, Record};
use crate::error::{Error, Result};
use crate::keys;
use crate::log::stream::StreamHandle;
use crate::store::{Store, CF_LOG, CF_TIME_INDEX};

/// Where a chunk sits: its first offset, its record count, and the commit
/// timestamp of its records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ChunkInfo {
    pub first: u64,
    pub count: u64,
    pub timestamp: i64,
}

impl Store {
    /// Reads up to `limit` records of one partition with offsets in
    /// `[from, to)`, in offset order.
    ///
    /// `to` is clamped to the partition's committed head, so a scan never
    /// returns a record whose commit has not been acknowledged. This is a
    /// blocking call (RocksDB I/O); async callers run it on a blocking thread.
    pub fn read(&self, stream: &StreamHandle, partition: u32, from: u64, to: u64, limit: usize) -> Result<Vec<Record>> {
        let to = to.min(stream.head(partition));
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let id = stream.def.id;
        // Start at the chunk that holds `from`, which may begin before it.
        let start = match self.chunk_containing(stream, partition, from)? {
            Some(c) => c.first,
            None => from,
        };
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::log_key(id, partition, to).to_vec());
        let begin = keys::log_key(id, partition, start);
        let iter = self.db().iterator_cf_opt(self.cf(CF_LOG), opts, IteratorMode::From(&begin, Direction::Forward));
        let mut out = Vec::with_capacity(limit.min((to - from) as usize));
        for item in iter {
            let (key, value) = item?;
            let (_, _, first) = keys::parse_log_key(&key).ok_or_else(|| Error::Corrupt("malformed log key".into()))?;
            for (offset, rec) in codec::chunk_records(first, &value)? {
                if offset < from {
                    continue;
                }
                if offset >= to || out.len() >= limit {
                    return Ok(out);
                }
                out.push(codec::decode_record(stream.types(), offset, rec)?);
            }
        }
        Ok(out)
    }

    /// The chunk of `partition` that holds `offset`, if it is stored.
    pub(crate) fn chunk_containing(
        &self,
        stream: &StreamHandle,
        partition: u32,
        offset: u64,
    ) -> Result<Option<ChunkInfo>> {
        let id = stream.def.id;
        let mut it = self.db().raw_iterator_cf(self.cf(CF_LOG));
        it.seek_for_prev(keys::log_key(id, partition, offset));
        let (Some(key), Some(value)) = (it.key(), it.value()) else {
            it.status()?;
            return Ok(None);
        };
        match keys::parse_log_key(key) {
            Some((s, p, first)) if s == id && p == partition => {
                let count = codec::chunk_len(value)?;
                if offset >= first + count {
                    return Ok(None);
                }
                let timestamp = match codec::chunk_records(first, value)?.first() {
                    Some((_, rec)) => codec::timestamp_of(rec)?,
                    None => i64::MIN,
                };
                Ok(Some(ChunkInfo { first, count, timestamp }))
            }
            _ => Ok(None),
        }
    }

    /// The first offset of `partition` whose commit timestamp is at or after
    /// `ts_micros`; the partition's head if there is none.
    ///
    /// Exact, because timestamps never decrease along a partition and the
    /// time index holds the first offset of every distinct timestamp.
    pub fn offset_for_timestamp(&self, stream: &StreamHandle, partition: u32, ts_micros: i64) -> Result<u64> {
        let id = stream.def.id;
        let head = stream.head(partition);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::time_key(id, partition, i64::MAX).to_vec());
        let start = keys::time_key(id, partition, ts_micros);
        let mut iter =
            self.db().iterator_cf_opt(self.cf(CF_TIME_INDEX), opts, IteratorMode::From(&start, Direction::Forward));
        match iter.next() {
            Some(item) => {
                let (_, value) = item?;
                let bytes: [u8; 8] =
                    value.as_ref().try_into().map_err(|_| Error::Corrupt("malformed time index entry".into()))?;
                Ok(u64::from_be_bytes(bytes).min(head))
            }
            None => Ok(head),
        }
    }
}
