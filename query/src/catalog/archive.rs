//! Archived offsets in a scan: which files and row groups a query reads.
//!
//! A stream partition's offsets below its live low live in Parquet files
//! (see `brikk_storage::archive`). At planning, [`plan_archive`] keeps the
//! files whose offset and timestamp ranges (from the manifest) meet the
//! scan's, and asks the installed [`ArchiveScan`] which of their row groups
//! can hold wanted rows (by the files' `_offset` / `_timestamp`
//! statistics). `EXPLAIN` shows what is kept on the `StreamScanExec` line.
//! At execution each partition reads its kept row groups, then its live log.

use std::sync::Arc;

use brikk_storage::{ArchivedFile, StreamDef, StreamHandle};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::future::BoxFuture;

use crate::catalog::scan::PartitionRange;

/// Reads archived files for scans. Implemented by `brikk-connectors`
/// (Parquet through `object_store`) and installed with
/// [`crate::Brikk::set_archive_scan`].
pub trait ArchiveScan: Send + Sync + std::fmt::Debug {
    /// The row groups of `file` that may hold rows with offsets in
    /// `[from, to)` and commit timestamps in `[ts.0, ts.1)`, by the file's
    /// statistics, in file order. Reads (and may cache) the file's footer;
    /// a missing or unreadable file is an error naming it.
    fn prune<'a>(
        &'a self,
        stream: &'a StreamDef,
        file: &'a ArchivedFile,
        from: u64,
        to: u64,
        ts: (i64, i64),
    ) -> BoxFuture<'a, Result<RowGroups>>;

    /// The rows of `row_groups` with offsets in `[from, to)`, in offset
    /// order, as batches of the stream schema projected to `projection`.
    /// The stream fails, naming the file, if it is missing, does not decode
    /// or holds other offsets than the manifest says: never wrong rows.
    fn read(
        &self,
        stream: &StreamDef,
        file: &ArchivedFile,
        row_groups: Vec<usize>,
        projection: Vec<usize>,
        from: u64,
        to: u64,
    ) -> SendableRecordBatchStream;
}

/// The row groups of a file a scan keeps, out of `total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroups {
    pub kept: Vec<usize>,
    pub total: usize,
}

/// One archived file a scan reads: rows `[from, to)` of its kept row groups.
#[derive(Debug, Clone)]
pub struct ArchivePart {
    pub file: ArchivedFile,
    pub row_groups: RowGroups,
    pub from: u64,
    pub to: u64,
}

/// What one stream partition of a scan reads from the archive, and where
/// its live part starts.
#[derive(Debug, Clone, Default)]
pub struct PartitionArchive {
    pub parts: Vec<ArchivePart>,
    /// First offset read from the live log.
    pub live_from: u64,
    /// Files of the partition skipped by their manifest ranges or whose
    /// every row group was pruned.
    pub pruned_files: usize,
}

/// Plans the archived part of each range (see the module docs).
pub async fn plan_archive(
    scan: Option<&Arc<dyn ArchiveScan>>,
    stream: &StreamHandle,
    ranges: &[PartitionRange],
    ts: (i64, i64),
) -> Result<Vec<PartitionArchive>> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let live_low = stream.live_low(r.partition);
        let mut plan = PartitionArchive { live_from: r.from.max(live_low), ..Default::default() };
        let files = stream.archived(r.partition);
        let end = r.to.min(live_low);
        for f in files.iter() {
            let (from, to) = (r.from.max(f.first), end.min(f.last + 1));
            let meets_ts = f.max_timestamp >= ts.0 && f.min_timestamp < ts.1;
            if from >= to || !meets_ts {
                plan.pruned_files += 1;
                continue;
            }
            let scan = scan.ok_or_else(|| {
                DataFusionError::External(Box::new(crate::Error::from(brikk_storage::Error::ArchiveUnavailable(
                    format!("stream \"{}\" has archived offsets and no archive reader is installed", stream.def.name),
                ))))
            })?;
            let row_groups = scan.prune(&stream.def, f, from, to, ts).await?;
            if row_groups.kept.is_empty() {
                plan.pruned_files += 1;
                continue;
            }
            plan.parts.push(ArchivePart { file: f.clone(), row_groups, from, to });
        }
        out.push(plan);
    }
    Ok(out)
}
