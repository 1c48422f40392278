//! A stream's records as Arrow columns, built while the log is read: each
//! record is decoded from the bytes the log holds straight into the
//! builders of the columns a query asked for, with no owned row in between
//! and nothing decoded into a column nobody reads.

use std::sync::Arc;

use brikk_storage::codec::decode_fields;
use brikk_storage::{FieldRef, Record, RecordSink, RowLayout, StreamHandle};
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::Result;

use crate::types::{ColumnBuilder, UTC};

/// The columns of [`crate::catalog::stream_table::stream_schema`] a query
/// projects, for records of one partition, as a [`RecordSink`] for
/// [`brikk_storage::Store::read_into`]. System columns are `_partition`,
/// `_offset`, `_timestamp`, `_key` (indices 0–3), the stream's own columns
/// follow.
pub struct StreamColumns {
    schema: SchemaRef,
    projection: Vec<usize>,
    partition: u32,
    /// `_offset`, `_timestamp` and `_key`, each built only when projected.
    offsets: Option<Int64Builder>,
    timestamps: Option<TimestampMicrosecondBuilder>,
    keys: Option<StringBuilder>,
    /// Per column of the stream, its builder when projected.
    columns: Vec<Option<ColumnBuilder>>,
    /// Rows in the builders.
    rows: usize,
    /// Batches finished before a [`RecordSink::drop_last`].
    done: Vec<RecordBatch>,
}

impl StreamColumns {
    /// Columns `projection` (indices into the stream's full schema) of
    /// records of `partition`, as batches of `schema` (the projected one),
    /// with room for `capacity` rows.
    pub fn new(
        schema: &SchemaRef,
        projection: &[usize],
        partition: u32,
        stream: &StreamHandle,
        capacity: usize,
    ) -> StreamColumns {
        let types = stream.types();
        let mut columns: Vec<Option<ColumnBuilder>> = (0..types.len()).map(|_| None).collect();
        for &i in projection.iter().filter(|&&i| i >= 4) {
            if let Some(slot) = columns.get_mut(i - 4) {
                *slot = Some(ColumnBuilder::new(types[i - 4], capacity));
            }
        }
        StreamColumns {
            schema: schema.clone(),
            projection: projection.to_vec(),
            partition,
            offsets: projection.contains(&1).then(|| Int64Builder::with_capacity(capacity)),
            timestamps: projection
                .contains(&2)
                .then(|| TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(UTC)),
            keys: projection.contains(&3).then(|| StringBuilder::with_capacity(capacity, capacity * 8)),
            columns,
            rows: 0,
            done: Vec::new(),
        }
    }

    /// Rows taken so far.
    fn len(&self) -> usize {
        self.rows + self.done.iter().map(RecordBatch::num_rows).sum::<usize>()
    }

    fn push_head(&mut self, offset: u64, timestamp_micros: i64, key: Option<&[u8]>) {
        if let Some(offsets) = &mut self.offsets {
            offsets.append_value(offset as i64);
        }
        if let Some(timestamps) = &mut self.timestamps {
            timestamps.append_value(timestamp_micros);
        }
        if let Some(keys) = &mut self.keys {
            keys.append_option(key.map(String::from_utf8_lossy));
        }
        self.rows += 1;
    }

    /// The rows of the builders as one batch; the builders start over.
    fn finish_builders(&mut self) -> Result<RecordBatch> {
        let n = std::mem::take(&mut self.rows);
        let offsets = self.offsets.as_mut().map(|b| Arc::new(b.finish()) as ArrayRef);
        let timestamps = self.timestamps.as_mut().map(|b| Arc::new(b.finish()) as ArrayRef);
        let keys = self.keys.as_mut().map(|k| Arc::new(k.finish()) as ArrayRef);
        let mut columns: Vec<Option<ArrayRef>> =
            self.columns.iter_mut().map(|c| c.as_mut().map(ColumnBuilder::finish)).collect();
        let arrays = self
            .projection
            .iter()
            .map(|&i| match i {
                0 => Arc::new(Int32Array::from(vec![self.partition as i32; n])) as ArrayRef,
                1 => offsets.clone().expect("_offset is built when projected"),
                2 => timestamps.clone().expect("_timestamp is built when projected"),
                3 => keys.clone().expect("_key is built when projected"),
                i => columns[i - 4].take().expect("a projected column is built"),
            })
            .collect();
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }

    /// Every row taken, as one batch.
    pub fn finish(mut self) -> Result<RecordBatch> {
        let last = self.finish_builders()?;
        if self.done.is_empty() {
            return Ok(last);
        }
        self.done.push(last);
        Ok(concat_batches(&self.schema, &self.done)?)
    }
}

impl RecordSink for StreamColumns {
    fn push_encoded(&mut self, layout: &RowLayout, offset: u64, record: &[u8]) -> brikk_storage::Result<()> {
        let columns = &mut self.columns;
        let head = decode_fields(layout, record, |i, v| {
            if let Some(Some(b)) = columns.get_mut(i) {
                b.append(v);
            }
        })?;
        self.push_head(offset, head.timestamp_micros, head.key);
        Ok(())
    }

    fn push_records(&mut self, records: Vec<Record>) {
        for r in records {
            for (b, v) in self.columns.iter_mut().zip(&r.values) {
                if let Some(b) = b {
                    b.append(v.as_field());
                }
            }
            // A record with fewer values than columns: NULL in the rest.
            for b in self.columns.iter_mut().skip(r.values.len()).flatten() {
                b.append(FieldRef::Null);
            }
            self.push_head(r.offset, r.timestamp_micros, r.key.as_deref());
        }
    }

    fn drop_last(&mut self, n: usize) {
        let batch = self.finish_builders().expect("builders hold equal-length columns");
        self.done.push(batch);
        let keep = self.len() - n;
        let mut kept = 0;
        self.done.retain_mut(|b| {
            let take = b.num_rows().min(keep - kept);
            *b = b.slice(0, take);
            kept += take;
            take > 0
        });
    }
}

#[cfg(test)]
mod tests {
    use brikk_storage::ChunkHint;
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::util::pretty::pretty_format_batches;

    use super::*;
    use crate::catalog::stream_table::stream_schema;
    use crate::db::Brikk;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    /// Columns built from the log's bytes equal those built from decoded
    /// records, for every projection, and hold what was inserted (NULLs,
    /// keys, numerics, timestamps, bytes).
    #[test]
    fn encoded_and_decoded_records_build_the_same_columns() {
        let dir = tempfile::tempdir().unwrap();
        rt().block_on(async {
            let db = Brikk::open(dir.path()).unwrap();
            db.execute(
                "CREATE STREAM s (id TEXT, n BIGINT, at TIMESTAMPTZ, price NUMERIC(10,2), blob BYTEA, ok BOOLEAN) \
                 WITH (partitions = 1, key = 'id')",
            )
            .await
            .unwrap();
            db.execute(
                "INSERT INTO s VALUES ('a', 1, '2026-01-01 00:00:00+00', 1.50, '\\x00ff', true), \
                 (NULL, NULL, NULL, NULL, NULL, NULL), ('c', -3, '1999-12-31 23:59:59.5+00', 0.01, '\\x', false)",
            )
            .await
            .unwrap();
            let store = db.store();
            let s = store.stream("s").unwrap();
            let schema = stream_schema(&s);
            let records = store.read(&s, 0, 0, u64::MAX, 100).unwrap();
            let all: Vec<usize> = (0..schema.fields().len()).collect();
            for projection in [all.clone(), vec![1, 4], vec![3], vec![9, 0, 5], vec![]] {
                let projected = Arc::new(schema.project(&projection).unwrap());
                let decoded = to_batch_of(&projected, &projection, &s, records.clone());
                let mut encoded = StreamColumns::new(&projected, &projection, 0, &s, 1);
                let last = store.read_into(&s, 0, 0, u64::MAX, 100, &mut ChunkHint::default(), &mut encoded).unwrap();
                assert_eq!(last, Some(2));
                assert_eq!(encoded.finish().unwrap(), decoded, "projection {projection:?}");
            }
            let batch = to_batch_of(&schema, &all, &s, records).project(&[1, 3, 4, 5, 7, 8, 9]).unwrap();
            let expected = [
                "+---------+------+----+----+-------+------+-------+",
                "| _offset | _key | id | n  | price | blob | ok    |",
                "+---------+------+----+----+-------+------+-------+",
                "| 0       | a    | a  | 1  | 1.50  | 00ff | true  |",
                "| 1       |      |    |    |       |      |       |",
                "| 2       | c    | c  | -3 | 0.01  |      | false |",
                "+---------+------+----+----+-------+------+-------+",
            ];
            assert_eq!(pretty_format_batches(std::slice::from_ref(&batch)).unwrap().to_string(), expected.join("\n"));
            // Row 1 is NULL in every column; row 2's blob is empty, not NULL.
            assert!(batch.columns().iter().skip(1).all(|c| c.null_count() == 1 && c.is_null(1)));
            db.close();
        });
    }

    fn to_batch_of(schema: &SchemaRef, projection: &[usize], s: &StreamHandle, records: Vec<Record>) -> RecordBatch {
        crate::catalog::scan::to_batch(schema, projection, 0, s, records).unwrap()
    }

    /// Records dropped from the end (a read redone from an archive file)
    /// leave the batch as if they had never been taken.
    #[test]
    fn dropped_records_leave_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        rt().block_on(async {
            let db = Brikk::open(dir.path()).unwrap();
            db.execute("CREATE STREAM s (v TEXT) WITH (partitions = 1)").await.unwrap();
            db.execute("INSERT INTO s SELECT 'r' || x FROM generate_series(0, 9) AS t(x)").await.unwrap();
            let store = db.store();
            let s = store.stream("s").unwrap();
            let schema = stream_schema(&s);
            let projected = Arc::new(schema.project(&[1, 4]).unwrap());
            let mut columns = StreamColumns::new(&projected, &[1, 4], 0, &s, 4);
            let mut hint = ChunkHint::default();
            store.read_into(&s, 0, 0, 6, 100, &mut hint, &mut columns).unwrap();
            columns.drop_last(2);
            store.read_into(&s, 0, 4, 5, 100, &mut hint, &mut columns).unwrap();
            columns.drop_last(1);
            columns.drop_last(0);
            store.read_into(&s, 0, 4, 10, 3, &mut hint, &mut columns).unwrap();
            assert_eq!(columns.len(), 7);
            let batch = columns.finish().unwrap();
            let offsets = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            assert_eq!(offsets.values().to_vec(), vec![0, 1, 2, 3, 4, 5, 6]);
            let values = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!(values.iter().flatten().collect::<Vec<_>>(), ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]);
            assert_eq!(values.null_count(), 0);
            db.close();
        });
    }
}
