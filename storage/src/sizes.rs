//! How much disk a relation and the whole database take, for the Postgres
//! size functions (`pg_table_size`, `pg_database_size`, psql's `\dt+` and
//! `\l+`).
//!
//! A relation's size is RocksDB's estimate of its key ranges: what its
//! table files hold (compressed, as on disk) and what its memtables hold
//! (not yet flushed), plus a stream's archived Parquet files. Cheap: no
//! data is read; the memtable part is sampled, so it is approximate.

use std::path::Path;

use crate::engine::approximate_size;
use crate::error::Result;
use crate::keys;
use crate::log::StreamHandle;
use crate::store::{Store, CF_LOG, CF_TABLES, CF_TIME_INDEX};
use crate::tables::TableHandle;

impl Store {
    /// Bytes on disk of the table or stream called `name`; `None` if there
    /// is neither. A table's size is its current rows (its changelog is a
    /// stream of its own); a stream's is its live log, its time index and
    /// its archived files.
    pub fn relation_size(&self, name: &str) -> Result<Option<u64>> {
        if let Some(table) = self.table(name) {
            return self.table_size(&table).map(Some);
        }
        self.stream(name).map(|s| self.stream_size(&s)).transpose()
    }

    fn table_size(&self, table: &TableHandle) -> Result<u64> {
        let (start, end) = keys::table_range(table.def.id);
        approximate_size(self.db(), self.cf(CF_TABLES), &start, &end)
    }

    fn stream_size(&self, stream: &StreamHandle) -> Result<u64> {
        let (start, end) = (keys::stream_start(stream.def.id), keys::stream_end(stream.def.id));
        let live = approximate_size(self.db(), self.cf(CF_LOG), &start, &end)?
            + approximate_size(self.db(), self.cf(CF_TIME_INDEX), &start, &end)?;
        let archived: u64 =
            (0..stream.def.partitions).map(|p| stream.archived(p).iter().map(|f| f.bytes).sum::<u64>()).sum();
        Ok(live + archived)
    }

    /// Bytes of every file under the data directory: the database's whole
    /// footprint on disk (WAL, table files, catalog, archive when it lives
    /// there). Files that vanish while it counts (a compaction finishing)
    /// are skipped.
    pub fn database_size(&self) -> u64 {
        directory_size(self.path())
    }
}

fn directory_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => directory_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
