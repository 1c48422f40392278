//! Consumer groups and work queues: who reads which partition, how far a
//! group has got, and which records are claimed.
//!
//! A group belongs to one stream and works in one of two modes, fixed when
//! it is created:
//!
//! - **subscribe** (Kafka semantics): members join, each partition is owned
//!   by one member at a time ([`assign`]), members fetch the owned
//!   partitions in offset order and commit offsets. A commit is fenced by the
//!   partition's *epoch* (the generation at which its owner got it), so a
//!   member that lost a partition cannot move its offset.
//! - **queue** (share-group semantics): any session claims records one by
//!   one with a lease, then acknowledges them; an expired lease makes the
//!   record claimable again; after `max_deliveries` deliveries a record moves
//!   to the group's dead-letter stream.
//!
//! Durable state (definition, committed offsets, claim cursors, claims) lives
//! in the `groups` column family and changes only through the committer, in
//! the same `WriteBatch` as the appends of the same transaction ([`GroupWrite`]).
//! Membership is in memory: members are sessions, and a restart starts
//! every group empty (committed offsets and claims survive).

pub mod assign;
mod group;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rocksdb::DB;
use serde::{Deserialize, Serialize};

use crate::catalog::StreamId;
use crate::error::{Error, Result};
use crate::keys::{self, GroupKey};
use crate::log::stream::StreamHandle;

pub use group::{Claim, ClaimBatch, Group, GroupSnapshot, MemberId, MemberInfo, PartitionInfo};
pub use write::GroupWrite;
pub(crate) use write::{BatchOps, Undo};

/// How a group consumes its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMode {
    /// Members own partitions and commit offsets (`SUBSCRIBE`/`FETCH`).
    Subscribe,
    /// Sessions claim single records with a lease (`CLAIM`/`ACK`).
    Queue,
}

impl GroupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupMode::Subscribe => "subscribe",
            GroupMode::Queue => "queue",
        }
    }
}

/// Where a group with no committed offset for a partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartAt {
    /// The oldest record retention has kept (the default).
    Earliest,
    /// The end of the partition when the group was created.
    Latest,
}

/// A group as the `groups` column family stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDef {
    pub stream: StreamId,
    pub name: String,
    pub mode: GroupMode,
    pub start: StartAt,
    /// A member silent for longer than this is removed.
    pub session_timeout_micros: i64,
    /// Queue mode: deliveries after which a record is dead-lettered.
    pub max_deliveries: u32,
    /// Queue mode: the stream dead letters are appended to.
    pub dead_letter: String,
    pub created_at_micros: i64,
}

/// Default session timeout of a group's members.
pub const DEFAULT_SESSION_TIMEOUT_MICROS: i64 = 10_000_000;
/// Default deliveries before a queued record is dead-lettered.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;

impl GroupDef {
    /// Checks the invariants a definition must hold before it is stored.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.len() > 128 || self.name.contains('\0') {
            return Err(Error::InvalidInput(format!(
                "invalid group name \"{}\": 1 to 128 bytes, no NUL",
                self.name.escape_default()
            )));
        }
        if self.session_timeout_micros < 100_000 {
            return Err(Error::InvalidInput("session_timeout must be at least 100ms".into()));
        }
        if self.max_deliveries == 0 {
            return Err(Error::InvalidInput("max_deliveries must be at least 1".into()));
        }
        Ok(())
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("GroupDef serializes")
    }

    fn from_bytes(bytes: &[u8]) -> Result<GroupDef> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("group definition: {e}")))
    }
}

/// Every group of every stream, by (stream, name).
#[derive(Debug, Default)]
pub struct Groups {
    map: Mutex<HashMap<(StreamId, String), Arc<Group>>>,
}

impl Groups {
    /// The group `name` of `stream`, if it exists.
    pub fn get(&self, stream: StreamId, name: &str) -> Option<Arc<Group>> {
        self.map.lock().expect("groups lock").get(&(stream, name.to_string())).cloned()
    }

    /// All groups, ordered by stream id and name.
    pub fn all(&self) -> Vec<Arc<Group>> {
        let mut all: Vec<Arc<Group>> = self.map.lock().expect("groups lock").values().cloned().collect();
        all.sort_by(|a, b| (a.def.stream, &a.def.name).cmp(&(b.def.stream, &b.def.name)));
        all
    }

    /// Registers `group` unless one of that name exists; returns the
    /// registered one and whether it is new.
    pub(crate) fn insert(&self, group: Arc<Group>) -> (Arc<Group>, bool) {
        let mut map = self.map.lock().expect("groups lock");
        let key = (group.def.stream, group.def.name.clone());
        if let Some(existing) = map.get(&key) {
            return (existing.clone(), false);
        }
        map.insert(key, group.clone());
        (group, true)
    }

    pub(crate) fn remove(&self, stream: StreamId, name: &str) -> Option<Arc<Group>> {
        self.map.lock().expect("groups lock").remove(&(stream, name.to_string()))
    }

    /// Removes every group of `stream` (it was dropped).
    pub(crate) fn remove_stream(&self, stream: StreamId) -> Vec<Arc<Group>> {
        let mut map = self.map.lock().expect("groups lock");
        let gone: Vec<_> = map.keys().filter(|(s, _)| *s == stream).cloned().collect();
        gone.into_iter().filter_map(|k| map.remove(&k)).collect()
    }

    /// Removes members silent for longer than their session timeout;
    /// called a few times a second by the store's housekeeping thread.
    pub(crate) fn expire_members(&self, now_micros: i64) {
        for g in self.all() {
            g.expire(now_micros);
        }
    }

    /// Loads every group from the `groups` column family.
    pub(crate) fn recover(db: &DB, streams: &HashMap<StreamId, Arc<StreamHandle>>) -> Result<Groups> {
        let cf = db.cf_handle(crate::store::CF_GROUPS).expect("groups cf");
        let mut defs: HashMap<(StreamId, String), GroupDef> = HashMap::new();
        let mut rows: Vec<(StreamId, String, GroupKey, Vec<u8>)> = Vec::new();
        for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (key, value) = item?;
            let (stream, name, what) =
                keys::parse_group_key(&key).ok_or_else(|| Error::Corrupt("malformed groups key".into()))?;
            match what {
                GroupKey::Def => {
                    defs.insert((stream, name), GroupDef::from_bytes(&value)?);
                }
                other => rows.push((stream, name, other, value.to_vec())),
            }
        }
        let groups = Groups::default();
        let mut built: HashMap<(StreamId, String), Group> = HashMap::new();
        for (key, def) in defs {
            if let Some(h) = streams.get(&key.0) {
                built.insert(key, Group::new(def, h.clone()));
            }
        }
        for (stream, name, what, value) in rows {
            if let Some(g) = built.get_mut(&(stream, name)) {
                g.restore(what, &value)?;
            }
        }
        for (_, g) in built {
            groups.insert(Arc::new(g));
        }
        Ok(groups)
    }
}
