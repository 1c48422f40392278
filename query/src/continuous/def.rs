//! A continuous query as stored: its definition, status and progress.

use brikk_storage::{StateWrite, Store, StreamId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sql::continuous::ContinuousOptions;

/// Whether a continuous query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Running,
    /// Stopped by `PAUSE`; `RESUME` continues from its committed offsets.
    Paused,
    /// Stopped by an error; `RESUME` retries from its committed offsets.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Failed => "failed",
        }
    }
}

/// The stored definition of a continuous query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryDef {
    /// Never reused: state keys use it, so a re-created query of the same
    /// name starts clean.
    pub id: u64,
    pub name: String,
    /// The `INSERT INTO … SELECT …` the query runs, as written.
    pub body: String,
    pub options: ContinuousOptions,
    pub status: Status,
    pub error: Option<String>,
    pub created_at_micros: i64,
    /// The sink stream's name, as planned at CREATE.
    #[serde(default)]
    pub sink: String,
    /// The input streams' names, as planned at CREATE.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// How many columns of the sink the output rows filled at CREATE (see
    /// [`crate::continuous::sink::Sink::new`]).
    #[serde(default)]
    pub sink_filled: Option<usize>,
}

/// How far a query has got: committed with every step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Per input stream, the next offset of each partition to read.
    pub inputs: Vec<(StreamId, Vec<u64>)>,
    pub records_in: u64,
    pub records_out: u64,
    /// Records that arrived after their window had closed (dropped).
    pub records_late: u64,
    /// Time of the last committed step.
    pub updated_at_micros: i64,
}

const DEF_PREFIX: &[u8] = b"q/";

/// Key of the definition of query `name`.
pub fn def_key(name: &str) -> Vec<u8> {
    let mut k = DEF_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// Prefix of every state key of query `id`.
pub fn state_prefix(id: u64) -> Vec<u8> {
    let mut k = b"s/".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k.push(b'/');
    k
}

/// Key of the progress of query `id`.
pub fn progress_key(id: u64) -> Vec<u8> {
    let mut k = state_prefix(id);
    k.push(b'p');
    k
}

/// Prefix of operator state of `kind` (a letter per operator) of query `id`.
pub fn operator_prefix(id: u64, kind: u8) -> Vec<u8> {
    let mut k = state_prefix(id);
    k.push(kind);
    k
}

impl QueryDef {
    pub fn to_write(&self) -> StateWrite {
        StateWrite::Put(def_key(&self.name), serde_json::to_vec(self).expect("QueryDef serializes"))
    }

    /// Every stored definition. Blocking.
    pub fn load_all(store: &Store) -> Result<Vec<QueryDef>> {
        store
            .state_scan(DEF_PREFIX)?
            .into_iter()
            .map(|(_, v)| {
                serde_json::from_slice(&v)
                    .map_err(|e| Error::Storage(brikk_storage::Error::Corrupt(format!("continuous query: {e}"))))
            })
            .collect()
    }

    /// The definition of `name`, if any. Blocking.
    pub fn load(store: &Store, name: &str) -> Result<Option<QueryDef>> {
        match store.state_get(&def_key(name))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|e| {
                Error::Storage(brikk_storage::Error::Corrupt(format!("continuous query {name}: {e}")))
            })?)),
            None => Ok(None),
        }
    }
}

impl Progress {
    pub fn to_write(&self, id: u64) -> StateWrite {
        StateWrite::Put(progress_key(id), serde_json::to_vec(self).expect("Progress serializes"))
    }

    /// The committed progress of query `id`, if it has committed a step.
    pub fn load(store: &Store, id: u64) -> Result<Option<Progress>> {
        match store.state_get(&progress_key(id))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|e| {
                Error::Storage(brikk_storage::Error::Corrupt(format!("continuous query progress: {e}")))
            })?)),
            None => Ok(None),
        }
    }
}
