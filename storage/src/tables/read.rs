//! Reading tables: point lookups, key-ordered scans, and the table as it
//! was at an earlier version (replayed from its changelog).

use std::collections::BTreeMap;

use rocksdb::{Direction, IteratorMode, ReadOptions};

use crate::codec::{self, Value};
use crate::error::{Error, Result};
use crate::keys;
use crate::store::{Store, CF_TABLES};
use crate::tables::TableHandle;

/// One row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The changelog offset of the change that wrote this version.
    pub version: u64,
    /// Commit time of that change, microseconds since the epoch.
    pub timestamp_micros: i64,
    pub values: Vec<Value>,
}

/// Encodes a `tables` value: version, then the stamped row record.
pub(crate) fn encode_value(version: u64, record: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + record.len());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(record);
    v
}

/// The version stored in a `tables` value.
pub(crate) fn version_of(value: &[u8]) -> Result<u64> {
    value
        .get(..8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| Error::Corrupt("table row too short".into()))
}

fn decode(table: &TableHandle, value: &[u8]) -> Result<Row> {
    let version = version_of(value)?;
    let rec = codec::decode_record(table.layout(), version, &value[8..])?;
    Ok(Row { version, timestamp_micros: rec.timestamp_micros, values: rec.values })
}

impl Store {
    /// The current row of `table` with encoded primary key `pk`, if any.
    /// Blocking (RocksDB I/O); sees every acknowledged write.
    pub fn table_get(&self, table: &TableHandle, pk: &[u8]) -> Result<Option<Row>> {
        if let Some(cached) = self.row_cache().get(table.def.id, pk) {
            return cached.map(|v| decode(table, &v)).transpose();
        }
        match self.db().get_pinned_cf(self.cf(CF_TABLES), keys::row_key(table.def.id, pk))? {
            Some(v) => decode(table, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Up to `limit` rows of `table` in primary key order, starting after
    /// the encoded key `after` (from the first row if `None`), each with its
    /// encoded key. Blocking. Each call reads a consistent snapshot; rows
    /// changed between two calls appear in the version the later call saw.
    pub fn table_scan(&self, table: &TableHandle, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Row)>> {
        let (start, end) = keys::table_range(table.def.id);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(end);
        let from = match after {
            Some(k) => {
                let mut k = keys::row_key(table.def.id, k);
                k.push(0); // the smallest key after `k`
                k
            }
            None => start,
        };
        let iter = self.db().iterator_cf_opt(self.cf(CF_TABLES), opts, IteratorMode::From(&from, Direction::Forward));
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item?;
            out.push((k[8..].to_vec(), decode(table, &v)?));
        }
        Ok(out)
    }

    /// The rows of `table` as they were right after the change at changelog
    /// offset `version` (every change up to and including it), in primary
    /// key order. Blocking; reads the changelog from its start.
    pub fn table_as_of(&self, table: &TableHandle, version: u64) -> Result<BTreeMap<Vec<u8>, Row>> {
        let log = &table.changelog;
        let to = version.saturating_add(1).min(log.head(0));
        let mut rows = BTreeMap::new();
        let mut from = log.low(0);
        while from < to {
            let batch = self.read(log, 0, from, to, 4096)?;
            let Some(last) = batch.last() else { break };
            from = last.offset + 1;
            for rec in batch {
                let mut values = rec.values;
                let op = match values.first() {
                    Some(Value::Text(op)) => op.clone(),
                    _ => return Err(Error::Corrupt("changelog record without op".into())),
                };
                values.remove(0);
                let key = table.key_of(&values)?;
                if op == crate::tables::write::OP_DELETE {
                    rows.remove(&key);
                } else {
                    rows.insert(key, Row { version: rec.offset, timestamp_micros: rec.timestamp_micros, values });
                }
            }
        }
        Ok(rows)
    }
}
