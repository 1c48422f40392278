//! The archiver: a task that moves sealed segments into Parquet files.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use brikk_storage::{now_micros, Handover, SealState, Store, StreamHandle, StreamId};
use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::archive::location::Location;
use crate::archive::read::ParquetArchive;
use crate::archive::write::write_segment;
use crate::error::Result;

/// How the archiver runs.
#[derive(Debug, Clone)]
pub struct ArchiverOptions {
    /// How often it looks for sealed segments when it found none.
    pub interval: Duration,
}

impl Default for ArchiverOptions {
    fn default() -> ArchiverOptions {
        ArchiverOptions { interval: Duration::from_secs(1) }
    }
}

/// The running archiver. Dropping it stops the task (between segments: a
/// file being written is finished or abandoned, never half handed over).
pub struct Archiver {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Archiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Archiver {
    /// Starts the archiver on the current runtime. It first deletes files
    /// a crash left behind (temporary files, and files no manifest entry
    /// names) under each archived stream's directory, then loops.
    pub fn start(store: Store, archive: Arc<ParquetArchive>, options: ArchiverOptions) -> Archiver {
        let task = tokio::spawn(async move {
            let mut run = Run { store, archive, seal: HashMap::new(), known: HashMap::new() };
            run.sweep_all().await;
            loop {
                let moved = run.pass().await;
                if moved == 0 {
                    tokio::time::sleep(options.interval).await;
                }
            }
        });
        Archiver { task }
    }
}

struct Run {
    store: Store,
    archive: Arc<ParquetArchive>,
    seal: HashMap<(StreamId, u32), SealState>,
    /// Archived streams seen, to clean up after a DROP STREAM.
    known: HashMap<StreamId, (String, Arc<Location>)>,
}

impl Run {
    /// Archives every segment sealed now; returns how many.
    async fn pass(&mut self) -> usize {
        let catalog = self.store.catalog();
        let streams: Vec<Arc<StreamHandle>> = catalog.streams().filter(|s| s.def.archive.is_some()).cloned().collect();
        let live: HashSet<StreamId> = streams.iter().map(|s| s.def.id).collect();
        let gone: Vec<StreamId> = self.known.keys().filter(|id| !live.contains(id)).copied().collect();
        for id in gone {
            if let Some((name, loc)) = self.known.remove(&id) {
                self.seal.retain(|(s, _), _| *s != id);
                self.sweep(&name, &loc).await;
            }
        }
        let mut moved = 0;
        for s in streams {
            let loc = match self.archive.locations().of(&s.def) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(stream = %s.def.name, error = %e, "archive location unusable");
                    continue;
                }
            };
            self.known.insert(s.def.id, (s.def.name.clone(), loc.clone()));
            for p in 0..s.def.partitions {
                match self.archive_one(&s, p, &loc).await {
                    Ok(true) => moved += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(stream = %s.def.name, partition = p, error = %e, "archiving failed"),
                }
            }
        }
        moved
    }

    /// Archives the oldest sealed segment of one partition, if any.
    async fn archive_one(&mut self, s: &Arc<StreamHandle>, p: u32, loc: &Arc<Location>) -> Result<bool> {
        let mut state = self.seal.remove(&(s.def.id, p)).unwrap_or_default();
        let (store, stream) = (self.store.clone(), s.clone());
        let (segment, state) = tokio::task::spawn_blocking(move || {
            let seg = store.sealed_segment(&stream, p, now_micros(), &mut state);
            (seg, state)
        })
        .await
        .map_err(|e| brikk_storage::Error::ArchiveUnavailable(format!("archiver task failed: {e}")))?;
        self.seal.insert((s.def.id, p), state);
        let Some(segment) = segment? else { return Ok(false) };
        let (store, stream, l, io) = (self.store.clone(), s.clone(), loc.clone(), self.archive.io().clone());
        let file = tokio::task::spawn_blocking(move || write_segment(&store, &stream, &l, &segment, &io))
            .await
            .map_err(|e| brikk_storage::Error::ArchiveUnavailable(format!("archiver task failed: {e}")))??;
        let path = file.path.clone();
        if let Err(e) = self.store.hand_over(Handover { stream: s.def.id, file }).await {
            // Not handed over: the file names no manifest entry; remove it.
            delete(loc, &path).await;
            return Err(e.into());
        }
        tracing::debug!(stream = %s.def.name, partition = p, file = %path, rows = segment.rows, "archived");
        Ok(true)
    }

    async fn sweep_all(&mut self) {
        let catalog = self.store.catalog();
        for s in catalog.streams().filter(|s| s.def.archive.is_some()) {
            match self.archive.locations().of(&s.def) {
                Ok(loc) => {
                    self.known.insert(s.def.id, (s.def.name.clone(), loc.clone()));
                    self.sweep(&s.def.name, &loc).await;
                }
                Err(e) => tracing::error!(stream = %s.def.name, error = %e, "archive location unusable"),
            }
        }
    }

    /// Deletes the files under `name`'s directory of `loc` that no manifest
    /// entry of the stream now called `name` (if any) names, and temporary
    /// files. Only names of Brikk's layout are touched.
    async fn sweep(&self, name: &str, loc: &Arc<Location>) {
        let dir = brikk_storage::archive::stream_dir(name);
        self.archive.forget(&loc.url, &dir);
        let keep: HashSet<String> = match self.store.stream(name) {
            Some(s)
                if s.def.archive.is_some()
                    && self.archive.locations().of(&s.def).is_ok_and(|l| Arc::ptr_eq(&l, loc)) =>
            {
                (0..s.def.partitions)
                    .flat_map(|p| s.archived(p).iter().map(|f| f.path.clone()).collect::<Vec<_>>())
                    .collect()
            }
            _ => HashSet::new(),
        };
        let files = match list(loc, &dir).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %loc.display(&dir), error = %e, "cannot list the archive");
                return;
            }
        };
        for rel in files {
            let ours = is_layout_name(&rel, &dir);
            if ours && !keep.contains(&rel) {
                tracing::info!(file = %loc.display(&rel), "deleting an archive file no manifest entry names");
                delete(loc, &rel).await;
            }
        }
    }
}

/// Whether `rel` is `<dir>/<partition>/<first>-<last>.parquet` or a
/// temporary file of one.
fn is_layout_name(rel: &str, dir: &str) -> bool {
    let Some(rest) = rel.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else { return false };
    let Some((partition, name)) = rest.split_once('/') else { return false };
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let name = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")).unwrap_or(name);
    let Some(range) = name.strip_suffix(".parquet") else { return false };
    let Some((a, b)) = range.split_once('-') else { return false };
    !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
}

/// Relative paths of every file under `dir` of `loc`.
async fn list(loc: &Location, dir: &str) -> std::io::Result<Vec<String>> {
    if let Some(root) = &loc.local {
        let mut out = Vec::new();
        let base = root.join(dir);
        let Ok(parts) = std::fs::read_dir(&base) else { return Ok(out) };
        for part in parts {
            let part = part?;
            if !part.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(part.path())? {
                let f = f?;
                out.push(format!("{dir}/{}/{}", part.file_name().to_string_lossy(), f.file_name().to_string_lossy()));
            }
        }
        return Ok(out);
    }
    let prefix = loc.object_path(dir);
    let base = loc.object_path("");
    let mut out = Vec::new();
    let mut listing = loc.store.list(Some(&prefix));
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(std::io::Error::other)?;
        let full = meta.location.to_string();
        let rel = full.strip_prefix(base.as_ref()).unwrap_or(&full).trim_start_matches('/').to_string();
        out.push(rel);
    }
    Ok(out)
}

async fn delete(loc: &Location, rel: &str) {
    let result = match loc.local_path(rel) {
        Some(p) => std::fs::remove_file(&p).map_err(|e| e.to_string()),
        None => loc.store.delete(&loc.object_path(rel)).await.map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(file = %loc.display(rel), error = %e, "cannot delete archive file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_layout_names_are_swept() {
        assert!(is_layout_name("bids/0/0-99.parquet", "bids"));
        assert!(is_layout_name("bids/12/100-199.parquet", "bids"));
        assert!(is_layout_name("bids/0/.0-99.parquet.tmp", "bids"));
        assert!(!is_layout_name("bids/0/notes.txt", "bids"));
        assert!(!is_layout_name("bids/x/0-99.parquet", "bids"));
        assert!(!is_layout_name("bidsx/0/0-99.parquet", "bids"));
        assert!(!is_layout_name("bids/0/0-99.parquet.bak", "bids"));
    }
}
