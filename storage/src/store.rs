//! Opening the database, recovery, and the handle every layer above uses.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, DB};

use crate::archive::{self, ArchiveReader, Handover};
use crate::catalog::{AlterColumns, StreamDef, StreamId, TableDef, TableId, ViewDef};
use crate::codec;
use crate::engine;
use crate::error::{Error, Result};
use crate::groups::Groups;
use crate::keys;
use crate::log::commit::{self, CommitReceipt, Request, WriteSet};
use crate::log::stream::{PartitionInit, StreamHandle};
use crate::log::tail::{TailBudget, DEFAULT_TAIL_CACHE_BYTES};
use crate::tables::cache::RowCache;
use crate::tables::TableHandle;

pub(crate) const CF_CATALOG: &str = "catalog";
pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_TIME_INDEX: &str = "time_index";
pub(crate) const CF_GROUPS: &str = "groups";
pub(crate) const CF_TABLES: &str = "tables";
pub(crate) const CF_CONTINUOUS: &str = "continuous";
pub(crate) const CF_ARCHIVE: &str = "archive";
const COLUMN_FAMILIES: [&str; 7] = [CF_CATALOG, CF_LOG, CF_TIME_INDEX, CF_GROUPS, CF_TABLES, CF_CONTINUOUS, CF_ARCHIVE];

/// How often the housekeeping thread looks for silent group members.
const MEMBER_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// An immutable snapshot of the streams that exist. Replaced as a whole by
/// the committer after a CREATE or DROP has become durable.
#[derive(Debug)]
pub struct Catalog {
    pub(crate) db: Arc<DB>,
    streams: BTreeMap<String, Arc<StreamHandle>>,
    pub(crate) ids: HashMap<StreamId, Arc<StreamHandle>>,
    tables: BTreeMap<String, Arc<TableHandle>>,
    table_ids: HashMap<TableId, Arc<TableHandle>>,
    views: BTreeMap<String, Arc<ViewDef>>,
    /// How many `ALTER`s this catalog has seen since the store opened: a
    /// statement planned under another count may hold an old definition.
    altered: u64,
}

/// Streams and tables created (`Some`) or dropped (`None`) by one commit
/// group, by name.
#[derive(Default)]
pub(crate) struct CatalogChanges {
    pub(crate) streams: HashMap<String, Option<Arc<StreamHandle>>>,
    pub(crate) tables: HashMap<String, Option<Arc<TableHandle>>>,
    pub(crate) views: HashMap<String, Option<Arc<ViewDef>>>,
    /// A definition was altered (rather than created or dropped).
    pub(crate) altered: bool,
}

impl CatalogChanges {
    pub(crate) fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.tables.is_empty() && self.views.is_empty()
    }
}

impl Catalog {
    fn new(
        db: Arc<DB>,
        streams: BTreeMap<String, Arc<StreamHandle>>,
        tables: BTreeMap<String, Arc<TableHandle>>,
        views: BTreeMap<String, Arc<ViewDef>>,
    ) -> Catalog {
        let ids = streams.values().map(|h| (h.def.id, h.clone())).collect();
        let table_ids = tables.values().map(|h| (h.def.id, h.clone())).collect();
        Catalog { db, streams, ids, tables, table_ids, views, altered: 0 }
    }

    /// The view called `name`, if it exists.
    pub fn view(&self, name: &str) -> Option<Arc<ViewDef>> {
        self.views.get(name).cloned()
    }

    /// All views, ordered by name.
    pub fn views(&self) -> impl Iterator<Item = &Arc<ViewDef>> {
        self.views.values()
    }

    /// How many definitions have been altered since the store opened. A
    /// plan made under a different count may hold an old definition; see
    /// [`Store::alter`].
    pub fn alterations(&self) -> u64 {
        self.altered
    }

    /// The table called `name`, if it exists.
    pub fn table(&self, name: &str) -> Option<Arc<TableHandle>> {
        self.tables.get(name).cloned()
    }

    pub(crate) fn table_by_id(&self, id: TableId) -> Option<Arc<TableHandle>> {
        self.table_ids.get(&id).cloned()
    }

    /// All tables, ordered by name.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<TableHandle>> {
        self.tables.values()
    }

    /// The stream called `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<StreamHandle>> {
        self.streams.get(name).cloned()
    }

    pub(crate) fn by_id(&self, id: StreamId) -> Option<Arc<StreamHandle>> {
        self.ids.get(&id).cloned()
    }

    /// All streams, ordered by name.
    pub fn streams(&self) -> impl Iterator<Item = &Arc<StreamHandle>> {
        self.streams.values()
    }

    pub(crate) fn with_changes(&self, changes: CatalogChanges) -> Catalog {
        let mut streams = self.streams.clone();
        for (name, handle) in changes.streams {
            match handle {
                Some(h) => streams.insert(name, h),
                None => streams.remove(&name),
            };
        }
        let mut tables = self.tables.clone();
        for (name, handle) in changes.tables {
            match handle {
                Some(h) => tables.insert(name, h),
                None => tables.remove(&name),
            };
        }
        let mut views = self.views.clone();
        for (name, view) in changes.views {
            match view {
                Some(v) => views.insert(name, v),
                None => views.remove(&name),
            };
        }
        let mut catalog = Catalog::new(self.db.clone(), streams, tables, views);
        catalog.altered = self.altered + changes.altered as u64;
        catalog
    }
}

/// The storage engine: a RocksDB database holding the catalog and the log.
///
/// Cloning is cheap; all clones share one database and one committer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<DB>,
    path: PathBuf,
    catalog: Arc<RwLock<Arc<Catalog>>>,
    groups: Arc<Groups>,
    /// The commit timestamp of the newest group whose records are all
    /// visible (see [`Store::watermark`]).
    watermark: Arc<AtomicI64>,
    /// Rows the committer wrote lately, for point reads.
    rows: Arc<RowCache>,
    sender: Mutex<Option<Sender<Request>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    retention: Mutex<Option<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    archive_reader: RwLock<Option<Arc<dyn ArchiveReader>>>,
}

/// A reference to a [`Store`] that does not keep it open: long-lived
/// structures that point back at the store (the SQL catalog) hold this, so
/// dropping the last `Store` closes the database.
#[derive(Clone)]
pub struct WeakStore {
    inner: Weak<Inner>,
}

impl WeakStore {
    /// The store, if it is still open.
    pub fn upgrade(&self) -> Option<Store> {
        self.inner.upgrade().map(|inner| Store { inner })
    }
}

impl std::fmt::Debug for WeakStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakStore")
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish()
    }
}

/// How a [`Store`] is opened; `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bytes of recently committed chunks kept in memory for readers that
    /// keep up with the writers ([`crate::log::tail`]); 0 turns the cache
    /// off. Default [`DEFAULT_TAIL_CACHE_BYTES`].
    pub tail_cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions { tail_cache_bytes: DEFAULT_TAIL_CACHE_BYTES }
    }
}

impl Store {
    /// Opens (creating if needed) the database in directory `path` and
    /// recovers the catalog and each partition's head from what is on disk.
    ///
    /// Recovery is RocksDB's own WAL replay; every write acknowledged before a
    /// crash is there afterwards. Fails with `Unavailable`-style storage error
    /// if another process has the directory open.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// [`Store::open`] with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::InvalidInput(format!("cannot create data directory {}: {e}", path.display())))?;
        let cfs = COLUMN_FAMILIES.iter().map(|name| ColumnFamilyDescriptor::new(*name, engine::cf_options(name)));
        let db = Arc::new(DB::open_cf_descriptors(&engine::db_options(), &path, cfs)?);
        engine::prepare_wal(&db)?;
        let (streams, tables, views, next_stream_id) = recover(&db)?;
        let catalog = Catalog::new(db.clone(), streams, tables, views);
        let groups = Arc::new(Groups::recover(&db, &catalog.ids)?);
        // Commit timestamps keep increasing across restarts.
        let newest = catalog
            .streams()
            .flat_map(|s| (0..s.def.partitions).map(|p| s.last_timestamp(p)).collect::<Vec<_>>())
            .max()
            .unwrap_or(i64::MIN)
            .max(0);
        let watermark = Arc::new(AtomicI64::new(newest));
        let catalog = Arc::new(RwLock::new(Arc::new(catalog)));
        let (tx, rx) = std::sync::mpsc::channel();
        let rows = Arc::new(RowCache::default());
        let committer = {
            let state = commit::Committer {
                db: db.clone(),
                catalog: catalog.clone(),
                groups: groups.clone(),
                watermark: watermark.clone(),
                rows: rows.clone(),
                tail: TailBudget::new(options.tail_cache_bytes),
                next_stream_id,
            };
            std::thread::Builder::new()
                .name("brikk-committer".into())
                .spawn(move || commit::run(state, rx))
                .map_err(|e| Error::InvalidInput(format!("cannot start committer thread: {e}")))?
        };
        tracing::info!(path = %path.display(), "opened database");
        let stop = Arc::new(AtomicBool::new(false));
        let inner = Arc::new(Inner {
            db,
            path,
            catalog,
            groups,
            watermark,
            rows,
            sender: Mutex::new(Some(tx)),
            committer: Mutex::new(Some(committer)),
            retention: Mutex::new(None),
            stop: stop.clone(),
            archive_reader: RwLock::new(None),
        });
        // The retention thread holds only a weak reference, so dropping the
        // last Store still closes the database.
        let weak = Arc::downgrade(&inner);
        let retention = std::thread::Builder::new()
            .name("brikk-housekeeping".into())
            .spawn(move || housekeeping_loop(weak, stop))
            .map_err(|e| Error::InvalidInput(format!("cannot start housekeeping thread: {e}")))?;
        *inner.retention.lock().expect("retention lock") = Some(retention);
        Ok(Store { inner })
    }

    /// A reference that does not keep the store open.
    pub fn downgrade(&self) -> WeakStore {
        WeakStore { inner: Arc::downgrade(&self.inner) }
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The current catalog snapshot.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.read().expect("catalog lock").clone()
    }

    /// Every consumer group and work queue.
    pub fn groups(&self) -> &Arc<Groups> {
        &self.inner.groups
    }

    /// Commit timestamp of the newest commit group whose records are all
    /// visible. Group timestamps strictly increase, so every record with a
    /// timestamp at or below the watermark is readable now, and every record
    /// committed later has a larger timestamp: reading up to the watermark
    /// gives the same records in the same order live and on replay.
    pub fn watermark(&self) -> i64 {
        self.inner.watermark.load(Ordering::Acquire)
    }

    /// The stream called `name`, if it exists now.
    pub fn stream(&self, name: &str) -> Option<Arc<StreamHandle>> {
        self.catalog().get(name)
    }

    /// Commits a write set atomically.
    ///
    /// Returns only after the write is durable (the WAL is synced); on `Ok`
    /// every append is readable at the returned position, on `Err` nothing
    /// of the set was written. Concurrent callers share one sync. Not
    /// cancel-safe in the sense of undoing: dropping the future does not
    /// withdraw a request that has been queued.
    pub async fn commit(&self, writes: WriteSet) -> Result<CommitReceipt> {
        if writes.is_empty() {
            return Ok(CommitReceipt { positions: Vec::new(), timestamp_micros: commit::now_micros() });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::Commit(writes, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// Creates a stream durably. With `if_not_exists`, an existing stream of
    /// that name is left alone and `None` is returned.
    pub async fn create_stream(&self, def: StreamDef, if_not_exists: bool) -> Result<Option<Arc<StreamHandle>>> {
        def.validate()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::CreateStream(def, if_not_exists, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// The table called `name`, if it exists now.
    pub fn table(&self, name: &str) -> Option<Arc<TableHandle>> {
        self.catalog().table(name)
    }

    /// Creates a table and its changelog stream in one durable write. With
    /// `if_not_exists`, an existing relation of that name is left alone and
    /// `None` is returned. The ids in `def` are assigned here.
    pub async fn create_table(&self, def: TableDef, if_not_exists: bool) -> Result<Option<Arc<TableHandle>>> {
        def.validate()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::CreateTable(def, if_not_exists, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// Drops a table, its rows and its changelog in one durable write.
    /// Returns whether a table was dropped.
    pub async fn drop_table(&self, name: &str, if_exists: bool) -> Result<bool> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::DropTable(name.to_string(), if_exists, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// Changes the columns of the table or stream called `name` in one
    /// durable write (`ALTER TABLE`), all of `changes` or none. Returns
    /// false when there was nothing
    /// to change (`ADD COLUMN IF NOT EXISTS` of an existing column).
    ///
    /// Records and rows keep the columns they were written with; read under
    /// the new definition, they give an added column its `missing` value. A
    /// statement that planned under the old definition may still append to
    /// a stream (its records simply lack the new columns); its row writes to
    /// a table are refused with [`Error::Conflict`], since they would
    /// overwrite the new columns of rows they read without them.
    pub async fn alter(&self, name: &str, changes: Vec<AlterColumns>) -> Result<bool> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::Alter(name.to_string(), changes, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// The view called `name`, if it exists now.
    pub fn view(&self, name: &str) -> Option<Arc<ViewDef>> {
        self.catalog().view(name)
    }

    /// Creates a view (`or_replace`: replacing a view of that name) in one
    /// durable write. Tables, streams and views share one namespace.
    pub async fn create_view(&self, def: ViewDef, or_replace: bool) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::CreateView(def, or_replace, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// Renames the table (and its changelog), stream or view `old` to `new`
    /// in one durable write (`ALTER … RENAME TO`). Everything stored is keyed
    /// by id, so nothing else moves.
    pub async fn rename(&self, old: &str, new: &str) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::Rename(old.to_string(), new.to_string(), tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// Drops a view. Returns whether one was dropped.
    pub async fn drop_view(&self, name: &str, if_exists: bool) -> Result<bool> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::DropView(name.to_string(), if_exists, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// Drops a stream and deletes its records in one durable write. Returns
    /// whether a stream was dropped.
    pub async fn drop_stream(&self, name: &str, if_exists: bool) -> Result<bool> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::DropStream(name.to_string(), if_exists, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    fn send(&self, request: Request) -> Result<()> {
        let sender = self.inner.sender.lock().expect("sender lock");
        sender.as_ref().ok_or(Error::Unavailable)?.send(request).map_err(|_| Error::Unavailable)
    }

    /// Deletes records below the given offsets (see [`crate::log::retention`]).
    pub(crate) async fn trim(&self, trims: Vec<crate::log::retention::Trim>) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::Trim(trims, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// Moves a sealed segment from the live log to its archived file: the
    /// manifest entry and the deletion of the range from the log are one
    /// synced write (see [`crate::archive`]). Call only once the file is
    /// durable under its final name. Fails with `Conflict` if the live log
    /// no longer starts at the file's first offset (nothing is written
    /// then), `NotFound` if the stream was dropped.
    pub async fn hand_over(&self, handover: Handover) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::Archive(handover, tx))?;
        rx.await.map_err(|_| Error::Unavailable)?
    }

    /// Installs what reads archived files back; until then, reading an
    /// archived offset fails with `ArchiveUnavailable`.
    pub fn set_archive_reader(&self, reader: Arc<dyn ArchiveReader>) {
        *self.inner.archive_reader.write().expect("archive reader lock") = Some(reader);
    }

    pub(crate) fn archive_reader(&self) -> Option<Arc<dyn ArchiveReader>> {
        self.inner.archive_reader.read().expect("archive reader lock").clone()
    }

    pub(crate) fn trimmed_below(&self, stream: StreamId, partition: u32) -> u64 {
        self.catalog().by_id(stream).map(|h| h.low(partition)).unwrap_or(0)
    }

    /// Stops accepting writes, lets the committer finish what is queued, and
    /// flushes memtables. Idempotent. Later writes fail with `Unavailable`.
    pub fn close(&self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(handle) = self.inner.retention.lock().expect("retention lock").take() {
            handle.thread().unpark();
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        drop(self.inner.sender.lock().expect("sender lock").take());
        if let Some(handle) = self.inner.committer.lock().expect("committer lock").take() {
            let _ = handle.join();
            if let Err(e) = self.inner.db.flush() {
                tracing::warn!(error = %e, "flush on close failed; the WAL still has every write");
            }
        }
    }

    pub(crate) fn row_cache(&self) -> &RowCache {
        &self.inner.rows
    }

    pub(crate) fn db(&self) -> &DB {
        &self.inner.db
    }

    pub(crate) fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.inner.db.cf_handle(name).expect("column family opened at startup")
    }
}

/// Removes silent group members every [`MEMBER_CHECK_INTERVAL`] and applies
/// retention every [`crate::log::retention::RETENTION_INTERVAL`].
fn housekeeping_loop(store: Weak<Inner>, stop: Arc<AtomicBool>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "housekeeping disabled: cannot build its runtime");
            return;
        }
    };
    let mut last_retention = std::time::Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(MEMBER_CHECK_INTERVAL);
        if stop.load(Ordering::Acquire) {
            break;
        }
        let Some(inner) = store.upgrade() else { break };
        let store = Store { inner };
        store.groups().expire_members(commit::now_micros());
        if last_retention.elapsed() >= crate::log::retention::RETENTION_INTERVAL {
            last_retention = std::time::Instant::now();
            crate::log::retention::pass(&store, &rt);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Ok(slot) = self.retention.get_mut() {
            if let Some(handle) = slot.take() {
                // Never join here: the last reference may be dropped on the
                // retention thread itself.
                handle.thread().unpark();
            }
        }
        drop(self.sender.get_mut().map(Option::take));
        if let Ok(slot) = self.committer.get_mut() {
            if let Some(handle) = slot.take() {
                let _ = handle.join();
            }
        }
    }
}

/// Encoded bytes of a partition's live log (read once at recovery, for
/// streams with `retention_bytes`).
fn live_bytes(db: &DB, def: &StreamDef, p: u32) -> Result<u64> {
    let log = db.cf_handle(CF_LOG).expect("log cf");
    let mut opts = rocksdb::ReadOptions::default();
    opts.set_iterate_upper_bound(keys::log_key(def.id, p, u64::MAX).to_vec());
    let start = keys::log_key(def.id, p, 0);
    let mut total = 0;
    for item in db.iterator_cf_opt(log, opts, IteratorMode::From(&start, Direction::Forward)) {
        total += item?.1.len() as u64;
    }
    Ok(total)
}

type Recovered =
    (BTreeMap<String, Arc<StreamHandle>>, BTreeMap<String, Arc<TableHandle>>, BTreeMap<String, Arc<ViewDef>>, u64);

/// The definitions stored in the catalog under `prefix`, decoded by `decode`.
fn definitions<T>(db: &DB, prefix: &[u8], decode: impl Fn(&[u8]) -> Result<T>) -> Result<Vec<T>> {
    let cat = db.cf_handle(CF_CATALOG).expect("catalog cf");
    let mut out = Vec::new();
    for item in db.iterator_cf(cat, IteratorMode::From(prefix, Direction::Forward)) {
        let (key, value) = item?;
        if !key.starts_with(prefix) {
            break;
        }
        out.push(decode(&value)?);
    }
    Ok(out)
}

/// Loads stream, table and view definitions and finds each partition's head (last
/// offset + 1) and newest timestamp by seeking to the end of its key range, and what of it is
/// archived (the manifest).
fn recover(db: &DB) -> Result<Recovered> {
    let cat = db.cf_handle(CF_CATALOG).expect("catalog cf");
    let log = db.cf_handle(CF_LOG).expect("log cf");
    let mut manifest = archive::load_manifest(db)?;
    let mut streams = BTreeMap::new();
    let iter = db.iterator_cf(cat, IteratorMode::From(keys::CATALOG_STREAM_PREFIX, Direction::Forward));
    for item in iter {
        let (key, value) = item?;
        if !key.starts_with(keys::CATALOG_STREAM_PREFIX) {
            break;
        }
        let def = StreamDef::from_bytes(&value)?;
        let mut parts = Vec::with_capacity(def.partitions as usize);
        for p in 0..def.partitions {
            let mut part = PartitionInit::empty();
            part.archived = manifest.remove(&(def.id, p)).unwrap_or_default();
            let archived_end = part.archived.last().map(|f| (f.last + 1, f.max_timestamp));
            let mut first = db.raw_iterator_cf(log);
            first.seek(keys::log_key(def.id, p, 0));
            let live_first = match first.key().and_then(keys::parse_log_key) {
                Some((id, part, offset)) if id == def.id && part == p => Some(offset),
                _ => None,
            };
            let mut it = db.raw_iterator_cf(log);
            it.seek_for_prev(keys::log_key(def.id, p, u64::MAX));
            match (it.key().and_then(keys::parse_log_key), it.value()) {
                (Some((id, part_no, first)), Some(chunk)) if id == def.id && part_no == p => {
                    let records = codec::chunk_records(first, chunk)?;
                    let (last, rec) = records.last().ok_or_else(|| Error::Corrupt("empty chunk".into()))?;
                    part.head = last + 1;
                    part.last_ts = codec::timestamp_of(rec)?;
                }
                _ => it.status()?,
            }
            if let Some((end, ts)) = archived_end {
                if end > part.head {
                    part.head = end;
                    part.last_ts = ts;
                }
            }
            // The live log starts at its first chunk; with none, right after
            // the archive (or at 0).
            part.live_low = live_first.unwrap_or(archived_end.map_or(0, |(end, _)| end));
            part.low = part.archived.first().map_or(part.live_low, |f| f.first);
            if def.retention_bytes.is_some() {
                part.live_bytes = live_bytes(db, &def, p)?;
            }
            parts.push(part);
        }
        tracing::debug!(stream = %def.name, "recovered stream");
        streams.insert(def.name.clone(), Arc::new(StreamHandle::new(def, parts)));
    }
    let mut tables = BTreeMap::new();
    for def in definitions(db, keys::CATALOG_TABLE_PREFIX, TableDef::from_bytes)? {
        let changelog = streams
            .values()
            .find(|s: &&Arc<StreamHandle>| s.def.id == def.changelog)
            .cloned()
            .ok_or_else(|| Error::Corrupt(format!("changelog of table \"{}\" is missing", def.name)))?;
        tables.insert(def.name.clone(), Arc::new(TableHandle::new(def, changelog)));
    }
    let views = definitions(db, keys::CATALOG_VIEW_PREFIX, ViewDef::from_bytes)?
        .into_iter()
        .map(|def| (def.name.clone(), Arc::new(def)))
        .collect();
    let next_id = match db.get_cf(cat, keys::CATALOG_NEXT_STREAM_ID)? {
        Some(v) => u64::from_be_bytes(v.as_slice().try_into().map_err(|_| Error::Corrupt("next_stream_id".into()))?),
        None => 1,
    };
    Ok((streams, tables, views, next_id))
}
