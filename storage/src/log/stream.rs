//! The in-memory face of a stream: its definition and committed heads.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::archive::ArchivedFile;
use crate::catalog::{ColumnType, StreamDef};
use crate::codec::RowLayout;
use crate::log::hash::partition_for_key;
use crate::log::tail::Tail;

/// What recovery (or creation) knows of one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct PartitionInit {
    pub head: u64,
    pub low: u64,
    pub live_low: u64,
    pub last_ts: i64,
    pub live_bytes: u64,
    pub archived: Vec<ArchivedFile>,
}

impl PartitionInit {
    pub(crate) fn empty() -> PartitionInit {
        PartitionInit { last_ts: i64::MIN, ..PartitionInit::default() }
    }
}

/// A stream as readers and writers see it in memory.
///
/// `heads[p]` is the committed end offset of partition `p`: every offset
/// below it is durable and readable, none at or above it is visible. Only the
/// committer thread advances it, after the write that made the records
/// durable has returned. Offsets `low..live_low` are in archived files (the
/// manifest, `archived`), `live_low..head` in the live log.
///
/// `ALTER` replaces a stream's handle with one of the new definition that
/// shares the partitions' state ([`StreamHandle::altered`]): a statement
/// still holding the old handle reads and appends the same partitions.
#[derive(Debug)]
pub struct StreamHandle {
    pub def: StreamDef,
    layout: RowLayout,
    state: Arc<PartitionsState>,
}

/// What every handle of one stream shares.
#[derive(Debug)]
struct PartitionsState {
    heads: Vec<AtomicU64>,
    lows: Vec<AtomicU64>,
    live_lows: Vec<AtomicU64>,
    live_bytes: Vec<AtomicU64>,
    archived: Vec<RwLock<Arc<Vec<ArchivedFile>>>>,
    last_ts: Vec<AtomicI64>,
    /// The most recently committed chunks of each partition.
    tails: Vec<Tail>,
    round_robin: AtomicU64,
    dropped: AtomicBool,
    appended: tokio::sync::Notify,
}

impl StreamHandle {
    pub(crate) fn new(def: StreamDef, parts: Vec<PartitionInit>) -> StreamHandle {
        let state = PartitionsState {
            lows: parts.iter().map(|p| AtomicU64::new(p.low)).collect(),
            live_lows: parts.iter().map(|p| AtomicU64::new(p.live_low)).collect(),
            live_bytes: parts.iter().map(|p| AtomicU64::new(p.live_bytes)).collect(),
            heads: parts.iter().map(|p| AtomicU64::new(p.head)).collect(),
            last_ts: parts.iter().map(|p| AtomicI64::new(p.last_ts)).collect(),
            tails: parts.iter().map(|_| Tail::default()).collect(),
            archived: parts.into_iter().map(|p| RwLock::new(Arc::new(p.archived))).collect(),
            round_robin: AtomicU64::new(0),
            dropped: AtomicBool::new(false),
            appended: tokio::sync::Notify::new(),
        };
        StreamHandle { layout: RowLayout::new(&def.columns, def.original_columns), def, state: Arc::new(state) }
    }

    /// The handle of this stream under its altered definition `def`: the
    /// same partitions, heads and waiters.
    pub(crate) fn altered(&self, def: StreamDef) -> StreamHandle {
        StreamHandle { layout: RowLayout::new(&def.columns, def.original_columns), def, state: self.state.clone() }
    }

    /// Column types in definition order.
    pub fn types(&self) -> &[ColumnType] {
        &self.layout.types
    }

    /// How records read under this handle's definition.
    pub fn layout(&self) -> &RowLayout {
        &self.layout
    }

    /// Committed end offset (one past the last durable record) of `partition`.
    pub fn head(&self, partition: u32) -> u64 {
        self.state.heads[partition as usize].load(Ordering::Acquire)
    }

    /// First offset of `partition` still stored, in the archive or the live
    /// log: 0 until retention deletes older records.
    pub fn low(&self, partition: u32) -> u64 {
        self.state.lows[partition as usize].load(Ordering::Acquire)
    }

    /// First offset of `partition` in the live log (RocksDB); offsets from
    /// [`StreamHandle::low`] up to it are in archived files.
    pub fn live_low(&self, partition: u32) -> u64 {
        self.state.live_lows[partition as usize].load(Ordering::Acquire)
    }

    /// Dropping records (retention without archive) moves both lows.
    pub(crate) fn set_low(&self, partition: u32, low: u64) {
        self.state.live_lows[partition as usize].fetch_max(low, Ordering::AcqRel);
        self.state.lows[partition as usize].fetch_max(low, Ordering::AcqRel);
        self.tail(partition).trim(low);
    }

    /// Encoded bytes of `partition`'s live log; exact for streams with
    /// `retention_bytes` (counted at recovery), since creation otherwise.
    pub fn live_bytes(&self, partition: u32) -> u64 {
        self.state.live_bytes[partition as usize].load(Ordering::Acquire)
    }

    pub(crate) fn add_live_bytes(&self, partition: u32, added: u64, removed: u64) {
        let slot = &self.state.live_bytes[partition as usize];
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| Some((b + added).saturating_sub(removed)));
    }

    /// The archived files of `partition`, in offset order (a snapshot).
    pub fn archived(&self, partition: u32) -> Arc<Vec<ArchivedFile>> {
        self.state.archived[partition as usize].read().expect("archive lock").clone()
    }

    /// The archived file holding `offset` of `partition`, if any.
    pub fn archived_file(&self, partition: u32, offset: u64) -> Option<ArchivedFile> {
        let files = self.archived(partition);
        let i = files.partition_point(|f| f.last < offset);
        files.get(i).filter(|f| f.contains(offset)).cloned()
    }

    /// Publishes a handed-over file: first the manifest entry, then the live
    /// low, so a reader that finds an offset gone from the live log finds it
    /// in the manifest.
    pub(crate) fn push_archived(&self, file: ArchivedFile) {
        let p = file.partition;
        let next = file.last + 1;
        let removed = file.live_bytes;
        {
            let mut slot = self.state.archived[p as usize].write().expect("archive lock");
            let mut files = Vec::with_capacity(slot.len() + 1);
            files.extend(slot.iter().cloned());
            files.push(file);
            *slot = Arc::new(files);
        }
        self.state.live_lows[p as usize].fetch_max(next, Ordering::AcqRel);
        self.tail(p).trim(next);
        self.add_live_bytes(p, 0, removed);
    }

    /// Committed end offsets of all partitions.
    pub fn heads(&self) -> Vec<u64> {
        self.state.heads.iter().map(|h| h.load(Ordering::Acquire)).collect()
    }

    /// Commit timestamp of the newest record of `partition` (`i64::MIN` if empty).
    pub fn last_timestamp(&self, partition: u32) -> i64 {
        self.state.last_ts[partition as usize].load(Ordering::Acquire)
    }

    pub(crate) fn publish(&self, partition: u32, head: u64, last_ts: i64) {
        self.state.last_ts[partition as usize].store(last_ts, Ordering::Release);
        self.state.heads[partition as usize].store(head, Ordering::Release);
    }

    /// The first offset of `partition` held by the tail cache (read from
    /// memory from there to the head), if it holds any.
    pub fn cached_start(&self, partition: u32) -> Option<u64> {
        self.tail(partition).first()
    }

    /// The cached tail of `partition` (see [`crate::log::tail`]).
    pub(crate) fn tail(&self, partition: u32) -> &Tail {
        &self.state.tails[partition as usize]
    }

    /// The partition a new record goes to: by key hash when the stream is
    /// keyed and the key is not NULL, otherwise round-robin.
    pub fn choose_partition(&self, key: Option<&[u8]>) -> u32 {
        match key {
            Some(k) if self.def.key_column.is_some() => partition_for_key(k, self.def.partitions),
            _ => (self.state.round_robin.fetch_add(1, Ordering::Relaxed) % self.def.partitions as u64) as u32,
        }
    }

    /// Whether the stream has been dropped since this handle was taken.
    pub fn is_dropped(&self) -> bool {
        self.state.dropped.load(Ordering::Acquire)
    }

    pub(crate) fn mark_dropped(&self) {
        self.state.dropped.store(true, Ordering::Release);
        self.state.tails.iter().for_each(Tail::clear);
        self.state.appended.notify_waiters();
    }

    /// Resolves after the next commit that appends to this stream (or drops it).
    ///
    /// Register interest with `notified()` *before* checking the heads, so an
    /// append between the check and the wait is not missed.
    pub fn appended(&self) -> &tokio::sync::Notify {
        &self.state.appended
    }
}
