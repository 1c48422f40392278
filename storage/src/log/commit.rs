//! Group commit: one thread turns many sessions' writes into one synced
//! RocksDB write.
//!
//! ```text
//!  session A ─┐                      ┌─ oneshot A: Ok(offsets)
//!  session B ─┼─ channel ─ committer ┼─ oneshot B: Ok(offsets)
//!  session C ─┘   (drain all queued)  └─ oneshot C: Err(NotFound)
//!                     │
//!            one WriteBatch, sync=true (WAL fsync)
//! ```
//!
//! The committer is the only writer of the database, so it alone assigns
//! offsets and commit timestamps, and they are assigned in commit order:
//! offsets are dense, and timestamps never decrease within a partition.
//! The records a group appends to one partition become one chunk under one
//! key (see [`crate::codec`]), or a few when they exceed
//! [`MAX_CHUNK_RECORDS`] / [`MAX_CHUNK_BYTES`] (a bulk load), so reading one
//! record never decodes a huge chunk and segments can end between them.
//! An archive hand-over ([`Handover`]) puts the manifest entry and deletes
//! the segment's range from the log in the same write.
//! While it waits for one fsync, new requests queue up and go out together in
//! the next write, so durability costs latency, not throughput. Once a
//! write is durable, its chunks go to the tail cache ([`crate::log::tail`])
//! before the partitions' new heads are published.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rocksdb::{WriteBatch, WriteOptions, DB};

use crate::archive::{ArchivedFile, Handover};
use crate::catalog::{alter_columns, AlterColumns, StreamDef, StreamId, TableDef, TableId, ViewDef};
use crate::codec;
use crate::error::{Error, Result};
use crate::groups::{GroupWrite, Groups};
use crate::keys;
use crate::log::retention::Trim;
use crate::log::stream::{PartitionInit, StreamHandle};
use crate::log::tail::{TailBudget, TailChunk};
use crate::state::StateWrite;
use crate::store::{
    Catalog, CatalogChanges, CF_ARCHIVE, CF_CATALOG, CF_CONTINUOUS, CF_GROUPS, CF_LOG, CF_TABLES, CF_TIME_INDEX,
};
use crate::tables::cache::{Cached, RowCache};
use crate::tables::{Expect, RowWrite, TableHandle};

/// Most requests folded into one write; bounds the latency of the group.
const MAX_GROUP: usize = 4096;
/// How long an idle committer polls for the next request before it blocks
/// (see [`next_request`]). Paired runs on the 2-core development VM against
/// blocking at once: durable upserts +10% at 16 connections and +19% at one,
/// single-row appends +20% at one connection and +4–13% at 32, consumer
/// groups +4–6% (docs/benchmarks.md).
const IDLE_SPIN: Duration = Duration::from_micros(100);
/// A chunk is closed after this many records...
pub const MAX_CHUNK_RECORDS: u32 = 4096;
/// ...or this many bytes, and the group's next record starts a new one.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

/// A record to append, already encoded by [`codec::encode_row`].
#[derive(Debug, Clone)]
pub struct Append {
    pub stream: StreamId,
    pub partition: u32,
    pub record: Vec<u8>,
}

/// Everything one transaction writes. Committed atomically: all of it is
/// durable and visible, or none of it is.
#[derive(Debug, Default, Clone)]
pub struct WriteSet {
    pub appends: Vec<Append>,
    /// Consumer-group changes (offset commits, acks, ...) that land in the
    /// same write as the appends: consume-transform-produce is atomic.
    pub groups: Vec<GroupWrite>,
    /// Table row changes, each also appended to its table's changelog.
    /// Applied in order; every expectation must hold or nothing applies.
    pub rows: Vec<RowWrite>,
    /// Continuous-query state (offsets, operator state), applied in order.
    pub state: Vec<StateWrite>,
}

impl WriteSet {
    /// A set of appends only.
    pub fn of_appends(appends: Vec<Append>) -> WriteSet {
        WriteSet { appends, ..Default::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.groups.is_empty() && self.rows.is_empty() && self.state.is_empty()
    }

    /// Adds everything of `other` after what this set holds.
    pub fn extend(&mut self, other: WriteSet) {
        self.appends.extend(other.appends);
        self.groups.extend(other.groups);
        self.rows.extend(other.rows);
        self.state.extend(other.state);
    }

    /// Whether this set writes to the stream `id`: appends to it, or
    /// changes of a consumer group that reads it.
    pub fn touches_stream(&self, id: StreamId) -> bool {
        self.appends.iter().any(|a| a.stream == id) || self.groups.iter().any(|g| g.group().stream.def.id == id)
    }

    /// Whether this set changes rows of the table `id`.
    pub fn touches_table(&self, id: TableId) -> bool {
        self.rows.iter().any(|r| r.table == id)
    }
}

/// Where each append of a committed [`WriteSet`] landed, in append order.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitReceipt {
    pub positions: Vec<(u32, u64)>,
    pub timestamp_micros: i64,
}

pub(crate) enum Request {
    Commit(WriteSet, tokio::sync::oneshot::Sender<Result<CommitReceipt>>),
    CreateStream(StreamDef, bool, tokio::sync::oneshot::Sender<Result<Option<Arc<StreamHandle>>>>),
    DropStream(String, bool, tokio::sync::oneshot::Sender<Result<bool>>),
    CreateTable(TableDef, bool, tokio::sync::oneshot::Sender<Result<Option<Arc<TableHandle>>>>),
    DropTable(String, bool, tokio::sync::oneshot::Sender<Result<bool>>),
    Alter(String, Vec<AlterColumns>, tokio::sync::oneshot::Sender<Result<bool>>),
    CreateView(ViewDef, bool, tokio::sync::oneshot::Sender<Result<()>>),
    Rename(String, String, tokio::sync::oneshot::Sender<Result<()>>),
    DropView(String, bool, tokio::sync::oneshot::Sender<Result<bool>>),
    Trim(Vec<Trim>, tokio::sync::oneshot::Sender<Result<()>>),
    Archive(Handover, tokio::sync::oneshot::Sender<Result<()>>),
}

/// A reply that is sent only after the group's write has succeeded.
enum Pending {
    Commit(tokio::sync::oneshot::Sender<Result<CommitReceipt>>, CommitReceipt),
    Create(tokio::sync::oneshot::Sender<Result<Option<Arc<StreamHandle>>>>, Option<Arc<StreamHandle>>),
    Drop(tokio::sync::oneshot::Sender<Result<bool>>, bool),
    CreateTable(tokio::sync::oneshot::Sender<Result<Option<Arc<TableHandle>>>>, Option<Arc<TableHandle>>),
    Done(tokio::sync::oneshot::Sender<Result<()>>),
}

impl Pending {
    fn succeed(self) {
        // A receiver that went away (client disconnected) still had its
        // write committed; there is nobody left to tell.
        let _ = match self {
            Pending::Commit(tx, r) => tx.send(Ok(r)).map_err(drop),
            Pending::Create(tx, r) => tx.send(Ok(r)).map_err(drop),
            Pending::Drop(tx, r) => tx.send(Ok(r)).map_err(drop),
            Pending::CreateTable(tx, r) => tx.send(Ok(r)).map_err(drop),
            Pending::Done(tx) => tx.send(Ok(())).map_err(drop),
        };
    }

    fn fail(self, msg: &str) {
        let err = || Error::WriteFailed(msg.to_string());
        let _ = match self {
            Pending::Commit(tx, _) => tx.send(Err(err())).map_err(drop),
            Pending::Create(tx, _) => tx.send(Err(err())).map_err(drop),
            Pending::Drop(tx, _) => tx.send(Err(err())).map_err(drop),
            Pending::CreateTable(tx, _) => tx.send(Err(err())).map_err(drop),
            Pending::Done(tx) => tx.send(Err(err())).map_err(drop),
        };
    }
}

/// The state one group stages on top of the published catalog and heads.
struct Group<'a> {
    catalog: &'a Catalog,
    groups: &'a Arc<Groups>,
    cache: &'a RowCache,
    batch: WriteBatch,
    /// How to take back the in-memory group changes if the write fails.
    undo: Vec<crate::groups::Undo>,
    /// Streams dropped in this group, whose consumer groups go with them.
    dropped_ids: Vec<StreamId>,
    /// Streams and tables created or dropped in this group (None = dropped).
    changed: CatalogChanges,
    /// Staged value of each row this group wrote (None = deleted).
    rows: HashMap<(TableId, Vec<u8>), Cached>,
    dropped_tables: Vec<Arc<TableHandle>>,
    /// Staged (next offset, last timestamp) per touched partition.
    heads: HashMap<(StreamId, u32), (u64, i64)>,
    /// The one chunk per touched partition that this group writes.
    chunks: HashMap<(StreamId, u32), codec::ChunkBuilder>,
    /// The chunks this group writes, for the tail cache once they are durable.
    written_chunks: Vec<((StreamId, u32), TailChunk)>,
    touched: HashMap<StreamId, Arc<StreamHandle>>,
    dropped: Vec<Arc<StreamHandle>>,
    trimmed: Vec<(Arc<StreamHandle>, u32, u64, u64)>,
    /// Files handed over in this group, published after the write.
    archived: Vec<(Arc<StreamHandle>, ArchivedFile)>,
    /// Encoded bytes this group appends per partition.
    added_bytes: HashMap<(StreamId, u32), u64>,
    next_stream_id: u64,
    now: i64,
    replies: Vec<Pending>,
}

impl Group<'_> {
    fn stream_by_id(&self, id: StreamId) -> Option<Arc<StreamHandle>> {
        if let Some(h) = self.touched.get(&id) {
            return Some(h.clone());
        }
        let created = self.changed.streams.values().flatten().find(|h| h.def.id == id);
        if let Some(h) = created {
            return Some(h.clone());
        }
        let h = self.catalog.by_id(id)?;
        match self.changed.streams.get(&h.def.name) {
            Some(_) => None, // dropped (or replaced) earlier in this group
            None => Some(h),
        }
    }

    fn stream_by_name(&self, name: &str) -> Option<Arc<StreamHandle>> {
        match self.changed.streams.get(name) {
            Some(h) => h.clone(),
            None => self.catalog.get(name),
        }
    }

    fn table_by_id(&self, id: TableId) -> Option<Arc<TableHandle>> {
        let created = self.changed.tables.values().flatten().find(|h| h.def.id == id);
        if let Some(h) = created {
            return Some(h.clone());
        }
        let h = self.catalog.table_by_id(id)?;
        match self.changed.tables.get(&h.def.name) {
            Some(_) => None,
            None => Some(h),
        }
    }

    fn table_by_name(&self, name: &str) -> Option<Arc<TableHandle>> {
        match self.changed.tables.get(name) {
            Some(h) => h.clone(),
            None => self.catalog.table(name),
        }
    }

    fn view_by_name(&self, name: &str) -> Option<Arc<ViewDef>> {
        match self.changed.views.get(name) {
            Some(v) => v.clone(),
            None => self.catalog.view(name),
        }
    }

    /// Whether a stream, a table or a view is called `name`.
    fn relation_exists(&self, name: &str) -> bool {
        self.stream_by_name(name).is_some() || self.table_by_name(name).is_some() || self.view_by_name(name).is_some()
    }

    /// `CREATE [OR REPLACE] VIEW`: only a view may be replaced.
    fn create_view(&mut self, def: ViewDef, or_replace: bool) -> Result<()> {
        let replaces = or_replace && self.view_by_name(&def.name).is_some();
        if !replaces && self.relation_exists(&def.name) {
            return Err(Error::AlreadyExists { kind: "relation", name: def.name });
        }
        self.batch.put_cf(cf(self.catalog, CF_CATALOG), keys::catalog_view_key(&def.name), def.to_bytes());
        self.changed.views.insert(def.name.clone(), Some(Arc::new(def)));
        Ok(())
    }

    /// `ALTER … RENAME TO`: the table (with its changelog), stream or view
    /// `old` under the name `new`; its handles keep their state, ids and
    /// everything keyed by them (records, rows, groups, archive).
    fn rename(&mut self, old: &str, new: String) -> Result<()> {
        let taken = |g: &Self, name: &str| match g.relation_exists(name) {
            true => Err(Error::AlreadyExists { kind: "relation", name: name.to_string() }),
            false => Ok(()),
        };
        taken(self, &new)?;
        let catalog = cf(self.catalog, CF_CATALOG);
        if let Some(t) = self.table_by_name(old) {
            let (old_log, new_log) = (crate::catalog::changelog_name(old), crate::catalog::changelog_name(&new));
            taken(self, &new_log)?;
            let mut def = t.def.clone();
            def.name = new.clone();
            let log = Arc::new(t.changelog.altered(def.changelog_def()));
            self.batch.delete_cf(catalog, keys::catalog_table_key(old));
            self.batch.delete_cf(catalog, keys::catalog_stream_key(&old_log));
            self.batch.put_cf(catalog, keys::catalog_stream_key(&new_log), log.def.to_bytes());
            self.batch.put_cf(catalog, keys::catalog_table_key(&new), def.to_bytes());
            let handle = Arc::new(t.altered(def, log.clone()));
            self.changed.streams.insert(old_log, None);
            self.changed.streams.insert(new_log, Some(log));
            self.changed.tables.insert(old.to_string(), None);
            self.changed.tables.insert(new, Some(handle));
        } else if let Some(h) = self.stream_by_name(old) {
            if h.def.changelog_of.is_some() {
                return Err(Error::WrongState(format!(
                    "stream \"{old}\" is the changelog of a table; rename the table instead"
                )));
            }
            let mut def = h.def.clone();
            def.name = new.clone();
            self.batch.delete_cf(catalog, keys::catalog_stream_key(old));
            self.batch.put_cf(catalog, keys::catalog_stream_key(&new), def.to_bytes());
            self.changed.streams.insert(old.to_string(), None);
            self.changed.streams.insert(new, Some(Arc::new(h.altered(def))));
        } else if let Some(v) = self.view_by_name(old) {
            let def = ViewDef { name: new.clone(), ..(*v).clone() };
            self.batch.delete_cf(catalog, keys::catalog_view_key(old));
            self.batch.put_cf(catalog, keys::catalog_view_key(&new), def.to_bytes());
            self.changed.views.insert(old.to_string(), None);
            self.changed.views.insert(new, Some(Arc::new(def)));
        } else {
            return Err(Error::NotFound { kind: "relation", name: old.to_string() });
        }
        self.changed.altered = true;
        Ok(())
    }

    fn drop_view(&mut self, name: String, if_exists: bool) -> Result<bool> {
        if self.view_by_name(&name).is_none() {
            if if_exists {
                return Ok(false);
            }
            return Err(Error::NotFound { kind: "view", name });
        }
        self.batch.delete_cf(cf(self.catalog, CF_CATALOG), keys::catalog_view_key(&name));
        self.changed.views.insert(name, None);
        Ok(true)
    }

    /// The version of a row as of everything staged so far: `Some(v)` if it
    /// exists at version `v`.
    fn row_version(&self, table: TableId, key: &[u8]) -> Result<Option<u64>> {
        let key_of = (table, key.to_vec());
        let known = match self.rows.get(&key_of) {
            Some(v) => Some(v.clone()),
            None => self.cache.get(table, key),
        };
        if let Some(value) = known {
            return value.map(|v| crate::tables::read::version_of(&v)).transpose();
        }
        match self.catalog.db.get_pinned_cf(cf(self.catalog, CF_TABLES), keys::row_key(table, key))? {
            Some(v) => crate::tables::read::version_of(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Checks every row write's expectation, in order, as if the earlier
    /// writes of the same set had applied. Returns the table of each write.
    fn check_rows(&self, rows: &[RowWrite]) -> Result<Vec<Arc<TableHandle>>> {
        let mut seen: HashMap<(TableId, &[u8]), bool> = HashMap::new();
        let mut tables = Vec::with_capacity(rows.len());
        for w in rows {
            let t = self
                .table_by_id(w.table)
                .ok_or_else(|| Error::NotFound { kind: "table", name: format!("#{}", w.table.0) })?;
            if w.columns != t.def.columns.len() {
                return Err(Error::Conflict(format!(
                    "table \"{}\" was altered while this statement ran; run it again",
                    t.def.name
                )));
            }
            let current = match seen.get(&(w.table, w.key.as_slice())) {
                // Written earlier in this set: its version is not known yet,
                // and only existence matters for later writes.
                Some(exists) => exists.then_some(u64::MAX),
                None => self.row_version(w.table, &w.key)?,
            };
            let ok = match w.expect {
                Expect::Any => true,
                Expect::Absent => current.is_none(),
                Expect::Version(v) => current == Some(v),
            };
            if !ok {
                return Err(Error::RowConflict { table: t.def.name.clone(), exists: current.is_some() });
            }
            seen.insert((w.table, w.key.as_slice()), !w.is_delete());
            tables.push(t);
        }
        Ok(tables)
    }

    /// Stages one append: assigns its offset and timestamp and adds it to its
    /// partition's chunk. Returns the offset.
    fn stage_append(&mut self, h: &Arc<StreamHandle>, partition: u32, record: &mut [u8]) -> u64 {
        let slot = (h.def.id, partition);
        let (next, last_ts) =
            *self.heads.entry(slot).or_insert_with(|| (h.head(partition), h.last_timestamp(partition)));
        // Timestamps never decrease along a partition, even if the clock
        // steps back; the time index relies on it.
        let ts = self.now.max(last_ts);
        if ts > last_ts || next == 0 {
            let tk = keys::time_key(h.def.id, partition, ts);
            self.batch.put_cf(cf(self.catalog, CF_TIME_INDEX), tk, next.to_be_bytes());
        }
        codec::stamp(record, ts);
        let full =
            self.chunks.get(&slot).is_some_and(|c| c.len() >= MAX_CHUNK_RECORDS || c.byte_len() >= MAX_CHUNK_BYTES);
        if full {
            let chunk = self.chunks.remove(&slot).expect("checked");
            self.put_chunk(slot, chunk);
        }
        self.chunks.entry(slot).or_insert_with(|| codec::ChunkBuilder::new(next)).push(record);
        self.heads.insert(slot, (next + 1, ts));
        self.touched.entry(h.def.id).or_insert_with(|| h.clone());
        next
    }

    fn commit(&mut self, mut ws: WriteSet) -> Result<CommitReceipt> {
        // Validate everything before staging anything, so a refused request
        // leaves no trace in the group's batch.
        let mut handles = Vec::with_capacity(ws.appends.len());
        for a in &ws.appends {
            let h = self
                .stream_by_id(a.stream)
                .ok_or_else(|| Error::NotFound { kind: "stream", name: format!("#{}", a.stream.0) })?;
            if a.partition >= h.def.partitions {
                return Err(Error::InvalidInput(format!(
                    "partition {} out of range for stream \"{}\"",
                    a.partition, h.def.name
                )));
            }
            handles.push(h);
        }
        // Group changes validate (and apply in memory) before anything of
        // this request reaches the batch: a refusal leaves no trace.
        let mut ops = crate::groups::BatchOps::default();
        let mut undo = Vec::with_capacity(ws.groups.len());
        for gw in &ws.groups {
            match gw.stage(&mut ops, self.groups) {
                Ok(u) => undo.push(u),
                Err(e) => {
                    undo.into_iter().rev().for_each(|u| u());
                    return Err(e);
                }
            }
        }
        // Row expectations too: a failed one refuses the request before
        // anything of it is staged.
        let tables = match self.check_rows(&ws.rows) {
            Ok(t) => t,
            Err(e) => {
                undo.into_iter().rev().for_each(|u| u());
                return Err(e);
            }
        };
        ops.apply(&mut self.batch, cf(self.catalog, CF_GROUPS));
        self.undo.extend(undo);
        let mut positions = Vec::with_capacity(ws.appends.len());
        for (a, h) in ws.appends.iter_mut().zip(handles) {
            let offset = self.stage_append(&h, a.partition, &mut a.record);
            positions.push((a.partition, offset));
        }
        for (w, t) in ws.rows.iter_mut().zip(tables) {
            let version = self.stage_append(&t.changelog, 0, &mut w.change);
            let key = keys::row_key(w.table, &w.key);
            match &mut w.row {
                Some(row) => {
                    codec::stamp(row, codec::timestamp_of(&w.change).unwrap_or(self.now));
                    let value: Arc<[u8]> = crate::tables::read::encode_value(version, row).into();
                    self.batch.put_cf(cf(self.catalog, CF_TABLES), key, &value);
                    self.rows.insert((w.table, w.key.clone()), Some(value));
                }
                None => {
                    self.batch.delete_cf(cf(self.catalog, CF_TABLES), key);
                    self.rows.insert((w.table, w.key.clone()), None);
                }
            }
        }
        let state = cf(self.catalog, CF_CONTINUOUS);
        for w in std::mem::take(&mut ws.state) {
            match w {
                StateWrite::Put(k, v) => self.batch.put_cf(state, k, v),
                StateWrite::Delete(k) => self.batch.delete_cf(state, k),
                StateWrite::DeleteRange(s, e) => self.batch.delete_range_cf(state, s, e),
            }
        }
        Ok(CommitReceipt { positions, timestamp_micros: self.now })
    }

    fn create(&mut self, mut def: StreamDef, if_not_exists: bool) -> Result<Option<Arc<StreamHandle>>> {
        if self.relation_exists(&def.name) {
            if if_not_exists {
                return Ok(None);
            }
            return Err(Error::AlreadyExists { kind: "stream", name: def.name });
        }
        def.id = StreamId(self.next_stream_id);
        def.validate()?;
        self.next_stream_id += 1;
        self.batch.put_cf(
            cf(self.catalog, CF_CATALOG),
            keys::CATALOG_NEXT_STREAM_ID,
            self.next_stream_id.to_be_bytes(),
        );
        self.batch.put_cf(cf(self.catalog, CF_CATALOG), keys::catalog_stream_key(&def.name), def.to_bytes());
        let n = def.partitions as usize;
        let handle = Arc::new(StreamHandle::new(def, vec![PartitionInit::empty(); n]));
        self.changed.streams.insert(handle.def.name.clone(), Some(handle.clone()));
        Ok(Some(handle))
    }

    fn create_table(&mut self, mut def: TableDef, if_not_exists: bool) -> Result<Option<Arc<TableHandle>>> {
        let log_name = crate::catalog::changelog_name(&def.name);
        if self.relation_exists(&def.name) {
            if if_not_exists {
                return Ok(None);
            }
            return Err(Error::AlreadyExists { kind: "relation", name: def.name });
        }
        if self.relation_exists(&log_name) {
            return Err(Error::AlreadyExists { kind: "relation", name: log_name });
        }
        def.changelog = StreamId(self.next_stream_id);
        def.id = TableId(self.next_stream_id + 1);
        def.validate()?;
        let log = self.create(def.changelog_def(), false)?.expect("created");
        self.next_stream_id += 1;
        self.batch.put_cf(
            cf(self.catalog, CF_CATALOG),
            keys::CATALOG_NEXT_STREAM_ID,
            self.next_stream_id.to_be_bytes(),
        );
        self.batch.put_cf(cf(self.catalog, CF_CATALOG), keys::catalog_table_key(&def.name), def.to_bytes());
        let handle = Arc::new(TableHandle::new(def, log));
        self.changed.tables.insert(handle.def.name.clone(), Some(handle.clone()));
        Ok(Some(handle))
    }

    /// `ALTER TABLE`: a new definition of the table (and its changelog) or
    /// stream called `name`, written to the catalog; its handles are
    /// replaced by ones that share the old ones' state. Returns false when
    /// there was nothing to change.
    fn alter(&mut self, name: &str, changes: &[AlterColumns]) -> Result<bool> {
        if let Some(t) = self.table_by_name(name) {
            let mut def = t.def.clone();
            let (start, end) = keys::table_range(def.id);
            let staged = self.rows.iter().any(|((id, _), row)| *id == def.id && row.is_some());
            let mut it = self.catalog.db.raw_iterator_cf(cf(self.catalog, CF_TABLES));
            it.seek(&start);
            let has_rows = staged || it.key().is_some_and(|k| k < end.as_slice());
            it.status()?;
            let Some(columns) = alter_columns(name, &def.columns, &mut def.original_columns, has_rows, changes)? else {
                return Ok(false);
            };
            def.columns = columns;
            def.validate()?;
            let log = Arc::new(t.changelog.altered(def.changelog_def()));
            self.batch.put_cf(
                cf(self.catalog, CF_CATALOG),
                keys::catalog_stream_key(&log.def.name),
                log.def.to_bytes(),
            );
            self.batch.put_cf(cf(self.catalog, CF_CATALOG), keys::catalog_table_key(name), def.to_bytes());
            let handle = Arc::new(t.altered(def, log.clone()));
            self.changed.streams.insert(log.def.name.clone(), Some(log));
            self.changed.tables.insert(name.to_string(), Some(handle));
            self.changed.altered = true;
            return Ok(true);
        }
        let h =
            self.stream_by_name(name).ok_or_else(|| Error::NotFound { kind: "relation", name: name.to_string() })?;
        if h.def.changelog_of.is_some() {
            return Err(Error::WrongState(format!(
                "stream \"{name}\" is the changelog of a table; alter the table instead"
            )));
        }
        if h.def.archive.is_some() {
            return Err(Error::WrongState(format!(
                "stream \"{name}\" archives to Parquet, whose files keep the columns they were written with"
            )));
        }
        let mut def = h.def.clone();
        let has_rows = (0..def.partitions).any(|p| self.heads.get(&(def.id, p)).map_or(h.head(p), |s| s.0) > 0);
        let Some(columns) = alter_columns(name, &def.columns, &mut def.original_columns, has_rows, changes)? else {
            return Ok(false);
        };
        def.columns = columns;
        def.validate()?;
        self.batch.put_cf(cf(self.catalog, CF_CATALOG), keys::catalog_stream_key(name), def.to_bytes());
        let handle = Arc::new(h.altered(def));
        self.changed.streams.insert(name.to_string(), Some(handle));
        self.changed.altered = true;
        Ok(true)
    }

    fn drop_table(&mut self, name: String, if_exists: bool) -> Result<bool> {
        let Some(t) = self.table_by_name(&name) else {
            if if_exists {
                return Ok(false);
            }
            return Err(Error::NotFound { kind: "table", name });
        };
        let (start, end) = keys::table_range(t.def.id);
        self.batch.delete_cf(cf(self.catalog, CF_CATALOG), keys::catalog_table_key(&name));
        self.batch.delete_range_cf(cf(self.catalog, CF_TABLES), start, end);
        let sequences = keys::sequence_prefix(t.def.id);
        self.batch.delete_range_cf(cf(self.catalog, CF_CONTINUOUS), &sequences, &crate::state::prefix_end(&sequences));
        self.rows.retain(|(id, _), _| *id != t.def.id);
        self.drop_stream_unchecked(t.changelog.clone());
        self.changed.tables.insert(name, None);
        self.dropped_tables.push(t);
        Ok(true)
    }

    fn drop_stream(&mut self, name: String, if_exists: bool) -> Result<bool> {
        let Some(h) = self.stream_by_name(&name) else {
            if if_exists {
                return Ok(false);
            }
            return Err(Error::NotFound { kind: "stream", name });
        };
        if h.def.changelog_of.is_some() {
            return Err(Error::WrongState(format!(
                "stream \"{name}\" is the changelog of a table; drop the table instead"
            )));
        }
        self.drop_stream_unchecked(h);
        Ok(true)
    }

    fn drop_stream_unchecked(&mut self, h: Arc<StreamHandle>) {
        let name = h.def.name.clone();
        let (start, end) = (keys::stream_start(h.def.id), keys::stream_end(h.def.id));
        self.batch.delete_cf(cf(self.catalog, CF_CATALOG), keys::catalog_stream_key(&name));
        self.batch.delete_range_cf(cf(self.catalog, CF_LOG), &start, &end);
        self.batch.delete_range_cf(cf(self.catalog, CF_TIME_INDEX), &start, &end);
        self.batch.delete_range_cf(cf(self.catalog, CF_GROUPS), &start, &end);
        self.batch.delete_range_cf(cf(self.catalog, CF_ARCHIVE), &start, &end);
        self.dropped_ids.push(h.def.id);
        self.touched.remove(&h.def.id);
        self.heads.retain(|(id, _), _| *id != h.def.id);
        self.chunks.retain(|(id, _), _| *id != h.def.id);
        self.archived.retain(|(a, _)| a.def.id != h.def.id);
        self.changed.streams.insert(name, None);
        self.dropped.push(h);
    }

    fn trim(&mut self, trims: Vec<Trim>) {
        for t in trims {
            // A stream dropped meanwhile has nothing left to trim.
            let Some(h) = self.stream_by_id(t.stream) else { continue };
            if t.partition >= h.def.partitions {
                continue;
            }
            let (s, p) = (t.stream, t.partition);
            self.batch.delete_range_cf(cf(self.catalog, CF_LOG), keys::log_key(s, p, 0), keys::log_key(s, p, t.below));
            self.batch.delete_range_cf(
                cf(self.catalog, CF_TIME_INDEX),
                keys::time_key(s, p, i64::MIN),
                keys::time_key(s, p, t.ts_below),
            );
            self.trimmed.push((h, p, t.below, t.bytes));
        }
    }

    /// Stages a hand-over: the manifest entry and the deletion of its range
    /// from the log, in this group's one write. Refused unless the file
    /// starts exactly at the partition's live low (nothing moved meanwhile)
    /// and ends below its head.
    fn archive(&mut self, handover: Handover) -> Result<()> {
        let Handover { stream, file } = handover;
        let h = self
            .stream_by_id(stream)
            .ok_or_else(|| Error::NotFound { kind: "stream", name: format!("#{}", stream.0) })?;
        let p = file.partition;
        if p >= h.def.partitions || file.last < file.first {
            return Err(Error::InvalidInput(format!("hand-over of {} names no range of the stream", file.path)));
        }
        let staged_low = self
            .archived
            .iter()
            .filter(|(a, f)| a.def.id == stream && f.partition == p)
            .map(|(_, f)| f.last + 1)
            .max()
            .unwrap_or_else(|| h.live_low(p));
        if file.first != staged_low || file.last >= h.head(p) {
            return Err(Error::Conflict(format!(
                "hand-over of {} (offsets {}..={}) no longer matches the live log of partition {p} \
                 (live offsets {staged_low}..{})",
                file.path,
                file.first,
                file.last,
                h.head(p)
            )));
        }
        let (s, first, end) = (stream, file.first, file.last + 1);
        self.batch.put_cf(cf(self.catalog, CF_ARCHIVE), keys::manifest_key(s, p, first), file.to_bytes());
        self.batch.delete_range_cf(cf(self.catalog, CF_LOG), keys::log_key(s, p, first), keys::log_key(s, p, end));
        self.archived.push((h, file));
        Ok(())
    }

    fn put_chunk(&mut self, (id, p): (StreamId, u32), chunk: codec::ChunkBuilder) {
        let (first, count) = (chunk.first, chunk.len() as u64);
        let key = keys::log_key(id, p, first);
        let bytes = chunk.finish();
        *self.added_bytes.entry((id, p)).or_default() += bytes.len() as u64;
        self.batch.put_cf(cf(self.catalog, CF_LOG), key, &bytes);
        self.written_chunks.push(((id, p), TailChunk { first, count, bytes: Arc::new(bytes) }));
    }
}

fn cf<'a>(catalog: &'a Catalog, name: &str) -> &'a rocksdb::ColumnFamily {
    catalog.db.cf_handle(name).expect("column family opened at startup")
}

/// What the committer thread works on: the database, the state it
/// publishes to readers, and the id the next new stream gets.
pub(crate) struct Committer {
    pub db: Arc<DB>,
    pub catalog: Arc<RwLock<Arc<Catalog>>>,
    pub groups: Arc<Groups>,
    pub watermark: Arc<AtomicI64>,
    pub rows: Arc<RowCache>,
    pub tail: TailBudget,
    pub next_stream_id: u64,
}

/// The committer thread's main loop. Returns when every sender is gone,
/// after answering every request it received.
pub(crate) fn run(committer: Committer, rx: Receiver<Request>) {
    let Committer { db, catalog, groups, watermark, rows: cache, mut tail, mut next_stream_id } = committer;
    // Group timestamps strictly increase (even if the clock steps back), so
    // a timestamp orders records across streams and partitions.
    let mut last_now = watermark.load(Ordering::Acquire);
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    while let Some(first) = next_request(&rx) {
        let mut requests = vec![first];
        while requests.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let snapshot = catalog.read().expect("catalog lock").clone();
        let mut group = Group {
            catalog: &snapshot,
            groups: &groups,
            cache: &cache,
            batch: WriteBatch::default(),
            undo: Vec::new(),
            dropped_ids: Vec::new(),
            changed: CatalogChanges::default(),
            rows: HashMap::new(),
            dropped_tables: Vec::new(),
            heads: HashMap::new(),
            chunks: HashMap::new(),
            written_chunks: Vec::new(),
            touched: HashMap::new(),
            dropped: Vec::new(),
            trimmed: Vec::new(),
            archived: Vec::new(),
            added_bytes: HashMap::new(),
            next_stream_id,
            now: now_micros().max(last_now + 1),
            replies: Vec::with_capacity(requests.len()),
        };
        let now = group.now;
        for request in requests {
            match request {
                Request::Commit(ws, tx) => match group.commit(ws) {
                    Ok(r) => group.replies.push(Pending::Commit(tx, r)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::CreateStream(def, ine, tx) => match group.create(def, ine) {
                    Ok(r) => group.replies.push(Pending::Create(tx, r)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::DropStream(name, ie, tx) => match group.drop_stream(name, ie) {
                    Ok(r) => group.replies.push(Pending::Drop(tx, r)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::CreateTable(def, ine, tx) => match group.create_table(def, ine) {
                    Ok(r) => group.replies.push(Pending::CreateTable(tx, r)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::DropTable(name, ie, tx) => match group.drop_table(name, ie) {
                    Ok(r) => group.replies.push(Pending::Drop(tx, r)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::Alter(name, changes, tx) => match group.alter(&name, &changes) {
                    Ok(r) => group.replies.push(Pending::Drop(tx, r)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::CreateView(def, or_replace, tx) => match group.create_view(def, or_replace) {
                    Ok(()) => group.replies.push(Pending::Done(tx)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::Rename(old, new, tx) => match group.rename(&old, new) {
                    Ok(()) => group.replies.push(Pending::Done(tx)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::DropView(name, if_exists, tx) => match group.drop_view(name, if_exists) {
                    Ok(r) => group.replies.push(Pending::Drop(tx, r)),
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::Trim(trims, tx) => {
                    group.trim(trims);
                    group.replies.push(Pending::Done(tx));
                }
                Request::Archive(handover, tx) => match group.archive(handover) {
                    Ok(()) => group.replies.push(Pending::Done(tx)),
                    Err(e) => drop(tx.send(Err(e))),
                },
            }
        }
        // Chunks go in last: every request of the group has been staged.
        for (slot, chunk) in std::mem::take(&mut group.chunks) {
            group.put_chunk(slot, chunk);
        }
        let Group {
            batch,
            changed,
            heads,
            touched,
            dropped,
            trimmed,
            archived,
            added_bytes,
            replies,
            next_stream_id: next_id,
            undo,
            dropped_ids,
            dropped_tables,
            rows,
            written_chunks,
            ..
        } = group;
        if batch.is_empty() {
            replies.into_iter().for_each(Pending::succeed);
            continue;
        }
        if let Err(e) = db.write_opt(batch, &sync) {
            tracing::error!(error = %e, "group commit failed; {} requests refused", replies.len());
            undo.into_iter().rev().for_each(|u| u());
            let msg = e.to_string();
            replies.into_iter().for_each(|r| r.fail(&msg));
            continue;
        }
        for id in dropped_ids {
            for g in groups.remove_stream(id) {
                g.notify();
            }
        }
        next_stream_id = next_id;
        // Publish: first the new catalog (so new streams are findable), then
        // heads (so readers see the records), then wake waiters.
        if !changed.is_empty() {
            let mut cat = catalog.write().expect("catalog lock");
            *cat = Arc::new(cat.with_changes(changed));
        }
        for h in &dropped {
            h.mark_dropped();
        }
        for t in &dropped_tables {
            t.mark_dropped();
        }
        let dropped_table_ids: Vec<TableId> = dropped_tables.iter().map(|t| t.def.id).collect();
        cache.record(rows, &dropped_table_ids);
        for (h, p, low, bytes) in trimmed {
            h.set_low(p, low);
            h.add_live_bytes(p, 0, bytes);
        }
        for (h, file) in archived {
            h.push_archived(file);
        }
        for ((id, p), bytes) in added_bytes {
            if let Some(h) = touched.get(&id) {
                h.add_live_bytes(p, bytes, 0);
            }
        }
        // Cached before the heads move, so the tail cache of a partition
        // reaches the head a reader sees (which its chunks are read up to).
        for ((id, p), chunk) in written_chunks {
            if let Some(h) = touched.get(&id) {
                tail.push(h, p, chunk);
            }
        }
        for ((id, p), (next, ts)) in heads {
            if let Some(h) = touched.get(&id) {
                h.publish(p, next, ts);
            }
        }
        // Every record of this group is visible: readers may go up to it.
        last_now = now;
        watermark.store(now, Ordering::Release);
        for h in touched.values() {
            h.appended().notify_waiters();
        }
        replies.into_iter().for_each(Pending::succeed);
    }
}

/// Waits for the committer's next request: `None` once every sender is gone.
///
/// For [`IDLE_SPIN`] it polls the queue, yielding the CPU between polls,
/// and only then blocks. A thread that blocks lets its CPU go idle, and on a
/// virtual machine waking an idle CPU costs tens of microseconds: the
/// request that arrives just after would wait that long, on the critical
/// path of every commit. While this thread polls, runnable threads (the
/// sessions' and the clients') still get the CPU, since it yields.
fn next_request(rx: &Receiver<Request>) -> Option<Request> {
    let spin_until = Instant::now() + IDLE_SPIN;
    loop {
        match rx.try_recv() {
            Ok(r) => return Some(r),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if Instant::now() < spin_until => std::thread::yield_now(),
            Err(TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
