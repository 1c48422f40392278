//! Consumer groups and work queues with several real connections:
//! rebalancing, FETCH WAIT wake-ups, fenced commits, exactly-once
//! consume-transform-produce while workers join, leave and are killed, a
//! server SIGKILL mid-commit, and work-queue leases across a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brikk_tests::{connect, connect_killable, sqlstate, Server};
use tokio_postgres::Client;

use super::fresh;

/// member -> owned partitions, from brikk_members.
async fn members(c: &Client, group: &str) -> BTreeMap<String, String> {
    c.query("SELECT member, partitions FROM brikk_members WHERE group_name = $1", &[&group])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Polls `members` until `want` holds, for up to `within`.
async fn await_members(c: &Client, group: &str, within: Duration, want: impl Fn(&BTreeMap<String, String>) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let m = members(c, group).await;
        if want(&m) {
            return;
        }
        assert!(Instant::now() < deadline, "group {group} never reached the expected membership: {m:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn owned(m: &BTreeMap<String, String>, member: &str) -> Vec<u32> {
    m.get(member)
        .map(|p| p.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_rebalance_on_join_leave_and_timeout() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    admin.batch_execute("CREATE STREAM tasks (id TEXT) WITH (partitions = 8, key = 'id')").await.unwrap();
    let a = server.client().await.unwrap();
    a.batch_execute("SUBSCRIBE tasks GROUP g MEMBER 'a'").await.unwrap();
    assert_eq!(owned(&members(&admin, "g").await, "a"), (0..8).collect::<Vec<_>>());

    // A second member takes half; the first keeps the rest (sticky).
    let (b, b_conn) = connect_killable(&server.conn_str()).await.unwrap();
    b.batch_execute("SUBSCRIBE tasks GROUP g MEMBER 'b'").await.unwrap();
    let m = members(&admin, "g").await;
    assert_eq!(owned(&m, "a"), vec![0, 1, 2, 3]);
    assert_eq!(owned(&m, "b"), vec![4, 5, 6, 7]);

    // b is killed (its socket just closes): a owns everything again at once.
    b_conn.abort();
    drop(b);
    await_members(&admin, "g", Duration::from_secs(5), |m| owned(m, "a").len() == 8 && m.len() == 1).await;

    // b comes back under its name and gets its partitions back.
    let b = server.client().await.unwrap();
    b.batch_execute("SUBSCRIBE tasks GROUP g MEMBER 'b'").await.unwrap();
    assert_eq!(owned(&members(&admin, "g").await, "b"), vec![4, 5, 6, 7]);

    // A third member moves only what must move: 8 -> 3/3/2, two partitions.
    let c = server.client().await.unwrap();
    c.batch_execute("SUBSCRIBE tasks GROUP g MEMBER 'c'").await.unwrap();
    let m = members(&admin, "g").await;
    let moved = owned(&m, "c");
    assert_eq!(moved.len(), 2, "{m:?}");
    assert_eq!(owned(&m, "a").len() + owned(&m, "b").len(), 6);
    assert!(owned(&m, "a").iter().all(|p| *p < 4) && owned(&m, "b").iter().all(|p| *p >= 4), "{m:?}");

    // UNSUBSCRIBE leaves at once.
    c.batch_execute("UNSUBSCRIBE tasks GROUP g").await.unwrap();
    await_members(&admin, "g", Duration::from_secs(1), |m| m.len() == 2).await;

    // A silent member is removed after its session timeout; one that keeps
    // fetching stays.
    let slow = server.client().await.unwrap();
    slow.batch_execute("SUBSCRIBE tasks GROUP t MEMBER 'slow' WITH (session_timeout = '500ms')").await.unwrap();
    let fast = server.client().await.unwrap();
    fast.batch_execute("SUBSCRIBE tasks GROUP t MEMBER 'fast'").await.unwrap();
    assert_eq!(members(&admin, "t").await.len(), 2);
    let started = Instant::now();
    while members(&admin, "t").await.len() == 2 {
        fast.batch_execute("FETCH 10 FROM tasks GROUP t WAIT '50ms'").await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "silent member never expired");
    }
    assert!(started.elapsed() >= Duration::from_millis(400), "expired before its timeout");
    assert_eq!(owned(&members(&admin, "t").await, "fast").len(), 8);
    // The silent one is taken back in when it talks again.
    slow.batch_execute("FETCH 1 FROM tasks GROUP t").await.unwrap();
    assert_eq!(members(&admin, "t").await.len(), 2);
    // A long FETCH WAIT is not silence.
    let waited = Instant::now();
    slow.batch_execute("FETCH 1 FROM tasks GROUP t WAIT '1200ms'").await.unwrap();
    assert!(waited.elapsed() >= Duration::from_millis(1100));
    // (fast, silent meanwhile, has timed out; slow, waiting, has not.)
    assert!(members(&admin, "t").await.contains_key("slow"), "a waiting member is alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_wait_wakes_on_append_and_can_be_cancelled() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    admin.batch_execute("CREATE STREAM events (n INTEGER)").await.unwrap();
    let consumer = server.client().await.unwrap();
    consumer.batch_execute("SUBSCRIBE events GROUP g").await.unwrap();
    let fetch = tokio::spawn(async move {
        let started = Instant::now();
        let rows = consumer.query("FETCH 10 FROM events GROUP g WAIT '20s'", &[]).await.unwrap();
        (rows.iter().map(|r| r.get::<_, i32>("n")).collect::<Vec<_>>(), started.elapsed(), consumer)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin.batch_execute("INSERT INTO events VALUES (42)").await.unwrap();
    let (got, waited, consumer) = fetch.await.unwrap();
    assert_eq!(got, vec![42]);
    assert!(waited < Duration::from_secs(10), "woken by the append, not the timeout: {waited:?}");

    // A cancel request ends a waiting FETCH with 57014; the session goes on.
    let token = consumer.cancel_token();
    let waiting = tokio::spawn(async move {
        let r = consumer.query("FETCH 10 FROM events GROUP g WAIT '30s'", &[]).await;
        (r, consumer)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (r, consumer) = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("cancel ends it").unwrap();
    assert_eq!(sqlstate(&r.unwrap_err()).as_deref(), Some("57014"));
    admin.batch_execute("INSERT INTO events VALUES (43)").await.unwrap();
    let rows = consumer.query("FETCH 10 FROM events GROUP g", &[]).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, i32>("n")).collect::<Vec<_>>(), vec![43]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_from_a_member_that_lost_the_partition_are_refused() {
    let (_dir, server) = fresh();
    let a = server.client().await.unwrap();
    a.batch_execute("CREATE STREAM tasks (id TEXT) WITH (partitions = 4, key = 'id')").await.unwrap();
    let values: Vec<String> = (0..40).map(|i| format!("('t{i}')")).collect();
    a.batch_execute(&format!("INSERT INTO tasks VALUES {}", values.join(","))).await.unwrap();
    a.batch_execute("SUBSCRIBE tasks GROUP g MEMBER 'a'").await.unwrap();
    let first = a.query("FETCH 100 FROM tasks GROUP g", &[]).await.unwrap();
    assert_eq!(first.len(), 40);

    // b joins before a commits: a's positions in b's partitions are stale.
    let b = server.client().await.unwrap();
    b.batch_execute("SUBSCRIBE tasks GROUP g MEMBER 'b'").await.unwrap();
    let e = a.batch_execute("COMMIT OFFSETS FOR tasks GROUP g").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("40001"), "{e}");
    // The same inside a transaction: the results appended with it vanish.
    a.batch_execute("CREATE STREAM results (id TEXT)").await.unwrap();
    let again = a.query("FETCH 100 FROM tasks GROUP g", &[]).await.unwrap();
    let b_first = b.query("FETCH 100 FROM tasks GROUP g", &[]).await.unwrap();
    assert_eq!(again.len() + b_first.len(), 40, "nothing was committed: everything is delivered again");
    // Two more members: a keeps one of its two partitions.
    let c = server.client().await.unwrap();
    c.batch_execute("SUBSCRIBE tasks GROUP g MEMBER 'c'").await.unwrap();
    let d = server.client().await.unwrap();
    d.batch_execute("SUBSCRIBE tasks GROUP g MEMBER 'd'").await.unwrap();
    let e = a
        .batch_execute("BEGIN; INSERT INTO results VALUES ('x'); COMMIT OFFSETS FOR tasks GROUP g; COMMIT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("40001"), "{e}");
    let n: i64 = a.query_one("SELECT count(*) FROM results", &[]).await.unwrap().get(0);
    assert_eq!(n, 0, "the transaction's appends were discarded with its offsets");
    // After fetching again the member can commit what it owns.
    a.query("FETCH 100 FROM tasks GROUP g", &[]).await.unwrap();
    a.batch_execute("COMMIT OFFSETS FOR tasks GROUP g").await.unwrap();
}

const TASK_COUNT: usize = 100_000;

/// One worker: in each transaction, fetch a batch, append one result per
/// task, commit the offsets with the results. Returns when `stop` is set
/// or the connection fails.
async fn worker(conn: String, name: String, stop: Arc<AtomicBool>, client: Option<Client>) {
    let c = match client {
        Some(c) => c,
        None => match connect(&conn).await {
            Ok(c) => c,
            Err(_) => return,
        },
    };
    if c.batch_execute(&format!("SUBSCRIBE tasks GROUP workers MEMBER '{name}'")).await.is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        if c.batch_execute("BEGIN").await.is_err() {
            return;
        }
        let rows = match c.query("FETCH 500 FROM tasks GROUP workers WAIT '100ms'", &[]).await {
            Ok(r) => r,
            Err(_) => return,
        };
        if rows.is_empty() {
            if c.batch_execute("COMMIT").await.is_err() {
                return;
            }
            continue;
        }
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                let (p, o, id): (i32, i64, String) = (r.get("_partition"), r.get("_offset"), r.get("id"));
                format!("('{id}', {p}, {o}, '{name}')")
            })
            .collect();
        let sql =
            format!("INSERT INTO results VALUES {}; COMMIT OFFSETS FOR tasks GROUP workers; COMMIT", values.join(","));
        match c.batch_execute(&sql).await {
            Ok(()) => {}
            // Reassigned meanwhile: the transaction is gone; fetch again.
            Err(e) if sqlstate(&e).as_deref() == Some("40001") => {}
            Err(_) => return,
        }
    }
}

async fn lag(c: &Client) -> i64 {
    c.query_one("SELECT coalesce(sum(lag), -1) FROM brikk_groups WHERE group_name = 'workers'", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

/// Every task appears exactly once in `results`, and per source partition
/// the results were committed in offset order.
async fn check_exactly_once(c: &Client, tasks: usize) {
    let rows = c.query("SELECT id, src_partition, src_offset FROM results ORDER BY _offset", &[]).await.unwrap();
    let mut seen = HashSet::with_capacity(tasks);
    let mut last: HashMap<i32, i64> = HashMap::new();
    for r in &rows {
        let (id, p, o): (String, i32, i64) = (r.get(0), r.get(1), r.get(2));
        assert!(seen.insert(id.clone()), "task {id} processed twice");
        let prev = last.insert(p, o);
        assert!(prev.is_none_or(|prev| prev < o), "partition {p}: offset {o} committed after {prev:?}");
    }
    assert_eq!(seen.len(), tasks, "every task processed");
}

async fn load_tasks(c: &Client, n: usize) {
    c.batch_execute(
        "CREATE STREAM tasks (id TEXT) WITH (partitions = 8, key = 'id');
         CREATE STREAM results (id TEXT, src_partition INTEGER, src_offset BIGINT, worker TEXT)",
    )
    .await
    .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let values: Vec<String> = chunk.iter().map(|i| format!("('task-{i}')")).collect();
        c.batch_execute(&format!("INSERT INTO tasks VALUES {}", values.join(","))).await.unwrap();
    }
}

async fn until_drained(c: &Client, within: Duration) {
    let deadline = Instant::now() + within;
    while lag(c).await != 0 {
        assert!(Instant::now() < deadline, "workers did not drain the stream; lag {}", lag(c).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_process_every_task_exactly_once_while_members_come_and_go() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    load_tasks(&admin, TASK_COUNT).await;
    let conn = server.conn_str();
    let stop = Arc::new(AtomicBool::new(false));
    let spawn =
        |name: &str, client: Option<Client>| tokio::spawn(worker(conn.clone(), name.to_string(), stop.clone(), client));
    let w1 = spawn("w1", None);
    let w2 = spawn("w2", None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Two more join while the first two work.
    let w3 = spawn("w3", None);
    let (killable, conn_task) = connect_killable(&conn).await.unwrap();
    let w4 = spawn("w4", Some(killable));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // w4 is killed mid-batch: its socket closes, its transaction is lost.
    let killed_at = Instant::now();
    conn_task.abort();
    w4.abort();
    await_members(&admin, "workers", Duration::from_secs(10), |m| !m.contains_key("w4")).await;
    assert!(killed_at.elapsed() < Duration::from_secs(10), "rebalance within the session timeout");
    // w2 leaves cleanly and a new worker takes its place.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = w2.await;
    let _ = w1.await;
    let _ = w3.await;
    stop.store(false, Ordering::Relaxed);
    let workers: Vec<_> = ["w1", "w3", "w5", "w6"].iter().map(|n| spawn(n, None)).collect();
    until_drained(&admin, Duration::from_secs(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    check_exactly_once(&admin, TASK_COUNT).await;
    let by_worker: i64 = admin.query_one("SELECT count(DISTINCT worker) FROM results", &[]).await.unwrap().get(0);
    assert!(by_worker >= 3, "work was shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_commit_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A tail cache smaller than the tasks: workers read the newest records
    // from memory and older ones from RocksDB; after the restart, when
    // nothing is cached, all of them from RocksDB.
    let mut server = Server::start_with(dir.path(), &["--tail-cache-mb", "1"]).unwrap();
    let admin = server.client().await.unwrap();
    let tasks = 20_000;
    load_tasks(&admin, tasks).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> =
        (0..4).map(|i| tokio::spawn(worker(server.conn_str(), format!("w{i}"), stop.clone(), None))).collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before: HashMap<i32, i64> = admin
        .query("SELECT partition, coalesce(committed_offset, 0) FROM brikk_groups WHERE group_name = 'workers'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    server.kill9();
    for w in workers {
        let _ = w.await; // their connections failed
    }
    let server = Server::start(dir.path()).unwrap();
    let admin = server.client().await.unwrap();
    let after: HashMap<i32, i64> = admin
        .query("SELECT partition, coalesce(committed_offset, 0) FROM brikk_groups WHERE group_name = 'workers'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (p, o) in &before {
        assert!(after[p] >= *o, "partition {p}: committed offset went back from {o} to {}", after[p]);
    }
    let workers: Vec<_> =
        (0..4).map(|i| tokio::spawn(worker(server.conn_str(), format!("w{i}"), stop.clone(), None))).collect();
    until_drained(&admin, Duration::from_secs(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    check_exactly_once(&admin, tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_leases_redeliver_dead_letter_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).unwrap();
    let a = server.client().await.unwrap();
    a.batch_execute(
        "CREATE STREAM jobs (id TEXT) WITH (partitions = 2);
         INSERT INTO jobs VALUES ('j0'), ('j1'), ('j2'), ('j3');
         CREATE GROUP solvers ON jobs WITH (mode = 'queue', max_deliveries = 3);
         CREATE STREAM done (id TEXT)",
    )
    .await
    .unwrap();
    let ids = |rows: &[tokio_postgres::Row]| -> Vec<(String, i32)> {
        let mut v: Vec<(String, i32)> = rows.iter().map(|r| (r.get("id"), r.get("_deliveries"))).collect();
        v.sort();
        v
    };
    let first = a.query("CLAIM 4 FROM jobs GROUP solvers LEASE '300ms' MEMBER 'a'", &[]).await.unwrap();
    assert_eq!(ids(&first).len(), 4);
    // Nothing else is claimable while the leases run.
    let b = server.client().await.unwrap();
    assert!(b.query("CLAIM 4 FROM jobs GROUP solvers MEMBER 'b'", &[]).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired: redelivered to b, with their delivery count.
    let second = b.query("CLAIM 4 FROM jobs GROUP solvers LEASE '300ms' MEMBER 'b'", &[]).await.unwrap();
    assert_eq!(ids(&second), vec![("j0".into(), 2), ("j1".into(), 2), ("j2".into(), 2), ("j3".into(), 2)]);
    let e = a.batch_execute("ACK jobs GROUP solvers (0, 0) MEMBER 'a'").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"));
    // b acknowledges j0's record with its result, atomically; a rolled-back
    // ACK leaves the claim in place.
    let (p0, o0): (i32, i64) =
        second.iter().find(|r| r.get::<_, String>("id") == "j0").map(|r| (r.get(0), r.get(1))).unwrap();
    b.batch_execute(&format!("BEGIN; ACK jobs GROUP solvers ({p0}, {o0}); INSERT INTO done VALUES ('j0'); ROLLBACK"))
        .await
        .unwrap();
    let claims: i64 = b.query_one("SELECT count(*) FROM brikk_claims", &[]).await.unwrap().get(0);
    assert_eq!(claims, 4);
    let acked = b.execute("ACK jobs GROUP solvers ($1, $2)", &[&(p0 as i64), &o0]).await.unwrap();
    assert_eq!(acked, 1);

    // Claims survive a SIGKILL.
    server.kill9();
    let server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let claims: Vec<(i32, String)> = c
        .query("SELECT deliveries, claimant FROM brikk_claims ORDER BY partition, \"offset\"", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(claims, vec![(2, "b".to_string()); 3]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let third = c.query("CLAIM 10 FROM jobs GROUP solvers LEASE '200ms' MEMBER 'c'", &[]).await.unwrap();
    assert_eq!(ids(&third), vec![("j1".into(), 3), ("j2".into(), 3), ("j3".into(), 3)]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past max_deliveries: the next CLAIM moves them to the dead letters.
    assert!(c.query("CLAIM 10 FROM jobs GROUP solvers", &[]).await.unwrap().is_empty());
    let dead: Vec<(String, i32, String)> = c
        .query("SELECT record, deliveries, reason FROM jobs_dead_letters ORDER BY source_offset, source_partition", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(dead.iter().all(|(_, d, reason)| *d == 3 && reason == "lease expired after 3 deliveries"), "{dead:?}");
    let n: i64 = c.query_one("SELECT count(*) FROM brikk_claims", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
    // New records are still delivered, once.
    c.batch_execute("INSERT INTO jobs VALUES ('j4')").await.unwrap();
    let fresh = c.query("CLAIM 10 FROM jobs GROUP solvers", &[]).await.unwrap();
    assert_eq!(ids(&fresh), vec![("j4".into(), 1)]);
}
