//! The in-memory face of a stream: its definition and committed heads.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::catalog::{ColumnType, StreamDef};
use crate::log::hash::partition_for_key;

/// A stream as readers and writers see it in memory.
///
/// `heads[p]` is the committed end offset of partition `p`: every offset
/// below it is durable and readable, none at or above it is visible. Only the
/// committer thread advances it, after the write that made the records
/// durable has returned.
#[derive(Debug)]
pub struct StreamHandle {
    pub def: StreamDef,
    types: Vec<ColumnType>,
    heads: Vec<AtomicU64>,
    lows: Vec<AtomicU64>,
    last_ts: Vec<AtomicI64>,
    round_robin: AtomicU64,
    dropped: AtomicBool,
    appended: tokio::sync::Notify,
}

impl StreamHandle {
    pub(crate) fn new(def: StreamDef, heads: Vec<u64>, lows: Vec<u64>, last_ts: Vec<i64>) -> StreamHandle {
        let types = def.columns.iter().map(|c| c.ty).collect();
        StreamHandle {
            types,
            lows: lows.into_iter().map(AtomicU64::new).collect(),
            heads: heads.into_iter().map(AtomicU64::new).collect(),
            last_ts: last_ts.into_iter().map(AtomicI64::new).collect(),
            round_robin: AtomicU64::new(0),
            dropped: AtomicBool::new(false),
            appended: tokio::sync::Notify::new(),
            def,
        }
    }

    /// Column types in definition order.
    pub fn types(&self) -> &[ColumnType] {
        &self.types
    }

    /// Committed end offset (one past the last durable record) of `partition`.
    pub fn head(&self, partition: u32) -> u64 {
        self.heads[partition as usize].load(Ordering::Acquire)
    }

    /// First offset of `partition` still stored: 0 until retention deletes
    /// older records.
    pub fn low(&self, partition: u32) -> u64 {
        self.lows[partition as usize].load(Ordering::Acquire)
    }

    pub(crate) fn set_low(&self, partition: u32, low: u64) {
        self.lows[partition as usize].fetch_max(low, Ordering::AcqRel);
    }

    /// Committed end offsets of all partitions.
    pub fn heads(&self) -> Vec<u64> {
        self.heads.iter().map(|h| h.load(Ordering::Acquire)).collect()
    }

    /// Commit timestamp of the newest record of `partition` (`i64::MIN` if empty).
    pub fn last_timestamp(&self, partition: u32) -> i64 {
        self.last_ts[partition as usize].load(Ordering::Acquire)
    }

    pub(crate) fn publish(&self, partition: u32, head: u64, last_ts: i64) {
        self.last_ts[partition as usize].store(last_ts, Ordering::Release);
        self.heads[partition as usize].store(head, Ordering::Release);
    }

    /// The partition a new record goes to: by key hash when the stream is
    /// keyed and the key is not NULL, otherwise round-robin.
    pub fn choose_partition(&self, key: Option<&[u8]>) -> u32 {
        match key {
            Some(k) if self.def.key_column.is_some() => partition_for_key(k, self.def.partitions),
            _ => (self.round_robin.fetch_add(1, Ordering::Relaxed) % self.def.partitions as u64) as u32,
        }
    }

    /// Whether the stream has been dropped since this handle was taken.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    pub(crate) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
        self.appended.notify_waiters();
    }

    /// Resolves after the next commit that appends to this stream (or drops it).
    ///
    /// Register interest with `notified()` *before* checking the heads, so an
    /// append between the check and the wait is not missed.
    pub fn appended(&self) -> &tokio::sync::Notify {
        &self.appended
    }
}
