//! `COPY (SUBSCRIBE …) TO STDOUT`: live subscriptions read with
//! tokio-postgres' `copy_out` and with psql, ended by a cancel request, by
//! closing the connection, or by dropping the stream.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brikk_tests::{connect_killable, sqlstate, Server};
use futures::StreamExt;
use tokio_postgres::{Client, CopyOutStream};

use super::fresh;

/// One COPY text line as its fields (`None` for `\N`).
fn fields(line: &[u8]) -> Vec<Option<String>> {
    let text = std::str::from_utf8(line).expect("utf-8").strip_suffix('\n').expect("one line per CopyData");
    text.split('\t').map(|f| (f != "\\N").then(|| f.to_string())).collect()
}

/// The next line within `secs` seconds, as fields.
async fn next_row(rows: &mut std::pin::Pin<Box<CopyOutStream>>, secs: u64) -> Vec<Option<String>> {
    let line = tokio::time::timeout(Duration::from_secs(secs), rows.next())
        .await
        .expect("a row in time")
        .expect("the subscription goes on")
        .expect("a row, not an error");
    fields(&line)
}

/// How many subscriptions the server has open, and the records they sent.
async fn live(c: &Client) -> (i64, i64) {
    let r = c.query_one("SELECT count(*), coalesce(sum(sent), 0) FROM brikk_subscriptions", &[]).await.unwrap();
    (r.get(0), r.get::<_, i64>(1))
}

/// Waits (up to 10 s) until `brikk_subscriptions` has `count` rows that sent `sent` records in all.
async fn wait_live(c: &Client, count: i64, sent: Option<i64>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (n, s) = live(c).await;
        if n == count && sent.is_none_or(|want| s == want) {
            return;
        }
        assert!(Instant::now() < deadline, "brikk_subscriptions: {n} live, {s} sent; want {count}, {sent:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stream_in_partition_order_wake_an_idle_subscription_and_a_cancel_ends_it() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    admin
        .batch_execute("CREATE STREAM ev (k TEXT, n BIGINT, note TEXT) WITH (partitions = 4, key = 'k')")
        .await
        .unwrap();
    let values: Vec<String> = (0..40).map(|n| format!("('k{}', {n}, 'before')", n % 7)).collect();
    admin.batch_execute(&format!("INSERT INTO ev VALUES {}", values.join(","))).await.unwrap();

    let sub = server.client().await.unwrap();
    let copy = sub.copy_out("COPY (SUBSCRIBE ev FROM BEGINNING) TO STDOUT").await.unwrap();
    let mut rows = Box::pin(copy);
    // The backlog: every record, offsets dense and in order per partition,
    // each key in one partition.
    let mut next_offset: BTreeMap<String, i64> = BTreeMap::new();
    let mut partition_of_key: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = Vec::new();
    for _ in 0..40 {
        let f = next_row(&mut rows, 10).await;
        let (p, o, key) = (f[0].clone().unwrap(), f[1].clone().unwrap().parse::<i64>().unwrap(), f[3].clone().unwrap());
        assert_eq!(f[4].as_deref(), Some(key.as_str()), "_key is the key column");
        let want = next_offset.entry(p.clone()).or_insert(0);
        assert_eq!(o, *want, "partition {p} in offset order");
        *want += 1;
        assert_eq!(partition_of_key.entry(key).or_insert_with(|| p.clone()), &p);
        seen.push(f[5].clone().unwrap().parse::<i64>().unwrap());
        assert_eq!(f[6].as_deref(), Some("before"));
    }
    seen.sort();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    wait_live(&admin, 1, Some(40)).await;

    // Idle: nothing comes until something is committed, then it comes at once.
    assert!(tokio::time::timeout(Duration::from_millis(300), rows.next()).await.is_err(), "no row without an append");
    for round in 0..3 {
        let t0 = Instant::now();
        admin.execute("INSERT INTO ev VALUES ('live', $1, NULL)", &[&(100 + round as i64)]).await.unwrap();
        let f = next_row(&mut rows, 5).await;
        assert_eq!(
            (f[3].as_deref(), f[5].as_deref(), f[6].as_deref()),
            (Some("live"), Some(&*(100 + round).to_string()), None)
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "woken by the append, took {:?}", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_live(&admin, 1, Some(43)).await;

    // A cancel request ends it with 57014; the session goes on.
    sub.cancel_token().cancel_query(tokio_postgres::NoTls).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), rows.next()).await.expect("ended in time");
    let e = end.expect("an error, not the end of the stream").unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    drop(rows);
    let n: i64 = sub.query_one("SELECT count(*) FROM ev", &[]).await.expect("session usable").get(0);
    assert_eq!(n, 43);
    wait_live(&admin, 0, None).await;
    // ... and can subscribe again.
    let mut again =
        Box::pin(sub.copy_out("COPY (SUBSCRIBE ev FROM OFFSET 1) TO STDOUT (FORMAT csv, HEADER)").await.unwrap());
    let header = tokio::time::timeout(Duration::from_secs(5), again.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(&header[..], b"_partition,_offset,_timestamp,_key,k,n,note\n");
    let first = tokio::time::timeout(Duration::from_secs(5), again.next()).await.unwrap().unwrap().unwrap();
    let first = std::str::from_utf8(&first).unwrap();
    assert_eq!(first.split(',').nth(1), Some("1"), "FROM OFFSET 1 starts at offset 1: {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_an_offset_from_now_and_a_tables_changes() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM log (n BIGINT, body TEXT)").await.unwrap();
    c.batch_execute("INSERT INTO log SELECT v, 'r' || v FROM generate_series(0, 9) AS t(v)").await.unwrap();

    // FROM OFFSET 5: offsets 5..9 of the backlog, then what comes.
    let s1 = server.client().await.unwrap();
    let mut from5 = Box::pin(s1.copy_out("COPY (SUBSCRIBE log FROM OFFSET 5) TO STDOUT").await.unwrap());
    // FROM NOW (the default): only what is committed after it started.
    let s2 = server.client().await.unwrap();
    let mut now = Box::pin(s2.copy_out("COPY (SUBSCRIBE log) TO STDOUT").await.unwrap());
    // Past the end: waits for offset 12.
    let s3 = server.client().await.unwrap();
    let mut ahead = Box::pin(s3.copy_out("COPY (SUBSCRIBE log FROM OFFSET 12) TO STDOUT").await.unwrap());
    for want in 5..10 {
        let f = next_row(&mut from5, 10).await;
        assert_eq!((f[1].clone().unwrap(), f[5].clone().unwrap()), (want.to_string(), format!("r{want}")));
    }
    wait_live(&c, 3, None).await;
    c.batch_execute("INSERT INTO log VALUES (10, 'tab\there'), (11, NULL), (12, 'back\\slash')").await.unwrap();
    for want in 10..13 {
        assert_eq!(next_row(&mut from5, 10).await[1].clone().unwrap(), want.to_string());
        assert_eq!(next_row(&mut now, 10).await[1].clone().unwrap(), want.to_string());
    }
    let f = next_row(&mut ahead, 10).await;
    assert_eq!((f[1].as_deref(), f[5].as_deref()), (Some("12"), Some("back\\\\slash")), "text COPY escapes");

    // A table: its changes, with the operation.
    c.batch_execute("CREATE TABLE board (topic TEXT PRIMARY KEY, fact TEXT, version BIGINT NOT NULL)").await.unwrap();
    let s4 = server.client().await.unwrap();
    let mut changes = Box::pin(s4.copy_out("COPY (SUBSCRIBE board) TO STDOUT").await.unwrap());
    wait_live(&c, 4, None).await;
    c.batch_execute(
        "INSERT INTO board VALUES ('plan', 'draft', 1); \
         UPDATE board SET fact = 'final', version = 2 WHERE topic = 'plan'; \
         DELETE FROM board WHERE topic = 'plan'",
    )
    .await
    .unwrap();
    let mut ops = Vec::new();
    for want in 0..3 {
        let f = next_row(&mut changes, 10).await;
        assert_eq!(f[1].clone().unwrap(), want.to_string(), "changelog offsets");
        assert_eq!(f[3].as_deref(), Some("plan"), "_key is the primary key");
        ops.push((f[4].clone().unwrap(), f[6].clone().unwrap()));
    }
    let want: Vec<(String, String)> = [("insert", "draft"), ("update", "final"), ("delete", "final")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(ops, want);

    // Dropping the stream ends its subscriptions with 42P01.
    c.batch_execute("DROP STREAM log").await.unwrap();
    for rows in [&mut from5, &mut now, &mut ahead] {
        let e = tokio::time::timeout(Duration::from_secs(10), rows.next()).await.unwrap().unwrap().unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("42P01"), "{e:?}");
    }
    s1.query_one("SELECT 1", &[]).await.expect("session usable after the stream was dropped");
}

#[tokio::test]
async fn bad_subscriptions_fail_with_their_sqlstate_and_the_session_goes_on() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    c.batch_execute("CREATE STREAM s (a TEXT)").await.unwrap();
    let cases = [
        ("COPY (SUBSCRIBE nope) TO STDOUT", "42P01"),
        ("COPY (SUBSCRIBE s FROM OFFSET -1) TO STDOUT", "22023"),
        ("COPY (SUBSCRIBE s FROM YESTERDAY) TO STDOUT", "42601"),
        ("COPY (SUBSCRIBE s) TO '/tmp/brikk-sub'", "0A000"),
        ("COPY (SUBSCRIBE s) TO STDOUT (FORMAT binary)", "22023"),
    ];
    for (sql, code) in cases {
        let Err(e) = c.copy_out(sql).await else { panic!("{sql} started") };
        assert_eq!(sqlstate(&e).as_deref(), Some(code), "{sql}: {e:?}");
        c.query_one("SELECT 1", &[]).await.expect("session usable");
    }
    // It would never end, so it runs alone: not in a transaction block,
    // not inside a multi-statement string.
    c.batch_execute("BEGIN").await.unwrap();
    let Err(e) = c.copy_out("COPY (SUBSCRIBE s) TO STDOUT").await else { panic!("started in a transaction") };
    assert_eq!(sqlstate(&e).as_deref(), Some("25001"), "{e:?}");
    c.batch_execute("ROLLBACK").await.unwrap();
    let e = c.batch_execute("SELECT 1; COPY (SUBSCRIBE s) TO STDOUT").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25001"), "{e:?}");
    c.query_one("SELECT 1", &[]).await.expect("session usable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_connection_frees_the_subscription() {
    let (_dir, server) = fresh();
    let admin = server.client().await.unwrap();
    admin.batch_execute("CREATE STREAM quiet (n BIGINT)").await.unwrap();
    // Subscriptions waiting (no records at all) when their clients go away
    // without a goodbye, as killed processes do.
    let (a, task_a) = connect_killable(&server.conn_str()).await.unwrap();
    let rows_a = a.copy_out("COPY (SUBSCRIBE quiet) TO STDOUT").await.unwrap();
    let (b, task_b) = connect_killable(&server.conn_str()).await.unwrap();
    let rows_b = b.copy_out("COPY (SUBSCRIBE quiet FROM BEGINNING) TO STDOUT").await.unwrap();
    wait_live(&admin, 2, None).await;
    task_a.abort();
    drop((rows_a, a));
    wait_live(&admin, 1, None).await;
    task_b.abort();
    drop((rows_b, b));
    wait_live(&admin, 0, None).await;
    // Writers never noticed.
    admin.batch_execute("INSERT INTO quiet VALUES (1)").await.unwrap();
}

/// Reads `count` lines from a psql subscription: `psql -c "COPY (SUBSCRIBE …) TO STDOUT"`
/// runs until a Ctrl-C (SIGINT: psql sends a cancel request).
fn psql_until_ctrl_c(server: &Server, sql: &str, sent: i64, admin: &dyn Fn() -> i64) -> (String, String, i32) {
    let mut child = server.psql_command(&["-c", sql]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin() < sent {
        assert!(Instant::now() < deadline, "psql's subscription did not send {sent} records");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (out, err, code)
}

#[test]
fn psql_follows_a_stream_until_ctrl_c_and_a_stopped_psql_holds_up_no_one() {
    let (_dir, server) = fresh();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let admin = rt.block_on(server.client()).unwrap();
    rt.block_on(admin.batch_execute("CREATE STREAM chat (who TEXT, said TEXT) WITH (partitions = 2, key = 'who')"))
        .unwrap();
    rt.block_on(admin.batch_execute("INSERT INTO chat VALUES ('ann', 'hi'), ('bob', 'a\ttab')")).unwrap();
    // Records appended while psql waits arrive too.
    let writer = {
        let conn = server.conn_str();
        rt.spawn(async move {
            let c = brikk_tests::connect(&conn).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            for i in 0..3 {
                c.execute("INSERT INTO chat VALUES ('cy', $1)", &[&format!("live {i}")]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let sent = || rt.block_on(live(&admin)).1;
    let (out, err, code) = psql_until_ctrl_c(&server, "COPY (SUBSCRIBE chat FROM BEGINNING) TO STDOUT", 5, &sent);
    rt.block_on(writer).unwrap();
    assert!(err.contains("canceling statement due to user request"), "{err}");
    assert_eq!(code, 1, "psql reports the canceled statement");
    let lines: Vec<Vec<Option<String>>> = out.lines().map(|l| fields(format!("{l}\n").as_bytes())).collect();
    let said: Vec<&str> = lines.iter().map(|f| f[5].as_deref().unwrap()).collect();
    assert_eq!(lines.len(), 5, "{out}");
    for want in ["hi", "a\\ttab", "live 0", "live 1", "live 2"] {
        assert!(said.contains(&want), "{want} in {said:?}");
    }
    let cy: Vec<&str> =
        lines.iter().filter(|f| f[3].as_deref() == Some("cy")).map(|f| f[5].as_deref().unwrap()).collect();
    assert_eq!(cy, ["live 0", "live 1", "live 2"], "one key's records in order");
    rt.block_on(wait_live(&admin, 0, None));

    // A psql that stops reading (SIGSTOP) only stops its own subscription:
    // writers go on, and another subscriber gets everything.
    let mut stopped = server
        .psql_command(&["-c", "COPY (SUBSCRIBE chat FROM NOW) TO STDOUT"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    rt.block_on(wait_live(&admin, 1, None));
    assert!(Command::new("kill").args(["-STOP", &stopped.id().to_string()]).status().unwrap().success());
    let follower = rt.block_on(server.client()).unwrap();
    let mut rows = Box::pin(rt.block_on(follower.copy_out("COPY (SUBSCRIBE chat) TO STDOUT")).unwrap());
    // More than the socket buffers between the server and psql hold.
    let pad = "x".repeat(4000);
    let total = 6000;
    for chunk in 0..(total / 200) {
        let values: Vec<String> = (0..200).map(|i| format!("('w{}', '{pad}')", chunk * 200 + i)).collect();
        rt.block_on(admin.batch_execute(&format!("INSERT INTO chat VALUES {}", values.join(",")))).unwrap();
    }
    for _ in 0..total {
        rt.block_on(next_row(&mut rows, 10));
    }
    // The stopped one fell behind (its socket is full) but is still there.
    let behind: i64 = rt.block_on(admin.query_one("SELECT max(lag) FROM brikk_subscriptions", &[])).unwrap().get(0);
    assert!(behind > 0, "the stopped psql is behind");
    let _ = stopped.kill();
    let _ = stopped.wait();
    rt.block_on(wait_live(&admin, 1, None));
}
