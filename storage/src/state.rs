//! Durable operator state: what continuous queries keep between steps.
//!
//! A continuous query's definition, its input offsets, its counters and its
//! operator state (open windows, resting orders) live as plain keys in the
//! `continuous` column family. A step writes its state changes as
//! [`StateWrite`]s in the same [`crate::WriteSet`] as its output records,
//! so input offsets, state and outputs are one atomic write: after a crash
//! a query resumes exactly where its last committed step left it.

use rocksdb::{Direction, IteratorMode, ReadOptions};

use crate::error::Result;
use crate::store::{Store, CF_CONTINUOUS};

/// One change to the `continuous` column family.
#[derive(Debug, Clone, PartialEq)]
pub enum StateWrite {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Deletes `[start, end)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

impl Store {
    /// The value of a state key. Blocking.
    pub fn state_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db().get_cf(self.cf(CF_CONTINUOUS), key)?)
    }

    /// Every state key starting with `prefix`, in key order. Blocking.
    pub fn state_scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(prefix_end(prefix));
        let iter =
            self.db().iterator_cf_opt(self.cf(CF_CONTINUOUS), opts, IteratorMode::From(prefix, Direction::Forward));
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(&[1, 255]), vec![2]);
        assert!(prefix_end(b"q/") > b"q/zzzz".to_vec());
    }
}
