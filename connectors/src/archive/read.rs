//! Reading archived files: pruned Arrow scans for SQL, records for
//! consumer groups, `LISTEN` and replays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use brikk_query::catalog::{stream_schema_of, ArchiveScan, RowGroups};
use brikk_storage::{ArchiveReader, ArchivedFile, Error as StorageError, Record, StreamDef};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
// ParquetObjectReader is deprecated in parquet 59 in favour of hand-written
// AsyncFileReader impls; it is still what DataFusion 55 itself reads with.
#[allow(deprecated)]
use datafusion::parquet::arrow::async_reader::ParquetObjectReader;
use datafusion::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::statistics::Statistics;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};

use crate::archive::location::{Location, Locations};
use crate::archive::write::{KEY_FIRST, KEY_LAST, KEY_PARTITION};
use crate::error::{Error, Result};

/// Rows per Arrow batch read from a file.
const BATCH_ROWS: usize = 8192;
/// Footers kept in memory (a few KB each).
const FOOTER_CACHE: usize = 4096;

type SResult<T> = std::result::Result<T, StorageError>;

/// The archive as Brikk reads it: implements [`ArchiveScan`] (SQL) and
/// [`ArchiveReader`] (records). Footers are read once per file and cached;
/// each is checked against the manifest entry (schema, partition, offsets,
/// rows) before any row is trusted.
#[derive(Clone)]
pub struct ParquetArchive {
    inner: Arc<Inner>,
}

struct Inner {
    locations: Locations,
    footers: Mutex<HashMap<(String, String), ArrowReaderMetadata>>,
    /// Runs object-store I/O for callers that block (record reads).
    io: Mutex<Option<tokio::runtime::Runtime>>,
    io_handle: tokio::runtime::Handle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.io.lock().ok().and_then(|mut g| g.take()) {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ParquetArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParquetArchive")
    }
}

impl ParquetArchive {
    pub fn new(locations: Locations) -> Result<ParquetArchive> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("brikk-archive-io")
            .enable_all()
            .build()
            .map_err(|e| Error::Io { path: "archive I/O runtime".into(), detail: e.to_string() })?;
        let io_handle = rt.handle().clone();
        Ok(ParquetArchive {
            inner: Arc::new(Inner {
                locations,
                footers: Mutex::new(HashMap::new()),
                io: Mutex::new(Some(rt)),
                io_handle,
            }),
        })
    }

    /// The archive roots.
    pub fn locations(&self) -> &Locations {
        &self.inner.locations
    }

    /// A runtime handle for object-store calls from blocking threads.
    pub fn io(&self) -> &tokio::runtime::Handle {
        &self.inner.io_handle
    }

    fn location(&self, def: &StreamDef) -> SResult<Arc<Location>> {
        self.inner.locations.of(def).map_err(|e| StorageError::ArchiveUnavailable(e.to_string()))
    }

    /// The file's footer, checked against its manifest entry.
    async fn footer(&self, def: &StreamDef, file: &ArchivedFile) -> SResult<(Arc<Location>, ArrowReaderMetadata)> {
        let loc = self.location(def)?;
        let key = (loc.url.clone(), file.path.clone());
        if let Some(m) = self.inner.footers.lock().expect("footer cache").get(&key) {
            return Ok((loc, m.clone()));
        }
        let shown = loc.display(&file.path);
        #[allow(deprecated)]
        let mut reader = ParquetObjectReader::new(loc.store.clone(), loc.object_path(&file.path));
        let meta = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| classify(&shown, e))?;
        check_footer(def, file, &meta).map_err(|detail| StorageError::ArchiveCorrupt { file: shown, detail })?;
        let mut cache = self.inner.footers.lock().expect("footer cache");
        if cache.len() >= FOOTER_CACHE {
            cache.clear();
        }
        cache.insert(key, meta.clone());
        Ok((loc, meta))
    }

    /// Forgets cached footers of files under `dir` of a root (a dropped stream).
    pub(crate) fn forget(&self, url: &str, dir: &str) {
        let prefix = format!("{dir}/");
        self.inner.footers.lock().expect("footer cache").retain(|(u, p), _| !(u == url && p.starts_with(&prefix)));
    }

    async fn prune_file(
        &self,
        def: &StreamDef,
        file: &ArchivedFile,
        from: u64,
        to: u64,
        ts: (i64, i64),
    ) -> SResult<RowGroups> {
        let (_, meta) = self.footer(def, file).await?;
        let md = meta.metadata();
        let total = md.num_row_groups();
        let range = |rg: usize, col: usize| -> Option<(i64, i64)> {
            match md.row_group(rg).column(col).statistics()? {
                Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
                _ => None,
            }
        };
        let kept = (0..total)
            .filter(|&rg| {
                let by_offset = range(rg, 1).is_none_or(|(lo, hi)| hi >= from as i64 && lo < to as i64);
                let by_time = range(rg, 2).is_none_or(|(lo, hi)| hi >= ts.0 && lo < ts.1);
                by_offset && by_time
            })
            .collect();
        Ok(RowGroups { kept, total })
    }

    /// Rows `[from, to)` of `row_groups`, projected, checked to be exactly
    /// those offsets.
    fn stream_file(
        &self,
        def: StreamDef,
        file: ArchivedFile,
        row_groups: Vec<usize>,
        projection: Vec<usize>,
        from: u64,
        to: u64,
    ) -> futures::stream::BoxStream<'static, SResult<RecordBatch>> {
        let this = self.clone();
        let open = async move {
            let (loc, meta) = this.footer(&def, &file).await?;
            let shown = loc.display(&file.path);
            // Read _offset (column 1) to cut and check the rows, unless the
            // row groups' statistics show they hold exactly `[from, to)`:
            // then counting the rows checks them, and a scan that does not
            // project `_offset` decodes one column less.
            let whole = !projection.is_empty()
                && !projection.contains(&1)
                && covers_exactly(meta.metadata(), &row_groups, from, to);
            let mut cols = projection.clone();
            if !whole && !cols.contains(&1) {
                cols.push(1);
            }
            cols.sort_unstable();
            let mask = ProjectionMask::roots(meta.parquet_schema(), cols.iter().copied());
            #[allow(deprecated)]
            let reader =
                ParquetObjectReader::new(loc.store.clone(), loc.object_path(&file.path)).with_file_size(file.bytes);
            let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta)
                .with_row_groups(row_groups)
                .with_projection(mask)
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| classify(&shown, e))?;
            let order: Vec<usize> =
                projection.iter().map(|p| cols.iter().position(|c| c == p).expect("projected")).collect();
            let offset_at = cols.iter().position(|c| *c == 1);
            let ctx = Arc::new((shown, order));
            let checked = futures::stream::unfold((stream, from, false), move |(mut inner, mut next, done)| {
                let ctx = ctx.clone();
                async move {
                    if done {
                        return None;
                    }
                    let (shown, order) = (&ctx.0, &ctx.1);
                    let corrupt = |detail: String| StorageError::ArchiveCorrupt { file: shown.clone(), detail };
                    loop {
                        let item = match inner.next().await {
                            Some(Err(e)) => Err(classify(shown, e)),
                            Some(Ok(b)) => match cut_batch(&b, offset_at, order, &mut next, to) {
                                Ok(c) if c.num_rows() == 0 => continue,
                                Ok(c) => return Some((Ok(c), (inner, next, false))),
                                Err(d) => Err(corrupt(d)),
                            },
                            None if next != to => Err(corrupt(format!("offsets {next}..{to} are missing"))),
                            None => return None,
                        };
                        return Some((item, (inner, next, true)));
                    }
                }
            });
            Ok::<_, StorageError>(checked)
        };
        open.into_stream().try_flatten().boxed()
    }
}

/// Keeps the rows of `b` with offsets in `[*next, to)` (they must start at
/// `*next` and be dense) and reorders its columns to the projection.
///
/// Without `_offset` among the columns read (`offset_at` is `None`: the row
/// groups hold exactly `[*next, to)` by their statistics) the rows are
/// counted instead.
fn cut_batch(
    b: &RecordBatch,
    offset_at: Option<usize>,
    order: &[usize],
    next: &mut u64,
    to: u64,
) -> std::result::Result<RecordBatch, String> {
    let Some(offset_at) = offset_at else {
        let n = b.num_rows() as u64;
        if *next + n > to {
            return Err(format!("more rows than offsets {}..{to}", *next));
        }
        *next += n;
        return b.project(order).map_err(|e| e.to_string());
    };
    let offsets = b.column(offset_at).as_primitive_opt::<Int64Type>().ok_or("_offset is not bigint")?;
    let n = b.num_rows();
    if n == 0 || offsets.null_count() > 0 {
        return Ok(b.project(order).map_err(|e| e.to_string())?.slice(0, 0));
    }
    let (first, last) = (offsets.value(0) as u64, offsets.value(n - 1) as u64);
    if last.wrapping_sub(first) != (n - 1) as u64 {
        return Err(format!("offsets {first}..={last} are not dense in {n} rows"));
    }
    if last < *next || first >= to {
        return Ok(b.project(order).map_err(|e| e.to_string())?.slice(0, 0));
    }
    if first > *next {
        return Err(format!("offsets {}..{first} are missing", *next));
    }
    let start = (*next - first) as usize;
    let end = ((to.min(last + 1)) - first) as usize;
    *next = first + end as u64;
    let projected = b.project(order).map_err(|e| e.to_string())?;
    Ok(projected.slice(start, end - start))
}

/// Whether `row_groups`, in order, hold the offsets `[from, to)` and no
/// others by their `_offset` statistics: each dense (max − min + 1 rows), each
/// starting where the previous ended, the first at `from`, the last at `to`.
fn covers_exactly(md: &ParquetMetaData, row_groups: &[usize], from: u64, to: u64) -> bool {
    let mut next = from as i64;
    for &rg in row_groups {
        let Some(group) = md.row_groups().get(rg) else { return false };
        let Some(Statistics::Int64(s)) = group.column(1).statistics() else { return false };
        let (Some(&lo), Some(&hi)) = (s.min_opt(), s.max_opt()) else { return false };
        if lo != next || hi - lo + 1 != group.num_rows() || s.null_count_opt().unwrap_or(1) != 0 {
            return false;
        }
        next = hi + 1;
    }
    !row_groups.is_empty() && next == to as i64
}

/// Checks a footer against the manifest entry: same schema as the stream,
/// same partition, offsets and row count.
fn check_footer(def: &StreamDef, file: &ArchivedFile, meta: &ArrowReaderMetadata) -> std::result::Result<(), String> {
    let want = stream_schema_of(def);
    let got = meta.schema();
    let same = want.fields().len() == got.fields().len()
        && want.fields().iter().zip(got.fields()).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        return Err("its columns do not match the stream's".into());
    }
    let md = meta.metadata().file_metadata();
    if md.num_rows() as u64 != file.rows {
        return Err(format!("it has {} rows, the manifest says {}", md.num_rows(), file.rows));
    }
    let kv = |k: &str| -> Option<String> {
        md.key_value_metadata()?.iter().find(|e| e.key == k).and_then(|e| e.value.clone())
    };
    let expect = [(KEY_PARTITION, file.partition as u64), (KEY_FIRST, file.first), (KEY_LAST, file.last)];
    for (k, v) in expect {
        if kv(k).and_then(|s| s.parse::<u64>().ok()) != Some(v) {
            return Err(format!("its {k} is not {v}"));
        }
    }
    Ok(())
}

/// A missing object is `ArchiveMissing`; anything else that fails to
/// decode is `ArchiveCorrupt`.
fn classify(file: &str, e: ParquetError) -> StorageError {
    if let ParquetError::External(inner) = &e {
        if let Some(os) = inner.downcast_ref::<object_store::Error>() {
            return match os {
                object_store::Error::NotFound { .. } => {
                    StorageError::ArchiveMissing { file: file.to_string(), detail: "no such file".into() }
                }
                other => StorageError::ArchiveUnavailable(format!("{file}: {other}")),
            };
        }
    }
    StorageError::ArchiveCorrupt { file: file.to_string(), detail: e.to_string() }
}

fn to_df(e: StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(brikk_query::Error::from(e)))
}

impl ArchiveScan for ParquetArchive {
    fn prune<'a>(
        &'a self,
        stream: &'a StreamDef,
        file: &'a ArchivedFile,
        from: u64,
        to: u64,
        ts: (i64, i64),
    ) -> BoxFuture<'a, DfResult<RowGroups>> {
        async move { self.prune_file(stream, file, from, to, ts).await.map_err(to_df) }.boxed()
    }

    fn read(
        &self,
        stream: &StreamDef,
        file: &ArchivedFile,
        row_groups: Vec<usize>,
        projection: Vec<usize>,
        from: u64,
        to: u64,
    ) -> SendableRecordBatchStream {
        let full = stream_schema_of(stream);
        let schema: SchemaRef = Arc::new(full.project(&projection).expect("projection of the stream schema"));
        let batches = self.stream_file(stream.clone(), file.clone(), row_groups, projection, from, to).map_err(to_df);
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
}

impl ArchiveReader for ParquetArchive {
    fn read(&self, stream: &StreamDef, file: &ArchivedFile, from: u64, to: u64, limit: usize) -> SResult<Vec<Record>> {
        let to = to.min(from.saturating_add(limit as u64)).min(file.last + 1);
        if from >= to {
            return Ok(Vec::new());
        }
        let (this, def, f) = (self.clone(), stream.clone(), file.clone());
        let work = async move {
            let groups = this.prune_file(&def, &f, from, to, (i64::MIN, i64::MAX)).await?.kept;
            let projection: Vec<usize> = (0..4 + def.columns.len()).collect();
            let batches: Vec<RecordBatch> =
                this.stream_file(def.clone(), f.clone(), groups, projection, from, to).try_collect().await?;
            let mut out = Vec::with_capacity((to - from) as usize);
            for b in &batches {
                out.extend(crate::archive::convert::records(&def, b, &f.path)?);
            }
            Ok(out)
        };
        // Runs on the archive's own runtime: the caller may be a blocking
        // thread or a worker of another runtime.
        let (tx, rx) = std::sync::mpsc::channel();
        self.inner.io_handle.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().map_err(|_| StorageError::ArchiveUnavailable("the archive reader stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int32Array, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
    use datafusion::parquet::file::properties::WriterProperties;

    use super::covers_exactly;

    /// A file of `offsets` in row groups of 10, `_offset` as column 1.
    fn file(offsets: &[i64]) -> ParquetMetaData {
        let schema = Arc::new(Schema::new(vec![
            Field::new("_partition", DataType::Int32, false),
            Field::new("_offset", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![0; offsets.len()])), Arc::new(Int64Array::from(offsets.to_vec()))],
        )
        .unwrap();
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(10)).build();
        let mut bytes = Vec::new();
        let mut w = ArrowWriter::try_new(&mut bytes, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        ParquetMetaDataReader::new().parse_and_finish(&bytes::Bytes::from(bytes)).unwrap()
    }

    #[test]
    fn only_row_groups_holding_exactly_the_range_skip_reading_offsets() {
        let dense: Vec<i64> = (100..130).collect();
        let md = file(&dense);
        assert!(covers_exactly(&md, &[0, 1, 2], 100, 130));
        assert!(covers_exactly(&md, &[1], 110, 120));
        assert!(!covers_exactly(&md, &[0, 1, 2], 101, 130), "a range starting inside a group is cut");
        assert!(!covers_exactly(&md, &[0, 1, 2], 100, 125), "a range ending inside a group is cut");
        assert!(!covers_exactly(&md, &[0, 2], 100, 130), "a skipped group leaves a gap");
        assert!(!covers_exactly(&md, &[], 100, 100));
        // A group with a gap inside has as many rows but a wider min..max.
        let mut gappy = dense.clone();
        gappy[5] = 1000;
        assert!(!covers_exactly(&file(&gappy), &[0, 1, 2], 100, 130));
    }
}
