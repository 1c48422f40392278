//! One group's state and the operations sessions perform on it.
//!
//! All state sits behind one mutex, never held across an await or a write:
//! operations take it, change memory, and hand durable changes to the
//! committer as a [`super::GroupWrite`], which re-validates them under the
//! same mutex when it stages the write.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::groups::assign::{assign, Seat};
use crate::groups::{GroupDef, GroupMode, StartAt};
use crate::keys::GroupKey;
use crate::log::stream::StreamHandle;

/// A member's identity, unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

static NEXT_MEMBER: AtomicU64 = AtomicU64::new(1);

/// A claimed (delivered, not yet acknowledged) record of a queue group.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// How many times the record has been handed out.
    pub deliveries: u32,
    /// Microseconds since the epoch; at or after this, the record may be
    /// claimed again. 0 after a NACK.
    pub lease_until: i64,
    /// Who holds (or last held) the lease.
    pub claimant: String,
    /// Why the last delivery failed, from NACK.
    pub reason: Option<String>,
}

impl Claim {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.claimant.len());
        out.extend_from_slice(&self.deliveries.to_le_bytes());
        out.extend_from_slice(&self.lease_until.to_le_bytes());
        out.extend_from_slice(&(self.claimant.len() as u32).to_le_bytes());
        out.extend_from_slice(self.claimant.as_bytes());
        if let Some(r) = &self.reason {
            out.extend_from_slice(r.as_bytes());
        }
        out
    }

    fn from_bytes(b: &[u8]) -> Result<Claim> {
        let bad = || Error::Corrupt("malformed claim".into());
        let deliveries = u32::from_le_bytes(b.get(0..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let lease_until = i64::from_le_bytes(b.get(4..12).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let len = u32::from_le_bytes(b.get(12..16).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
        let claimant = String::from_utf8(b.get(16..16 + len).ok_or_else(bad)?.to_vec()).map_err(|_| bad())?;
        let rest = &b[16 + len..];
        let reason = if rest.is_empty() { None } else { Some(String::from_utf8_lossy(rest).into_owned()) };
        Ok(Claim { deliveries, lease_until, claimant, reason })
    }
}

#[derive(Debug)]
struct Member {
    name: Option<String>,
    joined_at: i64,
    last_seen: i64,
    /// FETCH WAITs in progress: a waiting member is alive.
    waiting: u32,
    /// Next offset to fetch per partition, with the epoch it was read under.
    positions: HashMap<u32, (u64, u64)>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) generation: u64,
    members: BTreeMap<MemberId, Member>,
    owners: Vec<Option<MemberId>>,
    /// Generation at which each partition got its current owner (or was reset).
    pub(crate) epochs: Vec<u64>,
    pub(crate) committed: Vec<Option<u64>>,
    /// Named members' partitions when they last left.
    remembered: HashMap<String, Vec<u32>>,
    pub(crate) cursors: Vec<u64>,
    pub(crate) claims: BTreeMap<(u32, u64), Claim>,
}

/// A group of one stream; see the module docs of [`crate::groups`].
#[derive(Debug)]
pub struct Group {
    pub def: GroupDef,
    pub stream: Arc<StreamHandle>,
    state: Mutex<State>,
    changed: tokio::sync::Notify,
}

/// Records handed out by [`Group::claim`], already leased in memory.
#[derive(Debug, Default)]
pub struct ClaimBatch {
    /// (partition, offset, claim) of every record delivered now.
    pub delivered: Vec<(u32, u64, Claim)>,
    /// Records past `max_deliveries`: no longer claimed; the caller appends
    /// them to the dead-letter stream and deletes their claims.
    pub dead: Vec<(u32, u64, Claim)>,
    /// New claim cursors (partition, next never-claimed offset).
    pub cursors: Vec<(u32, u64)>,
}

/// One partition of a group, for the `brikk_groups` system table.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: u32,
    pub owner: Option<String>,
    pub committed: Option<u64>,
    pub end: u64,
    /// Records not yet consumed (subscribe) or not yet acknowledged (queue).
    pub lag: u64,
}

/// One member, for the `brikk_members` system table.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    pub member: String,
    pub joined_at: i64,
    pub last_seen: i64,
    pub partitions: Vec<u32>,
}

/// A consistent picture of a group.
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub generation: u64,
    pub partitions: Vec<PartitionInfo>,
    pub members: Vec<MemberInfo>,
    pub claims: Vec<(u32, u64, Claim)>,
}

fn member_label(id: MemberId, m: &Member) -> String {
    m.name.clone().unwrap_or_else(|| format!("member-{}", id.0))
}

impl Group {
    pub fn new(def: GroupDef, stream: Arc<StreamHandle>) -> Group {
        let n = stream.def.partitions as usize;
        let state = State {
            generation: 0,
            members: BTreeMap::new(),
            owners: vec![None; n],
            epochs: vec![0; n],
            committed: vec![None; n],
            remembered: HashMap::new(),
            cursors: vec![0; n],
            claims: BTreeMap::new(),
        };
        Group { def, stream, state: Mutex::new(state), changed: tokio::sync::Notify::new() }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("group lock")
    }

    /// Resolves after the next rebalance or reset of this group.
    pub fn changed(&self) -> &tokio::sync::Notify {
        &self.changed
    }

    pub(crate) fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Applies one durable row at recovery.
    pub(crate) fn restore(&mut self, what: GroupKey, value: &[u8]) -> Result<()> {
        let st = self.state.get_mut().expect("group lock");
        let u64_of = |v: &[u8]| -> Result<u64> {
            Ok(u64::from_be_bytes(v.try_into().map_err(|_| Error::Corrupt("malformed group offset".into()))?))
        };
        match what {
            GroupKey::Def => {}
            GroupKey::Offset(p) => {
                if let Some(slot) = st.committed.get_mut(p as usize) {
                    *slot = Some(u64_of(value)?);
                }
            }
            GroupKey::Cursor(p) => {
                if let Some(slot) = st.cursors.get_mut(p as usize) {
                    *slot = u64_of(value)?;
                }
            }
            GroupKey::Claim(p, o) => {
                st.claims.insert((p, o), Claim::from_bytes(value)?);
            }
        }
        Ok(())
    }

    fn require_mode(&self, mode: GroupMode) -> Result<()> {
        if self.def.mode == mode {
            return Ok(());
        }
        let (is, needs) = match self.def.mode {
            GroupMode::Subscribe => ("a consumer group (SUBSCRIBE/FETCH)", "a work-queue group (CLAIM/ACK)"),
            GroupMode::Queue => ("a work-queue group (CLAIM/ACK)", "a consumer group (SUBSCRIBE/FETCH)"),
        };
        Err(Error::WrongState(format!(
            "group \"{}\" on \"{}\" is {is}; this statement needs {needs}",
            self.def.name, self.stream.def.name
        )))
    }

    /// Where a partition with no live position starts: the committed
    /// offset, or the group's start policy; never below what retention kept.
    fn start_of(&self, st: &State, p: u32) -> u64 {
        let low = self.stream.low(p);
        match st.committed[p as usize] {
            Some(c) => c.max(low),
            None => match self.def.start {
                StartAt::Earliest => low,
                StartAt::Latest => self.stream.head(p),
            },
        }
    }

    // ---- membership (subscribe mode) ----

    /// Adds a member and rebalances. A member joining under the name of a
    /// live member replaces it (the old session is fenced out).
    pub fn join(&self, name: Option<String>, now: i64) -> Result<MemberId> {
        self.require_mode(GroupMode::Subscribe)?;
        let id = MemberId(NEXT_MEMBER.fetch_add(1, Ordering::Relaxed));
        let mut st = self.lock();
        if let Some(n) = &name {
            let old: Vec<MemberId> =
                st.members.iter().filter(|(_, m)| m.name.as_deref() == Some(n)).map(|(id, _)| *id).collect();
            for o in old {
                self.remove_member(&mut st, o);
            }
        }
        st.members.insert(id, Member { name, joined_at: now, last_seen: now, waiting: 0, positions: HashMap::new() });
        self.rebalance(&mut st);
        Ok(id)
    }

    /// Removes a member (its session ended) and rebalances.
    pub fn leave(&self, member: MemberId) {
        let mut st = self.lock();
        if self.remove_member(&mut st, member) {
            self.rebalance(&mut st);
        }
    }

    fn remove_member(&self, st: &mut State, member: MemberId) -> bool {
        let Some(m) = st.members.remove(&member) else { return false };
        if let Some(name) = m.name {
            let owned: Vec<u32> =
                (0..st.owners.len() as u32).filter(|p| st.owners[*p as usize] == Some(member)).collect();
            st.remembered.insert(name, owned);
        }
        true
    }

    pub(crate) fn expire(&self, now: i64) {
        let mut st = self.lock();
        let timeout = self.def.session_timeout_micros;
        let dead: Vec<MemberId> = st
            .members
            .iter()
            .filter(|(_, m)| m.waiting == 0 && now - m.last_seen > timeout)
            .map(|(id, _)| *id)
            .collect();
        if dead.is_empty() {
            return;
        }
        for id in dead {
            tracing::info!(group = %self.def.name, stream = %self.stream.def.name, member = id.0, "member timed out");
            self.remove_member(&mut st, id);
        }
        self.rebalance(&mut st);
    }

    fn rebalance(&self, st: &mut State) {
        let seats: Vec<Seat<MemberId>> = st
            .members
            .iter()
            .map(|(id, m)| Seat {
                member: *id,
                remembered: m.name.as_ref().and_then(|n| st.remembered.get(n)).cloned().unwrap_or_default(),
            })
            .collect();
        let next = assign(self.stream.def.partitions, &seats, &st.owners);
        if next == st.owners {
            return;
        }
        st.generation += 1;
        for (p, owner) in next.iter().enumerate() {
            if *owner != st.owners[p] {
                st.epochs[p] = st.generation;
            }
        }
        st.owners = next;
        // Seated members have had their chance to take their partitions back.
        let seated: Vec<String> = st.members.values().filter_map(|m| m.name.clone()).collect();
        for n in seated {
            st.remembered.remove(&n);
        }
        self.notify();
    }

    /// Records that `member` is alive; `Expired` if it was removed.
    pub fn touch(&self, member: MemberId, now: i64) -> Result<()> {
        let mut st = self.lock();
        let m = st.members.get_mut(&member).ok_or_else(|| self.expired())?;
        m.last_seen = m.last_seen.max(now);
        Ok(())
    }

    fn expired(&self) -> Error {
        Error::Conflict(format!(
            "this session is no longer a member of group \"{}\" on \"{}\" (session timeout or replaced); \
             records fetched since the last commit will be delivered again",
            self.def.name, self.stream.def.name
        ))
    }

    /// Marks `member` as waiting (alive while it waits) or done waiting.
    pub fn set_waiting(&self, member: MemberId, waiting: bool, now: i64) {
        let mut st = self.lock();
        if let Some(m) = st.members.get_mut(&member) {
            if waiting {
                m.waiting += 1;
            } else {
                m.waiting = m.waiting.saturating_sub(1);
            }
            m.last_seen = m.last_seen.max(now);
        }
    }

    /// The partitions `member` owns now, each with the offset to fetch from
    /// and the epoch to fetch under.
    pub fn fetch_plan(&self, member: MemberId) -> Result<Vec<(u32, u64, u64)>> {
        let st = self.lock();
        let m = st.members.get(&member).ok_or_else(|| self.expired())?;
        let mut plan = Vec::new();
        for p in 0..st.owners.len() as u32 {
            if st.owners[p as usize] != Some(member) {
                continue;
            }
            let epoch = st.epochs[p as usize];
            let from = match m.positions.get(&p) {
                Some((pos, e)) if *e == epoch => *pos,
                _ => self.start_of(&st, p),
            };
            plan.push((p, from, epoch));
        }
        Ok(plan)
    }

    /// Moves `member`'s position in `p` to `next` if it still owns `p` under
    /// `epoch`; returns whether it did (records read under a stale epoch are
    /// dropped by the caller).
    pub fn advance(&self, member: MemberId, p: u32, epoch: u64, next: u64) -> bool {
        let mut st = self.lock();
        if st.owners.get(p as usize) != Some(&Some(member)) || st.epochs[p as usize] != epoch {
            return false;
        }
        match st.members.get_mut(&member) {
            Some(m) => {
                m.positions.insert(p, (next, epoch));
                true
            }
            None => false,
        }
    }

    /// The offsets `member` would commit now, as (partition, next offset,
    /// epoch): every position it has fetched to since the last commit,
    /// including positions in partitions it has lost since. Those make the
    /// commit fail with `Conflict` when it is staged, so records fetched
    /// from a lost partition are never committed by the wrong member (their
    /// results, in the same transaction, are discarded with them).
    pub fn positions(&self, member: MemberId) -> Result<Vec<(u32, u64, u64)>> {
        let st = self.lock();
        let m = st.members.get(&member).ok_or_else(|| self.expired())?;
        let mut out: Vec<(u32, u64, u64)> = m
            .positions
            .iter()
            .filter(|(p, (pos, e))| {
                let p = **p as usize;
                let current = st.owners[p] == Some(member) && st.epochs[p] == *e;
                !current || st.committed[p] != Some(*pos)
            })
            .map(|(p, (pos, e))| (*p, *pos, *e))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    pub(crate) fn owned_by(&self, st: &State, p: u32, member: MemberId) -> bool {
        st.owners.get(p as usize) == Some(&Some(member))
    }

    /// The epoch under which `member` owns `p`, if it does.
    pub fn owned_epoch(&self, member: MemberId, p: u32) -> Option<u64> {
        let st = self.lock();
        (st.owners.get(p as usize) == Some(&Some(member))).then(|| st.epochs[p as usize])
    }

    /// Forgets `member`'s positions: the next FETCH starts from the
    /// committed offsets (after a failed or rolled-back commit).
    pub fn rewind(&self, member: MemberId) {
        if let Some(m) = self.lock().members.get_mut(&member) {
            m.positions.clear();
        }
    }

    /// The committed offset of `p` (None: nothing committed yet).
    pub fn committed(&self, p: u32) -> Option<u64> {
        self.lock().committed.get(p as usize).copied().flatten()
    }

    // ---- work queue ----

    /// Leases up to `n` records to `claimant` until `now + lease`:
    /// first records whose lease expired (or was NACKed), oldest offset
    /// first, then records never delivered, spread over partitions.
    /// Applies the leases in memory; the caller makes them durable.
    pub fn claim(&self, claimant: &str, n: usize, lease_micros: i64, now: i64) -> Result<ClaimBatch> {
        self.require_mode(GroupMode::Queue)?;
        let mut st = self.lock();
        let mut batch = ClaimBatch::default();
        let lease_until = now.saturating_add(lease_micros);
        let ready: Vec<(u32, u64)> = st.claims.iter().filter(|(_, c)| c.lease_until <= now).map(|(k, _)| *k).collect();
        for (p, o) in ready {
            if batch.delivered.len() >= n {
                break;
            }
            if o < self.stream.low(p) {
                // Retention deleted the record: nothing left to deliver.
                let c = st.claims.remove(&(p, o)).expect("listed");
                batch.dead.push((p, o, c));
                continue;
            }
            let c = st.claims.get_mut(&(p, o)).expect("listed");
            if c.deliveries >= self.def.max_deliveries {
                let c = st.claims.remove(&(p, o)).expect("listed");
                batch.dead.push((p, o, c));
                continue;
            }
            c.deliveries += 1;
            c.lease_until = lease_until;
            c.claimant = claimant.to_string();
            batch.delivered.push((p, o, c.clone()));
        }
        // Never-delivered records, round-robin over partitions.
        let parts = self.stream.def.partitions;
        let mut progressed = true;
        let mut taken: HashMap<u32, u64> = HashMap::new();
        while batch.delivered.len() < n && progressed {
            progressed = false;
            for p in 0..parts {
                if batch.delivered.len() >= n {
                    break;
                }
                let cursor = st.cursors[p as usize].max(self.stream.low(p));
                if cursor >= self.stream.head(p) {
                    continue;
                }
                let claim = Claim { deliveries: 1, lease_until, claimant: claimant.to_string(), reason: None };
                st.claims.insert((p, cursor), claim.clone());
                st.cursors[p as usize] = cursor + 1;
                taken.insert(p, cursor + 1);
                batch.delivered.push((p, cursor, claim));
                progressed = true;
            }
        }
        batch.cursors = taken.into_iter().collect();
        batch.cursors.sort_unstable();
        batch.delivered.sort_by_key(|(p, o, _)| (*p, *o));
        Ok(batch)
    }

    /// The claim on record (p, o), if any.
    pub fn claim_of(&self, p: u32, o: u64) -> Option<Claim> {
        self.lock().claims.get(&(p, o)).cloned()
    }

    /// Checks that `claimant` holds the claim on (p, o).
    pub(crate) fn check_claimant(&self, st: &State, claimant: &str, p: u32, o: u64) -> Result<()> {
        match st.claims.get(&(p, o)) {
            Some(c) if c.claimant == claimant => Ok(()),
            Some(_) => Err(Error::WrongState(format!(
                "record ({p}, {o}) of \"{}\" is claimed by another consumer of group \"{}\" (your lease expired)",
                self.stream.def.name, self.def.name
            ))),
            None => Err(Error::WrongState(format!(
                "record ({p}, {o}) of \"{}\" is not claimed in group \"{}\"",
                self.stream.def.name, self.def.name
            ))),
        }
    }

    // ---- introspection ----

    /// A consistent picture for the system tables.
    pub fn snapshot(&self) -> GroupSnapshot {
        let st = self.lock();
        let label: HashMap<MemberId, String> = st.members.iter().map(|(id, m)| (*id, member_label(*id, m))).collect();
        let partitions = (0..self.stream.def.partitions)
            .map(|p| {
                let end = self.stream.head(p);
                let (committed, consumed) = match self.def.mode {
                    GroupMode::Subscribe => (st.committed[p as usize], self.start_of(&st, p)),
                    GroupMode::Queue => {
                        let cursor = st.cursors[p as usize].max(self.stream.low(p));
                        let open = st.claims.range((p, 0)..(p + 1, 0)).next().map(|((_, o), _)| *o);
                        let done = open.unwrap_or(cursor);
                        (Some(done), done)
                    }
                };
                PartitionInfo {
                    partition: p,
                    owner: st.owners[p as usize].and_then(|id| label.get(&id).cloned()),
                    committed,
                    end,
                    lag: end.saturating_sub(consumed),
                }
            })
            .collect();
        let members = st
            .members
            .iter()
            .map(|(id, m)| MemberInfo {
                member: label[id].clone(),
                joined_at: m.joined_at,
                last_seen: m.last_seen,
                partitions: (0..st.owners.len() as u32).filter(|p| st.owners[*p as usize] == Some(*id)).collect(),
            })
            .collect();
        let claims = st.claims.iter().map(|((p, o), c)| (*p, *o, c.clone())).collect();
        GroupSnapshot { generation: st.generation, partitions, members, claims }
    }
}
