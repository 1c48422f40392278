//! The rows the committer wrote lately, in memory, for point reads that
//! do not walk RocksDB's memtable.
//!
//! Only the committer fills it, after a group's write is durable and before
//! the group's writers hear back; readers never insert. So an entry is
//! always the row's current version, or (for the short moment between the
//! write and the update) the version just before it, which is what a read
//! racing with an unacknowledged write may see anyway. A key that is not in
//! the cache is read from RocksDB, which holds every write. When the cache
//! grows past its bounds it starts over; nothing depends on what it holds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::catalog::TableId;

/// Encoded `tables` value of a row (see [`crate::tables::read`]), or `None`
/// if the row was deleted.
pub(crate) type Cached = Option<Arc<[u8]>>;

#[derive(Default)]
pub(crate) struct RowCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    tables: HashMap<TableId, HashMap<Vec<u8>, Cached>>,
    /// Bytes of the keys and values held.
    bytes: usize,
}

impl RowCache {
    /// Rows kept before the cache starts over...
    const MAX_ROWS: usize = 1 << 18;
    /// ...or bytes of keys and values.
    const MAX_BYTES: usize = 64 << 20;

    /// The cached state of a row: `None` if the cache does not know it,
    /// `Some(None)` if the row is deleted.
    pub(crate) fn get(&self, table: TableId, key: &[u8]) -> Option<Cached> {
        let inner = self.inner.read().expect("row cache lock");
        inner.tables.get(&table)?.get(key).cloned()
    }

    /// Takes in the rows of a durable group, and forgets dropped tables.
    pub(crate) fn record(&self, rows: HashMap<(TableId, Vec<u8>), Cached>, dropped: &[TableId]) {
        if rows.is_empty() && dropped.is_empty() {
            return;
        }
        let mut inner = self.inner.write().expect("row cache lock");
        for id in dropped {
            if let Some(t) = inner.tables.remove(id) {
                inner.bytes -= t.iter().map(|(k, v)| size(k, v)).sum::<usize>();
            }
        }
        let held: usize = inner.tables.values().map(HashMap::len).sum();
        let added: usize = rows.iter().map(|((_, k), v)| size(k, v)).sum();
        if held + rows.len() > Self::MAX_ROWS || inner.bytes + added > Self::MAX_BYTES {
            *inner = Inner::default();
        }
        for ((id, key), value) in rows {
            inner.bytes += size(&key, &value);
            let key_len = key.len();
            if let Some(old) = inner.tables.entry(id).or_default().insert(key, value) {
                inner.bytes -= key_len + old.as_ref().map_or(0, |v| v.len());
            }
        }
    }
}

/// Bytes an entry holds.
fn size(key: &[u8], value: &Cached) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len())
}
