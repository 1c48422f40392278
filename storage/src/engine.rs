//! How Brikk configures RocksDB, and the write-ahead log's preparation.
//!
//! Every acknowledged write is a WAL append followed by `fdatasync`. On
//! ext4 (and most file systems) that sync costs far less when the bytes
//! overwrite blocks the WAL file already has: appending to a file also
//! changes its size, so the sync has to commit the file system's journal
//! too. Measured on the development machine: 186 µs per `fdatasync` after an
//! append, 130 µs after an overwrite. PostgreSQL gets the cheap case by
//! recycling zero-filled WAL segments; Brikk does the same with RocksDB's
//! WAL recycling:
//!
//! * `recycle_log_file_num` keeps obsolete WAL files and reuses them in
//!   place instead of creating new ones (RocksDB then writes records that
//!   carry their WAL's number, so stale bytes from the file's previous life
//!   are never replayed; point-in-time recovery is unchanged);
//! * `atomic_flush` flushes every column family together, so the WAL file
//!   a flush leaves behind is obsolete at once and can be recycled. Without
//!   it, a file stays alive until every column family that wrote into it has
//!   flushed: under upserts, the `tables` family's small memtable switched
//!   WAL files every ≈7 MB while the `log` family's larger one kept the old
//!   files alive, so each new WAL file was a fresh one, every sync appended
//!   to it and also wrote its inode (≈210 µs against ≈130 µs per sync; 16
//!   connections upserting went from ≈31k to ≈37k/s);
//! * `max_total_wal_size` makes RocksDB flush the column families that keep
//!   old WAL files alive, so files do become obsolete and recyclable;
//! * `db_write_buffer_size` ([`MEMTABLE_BUDGET_BYTES`]) ends each WAL
//!   file's life (a flush, then a switch) before it outgrows a recycled
//!   file ([`PREPARED_WAL_BYTES`]). RocksDB trims a WAL file to its written
//!   size when it closes it, so without a bound a long life (64 MB, the
//!   `log` family's default memtable) would append at the end of every
//!   recycled file, and syncs there write the inode too;
//! * [`prepare_wal`] runs at open, so the very first synced write already
//!   goes to a recycled file rather than waiting for the first memtable
//!   switch.

use rocksdb::{BlockBasedOptions, Options, WriteBatch, WriteOptions, DB};

use crate::error::Result;

/// WAL files RocksDB keeps for reuse.
const RECYCLED_WAL_FILES: usize = 2;

/// Live WAL beyond which RocksDB flushes the column families holding the
/// oldest WAL file, making it obsolete (and recyclable).
const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;

/// Size of each WAL file [`prepare_wal`] writes for recycling.
const PREPARED_WAL_BYTES: usize = 48 << 20;

/// Memtable bytes of all column families together beyond which RocksDB
/// flushes (all of them, see `atomic_flush`) and switches WAL files. Below
/// [`PREPARED_WAL_BYTES`], so one WAL file's life never outgrows a recycled
/// file: every write is an overwrite.
const MEMTABLE_BUDGET_BYTES: usize = 40 << 20;

/// Memtable size of the `tables` column family. Row tables take one entry
/// per change of a row; a small memtable keeps its skiplist shallow and in
/// cache, so an insert walks fewer cache lines (the committer does the
/// inserts, between a group's sync and its replies). Profiles of upserts:
/// the skiplist search took 21% of the server's CPU at 64 MB, 10% at 16 MB
/// and 4% at 4 MB.
const TABLES_WRITE_BUFFER_BYTES: usize = 4 << 20;

/// Bloom filter bits per key of the `tables` column family: with small
/// memtables a row is more often in a table file, and the filter lets a
/// point read skip the files that do not have its key.
const TABLES_BLOOM_BITS_PER_KEY: f64 = 10.0;

/// Options of the database as a whole.
pub(crate) fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
    opts.set_max_background_jobs(2);
    opts.set_recycle_log_file_num(RECYCLED_WAL_FILES);
    opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    opts.set_atomic_flush(true);
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET_BYTES);
    opts
}

/// Options of column family `name`.
pub(crate) fn cf_options(name: &str) -> Options {
    let mut opts = Options::default();
    match name {
        crate::store::CF_LOG => opts.set_compression_type(rocksdb::DBCompressionType::Lz4),
        crate::store::CF_TABLES => {
            opts.set_write_buffer_size(TABLES_WRITE_BUFFER_BYTES);
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(TABLES_BLOOM_BITS_PER_KEY, false);
            opts.set_block_based_table_factory(&table);
        }
        _ => {}
    }
    opts
}

/// Leaves the database writing to a recycled WAL file of at least
/// [`PREPARED_WAL_BYTES`], with one more such file ready for the next switch.
///
/// RocksDB opens a new, empty WAL file at every open and only reuses files
/// at a memtable switch, so this writes WAL-only filler (never applied to any
/// memtable) and switches twice. A switch needs a non-empty memtable: a
/// marker key in the default column family, put before and deleted after.
/// Must run before any other write of this process; costs two unsynced
/// sequential writes of [`PREPARED_WAL_BYTES`] and two tiny flushes.
pub(crate) fn prepare_wal(db: &DB) -> Result<()> {
    const MARKER: &[u8] = b"brikk/wal-preparation";
    let filler = vec![0u8; 1 << 20];
    let no_sync = WriteOptions::default();
    for round in 0..2 {
        for _ in 0..PREPARED_WAL_BYTES / filler.len() {
            let mut batch = WriteBatch::default();
            batch.put_log_data(&filler);
            db.write_opt(batch, &no_sync)?;
        }
        let mut batch = WriteBatch::default();
        if round == 0 {
            batch.put(MARKER, []);
        } else {
            batch.delete(MARKER);
        }
        db.write_opt(batch, &no_sync)?;
        db.flush()?;
    }
    Ok(())
}

/// Approximate bytes of the keys in `start..end` of column family `cf`, in
/// its table files (compressed, as on disk) and in its memtables (not yet
/// flushed). `rocksdb` wraps only the table-file half
/// (`get_approximate_sizes_cf`), so this calls the C API.
pub(crate) fn approximate_size(db: &DB, cf: &rocksdb::ColumnFamily, start: &[u8], end: &[u8]) -> Result<u64> {
    use librocksdb_sys as ffi;
    use rocksdb::{AsColumnFamilyRef, AsRawPtr};
    let flags = (ffi::rocksdb_size_approximation_flags_include_memtable
        | ffi::rocksdb_size_approximation_flags_include_files) as u8;
    let (start_ptr, end_ptr) = (start.as_ptr().cast::<std::ffi::c_char>(), end.as_ptr().cast::<std::ffi::c_char>());
    let mut size = 0u64;
    let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: `db` and `cf` are live handles for the whole call (borrowed),
    // the one range's keys and lengths point at the borrowed slices, and
    // RocksDB writes one size into `size` and, on failure, a message it
    // allocated into `err`, which is freed below.
    unsafe {
        ffi::rocksdb_approximate_sizes_cf_with_flags(
            db.as_raw_ptr(),
            cf.inner(),
            1,
            &start_ptr,
            &start.len(),
            &end_ptr,
            &end.len(),
            flags,
            &mut size,
            &mut err,
        );
        if !err.is_null() {
            let message = std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned();
            ffi::rocksdb_free(err.cast());
            return Err(crate::error::Error::Engine(message));
        }
    }
    Ok(size)
}
