//! Retention: deleting records older than a stream's retention period, or
//! beyond its `retention_bytes`.
//!
//! Once a second the retention thread asks, for every stream with a
//! retention and no archive, which offsets of each partition are older than
//! `now - retention` (one time-index seek per partition), and how many of the
//! oldest chunks must go for the live log to fit in `retention_bytes`, and
//! sends the committer a trim request; the committer deletes `[0, cut)` of
//! the partition with a range tombstone in its next write. Records go a
//! whole chunk at a time (the chunk holding the cut stays), offsets never
//! change, and the newest chunk of a partition is always kept so the next
//! offset survives a restart. Streams with an archive are not trimmed here:
//! their expired segments go to the archive ([`crate::archive`]).

use std::time::Duration;

use crate::catalog::StreamId;
use crate::error::Result;
use crate::log::commit::now_micros;
use crate::store::Store;

/// How often retention is enforced.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(1);

/// Deletes records of one partition below offset `below`, and time-index
/// entries older than `ts_below`; `bytes` is their encoded size (counted
/// for streams with `retention_bytes`, else 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trim {
    pub stream: StreamId,
    pub partition: u32,
    pub below: u64,
    pub ts_below: i64,
    pub bytes: u64,
}

impl Store {
    /// Computes and applies the trims due now. Returns how many partitions
    /// were trimmed. Safe to call at any time; concurrent appends and reads
    /// are unaffected (reads of trimmed offsets simply find nothing).
    pub async fn enforce_retention(&self) -> Result<usize> {
        let store = self.clone();
        let trims = tokio::task::spawn_blocking(move || store.due_trims())
            .await
            .map_err(|e| crate::Error::InvalidInput(format!("retention task failed: {e}")))??;
        let n = trims.len();
        if n > 0 {
            self.trim(trims).await?;
        }
        Ok(n)
    }

    fn due_trims(&self) -> Result<Vec<Trim>> {
        let now = now_micros();
        let mut out = Vec::new();
        for s in self.catalog().streams() {
            if s.def.archive.is_some() || (s.def.retention_micros.is_none() && s.def.retention_bytes.is_none()) {
                continue;
            }
            for p in 0..s.def.partitions {
                let head = s.head(p);
                if head == 0 {
                    continue;
                }
                let low = self.trimmed_below(s.def.id, p);
                let mut at = low;
                if let Some(retention) = s.def.retention_micros {
                    at = at.max(self.offset_for_timestamp(s, p, now.saturating_sub(retention))?);
                }
                if let Some(limit) = s.def.retention_bytes {
                    at = at.max(self.size_cut(s, p, limit)?);
                }
                let at = at.min(head - 1);
                // Cut at the start of the chunk holding `at`: that chunk and
                // everything after it stay.
                let Some(chunk) = self.chunk_containing(s, p, at)? else { continue };
                let (below, ts_below) = (chunk.first, chunk.timestamp);
                if below > low {
                    let bytes = if s.def.retention_bytes.is_some() { self.chunk_bytes(s, p, low, below)? } else { 0 };
                    out.push(Trim { stream: s.def.id, partition: p, below, ts_below, bytes });
                }
            }
        }
        Ok(out)
    }

    /// The first offset to keep so that the live log of `p` fits in `limit`
    /// bytes: past the oldest chunks whose bytes must go.
    fn size_cut(&self, s: &crate::StreamHandle, p: u32, limit: u64) -> Result<u64> {
        let excess = s.live_bytes(p).saturating_sub(limit);
        if excess == 0 {
            return Ok(0);
        }
        let mut freed = 0;
        let mut cut = s.live_low(p);
        self.walk_chunks(s, p, s.live_low(p), s.head(p), |c| {
            if freed >= excess {
                return false;
            }
            freed += c.bytes;
            cut = c.first + c.count;
            true
        })?;
        Ok(cut)
    }
}

/// One retention pass, run by the store's retention thread on its own
/// runtime (built once, when the thread starts).
pub(crate) fn pass(store: &Store, rt: &tokio::runtime::Runtime) {
    match rt.block_on(store.enforce_retention()) {
        Ok(0) | Err(crate::Error::Unavailable) => {}
        Ok(n) => tracing::debug!(partitions = n, "retention trimmed"),
        Err(e) => tracing::warn!(error = %e, "retention pass failed"),
    }
}
