//! Reading the log: offset range scans (from the tail cache, the live log
//! or, for archived offsets, through the installed [`crate::ArchiveReader`])
//! and timestamp lookups.

use rocksdb::{Direction, IteratorMode, ReadOptions};

use crate::codec::{self, Record, RowLayout};
use crate::error::{Error, Result};
use crate::keys;
use crate::log::stream::StreamHandle;
use crate::store::{Store, CF_LOG, CF_TIME_INDEX};

/// Which chunk of a partition holds a reader's next offset, kept between
/// reads ([`Store::read_into`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChunkHint {
    /// The offset the hint is for.
    pub(crate) next: Option<u64>,
    /// The first offset of the chunk holding it.
    pub(crate) chunk: u64,
}

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
    /// `[from, to)`, in offset order, wherever they are: archived files
    /// first, then the live log. Offsets deleted by retention are skipped.
    ///
    /// `to` is clamped to the partition's committed head, so a scan never
    /// returns a record whose commit has not been acknowledged. A segment
    /// handed over to the archive while this runs is read from its file: no
    /// offset is missed or repeated. An archived file that is missing or
    /// does not hold what the manifest says fails the read with an error
    /// naming it. This is a blocking call (RocksDB and file I/O); async
    /// callers run it on a blocking thread.
    pub fn read(&self, stream: &StreamHandle, partition: u32, from: u64, to: u64, limit: usize) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(limit.min(to.min(stream.head(partition)).saturating_sub(from) as usize));
        self.read_into(stream, partition, from, to, limit, &mut ChunkHint::default(), &mut out)?;
        Ok(out)
    }

    /// [`Store::read`] for a reader that goes on where its last read
    /// stopped, into `sink`, which takes each record as the log holds it
    /// (or, from an archive file, decoded) instead of as a [`Record`].
    /// Returns the offset of the last record taken, if any; on error the
    /// sink may hold part of the read.
    ///
    /// `hint` (from the last read) says which chunk holds `from`, so the
    /// live log is entered with a forward seek instead of a backward one; a
    /// stale or empty hint only costs the backward seek. On return `hint`
    /// points at the chunk holding the offset after the last record read.
    #[allow(clippy::too_many_arguments)] // a range, where it starts in the log, where it goes
    pub fn read_into(
        &self,
        stream: &StreamHandle,
        partition: u32,
        from: u64,
        to: u64,
        limit: usize,
        hint: &mut ChunkHint,
        sink: &mut impl RecordSink,
    ) -> Result<Option<u64>> {
        let to = to.min(stream.head(partition));
        let mut take =
            Take { stream, partition, hint, next: from, to, limit, out: sink, taken: 0, last: None, first: None };
        while !take.done() {
            let from = take.next;
            let live_low = stream.live_low(partition);
            if from < live_low {
                let Some(file) = stream.archived_file(partition, from) else {
                    // Dropped by retention: continue at the next stored offset.
                    let files = stream.archived(partition);
                    take.next = files.iter().map(|f| f.first).find(|f| *f > from).unwrap_or(live_low).min(live_low);
                    continue;
                };
                let end = to.min(file.last + 1);
                let want = (limit - take.taken).min((end - from) as usize);
                let reader = self.archive_reader().ok_or_else(|| {
                    Error::ArchiveUnavailable(format!(
                        "offsets {}..={} of stream \"{}\" are archived and no archive reader is installed",
                        file.first, file.last, stream.def.name
                    ))
                })?;
                let records = reader.read(&stream.def, &file, from, end, want)?;
                let dense =
                    records.len() == want && records.iter().enumerate().all(|(i, r)| r.offset == from + i as u64);
                if !dense {
                    return Err(Error::ArchiveCorrupt {
                        file: file.path.clone(),
                        detail: format!("expected offsets {from}..{} of partition {partition}", from + want as u64),
                    });
                }
                take.next += want as u64;
                take.taken += want;
                take.last = records.last().map(|r| r.offset);
                take.out.push_records(records);
                continue;
            }
            let (before, last) = (take.taken, take.last);
            take.first = None;
            self.read_live(&mut take)?;
            let moved = take.first.is_none_or(|o| o > from)
                && stream.live_low(partition) > from
                && stream.archived_file(partition, from).is_some();
            if moved {
                // Handed over meanwhile: read it from its file.
                take.out.drop_last(take.taken - before);
                (take.taken, take.last) = (before, last);
                take.next = from;
                continue;
            }
            break;
        }
        Ok(take.last)
    }

    /// Goes on with `take` in the live log: from the tail cache as far as it
    /// holds the offsets wanted, the rest from RocksDB.
    fn read_live<S: RecordSink>(&self, take: &mut Take<'_, S>) -> Result<()> {
        let (stream, partition, from) = (take.stream, take.partition, take.next);
        for chunk in stream.tail(partition).covering(from, take.to) {
            if let Some(stop) = take.chunk(chunk.first, &chunk.bytes)? {
                *take.hint = ChunkHint { next: Some(stop), chunk: chunk.first };
                return Ok(());
            }
        }
        if take.next > from {
            // Chunks are dense: the next record starts the next chunk.
            *take.hint = ChunkHint { next: Some(take.next), chunk: take.next };
        }
        if !take.done() {
            self.read_log(take)?;
        }
        Ok(())
    }

    /// Goes on with `take` from RocksDB, entering the log where `hint` says
    /// if it is for `take.next`.
    fn read_log<S: RecordSink>(&self, take: &mut Take<'_, S>) -> Result<()> {
        let (stream, partition, from) = (take.stream, take.partition, take.next);
        let id = stream.def.id;
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::log_key(id, partition, take.to).to_vec());
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_LOG), opts);
        // Start at the chunk that holds `from`, which may begin before it:
        // where the hint says, else found looking backwards. One iterator
        // serves both the look and the scan.
        let hinted = take.hint.next == Some(from) && take.hint.chunk <= from;
        if hinted {
            it.seek(keys::log_key(id, partition, take.hint.chunk));
        }
        if !hinted || chunk_holding(&it, stream, partition, from)?.is_none() {
            it.seek_for_prev(keys::log_key(id, partition, from));
            if chunk_holding(&it, stream, partition, from)?.is_none() {
                it.seek(keys::log_key(id, partition, from));
            }
        }
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let (_, _, first) = keys::parse_log_key(key).ok_or_else(|| Error::Corrupt("malformed log key".into()))?;
            if let Some(stop) = take.chunk(first, value)? {
                *take.hint = ChunkHint { next: Some(stop), chunk: first };
                return Ok(());
            }
            it.next();
        }
        if take.next > from {
            *take.hint = ChunkHint { next: Some(take.next), chunk: take.next };
        }
        it.status()?;
        Ok(())
    }

    /// The chunk of `partition` that holds `offset`, if it is stored.
    pub(crate) fn chunk_containing(
        &self,
        stream: &StreamHandle,
        partition: u32,
        offset: u64,
    ) -> Result<Option<ChunkInfo>> {
        let mut it = self.db().raw_iterator_cf(self.cf(CF_LOG));
        it.seek_for_prev(keys::log_key(stream.def.id, partition, offset));
        let Some((first, chunk)) = chunk_holding(&it, stream, partition, offset)? else {
            it.status()?;
            return Ok(None);
        };
        let timestamp = match codec::chunk_iter(first, chunk)?.next() {
            Some(record) => codec::timestamp_of(record?.1)?,
            None => i64::MIN,
        };
        Ok(Some(ChunkInfo { first, count: codec::chunk_len(chunk)?, timestamp }))
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

/// Where a read puts the records it finds ([`Store::read_into`]): a
/// `Vec<Record>`, or a reader that builds its own representation straight
/// from the encoded bytes (the query layer's Arrow columns).
pub trait RecordSink {
    /// Takes the record at `offset`, encoded as the log holds it: decode it
    /// with [`codec::decode_fields`] and `layout`.
    fn push_encoded(&mut self, layout: &RowLayout, offset: u64, record: &[u8]) -> Result<()>;
    /// Takes records read, already decoded, from an archive file.
    fn push_records(&mut self, records: Vec<Record>);
    /// Forgets the last `n` records it took (part of a read that is redone
    /// from elsewhere).
    fn drop_last(&mut self, n: usize);
}

impl RecordSink for Vec<Record> {
    fn push_encoded(&mut self, layout: &RowLayout, offset: u64, record: &[u8]) -> Result<()> {
        self.push(codec::decode_record(layout, offset, record)?);
        Ok(())
    }

    fn push_records(&mut self, records: Vec<Record>) {
        self.extend(records);
    }

    fn drop_last(&mut self, n: usize) {
        self.truncate(self.len() - n);
    }
}

/// A read in progress: records of one partition with offsets from `next`
/// up to `to`, until `limit` are taken; whoever adds records to `out` moves
/// `next` past them and counts them in `taken`, and leaves `hint` at the
/// chunk holding `next`.
struct Take<'a, S> {
    stream: &'a StreamHandle,
    partition: u32,
    hint: &'a mut ChunkHint,
    next: u64,
    to: u64,
    limit: usize,
    out: &'a mut S,
    /// Records given to `out` by this read.
    taken: usize,
    /// The offset of the last of them.
    last: Option<u64>,
    /// The offset of the first record taken from the live log since this
    /// was last cleared.
    first: Option<u64>,
}

impl<'a, S: RecordSink> Take<'a, S> {
    /// Whether the read has all it asked for.
    fn done(&self) -> bool {
        self.next >= self.to || self.taken >= self.limit
    }

    /// Takes the records the read wants from the chunk starting at `first`.
    /// Returns the offset it stopped at when the chunk still holds the
    /// read's next record (the read is done inside it), else `None`.
    fn chunk(&mut self, first: u64, chunk: &[u8]) -> Result<Option<u64>> {
        for item in codec::chunk_iter(first, chunk)? {
            let (offset, rec) = item?;
            if offset < self.next {
                continue;
            }
            if offset >= self.to || self.taken >= self.limit {
                return Ok(Some(offset));
            }
            self.out.push_encoded(self.stream.layout(), offset, rec)?;
            self.first.get_or_insert(offset);
            self.last = Some(offset);
            self.taken += 1;
            self.next = offset + 1;
        }
        Ok(None)
    }
}

/// The chunk under `it` as (first offset, bytes), if it is a chunk of
/// `partition` that holds `offset` (`it` placed by a `seek_for_prev` to
/// `offset`'s key).
fn chunk_holding<'a>(
    it: &'a rocksdb::DBRawIterator<'_>,
    stream: &StreamHandle,
    partition: u32,
    offset: u64,
) -> Result<Option<(u64, &'a [u8])>> {
    let (Some(key), Some(value)) = (it.key(), it.value()) else {
        return Ok(None);
    };
    match keys::parse_log_key(key) {
        Some((s, p, first)) if s == stream.def.id && p == partition && offset < first + codec::chunk_len(value)? => {
            Ok(Some((first, value)))
        }
        _ => Ok(None),
    }
}
