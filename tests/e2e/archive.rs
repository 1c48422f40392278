//! The Parquet archive: sealed segments move to files, SQL reads archive
//! and live log as one table (with pruning), consumer groups replay from
//! archived offsets, retention by size, crash safety, and bad files.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use brikk_tests::{sqlstate, Server};
use tokio_postgres::Client;

/// A server whose archiver looks for sealed segments every 50 ms.
pub fn archiving(dir: &Path) -> Server {
    Server::start_with(dir, &["--archive-interval-ms", "50"]).expect("start brikk")
}

/// Inserts `batches` INSERTs of `per` rows (n = 0, 1, 2, ...) into `ev (n, tag)`.
pub async fn fill(c: &Client, stream: &str, from: i64, batches: i64, per: i64) {
    for b in 0..batches {
        let lo = from + b * per;
        let sql =
            format!("INSERT INTO {stream} SELECT v, 'tag-' || v FROM generate_series({lo}, {}) AS t(v)", lo + per - 1);
        c.batch_execute(&sql).await.unwrap();
    }
}

/// Waits until `sql` (a count) returns `want`.
pub async fn wait_for(c: &Client, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: i64 = c.query_one(sql, &[]).await.unwrap().get(0);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: still {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn explain(c: &Client, sql: &str) -> String {
    let rows = c.query(&format!("EXPLAIN {sql}"), &[]).await.unwrap();
    rows.iter().map(|r| r.get::<_, String>(1)).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_segments_move_to_parquet_and_select_reads_both() {
    let dir = tempfile::tempdir().unwrap();
    let server = archiving(dir.path());
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM ev (n BIGINT, tag TEXT) WITH (partitions = 2, archive = true, segment_rows = 100)")
        .await
        .unwrap();
    // 20 INSERTs of 50 rows: chunks of 25 rows per partition, so each
    // partition's 500 rows make five full segments of 100.
    fill(&c, "ev", 0, 20, 50).await;
    wait_for(&c, "SELECT count(*) FROM brikk_archive WHERE stream = 'ev'", 10).await;
    for p in 0..2 {
        for (a, b) in [(0, 99), (100, 199), (200, 299), (300, 399), (400, 499)] {
            let f = dir.path().join(format!("archive/ev/{p}/{a}-{b}.parquet"));
            assert!(f.is_file(), "{} exists", f.display());
        }
    }
    let live: Vec<i64> = c
        .query("SELECT live_start_offset FROM brikk_partitions WHERE stream = 'ev' ORDER BY partition", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(live, vec![500, 500], "the archived range left RocksDB");
    // More rows stay live; a SELECT sees the archive and the live log.
    fill(&c, "ev", 1000, 2, 50).await;
    let r = c.query_one("SELECT count(*), sum(n), count(DISTINCT n) FROM ev", &[]).await.unwrap();
    let sum: i64 = (0..1000).sum::<i64>() + (1000..1100).sum::<i64>();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(2)), (1100, 1100));
    assert_eq!(r.get::<_, sqlx_num::Dec>(1).0, sum);
    // Offsets are dense per partition and unchanged, in order.
    for p in 0..2 {
        let rows = c
            .query(&format!("SELECT _offset, n, tag FROM ev WHERE _partition = {p} ORDER BY _offset"), &[])
            .await
            .unwrap();
        let offsets: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(offsets, (0..550).collect::<Vec<i64>>(), "partition {p} in offset order");
        assert!(rows.iter().all(|r| r.get::<_, String>(2) == format!("tag-{}", r.get::<_, i64>(1))));
    }
    // Filters on _offset prune files (manifest) and row groups (statistics:
    // four row groups of 25 rows per file).
    let q = "SELECT n FROM ev WHERE _partition = 0 AND _offset >= 150 AND _offset < 260";
    let plan = explain(&c, q).await;
    assert!(plan.contains("archive=[p0:100-199.parquet rg 2/4, p0:200-299.parquet rg 3/4], pruned_files=3"), "{plan}");
    assert_eq!(c.query(q, &[]).await.unwrap().len(), 110);
    // A scan of the live tail reads no file at all.
    let plan = explain(&c, "SELECT n FROM ev WHERE _offset >= 500").await;
    assert!(plan.contains("archive=[], pruned_files=10"), "{plan}");
    assert_eq!(c.query("SELECT n FROM ev WHERE _offset >= 500", &[]).await.unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_filters_prune_archived_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = archiving(dir.path());
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM ev (n BIGINT, tag TEXT) WITH (archive = true, segment_rows = 100)").await.unwrap();
    fill(&c, "ev", 0, 4, 50).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cut = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    fill(&c, "ev", 200, 4, 50).await;
    wait_for(&c, "SELECT count(*) FROM brikk_archive", 4).await;
    let q = format!("SELECT n FROM ev WHERE _timestamp >= '{}'", cut.to_rfc3339());
    let plan = explain(&c, &q).await;
    assert!(plan.contains("archive=[p0:200-299.parquet rg 4/4, p0:300-399.parquet rg 4/4], pruned_files=2"), "{plan}");
    let ns: Vec<i64> = c.query(&format!("{q} ORDER BY n"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ns, (200..400).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_replay_from_archived_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let server = archiving(dir.path());
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM ev (n BIGINT, tag TEXT) WITH (archive = true, segment_rows = 100)").await.unwrap();
    fill(&c, "ev", 0, 5, 50).await;
    wait_for(&c, "SELECT count(*) FROM brikk_archive", 2).await;
    fill(&c, "ev", 250, 1, 50).await; // 250..299 live (with 200..249)
                                      // One stream partition is one scan partition: archive, then live log,
                                      // in offset order.
    let offs: Vec<i64> = c.query("SELECT _offset FROM ev", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(offs, (0..300).collect::<Vec<i64>>());
    c.batch_execute("SUBSCRIBE ev GROUP g").await.unwrap();
    let mut seen = Vec::new();
    loop {
        let rows = c.query("FETCH 70 FROM ev GROUP g", &[]).await.unwrap();
        if rows.is_empty() {
            break;
        }
        seen.extend(rows.iter().map(|r| (r.get::<_, i64>("_offset"), r.get::<_, i64>("n"))));
        c.batch_execute("COMMIT OFFSETS FOR ev GROUP g").await.unwrap();
    }
    assert_eq!(seen, (0..300).map(|i| (i, i)).collect::<Vec<_>>(), "archived then live, in order, once");
    // Replay from an archived offset, and from a timestamp.
    c.batch_execute("ALTER GROUP g ON ev RESET TO OFFSET 150").await.unwrap();
    c.batch_execute("SUBSCRIBE ev GROUP g").await.unwrap();
    let rows = c.query("FETCH 3 FROM ev GROUP g", &[]).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, i64>("n")).collect::<Vec<_>>(), vec![150, 151, 152]);
    c.batch_execute("ALTER GROUP g ON ev RESET TO EARLIEST").await.unwrap();
    c.batch_execute("SUBSCRIBE ev GROUP g").await.unwrap();
    let rows = c.query("FETCH 1 FROM ev GROUP g", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>("_offset"), 0, "EARLIEST is the archive's first offset");
}

/// A continuous query created over a stream whose oldest records are
/// already Parquet files reads them from the archive, then the live log:
/// every record once, in offset order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_query_starts_from_archived_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let server = archiving(dir.path());
    let c = server.client().await.unwrap();
    c.batch_execute(
        "CREATE STREAM ev (n BIGINT, tag TEXT) WITH (archive = true, segment_rows = 100);
         CREATE STREAM doubled (n BIGINT, src BIGINT)",
    )
    .await
    .unwrap();
    fill(&c, "ev", 0, 5, 50).await;
    wait_for(&c, "SELECT count(*) FROM brikk_archive", 2).await;
    c.batch_execute("CREATE CONTINUOUS QUERY twice AS INSERT INTO doubled SELECT 2 * n, _offset FROM ev")
        .await
        .unwrap();
    fill(&c, "ev", 250, 1, 50).await;
    wait_for(&c, "SELECT count(*) FROM doubled", 300).await;
    let rows = c.query("SELECT n, src FROM doubled ORDER BY _offset", &[]).await.unwrap();
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, (0..300).map(|i| (2 * i, i)).collect::<Vec<_>>(), "archived then live, in order, once");
    let status: String =
        c.query_one("SELECT status FROM brikk_queries WHERE name = 'twice'", &[]).await.unwrap().get(0);
    assert_eq!(status, "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_bytes_drops_or_archives_the_oldest_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = archiving(dir.path());
    let c = server.client().await.unwrap();
    // Without archive: the oldest chunks are deleted until the live log
    // fits in 4 kB (each 50-row chunk is about 1.4 kB).
    c.batch_execute("CREATE STREAM small (n BIGINT, tag TEXT) WITH (retention = '4 kB')").await.unwrap();
    fill(&c, "small", 0, 20, 50).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .query_one("SELECT start_offset, live_bytes FROM brikk_partitions WHERE stream = 'small'", &[])
            .await
            .unwrap();
        let (start, bytes): (i64, i64) = (r.get(0), r.get(1));
        if start > 0 {
            assert!(bytes <= 4000, "{bytes} bytes live");
            assert_eq!(start % 50, 0, "whole chunks go");
            let ns: Vec<i64> =
                c.query("SELECT n FROM small ORDER BY n", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
            assert_eq!(ns, (start..1000).collect::<Vec<i64>>(), "the newest records stay, offsets unchanged");
            assert!(ns.len() >= 100, "what fits is kept: {}", ns.len());
            break;
        }
        assert!(Instant::now() < deadline, "retention by size never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // With archive: the same expiry moves the records to Parquet instead.
    c.batch_execute(
        "CREATE STREAM kept (n BIGINT, tag TEXT) WITH (retention_bytes = 4000, archive = true, segment_rows = 1000000)",
    )
    .await
    .unwrap();
    fill(&c, "kept", 0, 20, 50).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let bytes: i64 =
            c.query_one("SELECT live_bytes FROM brikk_partitions WHERE stream = 'kept'", &[]).await.unwrap().get(0);
        if bytes <= 4000 {
            break;
        }
        assert!(Instant::now() < deadline, "kept still has {bytes} live bytes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c.query_one("SELECT count(*), min(n), max(n) FROM kept", &[]).await.unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)), (1000, 0, 999), "nothing lost");
    let files: i64 = c.query_one("SELECT count(*) FROM brikk_archive WHERE stream = 'kept'", &[]).await.unwrap().get(0);
    assert!(files >= 1);
}

/// Files on disk under the stream's archive directory.
fn files_on_disk(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(parts) = std::fs::read_dir(root) else { return out };
    for p in parts.flatten() {
        for f in std::fs::read_dir(p.path()).unwrap().flatten() {
            out.insert(format!("{}/{}", p.file_name().to_string_lossy(), f.file_name().to_string_lossy()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_archiving_leaves_every_offset_in_one_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = archiving(dir.path());
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM w (n BIGINT, pad TEXT) WITH (partitions = 2, archive = true, segment_rows = 200)")
        .await
        .unwrap();
    // A writer appends while the archiver keeps writing files; kill -9 in
    // the middle of it.
    let conn = server.conn_str();
    let writer = tokio::spawn(async move {
        let c = brikk_tests::connect(&conn).await.unwrap();
        let mut acked = 0i64;
        loop {
            let sql = format!(
                "INSERT INTO w SELECT v, repeat('x', 200) FROM generate_series({acked}, {}) AS t(v)",
                acked + 99
            );
            if c.batch_execute(&sql).await.is_err() {
                return acked;
            }
            acked += 100;
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    let acked = writer.await.unwrap();
    assert!(acked >= 1000, "the writer made progress: {acked}");
    // Leftovers of a crash mid-write: a temporary file and a renamed file
    // that was never handed over.
    let root = dir.path().join("archive/w");
    std::fs::create_dir_all(root.join("0")).unwrap();
    std::fs::write(root.join("0/.999000-999199.parquet.tmp"), b"half").unwrap();
    std::fs::write(root.join("0/999000-999199.parquet"), b"not handed over").unwrap();

    let server = archiving(dir.path());
    let c = server.client().await.unwrap();
    // Archiving resumes: everything but the open segments gets archived.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .query_one("SELECT sum(end_offset - live_start_offset) FROM brikk_partitions WHERE stream = 'w'", &[])
            .await
            .unwrap();
        if r.get::<_, sqlx_num::Dec>(0).0 < 400 {
            break;
        }
        assert!(Instant::now() < deadline, "archiving did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every acknowledged row is there exactly once, offsets dense.
    let rows = c.query("SELECT _partition, _offset, n FROM w ORDER BY _partition, _offset", &[]).await.unwrap();
    let ns: BTreeSet<i64> = rows.iter().map(|r| r.get(2)).collect();
    assert_eq!(ns.len(), rows.len(), "no row twice");
    assert!((0..acked).all(|n| ns.contains(&n)), "every acknowledged row survives");
    for p in 0..2i32 {
        let offs: Vec<i64> = rows.iter().filter(|r| r.get::<_, i32>(0) == p).map(|r| r.get(1)).collect();
        assert_eq!(offs, (0..offs.len() as i64).collect::<Vec<_>>(), "partition {p} is dense");
    }
    // The files on disk are exactly the manifest's: no temporary or
    // orphaned file, and each archived offset is in one file only.
    let manifest: BTreeSet<String> = c
        .query("SELECT path FROM brikk_archive WHERE stream = 'w'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0).trim_start_matches("w/").to_string())
        .collect();
    assert_eq!(files_on_disk(&root), manifest);
    let overlap = c
        .query_one(
            "SELECT count(*) FROM brikk_archive a JOIN brikk_partitions p ON a.stream = p.stream AND a.partition = p.partition \
             WHERE a.stream = 'w' AND a.last_offset >= p.live_start_offset",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(overlap.get::<_, i64>(0), 0, "no archived offset is also live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = archiving(dir.path());
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM ev (n BIGINT, tag TEXT) WITH (partitions = 2, archive = true, segment_rows = 100)")
        .await
        .unwrap();
    fill(&c, "ev", 0, 8, 50).await;
    wait_for(&c, "SELECT count(*) FROM brikk_archive", 4).await;
    server.terminate().unwrap();
    let corrupt = dir.path().join("archive/ev/0/100-199.parquet");
    let bytes = std::fs::read(&corrupt).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.path().join("archive/ev/1/0-99.parquet");
    std::fs::remove_file(&missing).unwrap();

    let server = archiving(dir.path());
    let c = server.client().await.unwrap();
    let e = c.query("SELECT count(*) FROM ev WHERE _partition = 0", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("XX001"), "{e:?}");
    let msg = e.as_db_error().unwrap().message().to_string();
    assert!(msg.contains(&corrupt.display().to_string()) && msg.contains("corrupt"), "{msg}");
    let e = c.query("SELECT count(*) FROM ev WHERE _partition = 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("58P01"), "{e:?}");
    assert!(e.as_db_error().unwrap().message().contains(&missing.display().to_string()), "{e:?}");
    // Reads that do not touch the bad files are fine.
    let n: i64 =
        c.query_one("SELECT count(*) FROM ev WHERE _partition = 0 AND _offset < 100", &[]).await.unwrap().get(0);
    assert_eq!(n, 100);
    // A consumer group reaching the bad file fails, rather than skip it.
    c.batch_execute("SUBSCRIBE ev GROUP g").await.unwrap();
    let mut err = None;
    for _ in 0..10 {
        match c.query("FETCH 60 FROM ev GROUP g", &[]).await {
            Ok(rows) if rows.is_empty() => break,
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("FETCH reaches a bad file");
    assert!(matches!(sqlstate(&e).as_deref(), Some("XX001") | Some("58P01")), "{e:?}");
}

/// `sum()` of bigints comes back as numeric-or-bigint depending on the
/// engine; read it either way.
mod sqlx_num {
    use tokio_postgres::types::{FromSql, Type};

    pub struct Dec(pub i64);

    impl<'a> FromSql<'a> for Dec {
        fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Dec, Box<dyn std::error::Error + Sync + Send>> {
            if *ty == Type::INT8 {
                return Ok(Dec(i64::from_sql(ty, raw)?));
            }
            if *ty == Type::INT4 {
                return Ok(Dec(i32::from_sql(ty, raw)? as i64));
            }
            Err(format!("unexpected type {ty}").into())
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::INT8 || *ty == Type::INT4
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_at_a_file_url_lives_outside_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let server = archiving(dir.path());
    let c = server.client().await.unwrap();
    let url = format!("file://{}", lake.path().display());
    c.batch_execute(&format!("CREATE STREAM ev (n BIGINT, tag TEXT) WITH (archive = '{url}', segment_rows = 100)"))
        .await
        .unwrap();
    fill(&c, "ev", 0, 4, 50).await;
    wait_for(&c, "SELECT count(*) FROM brikk_archive", 2).await;
    assert!(lake.path().join("ev/0/0-99.parquet").is_file());
    assert!(!dir.path().join("archive/ev").exists());
    let loc: String = c.query_one("SELECT DISTINCT location FROM brikk_archive", &[]).await.unwrap().get(0);
    assert_eq!(loc, url);
    let n: i64 = c.query_one("SELECT count(*) FROM ev", &[]).await.unwrap().get(0);
    assert_eq!(n, 200);
}
