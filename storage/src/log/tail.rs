//! The log's tail in memory: the chunks committed most recently, kept so
//! that readers who keep up with the writers (consumer groups' FETCH,
//! LISTEN's change feed, continuous queries) read them without a RocksDB
//! iterator.
//!
//! ```text
//!  committer ── write (synced) ──▶ Tail::push ──▶ publish head ──▶ readers
//!       │                              ▲                             │
//!       └── TailBudget: oldest first ──┘         Tail::covering ◀────┘
//! ```
//!
//! Each partition keeps its cached chunks in offset order, contiguous, and
//! ending at the partition's committed head: the committer pushes a chunk
//! after the write that made it durable and before it publishes the head,
//! so every offset a reader may see is either in the cache or older than
//! its first chunk (then the reader goes to RocksDB). The committer is the
//! only writer; it also evicts, oldest chunk first across all partitions,
//! once the cached bytes pass the budget ([`TailBudget`]), and drops what
//! retention, the archive or `DROP STREAM` removed from the log. Nothing here
//! is durable: after a restart the cache fills again from new appends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::log::stream::StreamHandle;

/// Bytes of encoded chunks the tail cache holds by default, over all
/// streams: at the 100-byte records of the benchmarks, the last ≈600k
/// records (`brikk serve --tail-cache-mb`, [`crate::store::StoreOptions`]).
pub const DEFAULT_TAIL_CACHE_BYTES: usize = 64 << 20;

/// One cached chunk: its first offset, record count and encoded bytes (as
/// stored under its log key, see [`crate::codec`]).
#[derive(Debug, Clone)]
pub(crate) struct TailChunk {
    pub first: u64,
    pub count: u64,
    pub bytes: Arc<Vec<u8>>,
}

impl TailChunk {
    /// One past the chunk's last offset.
    pub fn end(&self) -> u64 {
        self.first + self.count
    }
}

/// The cached tail of one partition.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    chunks: Mutex<VecDeque<TailChunk>>,
}

impl Tail {
    /// Appends a chunk the committer has just made durable. A chunk that does
    /// not continue the cached ones (the first after a restart, or after the
    /// partition's tail was evicted or cleared) starts the tail afresh.
    pub fn push(&self, chunk: TailChunk) {
        let mut chunks = self.chunks.lock().expect("tail lock");
        if chunks.back().is_some_and(|last| last.end() != chunk.first) {
            chunks.clear();
        }
        chunks.push_back(chunk);
    }

    /// Drops the oldest chunk if it is the one starting at `first` (it may
    /// have gone already: trimmed, cleared or replaced).
    pub fn evict(&self, first: u64) {
        let mut chunks = self.chunks.lock().expect("tail lock");
        if chunks.front().is_some_and(|c| c.first == first) {
            chunks.pop_front();
        }
    }

    /// Drops the chunks that end at or below `low` (deleted by retention or
    /// handed over to the archive).
    pub fn trim(&self, low: u64) {
        let mut chunks = self.chunks.lock().expect("tail lock");
        while chunks.front().is_some_and(|c| c.end() <= low) {
            chunks.pop_front();
        }
    }

    /// The first cached offset, if any chunk is cached.
    pub fn first(&self) -> Option<u64> {
        self.chunks.lock().expect("tail lock").front().map(|c| c.first)
    }

    /// Drops every chunk.
    pub fn clear(&self) {
        self.chunks.lock().expect("tail lock").clear();
    }

    /// The cached chunks holding offsets `from..to`, in order, starting with
    /// the one that holds `from`; empty when `from` is not cached. They may
    /// end before `to` (the rest is not cached yet). The lock is held only
    /// to clone the chunks' handles.
    pub fn covering(&self, from: u64, to: u64) -> Vec<TailChunk> {
        let chunks = self.chunks.lock().expect("tail lock");
        let (Some(front), Some(back)) = (chunks.front(), chunks.back()) else {
            return Vec::new();
        };
        if from < front.first || from >= back.end() {
            return Vec::new();
        }
        let start = chunks.partition_point(|c| c.end() <= from);
        chunks.range(start..).take_while(|c| c.first < to).cloned().collect()
    }
}

/// The committer's account of the cached bytes: every chunk it cached, oldest
/// first, and their total size. Past `limit` it evicts the oldest.
///
/// The account may name chunks the cache has dropped already (trimmed or
/// cleared); they count until their turn comes, so the cache never holds
/// more than `limit` bytes.
#[derive(Debug)]
pub(crate) struct TailBudget {
    order: VecDeque<(Arc<StreamHandle>, u32, u64, usize)>,
    bytes: usize,
    limit: usize,
}

impl TailBudget {
    pub fn new(limit: usize) -> TailBudget {
        TailBudget { order: VecDeque::new(), bytes: 0, limit }
    }

    /// Caches `chunk` of `partition` of `stream`, evicting the oldest chunks
    /// while the total is above the limit. A chunk larger than the whole
    /// budget is not cached.
    pub fn push(&mut self, stream: &Arc<StreamHandle>, partition: u32, chunk: TailChunk) {
        let size = chunk.bytes.len();
        if size > self.limit {
            stream.tail(partition).clear();
            return;
        }
        let first = chunk.first;
        stream.tail(partition).push(chunk);
        self.order.push_back((stream.clone(), partition, first, size));
        self.bytes += size;
        while self.bytes > self.limit {
            let Some((s, p, first, size)) = self.order.pop_front() else { break };
            s.tail(p).evict(first);
            self.bytes -= size;
        }
    }

    /// Cached bytes, counting chunks dropped but not yet evicted.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(first: u64, count: u64, size: usize) -> TailChunk {
        TailChunk { first, count, bytes: Arc::new(vec![0; size]) }
    }

    fn firsts(tail: &Tail, from: u64, to: u64) -> Vec<u64> {
        tail.covering(from, to).iter().map(|c| c.first).collect()
    }

    #[test]
    fn covering_starts_at_the_chunk_holding_from() {
        let tail = Tail::default();
        tail.push(chunk(10, 5, 1));
        tail.push(chunk(15, 1, 1));
        tail.push(chunk(16, 4, 1));
        assert_eq!(firsts(&tail, 9, 20), Vec::<u64>::new(), "older than the cache");
        assert_eq!(firsts(&tail, 10, 20), vec![10, 15, 16]);
        assert_eq!(firsts(&tail, 14, 16), vec![10, 15]);
        assert_eq!(firsts(&tail, 15, 16), vec![15]);
        assert_eq!(firsts(&tail, 17, 30), vec![16]);
        assert_eq!(firsts(&tail, 20, 30), Vec::<u64>::new(), "not cached yet");
    }

    #[test]
    fn a_gap_starts_the_tail_afresh_and_trim_drops_what_the_log_lost() {
        let tail = Tail::default();
        tail.push(chunk(0, 5, 1));
        tail.push(chunk(5, 5, 1));
        tail.push(chunk(20, 5, 1));
        assert_eq!(firsts(&tail, 0, 30), Vec::<u64>::new());
        assert_eq!(firsts(&tail, 20, 30), vec![20]);
        tail.push(chunk(25, 5, 1));
        tail.trim(25);
        assert_eq!(firsts(&tail, 20, 30), Vec::<u64>::new());
        assert_eq!(firsts(&tail, 25, 30), vec![25]);
        tail.evict(20); // gone already: nothing happens
        assert_eq!(firsts(&tail, 25, 30), vec![25]);
        tail.clear();
        assert_eq!(firsts(&tail, 25, 30), Vec::<u64>::new());
    }

    #[test]
    fn the_budget_evicts_the_oldest_chunks_of_any_partition() {
        use crate::log::stream::PartitionInit;
        let def = crate::tests::def("s", 2);
        let h = Arc::new(StreamHandle::new(def, vec![PartitionInit::empty(), PartitionInit::empty()]));
        let mut budget = TailBudget::new(100);
        budget.push(&h, 0, chunk(0, 1, 40));
        budget.push(&h, 1, chunk(0, 1, 40));
        budget.push(&h, 0, chunk(1, 1, 40)); // 120 bytes: partition 0's first goes
        assert_eq!(budget.bytes(), 80);
        assert_eq!(firsts(h.tail(0), 0, 2), Vec::<u64>::new());
        assert_eq!(firsts(h.tail(0), 1, 2), vec![1]);
        assert_eq!(firsts(h.tail(1), 0, 1), vec![0]);
        budget.push(&h, 1, chunk(1, 1, 200)); // larger than the budget: not cached
        assert_eq!(firsts(h.tail(1), 0, 2), Vec::<u64>::new());
        assert_eq!(budget.bytes(), 80);
    }
}
