//! The record format: how one row of a stream is laid out in a `log` value.
//!
//! ```text
//!  version u8 (=3) | timestamp i64 LE | key: u32 LE len + bytes (u32::MAX = NULL)
//!  | ncols u16 LE | null bitmap (ceil(ncols/8) bytes, bit set = NULL)
//!  | each non-NULL value in column order:
//!      boolean u8 | smallint i16 | integer i32 | bigint i64 | real f32 | double f64
//!      | timestamp(tz) i64 | date i32 | numeric i128 (units of 10^-scale)
//!                                              (all little-endian)
//!      | text, bytea: u32 LE len + bytes
//! ```
//! The timestamp is written by the committer, not by the session, so it is
//! the commit time and never decreases along a partition.
//!
//! `ncols` is the number of columns the writer's definition had: a record
//! keeps the shape it was written with when `ALTER TABLE … ADD COLUMN`
//! appends columns later, and a reader gives the columns a record lacks their
//! *missing value* (see [`RowLayout`]). Version 1 records, written before
//! columns could be added, have no `ncols`: they hold the columns the
//! definition had before its first added one
//! ([`crate::StreamDef::original_columns`]).
//!
//! Records are stored in **chunks**: all records one commit group appends to
//! one partition share a single RocksDB key (the offset of the first) and
//! value, so the cost of a key (memtable insert, index entry) is paid once
//! per group and partition, not once per record:
//!
//! ```text
//!  chunk:  version u8 (=2) | count u32 LE | count × (u32 LE len + record)
//! ```

use crate::catalog::ColumnType;
use crate::error::{Error, Result};

const FORMAT_VERSION: u8 = 3;
/// Records written before columns could be added (no column count).
const FORMAT_VERSION_UNCOUNTED: u8 = 1;
const NULL_LEN: u32 = u32::MAX;
/// Byte position of the timestamp inside an encoded record.
pub(crate) const TIMESTAMP_AT: usize = 1;

/// One value of a row, as the storage layer sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Null,
    Boolean(bool),
    /// Any integer column; the column type decides the width on disk.
    Int(i64),
    /// `real` or `double precision`.
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Microseconds since the epoch (`timestamp` and `timestamptz`).
    Timestamp(i64),
    /// Days since the epoch.
    Date(i32),
    /// An exact decimal: `units` × 10^-`scale` (`numeric`).
    Numeric {
        units: i128,
        scale: u8,
    },
}

impl Value {
    /// The text form of a key value: what a stream's key hashes (its UTF-8
    /// bytes) and a table's changelog shows as `_key`. `None` for NULL.
    pub fn key_text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(s) => s.clone(),
            Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            Value::Timestamp(t) => t.to_string(),
            Value::Date(d) => d.to_string(),
            Value::Numeric { units, scale } => crate::numeric::to_text(*units, *scale),
        })
    }
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub offset: u64,
    pub timestamp_micros: i64,
    pub key: Option<Vec<u8>>,
    pub values: Vec<Value>,
}

const CHUNK_VERSION: u8 = 2;
const CHUNK_HEADER: usize = 5;

/// A chunk being built by the committer.
#[derive(Debug)]
pub(crate) struct ChunkBuilder {
    pub(crate) first: u64,
    count: u32,
    bytes: Vec<u8>,
}

impl ChunkBuilder {
    pub(crate) fn new(first: u64) -> ChunkBuilder {
        let mut bytes = Vec::with_capacity(256);
        bytes.push(CHUNK_VERSION);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        ChunkBuilder { first, count: 0, bytes }
    }

    pub(crate) fn push(&mut self, record: &[u8]) {
        put_bytes(&mut self.bytes, record);
        self.count += 1;
    }

    /// Records pushed so far.
    pub(crate) fn len(&self) -> u32 {
        self.count
    }

    /// Encoded size so far.
    pub(crate) fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes[1..CHUNK_HEADER].copy_from_slice(&self.count.to_le_bytes());
        self.bytes
    }
}

/// The records of a chunk whose first offset is `first`, as
/// `(offset, record bytes)`.
pub(crate) fn chunk_records(first: u64, chunk: &[u8]) -> Result<Vec<(u64, &[u8])>> {
    chunk_iter(first, chunk)?.collect()
}

/// The records of a chunk whose first offset is `first`, one at a time:
/// reading the first few does not decode the rest. Fails at once on an
/// unknown chunk format, and yields an error for a truncated record.
pub(crate) fn chunk_iter(first: u64, chunk: &[u8]) -> Result<ChunkIter<'_>> {
    let mut reader = Reader { buf: chunk, pos: 0 };
    if reader.array::<1>()?[0] != CHUNK_VERSION {
        return Err(Error::Corrupt("unknown chunk format".into()));
    }
    let count = u32::from_le_bytes(reader.array()?) as u64;
    Ok(ChunkIter { reader, next: first, end: first + count })
}

/// Iterator of [`chunk_iter`]: `(offset, record bytes)`.
pub(crate) struct ChunkIter<'a> {
    reader: Reader<'a>,
    next: u64,
    end: u64,
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = Result<(u64, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let offset = self.next;
        self.next += 1;
        let rec = self.reader.bytes().and_then(|r| r.ok_or_else(|| Error::Corrupt("null record in chunk".into())));
        if rec.is_err() {
            self.next = self.end; // nothing after a bad record can be trusted
        }
        Some(rec.map(|r| (offset, r)))
    }
}

/// The number of records in a chunk.
pub(crate) fn chunk_len(chunk: &[u8]) -> Result<u64> {
    chunk
        .get(1..CHUNK_HEADER)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as u64)
        .ok_or_else(|| Error::Corrupt("chunk too short".into()))
}

/// Encodes a row (without its timestamp, which the committer adds).
///
/// The caller has already checked the values against the column types;
/// a mismatch here is reported as `InvalidInput` rather than a panic.
pub fn encode_row(types: &[ColumnType], key: Option<&[u8]>, values: &[Value]) -> Result<Vec<u8>> {
    check_arity(values, types)?;
    encode_fields(key, values.len(), types.iter().zip(values))
}

/// Fails with `InvalidInput` unless `values` has one value per column.
pub(crate) fn check_arity(values: &[Value], types: &[ColumnType]) -> Result<()> {
    match values.len() == types.len() {
        true => Ok(()),
        false => Err(Error::InvalidInput(format!("row has {} values for {} columns", values.len(), types.len()))),
    }
}

/// [`encode_row`] of `n` (type, value) pairs, which need not sit in slices
/// (a changelog record is its operation followed by the row).
pub(crate) fn encode_fields<'a>(
    key: Option<&[u8]>,
    n: usize,
    fields: impl Iterator<Item = (&'a ColumnType, &'a Value)>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(16 + n * 8);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&0i64.to_le_bytes());
    match key {
        Some(k) => put_bytes(&mut out, k),
        None => out.extend_from_slice(&NULL_LEN.to_le_bytes()),
    }
    let ncols = u16::try_from(n).map_err(|_| Error::InvalidInput("too many columns".into()))?;
    out.extend_from_slice(&ncols.to_le_bytes());
    let bitmap_at = out.len();
    out.resize(bitmap_at + n.div_ceil(8), 0);
    for (i, (ty, value)) in fields.enumerate() {
        match (ty, value) {
            (_, Value::Null) => out[bitmap_at + i / 8] |= 1 << (i % 8),
            (ColumnType::Boolean, Value::Boolean(b)) => out.push(*b as u8),
            (ColumnType::SmallInt, Value::Int(v)) => out.extend_from_slice(&(narrow::<i16>(*v, *ty)?).to_le_bytes()),
            (ColumnType::Integer, Value::Int(v)) => out.extend_from_slice(&(narrow::<i32>(*v, *ty)?).to_le_bytes()),
            (ColumnType::BigInt, Value::Int(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (ColumnType::Real, Value::Float(v)) => out.extend_from_slice(&(*v as f32).to_le_bytes()),
            (ColumnType::Double, Value::Float(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (ColumnType::Text | ColumnType::Json | ColumnType::Jsonb | ColumnType::Uuid, Value::Text(s)) => {
                put_bytes(&mut out, s.as_bytes())
            }
            (ColumnType::Bytea, Value::Bytes(b)) => put_bytes(&mut out, b),
            (ColumnType::Timestamp | ColumnType::TimestampTz, Value::Timestamp(v)) => {
                out.extend_from_slice(&v.to_le_bytes())
            }
            (ColumnType::Date, Value::Date(d)) => out.extend_from_slice(&d.to_le_bytes()),
            (ColumnType::Numeric { scale, .. }, Value::Numeric { units, scale: s }) if s == scale => {
                out.extend_from_slice(&units.to_le_bytes())
            }
            (ty, v) => {
                return Err(Error::InvalidInput(format!("value {v:?} does not fit column type {}", ty.sql_name())))
            }
        }
    }
    Ok(out)
}

fn narrow<T: TryFrom<i64>>(v: i64, ty: ColumnType) -> Result<T> {
    T::try_from(v).map_err(|_| Error::InvalidInput(format!("{v} is out of range for type {}", ty.sql_name())))
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Writes the commit timestamp into an encoded record.
pub(crate) fn stamp(record: &mut [u8], ts_micros: i64) {
    record[TIMESTAMP_AT..TIMESTAMP_AT + 8].copy_from_slice(&ts_micros.to_le_bytes());
}

/// Reads the commit timestamp of an encoded record.
pub(crate) fn timestamp_of(record: &[u8]) -> Result<i64> {
    record
        .get(TIMESTAMP_AT..TIMESTAMP_AT + 8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| Error::Corrupt("record too short".into()))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| Error::Corrupt("record truncated".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let len = u32::from_le_bytes(self.array()?);
        if len == NULL_LEN {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
}

/// How to read records of one definition: the column types, what a record
/// written before a column was added reads as in that column, and how many
/// columns uncounted (version 1) records hold.
#[derive(Debug, Clone, PartialEq)]
pub struct RowLayout {
    pub types: Vec<ColumnType>,
    /// Per column, the value of a record that lacks it.
    pub missing: Vec<Value>,
    /// Columns of a version 1 record.
    pub uncounted: usize,
}

impl RowLayout {
    /// The layout of `columns`, whose first `original` were there before
    /// any was added.
    pub fn new(columns: &[crate::catalog::ColumnDef], original: Option<usize>) -> RowLayout {
        RowLayout {
            types: columns.iter().map(|c| c.ty).collect(),
            missing: columns.iter().map(|c| c.missing.clone().unwrap_or(Value::Null)).collect(),
            uncounted: original.unwrap_or(columns.len()),
        }
    }

    /// A layout of `types` that never had columns added.
    pub fn of_types(types: &[ColumnType]) -> RowLayout {
        RowLayout { types: types.to_vec(), missing: vec![Value::Null; types.len()], uncounted: types.len() }
    }
}

/// One value of a record as it lies in the encoded bytes: text and bytes
/// borrowed, not copied. What [`decode_fields`] hands out, so a reader can
/// build its own representation (the query layer's Arrow columns) without
/// an owned [`Value`] per field in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'a> {
    Null,
    Boolean(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
    Timestamp(i64),
    Date(i32),
    Numeric { units: i128, scale: u8 },
}

impl Value {
    /// This value, borrowed as a [`FieldRef`].
    pub fn as_field(&self) -> FieldRef<'_> {
        match self {
            Value::Null => FieldRef::Null,
            Value::Boolean(b) => FieldRef::Boolean(*b),
            Value::Int(i) => FieldRef::Int(*i),
            Value::Float(f) => FieldRef::Float(*f),
            Value::Text(s) => FieldRef::Text(s),
            Value::Bytes(b) => FieldRef::Bytes(b),
            Value::Timestamp(t) => FieldRef::Timestamp(*t),
            Value::Date(d) => FieldRef::Date(*d),
            Value::Numeric { units, scale } => FieldRef::Numeric { units: *units, scale: *scale },
        }
    }
}

impl FieldRef<'_> {
    /// An owned copy of this value.
    pub fn to_value(self) -> Value {
        match self {
            FieldRef::Null => Value::Null,
            FieldRef::Boolean(b) => Value::Boolean(b),
            FieldRef::Int(i) => Value::Int(i),
            FieldRef::Float(f) => Value::Float(f),
            FieldRef::Text(s) => Value::Text(s.to_owned()),
            FieldRef::Bytes(b) => Value::Bytes(b.to_vec()),
            FieldRef::Timestamp(t) => Value::Timestamp(t),
            FieldRef::Date(d) => Value::Date(d),
            FieldRef::Numeric { units, scale } => Value::Numeric { units, scale },
        }
    }
}

/// What every record has besides its columns, as [`decode_fields`] reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordHead<'a> {
    pub timestamp_micros: i64,
    pub key: Option<&'a [u8]>,
}

/// Decodes a record written by [`encode_row`] and stamped by the committer,
/// as a row of `layout`: calls `field(i, value)` once for every column `i`
/// of the layout, in order, then returns the record's timestamp and key.
/// Columns the record lacks get their missing value; columns beyond the
/// layout (added after the reader's definition was taken) are left out.
/// Text is handed out only once checked to be UTF-8. A malformed record
/// fails with [`Error::Corrupt`], possibly after `field` saw some of its
/// columns: the caller drops what it built from it.
pub fn decode_fields<'a>(
    layout: &'a RowLayout,
    buf: &'a [u8],
    mut field: impl FnMut(usize, FieldRef<'a>),
) -> Result<RecordHead<'a>> {
    let types = &layout.types;
    let mut r = Reader { buf, pos: 0 };
    let version = r.array::<1>()?[0];
    if version != FORMAT_VERSION && version != FORMAT_VERSION_UNCOUNTED {
        return Err(Error::Corrupt(format!("unknown record format {version}")));
    }
    let timestamp_micros = i64::from_le_bytes(r.array()?);
    let key = r.bytes()?;
    let ncols = match version {
        FORMAT_VERSION => u16::from_le_bytes(r.array()?) as usize,
        _ => layout.uncounted,
    };
    let bitmap = r.take(ncols.div_ceil(8))?;
    for (i, ty) in types.iter().enumerate() {
        if i >= ncols {
            field(i, layout.missing.get(i).map_or(FieldRef::Null, Value::as_field));
            continue;
        }
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            field(i, FieldRef::Null);
            continue;
        }
        field(
            i,
            match ty {
                ColumnType::Boolean => FieldRef::Boolean(r.array::<1>()?[0] != 0),
                ColumnType::SmallInt => FieldRef::Int(i16::from_le_bytes(r.array()?) as i64),
                ColumnType::Integer => FieldRef::Int(i32::from_le_bytes(r.array()?) as i64),
                ColumnType::BigInt => FieldRef::Int(i64::from_le_bytes(r.array()?)),
                ColumnType::Real => FieldRef::Float(f32::from_le_bytes(r.array()?) as f64),
                ColumnType::Double => FieldRef::Float(f64::from_le_bytes(r.array()?)),
                ColumnType::Text | ColumnType::Json | ColumnType::Jsonb | ColumnType::Uuid => {
                    let b = r.bytes()?.ok_or_else(|| Error::Corrupt("null text length".into()))?;
                    FieldRef::Text(std::str::from_utf8(b).map_err(|_| Error::Corrupt("text is not UTF-8".into()))?)
                }
                ColumnType::Bytea => {
                    FieldRef::Bytes(r.bytes()?.ok_or_else(|| Error::Corrupt("null bytea length".into()))?)
                }
                ColumnType::Timestamp | ColumnType::TimestampTz => FieldRef::Timestamp(i64::from_le_bytes(r.array()?)),
                ColumnType::Date => FieldRef::Date(i32::from_le_bytes(r.array()?)),
                ColumnType::Numeric { scale, .. } => {
                    FieldRef::Numeric { units: i128::from_le_bytes(r.array()?), scale: *scale }
                }
            },
        );
    }
    Ok(RecordHead { timestamp_micros, key })
}

/// [`decode_fields`] into an owned [`Record`] at `offset`.
pub fn decode_record(layout: &RowLayout, offset: u64, buf: &[u8]) -> Result<Record> {
    let mut values = Vec::with_capacity(layout.types.len());
    let head = decode_fields(layout, buf, |_, v| values.push(v.to_value()))?;
    Ok(Record { offset, timestamp_micros: head.timestamp_micros, key: head.key.map(<[u8]>::to_vec), values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type_and_nulls() {
        let types = [
            ColumnType::Boolean,
            ColumnType::SmallInt,
            ColumnType::Integer,
            ColumnType::BigInt,
            ColumnType::Real,
            ColumnType::Double,
            ColumnType::Text,
            ColumnType::Bytea,
            ColumnType::Timestamp,
            ColumnType::Date,
            ColumnType::Text,
            ColumnType::Numeric { precision: 28, scale: 4 },
        ];
        let values = vec![
            Value::Boolean(true),
            Value::Int(-7),
            Value::Int(1 << 20),
            Value::Int(i64::MIN),
            Value::Float(1.5),
            Value::Float(-2.25),
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Timestamp(1_700_000_000_000_000),
            Value::Date(19_000),
            Value::Null,
            Value::Numeric { units: -123_456_789, scale: 4 },
        ];
        let mut buf = encode_row(&types, Some(b"k1"), &values).unwrap();
        stamp(&mut buf, 42);
        let rec = decode_record(&RowLayout::of_types(&types), 9, &buf).unwrap();
        assert_eq!(rec.offset, 9);
        assert_eq!(rec.timestamp_micros, 42);
        assert_eq!(rec.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(rec.values, values);
    }

    #[test]
    fn rejects_out_of_range_and_mismatched_values() {
        assert!(encode_row(&[ColumnType::SmallInt], None, &[Value::Int(70_000)]).is_err());
        assert!(encode_row(&[ColumnType::Text], None, &[Value::Int(1)]).is_err());
        assert!(encode_row(&[ColumnType::Text], None, &[]).is_err());
    }

    #[test]
    fn chunks_round_trip() {
        let mut c = ChunkBuilder::new(40);
        c.push(b"abc");
        c.push(b"");
        c.push(b"z");
        let bytes = c.finish();
        assert_eq!(chunk_len(&bytes).unwrap(), 3);
        let recs = chunk_records(40, &bytes).unwrap();
        assert_eq!(recs, vec![(40, &b"abc"[..]), (41, &b""[..]), (42, &b"z"[..])]);
        for n in 0..bytes.len() {
            assert!(chunk_records(40, &bytes[..n]).is_err());
        }
    }

    #[test]
    fn truncated_records_are_corrupt_not_panics() {
        let buf = encode_row(&[ColumnType::Text], None, &[Value::Text("abc".into())]).unwrap();
        for n in 0..buf.len() {
            assert!(decode_record(&RowLayout::of_types(&[ColumnType::Text]), 0, &buf[..n]).is_err());
        }
    }

    /// A record keeps the shape it was written with: read with more columns
    /// (added later) it shows their missing values, read with fewer (an
    /// older reader) it leaves the newer ones out. Version 1 records hold
    /// the definition's original columns.
    #[test]
    fn records_read_across_added_columns() {
        let old = [ColumnType::Text, ColumnType::BigInt];
        let mut buf = encode_row(&old, None, &[Value::Text("a".into()), Value::Null]).unwrap();
        stamp(&mut buf, 5);
        let wider = RowLayout {
            types: vec![ColumnType::Text, ColumnType::BigInt, ColumnType::Boolean, ColumnType::Text],
            missing: vec![Value::Null, Value::Null, Value::Boolean(true), Value::Null],
            uncounted: 2,
        };
        let rec = decode_record(&wider, 0, &buf).unwrap();
        assert_eq!(rec.values, vec![Value::Text("a".into()), Value::Null, Value::Boolean(true), Value::Null]);
        let mut new = encode_row(
            &wider.types,
            None,
            &[Value::Text("b".into()), Value::Int(1), Value::Null, Value::Text("t".into())],
        )
        .unwrap();
        stamp(&mut new, 6);
        let rec = decode_record(&RowLayout::of_types(&old), 1, &new).unwrap();
        assert_eq!(rec.values, vec![Value::Text("b".into()), Value::Int(1)]);
        // The same row as a version 1 record: no column count.
        let mut v1 = vec![FORMAT_VERSION_UNCOUNTED];
        v1.extend_from_slice(&7i64.to_le_bytes());
        v1.extend_from_slice(&NULL_LEN.to_le_bytes());
        v1.push(0b10);
        put_bytes(&mut v1, b"a");
        let rec = decode_record(&wider, 2, &v1).unwrap();
        assert_eq!(rec.timestamp_micros, 7);
        assert_eq!(rec.values, vec![Value::Text("a".into()), Value::Null, Value::Boolean(true), Value::Null]);
    }
}
