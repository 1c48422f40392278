//! Sealing: which prefix of a partition's live log is ready to leave it.

use rocksdb::{Direction, IteratorMode, ReadOptions};

use crate::codec;
use crate::error::{Error, Result};
use crate::keys;
use crate::log::stream::StreamHandle;
use crate::store::{Store, CF_LOG};

/// A sealed segment: offsets `first..=last` of one partition, whole chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub partition: u32,
    pub first: u64,
    pub last: u64,
    pub rows: u64,
    /// Encoded size of its records in the live log.
    pub bytes: u64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
}

/// One chunk of the live log, as the sealing walk sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkMeta {
    pub first: u64,
    pub count: u64,
    pub bytes: u64,
    pub timestamp: i64,
}

/// What the sealing walk has learnt about one partition's open segment, so
/// the next call reads only the chunks appended since. Owned by the caller
/// (the archiver), one per partition; a fresh `Default` is always correct.
#[derive(Debug, Default, Clone)]
pub struct SealState {
    first: u64,
    walked_to: u64,
    chunks: Vec<ChunkMeta>,
    rows: u64,
    bytes: u64,
    full: bool,
}

impl Store {
    /// The oldest sealed segment of `partition`'s live log, or `None` if
    /// nothing is sealed yet. Only for streams with an archive.
    ///
    /// The segment starts at the partition's live low and ends at a chunk
    /// boundary. It is sealed when it is full (`segment_rows` records or
    /// `segment_bytes` bytes; a single larger chunk is a segment of its
    /// own), when its first record is older than `segment_age`, or when the
    /// stream's `retention` / `retention_bytes` expire it (then only the
    /// expired prefix is sealed). Blocking (RocksDB reads of the chunks
    /// appended since the last call with the same `state`).
    pub fn sealed_segment(
        &self,
        stream: &StreamHandle,
        partition: u32,
        now_micros: i64,
        state: &mut SealState,
    ) -> Result<Option<Segment>> {
        let Some(policy) = stream.def.archive.as_ref() else { return Ok(None) };
        let (low, head) = (stream.live_low(partition), stream.head(partition));
        if low >= head {
            return Ok(None);
        }
        if state.first != low || state.walked_to < low {
            *state = SealState { first: low, walked_to: low, ..SealState::default() };
        }
        if !state.full && state.walked_to < head {
            let st = &mut *state;
            self.walk_chunks(stream, partition, st.walked_to, head, |c| {
                if !st.chunks.is_empty()
                    && (st.rows + c.count > policy.segment_rows || st.bytes + c.bytes > policy.segment_bytes)
                {
                    st.full = true;
                    return false;
                }
                st.rows += c.count;
                st.bytes += c.bytes;
                st.walked_to = c.first + c.count;
                st.chunks.push(c);
                if st.rows >= policy.segment_rows || st.bytes >= policy.segment_bytes {
                    st.full = true;
                    return false;
                }
                true
            })?;
        }
        let chunks = &state.chunks;
        let Some(first) = chunks.first().copied() else { return Ok(None) };
        let aged = policy.segment_age_micros.is_some_and(|age| now_micros.saturating_sub(first.timestamp) >= age);
        let take = if state.full || aged {
            chunks.len()
        } else {
            // Only the prefix that retention expires.
            let expire_before = stream.def.retention_micros.map(|r| now_micros.saturating_sub(r));
            let by_age = expire_before.map_or(0, |cut| chunks.iter().take_while(|c| c.timestamp < cut).count());
            let must_free =
                stream.def.retention_bytes.map(|b| stream.live_bytes(partition).saturating_sub(b)).unwrap_or(0);
            let mut freed = 0;
            let by_size = chunks
                .iter()
                .take_while(|c| {
                    let more = freed < must_free;
                    freed += c.bytes;
                    more
                })
                .count();
            by_age.max(by_size)
        };
        if take == 0 {
            return Ok(None);
        }
        let taken = &chunks[..take];
        let last = taken[take - 1];
        Ok(Some(Segment {
            partition,
            first: first.first,
            last: last.first + last.count - 1,
            rows: taken.iter().map(|c| c.count).sum(),
            bytes: taken.iter().map(|c| c.bytes).sum(),
            min_timestamp: first.timestamp,
            max_timestamp: last.timestamp,
        }))
    }

    /// Calls `f` for each chunk of `partition` in `[from, to)`, oldest
    /// first, until it returns false.
    pub(crate) fn walk_chunks(
        &self,
        stream: &StreamHandle,
        partition: u32,
        from: u64,
        to: u64,
        mut f: impl FnMut(ChunkMeta) -> bool,
    ) -> Result<()> {
        let id = stream.def.id;
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::log_key(id, partition, to).to_vec());
        let begin = keys::log_key(id, partition, from);
        let iter = self.db().iterator_cf_opt(self.cf(CF_LOG), opts, IteratorMode::From(&begin, Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            let (_, _, first) = keys::parse_log_key(&key).ok_or_else(|| Error::Corrupt("malformed log key".into()))?;
            let records = codec::chunk_records(first, &value)?;
            let timestamp = match records.first() {
                Some((_, rec)) => codec::timestamp_of(rec)?,
                None => continue,
            };
            let meta = ChunkMeta { first, count: records.len() as u64, bytes: value.len() as u64, timestamp };
            if !f(meta) {
                break;
            }
        }
        Ok(())
    }

    /// Encoded bytes of `partition`'s chunks in `[from, to)`.
    pub(crate) fn chunk_bytes(&self, stream: &StreamHandle, partition: u32, from: u64, to: u64) -> Result<u64> {
        let mut total = 0;
        self.walk_chunks(stream, partition, from, to, |c| {
            total += c.bytes;
            true
        })?;
        Ok(total)
    }
}
