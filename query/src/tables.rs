//! Tables with a primary key — the blackboard — as SQL: DDL, DML with
//! compare-and-set semantics, history, and a transaction's own rows.
//!
//! ## The life of a compare-and-set UPDATE
//! ```text
//!  UPDATE board SET fact = $1, version = version + 1
//!   WHERE topic = $2 AND version = $3
//! ```
//! 1. [`dml::DmlPlan::new`] (once, at Parse) finds that `topic = $2` pins
//!    the primary key: the target is a point lookup, not a scan. The SET
//!    and WHERE expressions are compiled once into physical expressions
//!    over the row and the parameters ([`expr::RowExprs`]).
//! 2. [`dml::DmlPlan::build`] (each Execute) reads the row and the version
//!    it is at, evaluates `version = $3`, computes the new row, and emits a
//!    [`brikk_storage::RowWrite`] that expects that version.
//! 3. The session commits it (autocommit) or keeps it in the transaction.
//!    If another writer changed the row in between, the committer refuses
//!    the write; in autocommit the statement runs again on the new row, so
//!    of two racing CAS updates exactly one reports `UPDATE 1` and the
//!    other `UPDATE 0`. At COMMIT of an explicit transaction the refusal is
//!    `40001`: the transaction read a row that changed before it committed.

pub mod alter;
pub mod ddl;
pub mod dml;
pub mod expr;
pub mod history;
pub(crate) mod joined;
pub mod lookup;
pub mod subquery;

use std::collections::{BTreeMap, HashMap};

use brikk_storage::{Row, TableId, Value};

/// A row as a statement sees it: stored (with its version and time), or
/// written earlier in the same transaction (no version yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub version: Option<u64>,
    pub timestamp: Option<i64>,
    pub values: Vec<Value>,
}

impl Current {
    pub(crate) fn stored(row: Row) -> Current {
        Current { version: Some(row.version), timestamp: Some(row.timestamp_micros), values: row.values }
    }

    pub(crate) fn pending(values: Vec<Value>) -> Current {
        Current { version: None, timestamp: None, values }
    }
}

/// One table's pending rows: encoded primary key → new row (`None`:
/// deleted).
pub type PendingRows = BTreeMap<Vec<u8>, Option<Vec<Value>>>;

/// The rows a transaction has written and not yet committed, by table and
/// encoded primary key (`None`: deleted). Reads in the transaction see
/// them; the scan finds them as a DataFusion config extension.
#[derive(Debug, Clone, Default)]
pub struct TxnRows {
    tables: HashMap<TableId, PendingRows>,
    /// Every change in order, one per row write, for ROLLBACK TO SAVEPOINT.
    log: Vec<(TableId, Vec<u8>, Option<Vec<Value>>)>,
}

impl TxnRows {
    /// The pending rows of one table.
    pub fn table(&self, id: TableId) -> Option<&PendingRows> {
        self.tables.get(&id)
    }

    /// The pending state of one row: `Some(None)` if the transaction
    /// deleted it, `None` if it did not touch it.
    pub fn get(&self, id: TableId, key: &[u8]) -> Option<&Option<Vec<Value>>> {
        self.tables.get(&id)?.get(key)
    }

    /// Records one row write of the transaction.
    pub(crate) fn set(&mut self, id: TableId, key: Vec<u8>, row: Option<Vec<Value>>) {
        self.tables.entry(id).or_default().insert(key.clone(), row.clone());
        self.log.push((id, key, row));
    }

    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// The number of row writes recorded.
    pub fn len(&self) -> usize {
        self.log.len()
    }

    /// Forgets the writes after the first `n`.
    pub(crate) fn truncate(&mut self, n: usize) {
        self.log.truncate(n);
        self.tables.clear();
        for (id, key, row) in &self.log {
            self.tables.entry(*id).or_default().insert(key.clone(), row.clone());
        }
    }
}

/// Every combination of one value per list (the keys a composite primary
/// key filter pins), or `None` if there are more than `max`.
pub(crate) fn cartesian<T: Clone>(lists: &[Vec<T>], max: usize) -> Option<Vec<Vec<T>>> {
    if lists.iter().map(Vec::len).try_fold(1usize, |acc, n| acc.checked_mul(n))? > max {
        return None;
    }
    let mut combos: Vec<Vec<T>> = vec![Vec::with_capacity(lists.len())];
    for values in lists {
        combos = combos
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect();
    }
    Some(combos)
}
