//! Identity columns: the sequence that numbers a table's rows.
//!
//! A column declared `GENERATED … AS IDENTITY` (or `serial`) takes the next
//! value of its sequence when an INSERT leaves it out. Values are handed
//! out from blocks of [`BLOCK`] reserved durably in advance, as Postgres
//! does with its sequence log: the `continuous` column family keeps, under
//! [`crate::keys::sequence_key`], the first value not yet reserved, and a
//! reservation is a synced write through the committer that completes
//! before any value of the block is used. So a value is never handed out
//! twice, even after a crash; what a crash (or a rolled-back INSERT) costs
//! is a gap, never a repeat.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::keys;
use crate::log::WriteSet;
use crate::state::StateWrite;
use crate::store::Store;
use crate::tables::TableHandle;

/// Values reserved by one durable write.
pub const BLOCK: i64 = 32;

/// The first value of every sequence.
const START: i64 = 1;

/// The reserved, not yet used values of a table's identity columns.
#[derive(Debug, Default)]
pub struct Sequences {
    reserved: tokio::sync::Mutex<HashMap<usize, Reserved>>,
}

/// Values `next..until` are reserved durably and not handed out yet.
#[derive(Debug, Clone, Copy)]
struct Reserved {
    next: i64,
    until: i64,
}

impl Store {
    /// Takes the next `n` values of the sequence of identity column
    /// `column` of `table`, in increasing order. Values above `max` (the
    /// column type's largest) are refused with [`Error::SequenceLimit`] and
    /// none is taken. Waits for a durable reservation when the reserved
    /// block runs out.
    pub async fn sequence_take(&self, table: &TableHandle, column: usize, n: usize, max: i64) -> Result<Vec<i64>> {
        let mut reserved = table.sequences.reserved.lock().await;
        let key = keys::sequence_key(table.def.id, column);
        let range = match reserved.get(&column) {
            Some(r) => *r,
            None => {
                let stored = match self.state_get(&key)? {
                    Some(bytes) => i64::from_be_bytes(
                        bytes.as_slice().try_into().map_err(|_| Error::Corrupt("malformed sequence value".into()))?,
                    ),
                    None => START,
                };
                Reserved { next: stored, until: stored }
            }
        };
        let n = n as i64;
        let last = range.next.saturating_add(n - 1);
        if n > 0 && last > max {
            let name = format!("{}_{}_seq", table.def.name, table.def.columns[column].name);
            return Err(Error::SequenceLimit(format!("nextval: reached maximum value of sequence \"{name}\" ({max})")));
        }
        let mut range = range;
        let end = range.next.saturating_add(n);
        if end > range.until {
            let until = end.saturating_add(BLOCK - 1).min(max.saturating_add(1));
            let writes =
                WriteSet { state: vec![StateWrite::Put(key, until.to_be_bytes().to_vec())], ..Default::default() };
            self.commit(writes).await?;
            range.until = until;
        }
        let values = (range.next..end).collect();
        range.next = end;
        reserved.insert(column, range);
        Ok(values)
    }
}
