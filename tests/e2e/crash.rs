//! Crash safety: SIGKILL the server while many connections append, restart,
//! and check every acknowledged row is there with dense offsets.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brikk_tests::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM w (writer INTEGER, seq INTEGER, pad TEXT) WITH (partitions = 4, key = 'writer')")
        .await
        .unwrap();
    // Acknowledged (writer, seq) pairs, and the (partition, offset) each was
    // read back at is checked after restart.
    let acked: Arc<Mutex<HashSet<(i32, i32)>>> = Arc::default();
    let mut tasks = Vec::new();
    for writer in 0..8i32 {
        let (conn, acked) = (server.conn_str(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(c) = brikk_tests::connect(&conn).await else { return };
            let Ok(single) = c.prepare("INSERT INTO w VALUES ($1, $2, $3)").await else { return };
            let pad = "x".repeat(100);
            for seq in 0.. {
                let ok = if seq % 5 == 4 {
                    // Some transactions of several rows: all or nothing.
                    let sql = format!(
                        "BEGIN; INSERT INTO w VALUES ({writer}, {seq}, 'tx'); INSERT INTO w VALUES ({writer}, {}, 'tx'); COMMIT",
                        seq + 1_000_000
                    );
                    c.batch_execute(&sql).await.is_ok()
                } else {
                    c.execute(&single, &[&writer, &seq, &pad]).await.is_ok()
                };
                if !ok {
                    return;
                }
                let mut a = acked.lock().unwrap();
                a.insert((writer, seq));
                if seq % 5 == 4 {
                    a.insert((writer, seq + 1_000_000));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "the writers made progress before the kill: {}", acked.len());

    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let rows = c.query("SELECT writer, seq, _partition, _offset FROM w", &[]).await.unwrap();
    let present: HashSet<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let lost: Vec<_> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "{} acknowledged rows lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    // Transactions are all or nothing.
    for (w, s) in &present {
        if *s >= 1_000_000 {
            assert!(present.contains(&(*w, s - 1_000_000)), "half a transaction survived");
        } else if s % 5 == 4 {
            assert!(present.contains(&(*w, s + 1_000_000)), "half a transaction survived");
        }
    }
    // Offsets are dense per partition, and each writer's rows are in order.
    let mut by_partition: HashMap<i32, Vec<(i64, i32, i32)>> = HashMap::new();
    for r in &rows {
        by_partition.entry(r.get(2)).or_default().push((r.get(3), r.get(0), r.get(1)));
    }
    for (p, mut recs) in by_partition {
        recs.sort();
        for (i, (off, _, _)) in recs.iter().enumerate() {
            assert_eq!(*off, i as i64, "partition {p} has a gap");
        }
        let mut last: HashMap<i32, i32> = HashMap::new();
        for (_, w, s) in recs.iter().filter(|(_, _, s)| *s < 1_000_000) {
            let prev = last.insert(*w, *s);
            assert!(prev.is_none_or(|prev| prev < *s), "writer {w} out of order in partition {p}");
        }
    }
    // The restarted server continues the offsets.
    c.batch_execute("INSERT INTO w VALUES (0, -1, 'after')").await.unwrap();
    let r = c.query_one("SELECT _offset FROM w WHERE seq = -1", &[]).await.unwrap();
    let p = c.query_one("SELECT _partition FROM w WHERE seq = -1", &[]).await.unwrap().get::<_, i32>(0);
    let n = rows.iter().filter(|r| r.get::<_, i32>(2) == p).count() as i64;
    assert_eq!(r.get::<_, i64>(0), n);
}
