//! Group changes as part of a commit: staged by the committer into the same
//! `WriteBatch` as the transaction's appends.
//!
//! Staging validates under the group's lock (ownership epochs, claimants)
//! and applies the change to memory at once, so later requests of the same
//! commit group see it; it returns an undo that the committer runs if the
//! batch then fails to write. A refused change leaves nothing behind.

use std::sync::Arc;

use rocksdb::{ColumnFamily, WriteBatch};

use crate::error::{Error, Result};
use crate::groups::{Claim, Group, GroupMode, Groups, MemberId, StartAt};
use crate::keys::{group_key, group_range, GroupKey};

/// One durable change to a group. See [`crate::WriteSet::groups`].
#[derive(Debug, Clone)]
pub enum GroupWrite {
    /// Creates the group; a no-op if a group of that name exists by the
    /// time the write is staged.
    Create(Arc<Group>),
    /// Drops the group and all its state.
    Drop(Arc<Group>),
    /// Commits `member`'s offsets, as (partition, next offset, epoch). Refused
    /// with `Conflict` if the member no longer owns any of them under that
    /// epoch.
    Offsets { group: Arc<Group>, member: MemberId, offsets: Vec<(u32, u64, u64)> },
    /// Sets every partition's committed offset (and a queue's cursors),
    /// drops all claims, and starts a new generation, so members re-read
    /// from the new offsets.
    Reset { group: Arc<Group>, offsets: Vec<u64> },
    /// Makes leases handed out by [`Group::claim`] durable, and deletes the
    /// claims of dead-lettered records.
    Claimed { group: Arc<Group>, claims: Vec<(u32, u64, Claim)>, cursors: Vec<(u32, u64)>, dead: Vec<(u32, u64)> },
    /// Acknowledges records claimed by `claimant`: their claims are deleted.
    /// Also used to retire records moved to the dead-letter stream.
    Ack { group: Arc<Group>, claimant: String, records: Vec<(u32, u64)> },
    /// Ends `claimant`'s leases on records now, keeping a reason.
    Nack { group: Arc<Group>, claimant: String, records: Vec<(u32, u64)>, reason: Option<String> },
}

pub(crate) type Undo = Box<dyn FnOnce() + Send>;

/// Key changes of the `groups` column family, collected while staging and
/// added to the batch only once every change of a request is valid.
#[derive(Default)]
pub(crate) struct BatchOps(Vec<Op>);

enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    DeleteRange(Vec<u8>, Vec<u8>),
}

impl BatchOps {
    fn put(&mut self, key: Vec<u8>, value: impl Into<Vec<u8>>) {
        self.0.push(Op::Put(key, value.into()));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.0.push(Op::Delete(key));
    }

    fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) {
        self.0.push(Op::DeleteRange(start, end));
    }

    pub(crate) fn apply(self, batch: &mut WriteBatch, cf: &ColumnFamily) {
        for op in self.0 {
            match op {
                Op::Put(k, v) => batch.put_cf(cf, k, v),
                Op::Delete(k) => batch.delete_cf(cf, k),
                Op::DeleteRange(s, e) => batch.delete_range_cf(cf, s, e),
            }
        }
    }
}

fn be(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

impl GroupWrite {
    /// The group this change is about.
    pub fn group(&self) -> &Arc<Group> {
        match self {
            GroupWrite::Create(g) | GroupWrite::Drop(g) => g,
            GroupWrite::Offsets { group, .. }
            | GroupWrite::Reset { group, .. }
            | GroupWrite::Claimed { group, .. }
            | GroupWrite::Ack { group, .. }
            | GroupWrite::Nack { group, .. } => group,
        }
    }

    /// Validates and applies this change in memory and adds its keys to
    /// `batch`; returns how to take the memory change back.
    pub(crate) fn stage(&self, ops: &mut BatchOps, groups: &Arc<Groups>) -> Result<Undo> {
        match self {
            GroupWrite::Create(g) => {
                let (_, fresh) = groups.insert(g.clone());
                if !fresh {
                    return Ok(Box::new(|| {}));
                }
                let (id, name) = (g.def.stream, g.def.name.as_str());
                ops.put(group_key(id, name, GroupKey::Def), g.def.to_bytes());
                if g.def.start == StartAt::Latest {
                    let mut st = g.lock();
                    for p in 0..g.stream.def.partitions {
                        let head = g.stream.head(p);
                        st.committed[p as usize] = Some(head);
                        st.cursors[p as usize] = head;
                        ops.put(group_key(id, name, GroupKey::Offset(p)), be(head).to_vec());
                        ops.put(group_key(id, name, GroupKey::Cursor(p)), be(head).to_vec());
                    }
                }
                let (groups, g) = (groups.clone(), g.clone());
                Ok(Box::new(move || drop(groups.remove(g.def.stream, &g.def.name))))
            }
            GroupWrite::Drop(g) => {
                let Some(removed) = groups.remove(g.def.stream, &g.def.name) else {
                    return Err(Error::NotFound { kind: "group", name: g.def.name.clone() });
                };
                for (start, end) in group_range(g.def.stream, &g.def.name) {
                    ops.delete_range(start, end);
                }
                removed.notify();
                let groups = groups.clone();
                Ok(Box::new(move || drop(groups.insert(removed))))
            }
            GroupWrite::Offsets { group: g, member, offsets } => {
                let mut st = g.lock();
                for &(p, next, epoch) in offsets {
                    let owned = st.epochs.get(p as usize) == Some(&epoch) && g.owned_by(&st, p, *member);
                    if !owned {
                        return Err(Error::Conflict(format!(
                            "partition {p} of \"{}\" was reassigned in group \"{}\" (generation {}); \
                             offsets not committed, fetch again",
                            g.stream.def.name, g.def.name, st.generation
                        )));
                    }
                    if let Some(c) = st.committed[p as usize].filter(|c| next < *c) {
                        return Err(Error::InvalidInput(format!(
                            "the committed offset of partition {p} would go back from {c} to {next}; \
                             use ALTER GROUP ... RESET to rewind"
                        )));
                    }
                }
                let mut old = Vec::with_capacity(offsets.len());
                for &(p, next, _) in offsets {
                    old.push((p, st.committed[p as usize]));
                    st.committed[p as usize] = Some(next);
                    ops.put(group_key(g.def.stream, &g.def.name, GroupKey::Offset(p)), be(next).to_vec());
                }
                let g = g.clone();
                Ok(Box::new(move || {
                    let mut st = g.lock();
                    for (p, c) in old {
                        st.committed[p as usize] = c;
                    }
                }))
            }
            GroupWrite::Reset { group: g, offsets } => {
                let mut st = g.lock();
                let (id, name) = (g.def.stream, g.def.name.as_str());
                let saved =
                    (st.generation, st.epochs.clone(), st.committed.clone(), st.cursors.clone(), st.claims.clone());
                st.generation += 1;
                let generation = st.generation;
                for (p, &o) in offsets.iter().enumerate() {
                    let p32 = p as u32;
                    st.epochs[p] = generation;
                    st.committed[p] = Some(o);
                    ops.put(group_key(id, name, GroupKey::Offset(p32)), be(o).to_vec());
                    if g.def.mode == GroupMode::Queue {
                        st.cursors[p] = o;
                        ops.put(group_key(id, name, GroupKey::Cursor(p32)), be(o).to_vec());
                    }
                }
                for (p, o) in std::mem::take(&mut st.claims).into_keys() {
                    ops.delete(group_key(id, name, GroupKey::Claim(p, o)));
                }
                g.notify();
                let g = g.clone();
                Ok(Box::new(move || {
                    let mut st = g.lock();
                    (st.generation, st.epochs, st.committed, st.cursors, st.claims) = saved;
                }))
            }
            GroupWrite::Claimed { group: g, claims, cursors, dead } => {
                let (id, name) = (g.def.stream, g.def.name.as_str());
                for (p, o, c) in claims {
                    ops.put(group_key(id, name, GroupKey::Claim(*p, *o)), c.to_bytes());
                }
                for (p, c) in cursors {
                    ops.put(group_key(id, name, GroupKey::Cursor(*p)), be(*c).to_vec());
                }
                for (p, o) in dead {
                    ops.delete(group_key(id, name, GroupKey::Claim(*p, *o)));
                }
                // The leases are already in memory; if this write fails they
                // simply expire.
                Ok(Box::new(|| {}))
            }
            GroupWrite::Ack { group: g, claimant, records } => {
                let mut st = g.lock();
                for &(p, o) in records {
                    g.check_claimant(&st, claimant, p, o)?;
                }
                let mut old = Vec::with_capacity(records.len());
                for &(p, o) in records {
                    if let Some(c) = st.claims.remove(&(p, o)) {
                        old.push((p, o, c));
                        ops.delete(group_key(g.def.stream, &g.def.name, GroupKey::Claim(p, o)));
                    }
                }
                let g = g.clone();
                Ok(Box::new(move || {
                    let mut st = g.lock();
                    for (p, o, c) in old {
                        st.claims.insert((p, o), c);
                    }
                }))
            }
            GroupWrite::Nack { group: g, claimant, records, reason } => {
                let mut st = g.lock();
                for &(p, o) in records {
                    g.check_claimant(&st, claimant, p, o)?;
                }
                let mut old = Vec::with_capacity(records.len());
                for &(p, o) in records {
                    if let Some(c) = st.claims.get_mut(&(p, o)) {
                        old.push((p, o, c.clone()));
                        c.lease_until = 0;
                        c.reason = reason.clone();
                        ops.put(group_key(g.def.stream, &g.def.name, GroupKey::Claim(p, o)), c.to_bytes());
                    }
                }
                let g = g.clone();
                Ok(Box::new(move || {
                    let mut st = g.lock();
                    for (p, o, c) in old {
                        st.claims.insert((p, o), c);
                    }
                }))
            }
        }
    }
}
