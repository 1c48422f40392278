//! Store-level tests: durability across reopen, dense offsets under
//! concurrency, drop, and the time index.

use std::sync::Arc;

use crate::catalog::{ColumnDef, ColumnType, StreamDef, StreamId};
use crate::codec::{encode_row, Record, Value};
use crate::error::Error;
use crate::log::read::ChunkHint;
use crate::log::{Append, WriteSet};
use crate::store::Store;

pub(crate) fn def(name: &str, partitions: u32) -> StreamDef {
    StreamDef {
        id: StreamId(0),
        name: name.into(),
        columns: vec![ColumnDef {
            name: "v".into(),
            ty: ColumnType::BigInt,
            nullable: true,
            default: None,
            identity: None,
            missing: None,
        }],
        partitions,
        key_column: None,
        retention_micros: None,
        created_at_micros: 0,
        retention_bytes: None,
        archive: None,
        changelog_of: None,
        original_columns: None,
    }
}

fn append(stream: StreamId, partition: u32, v: i64) -> Append {
    Append { stream, partition, record: encode_row(&[ColumnType::BigInt], None, &[Value::Int(v)]).unwrap() }
}

/// Table `t (k BIGINT PRIMARY KEY, v <value>)`.
fn table_def(value: ColumnType) -> crate::catalog::TableDef {
    crate::catalog::TableDef {
        id: crate::catalog::TableId(0),
        name: "t".into(),
        columns: vec![
            ColumnDef {
                name: "k".into(),
                ty: ColumnType::BigInt,
                nullable: false,
                default: None,
                identity: None,
                missing: None,
            },
            ColumnDef { name: "v".into(), ty: value, nullable: true, default: None, identity: None, missing: None },
        ],
        primary_key: vec![0],
        changelog: StreamId(0),
        created_at_micros: 0,
        original_columns: None,
    }
}

/// [`Store::read_into`] a `Vec`.
fn read_at(
    store: &Store,
    s: &crate::StreamHandle,
    p: u32,
    from: u64,
    to: u64,
    limit: usize,
    hint: &mut ChunkHint,
) -> crate::Result<Vec<Record>> {
    let mut out = Vec::new();
    store.read_into(s, p, from, to, limit, hint, &mut out)?;
    Ok(out)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

#[test]
fn appends_survive_reopen_with_dense_offsets() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.create_stream(def("s", 2), false).await.unwrap().unwrap();
        let r = store
            .commit(WriteSet::of_appends(vec![append(s.def.id, 0, 1), append(s.def.id, 0, 2), append(s.def.id, 1, 3)]))
            .await
            .unwrap();
        assert_eq!(r.positions, vec![(0, 0), (0, 1), (1, 0)]);
        store.close();
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.stream("s").unwrap();
        assert_eq!(s.heads(), vec![2, 1]);
        let recs = store.read(&s, 0, 0, u64::MAX, 100).unwrap();
        assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(recs[1].values, vec![Value::Int(2)]);
        let r = store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 4)])).await.unwrap();
        assert_eq!(r.positions, vec![(0, 2)]);
        // Reads can start and stop inside a chunk.
        let mid = store.read(&s, 0, 1, 3, 100).unwrap();
        assert_eq!(mid.iter().map(|r| r.values[0].clone()).collect::<Vec<_>>(), vec![Value::Int(2), Value::Int(4)]);
        let limited = store.read(&s, 0, 0, 100, 1).unwrap();
        assert_eq!(limited.len(), 1);
        assert_eq!(store.read(&s, 0, 3, 100, 100).unwrap().len(), 0);
    });
}

/// A reader that goes on where it stopped (FETCH) gets the same records
/// with a hint as without, whether the hint is fresh, stale or foreign.
#[test]
fn hinted_reads_match_plain_reads() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        // Chunks of 3, 1 and 4 records: offsets 0-2, 3, 4-7.
        for n in [3, 1, 4] {
            let appends = (0..n).map(|v| append(s.def.id, 0, v)).collect();
            store.commit(WriteSet::of_appends(appends)).await.unwrap();
        }
        store.close();
    });
    rt().block_on(async {
        // Reopened: the tail cache is empty, every read goes to RocksDB.
        let store = Store::open(dir.path()).unwrap();
        let s = store.stream("s").unwrap();
        assert!(s.tail(0).covering(0, 8).is_empty());
        let offsets = |recs: Vec<Record>| recs.iter().map(|r| r.offset).collect::<Vec<_>>();
        for step in 1..=4 {
            let mut hint = ChunkHint::default();
            let mut from = 0;
            while from < 8 {
                let hinted = offsets(read_at(&store, &s, 0, from, u64::MAX, step, &mut hint).unwrap());
                assert_eq!(hinted, offsets(store.read(&s, 0, from, u64::MAX, step).unwrap()), "from {from}");
                assert_eq!(hinted.first(), Some(&from));
                from = hinted.last().unwrap() + 1;
            }
            // A hint for another offset (a rewind) is ignored.
            assert_eq!(offsets(read_at(&store, &s, 0, 1, 3, 10, &mut hint).unwrap()), vec![1, 2]);
            assert_eq!(offsets(read_at(&store, &s, 0, 0, 2, 10, &mut hint).unwrap()), vec![0, 1]);
        }
        // A hint naming the wrong chunk for its offset falls back to the search.
        for chunk in [0, 3, 4, 6, 9] {
            let mut hint = ChunkHint { next: Some(5), chunk };
            assert_eq!(
                offsets(read_at(&store, &s, 0, 5, u64::MAX, 2, &mut hint).unwrap()),
                vec![5, 6],
                "chunk {chunk}"
            );
            assert_eq!(hint, ChunkHint { next: Some(7), chunk: 4 });
        }
    });
}

/// Reads served by the tail cache return what reads from RocksDB return,
/// for every start, end and limit, and a read that starts below the cache
/// (written before a reopen) reads on into what was appended after it.
#[test]
fn tail_cache_reads_match_log_reads() {
    let dir = tempfile::tempdir().unwrap();
    let offsets = |recs: Vec<Record>| recs.iter().map(|r| (r.offset, r.values.clone())).collect::<Vec<_>>();
    let all_reads = |store: &Store, s: &crate::log::StreamHandle, end: u64| {
        let mut got = Vec::new();
        for from in 0..=end {
            for to in from..=end + 1 {
                for limit in [1, 2, 3, 5, 100] {
                    got.push(offsets(store.read(s, 0, from, to, limit).unwrap()));
                }
            }
        }
        got
    };
    let cached = rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        // Chunks of 3, 1, 4 and 2 records: offsets 0-2, 3, 4-7, 8-9.
        for n in [3, 1, 4, 2] {
            let appends = (0..n).map(|v| append(s.def.id, 0, v * 10 + n)).collect();
            store.commit(WriteSet::of_appends(appends)).await.unwrap();
        }
        assert_eq!(s.tail(0).covering(0, 10).len(), 4, "every chunk is cached");
        let got = all_reads(&store, &s, 10);
        store.close();
        got
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.stream("s").unwrap();
        assert!(s.tail(0).covering(0, 10).is_empty());
        assert_eq!(all_reads(&store, &s, 10), cached);
        // Appended after the reopen: cached from offset 10 on.
        store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 7), append(s.def.id, 0, 8)])).await.unwrap();
        assert!(s.tail(0).covering(9, 12).is_empty());
        assert_eq!(s.tail(0).covering(10, 12).len(), 1);
        let across = store.read(&s, 0, 8, 12, 100).unwrap();
        assert_eq!(across.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![8, 9, 10, 11]);
        assert_eq!(across[2].values, vec![Value::Int(7)]);
        let mut hint = ChunkHint::default();
        let first = read_at(&store, &s, 0, 9, 12, 2, &mut hint).unwrap();
        assert_eq!(first.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![9, 10]);
        let rest = read_at(&store, &s, 0, 11, 12, 2, &mut hint).unwrap();
        assert_eq!(rest.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![11]);
    });
}

/// With a small tail cache the oldest chunks leave it first, across
/// partitions, and every read still returns every record; with none, no
/// chunk is cached.
#[test]
fn tail_cache_keeps_the_newest_chunks_within_its_budget() {
    use crate::store::StoreOptions;
    for budget in [0, 1000] {
        let dir = tempfile::tempdir().unwrap();
        rt().block_on(async {
            let store = Store::open_with(dir.path(), StoreOptions { tail_cache_bytes: budget }).unwrap();
            let s = store.create_stream(def("s", 2), false).await.unwrap().unwrap();
            // 20 chunks of 5 records per partition, ≈100 bytes each.
            for round in 0..20 {
                let appends = (0..10).map(|i| append(s.def.id, i % 2, round * 10 + i as i64)).collect();
                store.commit(WriteSet::of_appends(appends)).await.unwrap();
            }
            for p in 0..2u32 {
                let cached = s.tail(p).covering(0, 100);
                assert!(cached.is_empty(), "budget {budget}: the oldest chunk of partition {p} was evicted");
                let newest = s.tail(p).covering(95, 100);
                assert_eq!(newest.len(), usize::from(budget > 0), "budget {budget}: newest chunk of partition {p}");
                let values: Vec<i64> = store
                    .read(&s, p, 0, u64::MAX, 1000)
                    .unwrap()
                    .iter()
                    .map(|r| match r.values[0] {
                        Value::Int(v) => v,
                        ref v => panic!("unexpected {v:?}"),
                    })
                    .collect();
                let expected: Vec<i64> = (0..20)
                    .flat_map(|round| (0..10).filter(|i| i % 2 == p as i64).map(move |i| round * 10 + i))
                    .collect();
                assert_eq!(values, expected, "budget {budget}, partition {p}");
            }
        });
    }
}

#[test]
fn concurrent_commits_get_dense_distinct_offsets() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.create_stream(def("s", 3), false).await.unwrap().unwrap();
        let mut tasks = Vec::new();
        for w in 0..16i64 {
            let (store, s) = (store.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..50 {
                    let p = ((w + i) % 3) as u32;
                    let r = store.commit(WriteSet::of_appends(vec![append(s.def.id, p, w * 1000 + i)])).await.unwrap();
                    got.extend(r.positions);
                }
                got
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        for p in 0..3u32 {
            let offsets: Vec<u64> = all.iter().filter(|(q, _)| *q == p).map(|(_, o)| *o).collect();
            assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
            assert_eq!(s.head(p), offsets.len() as u64);
        }
    });
}

#[test]
fn refused_request_does_not_poison_its_group() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        let bad = store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 1), append(StreamId(999), 0, 2)]));
        let good = store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 3)]));
        let (bad, good) = tokio::join!(bad, good);
        assert!(bad.is_err());
        assert_eq!(good.unwrap().positions, vec![(0, 0)]);
        let recs = store.read(&s, 0, 0, 10, 10).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].values, vec![Value::Int(3)]);
    });
}

#[test]
fn drop_and_recreate_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 1)])).await.unwrap();
        assert!(store.create_stream(def("s", 1), false).await.is_err());
        assert!(store.create_stream(def("s", 1), true).await.unwrap().is_none());
        assert!(store.drop_stream("s", false).await.unwrap());
        assert!(s.is_dropped());
        assert!(!store.drop_stream("s", true).await.unwrap());
        assert!(store.drop_stream("s", false).await.is_err());
        assert!(store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 1)])).await.is_err());
        let s2 = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        assert_ne!(s2.def.id, s.def.id);
        assert_eq!(s2.head(0), 0);
        store.close();
    });
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.catalog().streams().count(), 1);
    assert_eq!(store.stream("s").unwrap().head(0), 0);
}

#[test]
fn time_index_finds_first_offset_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s: Arc<_> = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        let mut stamps = Vec::new();
        for i in 0..5 {
            let r =
                store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, i), append(s.def.id, 0, i)])).await.unwrap();
            stamps.push(r.timestamp_micros);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let recs = store.read(&s, 0, 0, 100, 100).unwrap();
        assert!(recs.windows(2).all(|w| w[0].timestamp_micros <= w[1].timestamp_micros));
        for (i, ts) in stamps.iter().enumerate() {
            assert_eq!(store.offset_for_timestamp(&s, 0, *ts).unwrap(), 2 * i as u64);
            assert_eq!(store.offset_for_timestamp(&s, 0, ts - 1).unwrap(), 2 * i as u64);
        }
        assert_eq!(store.offset_for_timestamp(&s, 0, i64::MIN).unwrap(), 0);
        assert_eq!(store.offset_for_timestamp(&s, 0, stamps[4] + 1).unwrap(), 10);
    });
}

#[test]
fn retention_deletes_old_records_but_keeps_offsets() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let mut d = def("s", 1);
        d.retention_micros = Some(50_000);
        let s = store.create_stream(d, false).await.unwrap().unwrap();
        let five = (0..5).map(|i| append(s.def.id, 0, i)).collect();
        store.commit(WriteSet::of_appends(five)).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(120));
        store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 5), append(s.def.id, 0, 6)])).await.unwrap();
        // Nothing is old enough yet among the last two; the first five are.
        assert_eq!(store.enforce_retention().await.unwrap(), 1);
        assert_eq!(s.low(0), 5);
        assert_eq!(s.head(0), 7);
        let recs = store.read(&s, 0, 0, 100, 100).unwrap();
        assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(store.offset_for_timestamp(&s, 0, i64::MIN).unwrap(), 5);
        // Once everything is old, the newest chunk stays as the anchor.
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert_eq!(store.enforce_retention().await.unwrap(), 0);
        assert_eq!(s.low(0), 5);
        store.close();
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.stream("s").unwrap();
        assert_eq!((s.low(0), s.head(0)), (5, 7));
        let r = store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 7)])).await.unwrap();
        assert_eq!(r.positions, vec![(0, 7)]);
    });
}

#[test]
fn retention_bytes_keeps_the_live_log_small_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let mut d = def("s", 1);
        d.retention_bytes = Some(1_000);
        let s = store.create_stream(d, false).await.unwrap().unwrap();
        // 20 commits of 10 rows: each chunk is a little over 10 × 26 bytes.
        for c in 0..20 {
            let rows = (0..10).map(|i| append(s.def.id, 0, c * 10 + i)).collect();
            store.commit(WriteSet::of_appends(rows)).await.unwrap();
        }
        let before = s.live_bytes(0);
        assert!(before > 4_000, "{before}");
        assert_eq!(store.enforce_retention().await.unwrap(), 1);
        assert!(s.live_bytes(0) <= 1_000, "{}", s.live_bytes(0));
        assert!(s.live_bytes(0) > 500, "keeps what fits: {}", s.live_bytes(0));
        let low = s.low(0);
        assert_eq!(low % 10, 0, "whole chunks go");
        let recs = store.read(&s, 0, 0, u64::MAX, 1000).unwrap();
        assert_eq!(recs.first().unwrap().offset, low);
        assert_eq!(recs.len() as u64, 200 - low);
        store.close();
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.stream("s").unwrap();
        assert!(s.live_bytes(0) <= 1_000 && s.live_bytes(0) > 500, "recounted at recovery: {}", s.live_bytes(0));
        assert_eq!(s.head(0), 200);
    });
}

#[test]
fn a_bulk_commit_is_split_into_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        let n = 3 * crate::log::commit::MAX_CHUNK_RECORDS as i64 + 5;
        let rows = (0..n).map(|i| append(s.def.id, 0, i)).collect();
        store.commit(WriteSet::of_appends(rows)).await.unwrap();
        let chunk = store.chunk_containing(&s, 0, 5000).unwrap().unwrap();
        assert_eq!(chunk.first, crate::log::commit::MAX_CHUNK_RECORDS as u64);
        assert_eq!(chunk.count, crate::log::commit::MAX_CHUNK_RECORDS as u64);
        let recs = store.read(&s, 0, 0, u64::MAX, usize::MAX).unwrap();
        assert_eq!(recs.len() as i64, n);
        assert!(recs.iter().enumerate().all(|(i, r)| r.offset == i as u64 && r.values[0] == Value::Int(i as i64)));
        // Reads starting inside a chunk, on its first record, on its last,
        // across chunk boundaries, and bounded by `to` and `limit`.
        let per = crate::log::commit::MAX_CHUNK_RECORDS as u64;
        for (from, to, limit) in [
            (1, u64::MAX, 3),
            (per - 1, u64::MAX, 2),
            (per, per + 5, usize::MAX),
            (per + 7, 3 * per + 2, usize::MAX),
            (3 * per + 4, u64::MAX, 10),
            (n as u64, u64::MAX, 10),
        ] {
            let got: Vec<u64> = store.read(&s, 0, from, to, limit).unwrap().iter().map(|r| r.offset).collect();
            let want: Vec<u64> = (from..to.min(n as u64)).take(limit).collect();
            assert_eq!(got, want, "read from {from} to {to} limit {limit}");
        }
    });
}

#[test]
fn sealing_and_hand_over_move_a_segment_atomically() {
    use crate::archive::{ArchivedFile, Handover, SealState};
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let mut d = def("s", 2);
        d.archive = Some(crate::catalog::ArchiveDef {
            location: None,
            segment_rows: 25,
            segment_bytes: u64::MAX,
            segment_age_micros: None,
        });
        let s = store.create_stream(d, false).await.unwrap().unwrap();
        for c in 0..6 {
            let rows = (0..10).map(|i| append(s.def.id, 0, c * 10 + i)).collect();
            store.commit(WriteSet::of_appends(rows)).await.unwrap();
        }
        let mut state = SealState::default();
        let now = crate::now_micros();
        // Chunks of 10: a full segment of 25 rows ends at a chunk boundary.
        let seg = store.sealed_segment(&s, 0, now, &mut state).unwrap().unwrap();
        assert_eq!((seg.first, seg.last, seg.rows), (0, 19, 20));
        assert_eq!(store.sealed_segment(&s, 1, now, &mut SealState::default()).unwrap(), None);
        let file = |first: u64, last: u64| ArchivedFile {
            partition: 0,
            first,
            last,
            path: crate::archive::file_path("s", 0, first, last),
            rows: last - first + 1,
            bytes: 1,
            min_timestamp: seg.min_timestamp,
            max_timestamp: seg.max_timestamp,
            live_bytes: seg.bytes,
            archived_at: now,
        };
        // A hand-over that does not start at the live low is refused.
        let wrong = store.hand_over(Handover { stream: s.def.id, file: file(10, 19) }).await;
        assert!(matches!(wrong, Err(crate::Error::Conflict(_))), "{wrong:?}");
        store.hand_over(Handover { stream: s.def.id, file: file(0, 19) }).await.unwrap();
        assert_eq!((s.low(0), s.live_low(0), s.head(0)), (0, 20, 60));
        // No reader installed: archived offsets fail clearly, live ones read.
        let err = store.read(&s, 0, 5, 30, 100).unwrap_err();
        assert!(matches!(err, crate::Error::ArchiveUnavailable(_)), "{err:?}");
        assert_eq!(store.read(&s, 0, 20, 30, 100).unwrap().len(), 10);
        // The time index still maps archived timestamps to their offsets.
        assert_eq!(store.offset_for_timestamp(&s, 0, i64::MIN).unwrap(), 0);
        // The next segment continues where the last ended.
        let next = store.sealed_segment(&s, 0, now, &mut state).unwrap().unwrap();
        assert_eq!((next.first, next.last), (20, 39));
        store.close();
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.stream("s").unwrap();
        assert_eq!((s.low(0), s.live_low(0), s.head(0)), (0, 20, 60));
        assert_eq!(s.archived(0).len(), 1);
        assert_eq!(s.archived_file(0, 7).unwrap().last, 19);
        assert!(s.archived_file(0, 20).is_none());
        store.drop_stream("s", false).await.unwrap();
        store.close();
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        assert!(crate::archive::load_manifest(store.db()).unwrap().is_empty(), "DROP STREAM deletes the manifest too");
    });
}

#[test]
fn row_reads_and_expectations_hold_across_groups_drops_and_reopen() {
    use crate::tables::{Expect, RowWrite};
    let rows = |w: RowWrite| WriteSet { rows: vec![w], ..Default::default() };
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.create_table(table_def(ColumnType::BigInt), false).await.unwrap().unwrap();
        let row = |v: i64| [Value::Int(1), Value::Int(v)];
        let put = |expect, v| RowWrite::put(&t, "insert", expect, &row(v)).unwrap();
        store.commit(rows(put(Expect::Absent, 0))).await.unwrap();
        let v0 = store.table_get(&t, &t.key_of(&row(0)).unwrap()).unwrap().unwrap().version;
        // A second insert of the key is refused; an update at the version
        // read goes through once, and only once.
        assert!(store.commit(rows(put(Expect::Absent, 1))).await.is_err());
        store.commit(rows(put(Expect::Version(v0), 1))).await.unwrap();
        assert!(store.commit(rows(put(Expect::Version(v0), 2))).await.is_err());
        let v1 = store.table_get(&t, &t.key_of(&row(1)).unwrap()).unwrap().unwrap().version;
        assert!(v1 > v0);
        let del = RowWrite::delete(&t, Expect::Version(v1), &row(1)).unwrap();
        store.commit(rows(del)).await.unwrap();
        assert_eq!(store.table_get(&t, &t.key_of(&row(1)).unwrap()).unwrap(), None);
        assert!(store.commit(rows(put(Expect::Version(v1), 3))).await.is_err());
        store.commit(rows(put(Expect::Absent, 4))).await.unwrap();
        // A table dropped and created again starts empty.
        assert!(store.drop_table("t", false).await.unwrap());
        let t2 = store.create_table(table_def(ColumnType::BigInt), false).await.unwrap().unwrap();
        store.commit(rows(RowWrite::put(&t2, "insert", Expect::Absent, &row(5)).unwrap())).await.unwrap();
        let got = store.table_get(&t2, &t2.key_of(&row(5)).unwrap()).unwrap().unwrap();
        assert_eq!(got.values, row(5).to_vec());
        store.close();
    });
    // After a restart the versions come from disk.
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.table("t").unwrap();
        let row = [Value::Int(1), Value::Int(6)];
        let current = store.table_get(&t, &t.key_of(&row).unwrap()).unwrap().unwrap();
        assert_eq!(current.values[1], Value::Int(5));
        let stale = RowWrite::put(&t, "update", Expect::Version(current.version + 1), &row).unwrap();
        assert!(store.commit(WriteSet { rows: vec![stale], ..Default::default() }).await.is_err());
        let fresh = RowWrite::put(&t, "update", Expect::Version(current.version), &row).unwrap();
        store.commit(WriteSet { rows: vec![fresh], ..Default::default() }).await.unwrap();
    });
}

#[test]
fn wal_files_are_recycled_while_row_tables_flush() {
    use crate::tables::{Expect, RowWrite};
    let dir = tempfile::tempdir().unwrap();
    let wal_files = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
            .count()
    };
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.create_table(table_def(ColumnType::Text), false).await.unwrap().unwrap();
        // 24 MB of rows: several flushes of the `tables` family's 4 MB
        // memtable, each of which switches WAL files. Each switch must leave
        // the previous file obsolete (its changelog records are flushed with
        // it), so it is recycled instead of a new file being created.
        let payload = "x".repeat(16 << 10);
        for batch in 0..30 {
            let rows = (0..50)
                .map(|i| {
                    let row = [Value::Int(batch * 50 + i), Value::Text(payload.clone())];
                    RowWrite::put(&t, "insert", Expect::Any, &row).unwrap()
                })
                .collect();
            store.commit(WriteSet { rows, ..Default::default() }).await.unwrap();
        }
        // The last flush may still be running in the background.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while wal_files() > 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(wal_files() <= 3, "{} WAL files: obsolete ones are not recycled", wal_files());
        store.close();
    });
}

#[test]
fn wal_files_keep_their_prepared_size_under_heavy_appends() {
    let dir = tempfile::tempdir().unwrap();
    let wal_sizes = || -> Vec<u64> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension() == Some("log".as_ref()))
            .map(|p| p.metadata().unwrap().len())
            .collect()
    };
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let s = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        let prepared = wal_sizes().into_iter().max().unwrap();
        // 128 MB of records: several WAL switches. Each file's life must end
        // (at the memtable budget) before it outgrows the recycled file;
        // otherwise writes append, and every sync also writes the inode.
        let big = "x".repeat(60 << 10);
        let record = |_| Append {
            stream: s.def.id,
            partition: 0,
            record: encode_row(&[ColumnType::Text], None, &[Value::Text(big.clone())]).unwrap(),
        };
        for _ in 0..128 {
            store.commit(WriteSet::of_appends((0..16).map(record).collect())).await.unwrap();
            let sizes = wal_sizes();
            assert!(sizes.iter().all(|&n| n <= prepared), "WAL files {sizes:?} outgrew {prepared} bytes");
        }
        assert!(wal_sizes().len() <= 3, "{:?}", wal_sizes());
        store.close();
    });
}

#[test]
fn sequences_resume_above_every_reserved_value_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut def = table_def(ColumnType::Text);
    def.columns[0].identity = Some(crate::catalog::Identity::ByDefault);
    let first = rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.create_table(def, false).await.unwrap().unwrap();
        let a = store.sequence_take(&t, 0, 3, i64::MAX).await.unwrap();
        let b = store.sequence_take(&t, 0, 40, i64::MAX).await.unwrap();
        assert_eq!(a, vec![1, 2, 3]);
        assert_eq!(b, (4..44).collect::<Vec<_>>());
        // The limit refuses the whole request and takes nothing.
        let e = store.sequence_take(&t, 0, 10, 50).await.unwrap_err();
        assert!(matches!(e, crate::Error::SequenceLimit(_)), "{e:?}");
        assert_eq!(store.sequence_take(&t, 0, 7, 50).await.unwrap(), (44..51).collect::<Vec<_>>());
        store.close();
        51
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.table("t").unwrap();
        let next = store.sequence_take(&t, 0, 1, i64::MAX).await.unwrap()[0];
        assert!(next >= first, "value {next} may have been given out before the reopen");
        assert!(next < first + crate::tables::sequence::BLOCK + 1, "at most one block is skipped: {next}");
    });
}

/// `ALTER … ADD COLUMN` changes definitions only: rows and records written
/// before it read the column's missing value, a handle taken before it still
/// appends (its records lack the column), its row writes are refused (they
/// would drop the new column's values), and all of it survives a reopen.
#[test]
fn added_columns_read_their_missing_value_across_handles_and_reopen() {
    use crate::catalog::AlterColumns;
    use crate::tables::{Expect, RowWrite};
    let rows = |w: RowWrite| WriteSet { rows: vec![w], ..Default::default() };
    let column = |name: &str, missing: Option<Value>, nullable: bool| ColumnDef {
        name: name.into(),
        ty: ColumnType::Text,
        nullable,
        default: None,
        identity: None,
        missing,
    };
    let added = |name: &str, missing: Option<Value>, nullable: bool| AlterColumns::Add {
        column: column(name, missing, nullable),
        if_not_exists: false,
    };
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.create_table(table_def(ColumnType::BigInt), false).await.unwrap().unwrap();
        store
            .commit(rows(RowWrite::put(&t, "insert", Expect::Absent, &[Value::Int(1), Value::Int(7)]).unwrap()))
            .await
            .unwrap();
        let s = store.create_stream(def("s", 1), false).await.unwrap().unwrap();
        store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 1)])).await.unwrap();

        // NOT NULL without a value for the existing row: refused, nothing changes.
        let refused = store.alter("t", vec![added("a", Some(Value::Text("x".into())), true), added("b", None, false)]);
        assert!(matches!(refused.await, Err(Error::NullsInColumn { .. })));
        assert_eq!(store.table("t").unwrap().def.columns.len(), 2);

        assert!(store.alter("t", vec![added("a", Some(Value::Text("x".into())), true)]).await.unwrap());
        let t2 = store.table("t").unwrap();
        assert_eq!(t2.def.original_columns, Some(2));
        let key = t2.key_of(&[Value::Int(1), Value::Null, Value::Null]).unwrap();
        let row = store.table_get(&t2, &key).unwrap().unwrap();
        assert_eq!(row.values, vec![Value::Int(1), Value::Int(7), Value::Text("x".into())]);
        let log = store.read(&t2.changelog, 0, 0, 10, 10).unwrap();
        assert_eq!(log[0].values.len(), 4, "op and the three columns");
        // A write made under the old definition is refused.
        let stale = RowWrite::put(&t, "update", Expect::Any, &[Value::Int(1), Value::Int(8)]).unwrap();
        assert!(matches!(store.commit(rows(stale)).await, Err(Error::Conflict(_))));
        let fresh = RowWrite::put(&t2, "update", Expect::Any, &[Value::Int(1), Value::Int(8), Value::Text("y".into())]);
        store.commit(rows(fresh.unwrap())).await.unwrap();

        assert!(store.alter("s", vec![added("note", None, true)]).await.unwrap());
        let s2 = store.stream("s").unwrap();
        // The old handle appends to the same partitions; both read everything.
        store.commit(WriteSet::of_appends(vec![append(s.def.id, 0, 2)])).await.unwrap();
        assert_eq!((s.head(0), s2.head(0)), (2, 2));
        let recs = store.read(&s2, 0, 0, 10, 10).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.values.clone()).collect::<Vec<_>>(),
            vec![vec![Value::Int(1), Value::Null], vec![Value::Int(2), Value::Null]]
        );
        assert_eq!(store.read(&s, 0, 0, 10, 10).unwrap()[1].values, vec![Value::Int(2)]);
        // Renames and defaults; errors name the column.
        let rename = AlterColumns::Rename { from: "note".into(), to: "memo".into() };
        assert!(store.alter("s", vec![rename.clone()]).await.unwrap());
        assert!(matches!(store.alter("s", vec![rename]).await, Err(Error::NotFound { kind: "column", .. })));
        assert!(matches!(store.alter("t", vec![added("a", None, true)]).await, Err(Error::AlreadyExists { .. })));
        let again = AlterColumns::Add { column: column("a", None, true), if_not_exists: true };
        assert!(!store.alter("t", vec![again]).await.unwrap());
        store.close();
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.table("t").unwrap();
        let key = t.key_of(&[Value::Int(1), Value::Null, Value::Null]).unwrap();
        let row = store.table_get(&t, &key).unwrap().unwrap();
        assert_eq!(row.values, vec![Value::Int(1), Value::Int(8), Value::Text("y".into())]);
        let s = store.stream("s").unwrap();
        assert_eq!(s.def.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["v", "memo"]);
        assert_eq!(store.read(&s, 0, 0, 10, 10).unwrap().len(), 2);
    });
}

/// Views share the namespace of streams and tables, only a view is
/// replaced, and definitions survive a reopen.
#[test]
fn views_are_durable_and_share_the_namespace() {
    use crate::catalog::ViewDef;
    let view = |name: &str, query: &str| ViewDef {
        name: name.into(),
        query: query.into(),
        columns: Vec::new(),
        time_zone: None,
        created_at_micros: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        store.create_stream(def("s", 1), false).await.unwrap();
        store.create_view(view("v", "SELECT 1"), false).await.unwrap();
        assert!(matches!(store.create_view(view("v", "SELECT 2"), false).await, Err(Error::AlreadyExists { .. })));
        assert!(matches!(store.create_view(view("s", "SELECT 2"), true).await, Err(Error::AlreadyExists { .. })));
        assert!(matches!(store.create_stream(def("v", 1), false).await, Err(Error::AlreadyExists { .. })));
        store.create_view(view("v", "SELECT 2"), true).await.unwrap();
        store.create_view(view("w", "SELECT 3"), false).await.unwrap();
        assert!(store.drop_view("w", false).await.unwrap());
        assert!(!store.drop_view("w", true).await.unwrap());
        assert!(matches!(store.drop_view("w", false).await, Err(Error::NotFound { .. })));
        store.close();
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.view("v").unwrap().query, "SELECT 2");
        assert!(store.view("w").is_none());
    });
}

/// A renamed table keeps its rows and changelog (kept by id), its old
/// names are free, and the rename survives a reopen.
#[test]
fn renames_keep_rows_and_changelog_across_reopen() {
    use crate::tables::{Expect, RowWrite};
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.create_table(table_def(ColumnType::BigInt), false).await.unwrap().unwrap();
        let row = [Value::Int(1), Value::Int(7)];
        let w = RowWrite::put(&t, "insert", Expect::Absent, &row).unwrap();
        store.commit(WriteSet { rows: vec![w], ..Default::default() }).await.unwrap();
        store.create_stream(def("s", 1), false).await.unwrap();
        assert!(matches!(store.rename("t", "s").await, Err(Error::AlreadyExists { .. })));
        store.rename("t", "u").await.unwrap();
        assert!(store.table("t").is_none() && store.stream("t$changes").is_none());
        assert!(store.stream("u$changes").is_some());
        assert!(matches!(store.rename("t", "v").await, Err(Error::NotFound { .. })));
        store.close();
    });
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let u = store.table("u").unwrap();
        let got = store.table_get(&u, &u.key_of(&[Value::Int(1), Value::Null]).unwrap()).unwrap().unwrap();
        assert_eq!(got.values, vec![Value::Int(1), Value::Int(7)]);
        assert_eq!(store.read(&u.changelog, 0, 0, 10, 10).unwrap().len(), 1);
        store.create_table(table_def(ColumnType::BigInt), false).await.unwrap().unwrap();
    });
}

/// A relation's size counts its own data, in memtables and flushed
/// (compressed, as on disk), and nothing of its neighbours'; the
/// database's counts every file.
#[test]
fn relation_sizes_count_their_own_data() {
    use crate::store::{CF_LOG, CF_TABLES, CF_TIME_INDEX};
    use crate::tables::{Expect, RowWrite};
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let t = store.create_table(table_def(ColumnType::Text), false).await.unwrap().unwrap();
        let s = store.create_stream(def("s", 2), false).await.unwrap().unwrap();
        let mut other = table_def(ColumnType::Text);
        other.name = "empty".into();
        store.create_table(other, false).await.unwrap().unwrap();
        assert_eq!(store.relation_size("nothing").unwrap(), None);
        // 2,000 rows of 1,000 pseudo-random hex digits: ≈2 MB that LZ4
        // cannot shrink much below half.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for batch in 0..20 {
            let rows = (0..100)
                .map(|i| {
                    let text: String = (0..1000)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            char::from_digit((x % 16) as u32, 16).unwrap()
                        })
                        .collect();
                    RowWrite::put(&t, "insert", Expect::Any, &[Value::Int(batch * 100 + i), Value::Text(text)]).unwrap()
                })
                .collect();
            store.commit(WriteSet { rows, ..Default::default() }).await.unwrap();
        }
        let appends = (0..10_000).map(|v| append(s.def.id, (v % 2) as u32, v)).collect();
        store.commit(WriteSet::of_appends(appends)).await.unwrap();
        let size = |name: &str| store.relation_size(name).unwrap().unwrap();
        // In the memtables: the estimate is of the raw bytes.
        assert!((1_500_000..4_000_000).contains(&size("t")), "table t in memory: {} bytes", size("t"));
        assert!(size("s") > 0, "stream s in memory");
        for cf in [CF_TABLES, CF_LOG, CF_TIME_INDEX] {
            store.db().flush_cf(store.cf(cf)).unwrap();
        }
        let table = size("t");
        assert!((700_000..2_500_000).contains(&table), "table t: {table} bytes");
        let stream = size("s");
        assert!((1..1_000_000).contains(&stream), "stream s: {stream} bytes");
        assert_eq!(size("empty"), 0);
        // The table's changelog holds every row too.
        assert!(size(&crate::changelog_name("t")) > 700_000);
        assert!(store.database_size() > table + stream);
        store.close();
    });
}
