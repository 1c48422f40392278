//! Writing one sealed segment as one Parquet file.

use std::io::Write;

use brikk_query::catalog::scan::to_batch;
use brikk_query::catalog::stream_schema;
use brikk_storage::{now_micros, ArchivedFile, Segment, Store, StreamHandle};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use object_store::ObjectStoreExt;

use crate::archive::location::Location;
use crate::error::{Error, Result};

/// Parquet key-value metadata naming what a file holds, checked when read.
pub const KEY_STREAM: &str = "brikk.stream";
pub const KEY_PARTITION: &str = "brikk.partition";
pub const KEY_FIRST: &str = "brikk.first_offset";
pub const KEY_LAST: &str = "brikk.last_offset";

/// Records read from the live log per pass, and the most rows in one row
/// group.
const READ_BATCH: usize = 65_536;
const MAX_ROW_GROUP: u64 = 131_072;

/// Writes `segment` of `stream` to `<root>/<stream>/<partition>/<first>-<last>.parquet`
/// and returns its manifest entry (not yet handed over).
///
/// The file has the stream's schema (`_partition`, `_offset`, `_timestamp`,
/// `_key`, then the user's columns), zstd pages, and row groups of at most
/// a quarter of the stream's `segment_rows` (at most 131,072 rows) with
/// statistics, so a scan can skip row groups by `_offset` / `_timestamp`.
/// Local files are written to a temporary name, synced, renamed and the
/// directory synced; object stores get one atomic PUT. Blocking: run it on
/// a blocking thread. `io` is a runtime for object-store calls.
pub fn write_segment(
    store: &Store,
    stream: &StreamHandle,
    loc: &Location,
    segment: &Segment,
    io: &tokio::runtime::Handle,
) -> Result<ArchivedFile> {
    let rel = brikk_storage::archive::file_path(&stream.def.name, segment.partition, segment.first, segment.last);
    let shown = loc.display(&rel);
    let werr = |e: &dyn std::fmt::Display| Error::Write { path: shown.clone(), detail: e.to_string() };
    let segment_rows = stream.def.archive.as_ref().map_or(MAX_ROW_GROUP, |a| a.segment_rows);
    let row_group = segment_rows.div_ceil(4).clamp(1, MAX_ROW_GROUP) as usize;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| werr(&e))?))
        .set_max_row_group_row_count(Some(row_group))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(KEY_STREAM.into(), stream.def.name.clone()),
            KeyValue::new(KEY_PARTITION.into(), segment.partition.to_string()),
            KeyValue::new(KEY_FIRST.into(), segment.first.to_string()),
            KeyValue::new(KEY_LAST.into(), segment.last.to_string()),
        ]))
        .build();
    let schema = stream_schema(stream);
    let projection: Vec<usize> = (0..schema.fields().len()).collect();

    let write_all = |out: &mut (dyn Write + Send)| -> Result<()> {
        let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(props.clone())).map_err(|e| werr(&e))?;
        let mut next = segment.first;
        while next <= segment.last {
            let records = store.read(stream, segment.partition, next, segment.last + 1, READ_BATCH)?;
            let dense = records.first().map(|r| r.offset) == Some(next)
                && records.iter().enumerate().all(|(i, r)| r.offset == next + i as u64);
            if !dense {
                return Err(Error::Storage(brikk_storage::Error::Corrupt(format!(
                    "segment {}..={} of partition {} of \"{}\" is not all in the live log",
                    segment.first, segment.last, segment.partition, stream.def.name
                ))));
            }
            next += records.len() as u64;
            let batch = to_batch(&schema, &projection, segment.partition, stream, records).map_err(|e| werr(&e))?;
            writer.write(&batch).map_err(|e| werr(&e))?;
        }
        writer.close().map_err(|e| werr(&e))?;
        Ok(())
    };

    let bytes = match loc.local_path(&rel) {
        Some(path) => {
            let dir = path.parent().expect("file path has a directory").to_path_buf();
            std::fs::create_dir_all(&dir).map_err(|e| werr(&e))?;
            let name = path.file_name().expect("file name").to_string_lossy().into_owned();
            let tmp = dir.join(format!(".{name}.tmp"));
            let mut file = std::fs::File::create(&tmp).map_err(|e| werr(&e))?;
            let written = (|| {
                let mut buf = std::io::BufWriter::with_capacity(1 << 20, &mut file);
                write_all(&mut buf)?;
                buf.flush().map_err(|e| werr(&e))?;
                drop(buf);
                file.sync_all().map_err(|e| werr(&e))
            })();
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            let size = file.metadata().map_err(|e| werr(&e))?.len();
            drop(file);
            std::fs::rename(&tmp, &path).map_err(|e| werr(&e))?;
            std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| werr(&e))?;
            size
        }
        None => {
            let mut buf = Vec::with_capacity(1 << 20);
            write_all(&mut buf)?;
            let size = buf.len() as u64;
            let path = loc.object_path(&rel);
            io.block_on(loc.store.put(&path, buf.into())).map_err(|e| werr(&e))?;
            size
        }
    };
    Ok(ArchivedFile {
        partition: segment.partition,
        first: segment.first,
        last: segment.last,
        path: rel,
        rows: segment.rows,
        bytes,
        min_timestamp: segment.min_timestamp,
        max_timestamp: segment.max_timestamp,
        live_bytes: segment.bytes,
        archived_at: now_micros(),
    })
}
