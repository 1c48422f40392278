//! Live subscriptions: `COPY (SUBSCRIBE s …) TO STDOUT` as a [`Subscription`].
//!
//! A subscription follows every partition of a stream (or of a table's
//! changelog) from its start positions, in offset order per partition. It
//! never polls: [`Subscription::next`] reads what the log holds past its
//! positions and, when there is nothing, waits on the stream's append
//! notification (the one `FETCH … WAIT` and `LISTEN` use) before reading
//! again. It reads the log itself, at its own pace, so a slow client costs
//! the writers nothing: at most one read step of records is held at a
//! time.
//!
//! A subscription never ends by itself. Its owner (the connection serving
//! it, or an embedded program) ends it by dropping it, which also removes
//! it from `brikk_subscriptions`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use brikk_storage::{now_micros, ChunkHint, Store, StreamHandle};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::catalog::stream_columns::StreamColumns;
use crate::catalog::stream_table::stream_schema;
use crate::error::{Error, ObjectKind, Result};
use crate::sql::subscribe::{CopyFormat, CopySubscribe, StartFrom};

/// Records read per partition and step: bounds what one wake-up holds.
const READ_BATCH: usize = 1024;

/// A live subscription to a stream: the records past its positions, as
/// they are committed. Create one with `COPY (SUBSCRIBE …) TO STDOUT`
/// ([`crate::Output::Subscription`]).
pub struct Subscription {
    store: Store,
    stream: Arc<StreamHandle>,
    schema: SchemaRef,
    projection: Vec<usize>,
    format: CopyFormat,
    header: bool,
    /// The next offset to deliver, per partition.
    next: Vec<u64>,
    live: Live,
    /// Kept while the subscription lives ([`Output::holding`]).
    pub(crate) kept: Option<crate::session::output::Kept>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("stream", &self.stream.def.name).field("next", &self.next).finish()
    }
}

impl Subscription {
    /// Starts a subscription to the stream (or the table's changelog)
    /// `stmt.relation`; positions are taken now.
    pub(crate) fn start(
        store: &Store,
        registry: &Arc<LiveSubscriptions>,
        stmt: &CopySubscribe,
    ) -> Result<Subscription> {
        let stream = store
            .stream(&stmt.relation)
            .or_else(|| store.table(&stmt.relation).map(|t| t.changelog.clone()))
            .ok_or_else(|| Error::NotFound { kind: ObjectKind::Relation, name: stmt.relation.clone() })?;
        let next: Vec<u64> = (0..stream.def.partitions)
            .map(|p| match stmt.from {
                StartFrom::Now => stream.head(p),
                StartFrom::Beginning => stream.low(p),
                StartFrom::Offset(o) => o.max(stream.low(p)),
            })
            .collect();
        let schema = stream_schema(&stream);
        let projection = (0..schema.fields().len()).collect();
        let live = registry.add(stream.clone(), &next);
        Ok(Subscription {
            store: store.clone(),
            stream,
            schema,
            projection,
            format: stmt.format,
            header: stmt.header,
            next,
            live,
            kept: None,
        })
    }

    /// The rows' schema: `_partition, _offset, _timestamp, _key`, then the
    /// stream's columns (for a table: `op` and the table's columns).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The COPY format the statement asked for.
    pub fn format(&self) -> CopyFormat {
        self.format
    }

    /// Whether the statement asked for a header line.
    pub fn header(&self) -> bool {
        self.header
    }

    /// The stream followed (a table's changelog for a table).
    pub fn stream_name(&self) -> &str {
        &self.stream.def.name
    }

    /// The next offset this subscription delivers, per partition.
    pub fn positions(&self) -> &[u64] {
        &self.next
    }

    /// Waits until records past the positions are committed and returns
    /// them: one batch per partition that has some (at most 1024 records
    /// each), in offset order within the partition; the positions move
    /// past them.
    ///
    /// Records deleted by retention before they were read are skipped: the
    /// next batch of that partition starts at its oldest kept offset.
    ///
    /// Cancel-safe: dropping the future before it resolves loses no
    /// record. Fails when the stream is dropped (`NotFound`) or the log
    /// cannot be read.
    pub async fn next(&mut self) -> Result<Vec<RecordBatch>> {
        let stream = self.stream.clone();
        loop {
            // Interest first, then the check: an append in between wakes us.
            let appended = stream.appended().notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            if stream.is_dropped() {
                return Err(Error::NotFound { kind: ObjectKind::Relation, name: stream.def.name.clone() });
            }
            let batches = self.read()?;
            if !batches.is_empty() {
                return Ok(batches);
            }
            appended.await;
        }
    }

    fn read(&mut self) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        for p in 0..self.stream.def.partitions {
            let i = p as usize;
            let from = self.next[i].max(self.stream.low(p));
            let capacity = READ_BATCH.min(self.stream.head(p).saturating_sub(from) as usize);
            let mut columns = StreamColumns::new(&self.schema, &self.projection, p, &self.stream, capacity);
            let mut hint = ChunkHint::default();
            let read = self.store.read_into(&self.stream, p, from, u64::MAX, READ_BATCH, &mut hint, &mut columns)?;
            let Some(last) = read else {
                self.next[i] = from;
                continue;
            };
            let batch = columns.finish()?;
            self.next[i] = last + 1;
            self.live.progress.delivered(p, last + 1, batch.num_rows());
            batches.push(batch);
        }
        Ok(batches)
    }
}

/// The live subscriptions of a database, as `brikk_subscriptions` shows
/// them.
#[derive(Debug, Default)]
pub struct LiveSubscriptions {
    next_id: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<Progress>>>,
}

/// How far one subscription has got.
#[derive(Debug)]
pub struct Progress {
    pub id: u64,
    pub stream: Arc<StreamHandle>,
    pub started_at_micros: i64,
    sent: AtomicU64,
    next: Vec<AtomicU64>,
}

impl Progress {
    fn delivered(&self, partition: u32, next: u64, records: usize) {
        self.next[partition as usize].store(next, Ordering::Relaxed);
        self.sent.fetch_add(records as u64, Ordering::Relaxed);
    }

    /// Records handed to the subscriber so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The next offset to deliver, per partition.
    pub fn positions(&self) -> Vec<u64> {
        self.next.iter().map(|n| n.load(Ordering::Relaxed)).collect()
    }

    /// Committed records not delivered yet, over all partitions.
    pub fn lag(&self) -> u64 {
        self.positions().iter().enumerate().map(|(p, n)| self.stream.head(p as u32).saturating_sub(*n)).sum()
    }
}

impl LiveSubscriptions {
    fn add(self: &Arc<Self>, stream: Arc<StreamHandle>, next: &[u64]) -> Live {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let progress = Arc::new(Progress {
            id,
            stream,
            started_at_micros: now_micros(),
            sent: AtomicU64::new(0),
            next: next.iter().map(|n| AtomicU64::new(*n)).collect(),
        });
        self.live.lock().expect("subscriptions lock").insert(id, progress.clone());
        Live { registry: self.clone(), progress }
    }

    /// Every live subscription, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Progress>> {
        self.live.lock().expect("subscriptions lock").values().cloned().collect()
    }
}

/// A subscription's entry in the registry, removed when it is dropped.
struct Live {
    registry: Arc<LiveSubscriptions>,
    progress: Arc<Progress>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.registry.live.lock().expect("subscriptions lock").remove(&self.progress.id);
    }
}
