//! Reading a continuous query's inputs in one deterministic order.

use std::sync::Arc;

use brikk_storage::{Record, Store, StreamHandle, StreamId};

use crate::error::{Error, ObjectKind, Result};

/// One input record, tagged with where it came from.
#[derive(Debug, Clone)]
pub struct InputRecord {
    /// Index of the input stream (the order the query names them in).
    pub input: usize,
    pub partition: u32,
    pub record: Record,
}

/// The input streams of a query and the next offset of each partition.
#[derive(Debug)]
pub struct Inputs {
    pub streams: Vec<Arc<StreamHandle>>,
    pub next: Vec<Vec<u64>>,
}

impl Inputs {
    /// Inputs starting at `start` offsets (or each partition's first stored
    /// offset, or its head with `latest`).
    pub fn new(streams: Vec<Arc<StreamHandle>>, committed: &[(StreamId, Vec<u64>)], latest: bool) -> Result<Inputs> {
        let mut next = Vec::with_capacity(streams.len());
        for s in &streams {
            let parts = s.def.partitions as usize;
            let offsets = match committed.iter().find(|(id, _)| *id == s.def.id) {
                Some((_, o)) if o.len() == parts => o.clone(),
                Some(_) => {
                    return Err(Error::Internal(format!("committed offsets of \"{}\" do not match it", s.def.name)))
                }
                None if latest => s.heads(),
                None => (0..s.def.partitions).map(|p| s.low(p)).collect(),
            };
            next.push(offsets);
        }
        Ok(Inputs { streams, next })
    }

    /// The offsets to commit with a step.
    pub fn committed(&self) -> Vec<(StreamId, Vec<u64>)> {
        self.streams.iter().zip(&self.next).map(|(s, n)| (s.def.id, n.clone())).collect()
    }

    /// Records not yet read, summed over inputs.
    pub fn lag(&self) -> u64 {
        self.streams
            .iter()
            .zip(&self.next)
            .map(|(s, n)| s.heads().iter().zip(n).map(|(h, n)| h.saturating_sub(*n)).sum::<u64>())
            .sum()
    }

    /// Reads the next records (blocking), about `budget` per partition at
    /// most, committed at or before `watermark`, sorted by commit time,
    /// input, partition and offset. Every record with a timestamp at or
    /// below the last one returned has been returned (now or before), so the
    /// order does not depend on how reads are cut into steps. Advances the
    /// offsets past what it returns.
    pub fn read(&mut self, store: &Store, watermark: i64, budget: usize) -> Result<Vec<InputRecord>> {
        let mut out = Vec::new();
        // The newest timestamp every partition has been read up to.
        let mut cut = watermark;
        let mut per_partition: Vec<(usize, u32, Vec<Record>)> = Vec::new();
        for (i, s) in self.streams.iter().enumerate() {
            if s.is_dropped() {
                return Err(Error::NotFound { kind: ObjectKind::Relation, name: s.def.name.clone() });
            }
            for p in 0..s.def.partitions {
                let from = self.next[i][p as usize].max(s.low(p));
                let head = s.head(p);
                if from >= head {
                    continue;
                }
                let mut recs = store.read(s, p, from, head, budget)?;
                if recs.len() == budget {
                    // Cut after a whole commit group: read on while the
                    // timestamp stays the same.
                    let last_ts = recs.last().map(|r| r.timestamp_micros).unwrap_or(i64::MIN);
                    loop {
                        let after = recs.last().map(|r| r.offset + 1).unwrap_or(from);
                        let more = store.read(s, p, after, head, budget)?;
                        let same: Vec<Record> =
                            more.into_iter().take_while(|r| r.timestamp_micros == last_ts).collect();
                        let n = same.len();
                        recs.extend(same);
                        if n < budget {
                            break;
                        }
                    }
                    cut = cut.min(last_ts);
                }
                per_partition.push((i, p, recs));
            }
        }
        for (i, p, recs) in per_partition {
            for r in recs {
                if r.timestamp_micros > cut {
                    break;
                }
                self.next[i][p as usize] = r.offset + 1;
                out.push(InputRecord { input: i, partition: p, record: r });
            }
        }
        out.sort_by(|a, b| {
            (a.record.timestamp_micros, a.input, a.partition, a.record.offset).cmp(&(
                b.record.timestamp_micros,
                b.input,
                b.partition,
                b.record.offset,
            ))
        });
        Ok(out)
    }
}
