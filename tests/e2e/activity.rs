//! `pg_stat_activity`, `pg_cancel_backend` and `pg_terminate_backend`: an
//! orchestrator sees its workers' sessions and interrupts a stuck one.

use std::time::Duration;

use brikk_tests::sqlstate;
use tokio_postgres::{Client, NoTls};

use super::fresh;

/// Waits until `session`'s row in `pg_stat_activity`, read by `observer`,
/// matches `pred` (state, query); fails after ten seconds.
async fn until_row(observer: &Client, pid: i32, pred: impl Fn(&str, &str) -> bool) -> (String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = observer
            .query_opt("SELECT state, query FROM pg_stat_activity WHERE pid = $1", &[&pid])
            .await
            .unwrap()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)));
        match row {
            Some((state, query)) if pred(&state, &query) => return (state, query),
            other => assert!(tokio::time::Instant::now() < deadline, "session {pid} is at {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pid_of(client: &Client) -> i32 {
    client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn activity_lists_each_session_and_what_it_runs() {
    let (_dir, server) = fresh();
    let orchestrator = server.client().await.unwrap();
    orchestrator.batch_execute("SET application_name = 'orchestrator'").await.unwrap();
    let config = format!("{} application_name=worker-1", server.conn_str());
    let (worker, connection) = tokio_postgres::connect(&config, NoTls).await.unwrap();
    tokio::spawn(connection);
    let me = pid_of(&orchestrator).await;
    let them = pid_of(&worker).await;

    // Unqualified and qualified; the reader's own statement is active.
    let rows = orchestrator
        .query(
            "SELECT pid, application_name, state, query, usename, datname, client_addr, client_port > 0, \
             backend_type, backend_start <= now() FROM pg_stat_activity ORDER BY pid",
            &[],
        )
        .await
        .unwrap();
    let row = |pid: i32| rows.iter().find(|r| r.get::<_, i32>(0) == pid).unwrap_or_else(|| panic!("no {pid}"));
    let mine = row(me);
    assert_eq!(mine.get::<_, String>(1), "orchestrator");
    assert_eq!(mine.get::<_, String>(2), "active");
    assert!(mine.get::<_, String>(3).contains("FROM pg_stat_activity"));
    assert_eq!(mine.get::<_, String>(4), "brikk");
    assert_eq!(mine.get::<_, String>(5), "brikk");
    assert_eq!(mine.get::<_, String>(6), "127.0.0.1");
    assert!(mine.get::<_, bool>(7));
    assert_eq!(mine.get::<_, String>(8), "client backend");
    assert!(mine.get::<_, bool>(9));
    let theirs = row(them);
    assert_eq!((theirs.get::<_, String>(1), theirs.get::<_, String>(2)), ("worker-1".into(), "idle".into()));
    assert_eq!(theirs.get::<_, String>(3), "SELECT pg_backend_pid()", "the last statement it ran");
    let qualified = "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid IN ($1, $2)";
    assert_eq!(orchestrator.query_one(qualified, &[&me, &them]).await.unwrap().get::<_, i64>(0), 2);

    // A transaction block: idle in transaction since BEGIN, then aborted.
    worker.batch_execute("BEGIN").await.unwrap();
    worker.query("SELECT 1 AS one", &[]).await.unwrap();
    let open =
        "SELECT state, query, xact_start IS NOT NULL, xact_start <= query_start FROM pg_stat_activity WHERE pid = $1";
    let r = orchestrator.query_one(open, &[&them]).await.unwrap();
    assert_eq!(r.get::<_, String>(0), "idle in transaction");
    assert_eq!(r.get::<_, String>(1), "SELECT 1 AS one");
    assert!(r.get::<_, bool>(2) && r.get::<_, bool>(3), "the transaction started before its last statement");
    assert!(worker.batch_execute("SELECT nonsense FROM nowhere").await.is_err());
    until_row(&orchestrator, them, |s, _| s == "idle in transaction (aborted)").await;
    worker.batch_execute("ROLLBACK; SET application_name = 'worker-one'").await.unwrap();
    let r = orchestrator
        .query_one("SELECT state, application_name, xact_start FROM pg_stat_activity WHERE pid = $1", &[&them])
        .await
        .unwrap();
    assert_eq!((r.get::<_, String>(0), r.get::<_, String>(1)), ("idle".into(), "worker-one".into()));
    assert_eq!(r.get::<_, Option<std::time::SystemTime>>(2), None, "no transaction open");

    // Gone once its connection closes.
    drop(worker);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1";
    while orchestrator.query_one(listed, &[&them]).await.unwrap().get::<_, i64>(0) != 0 {
        assert!(tokio::time::Instant::now() < deadline, "a closed session is still listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_orchestrator_cancels_and_terminates_a_worker() {
    let (_dir, server) = fresh();
    let orchestrator = server.client().await.unwrap();
    orchestrator
        .batch_execute(
            "CREATE TABLE board (k TEXT PRIMARY KEY, v TEXT); CREATE STREAM tasks (id TEXT) WITH (partitions = 2)",
        )
        .await
        .unwrap();
    let (worker, connection) = tokio_postgres::connect(&server.conn_str(), NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let worker = std::sync::Arc::new(worker);
    let them = pid_of(&worker).await;

    // Cancel: the running statement ends with 57014; the session goes on.
    let stuck = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.query("SELECT pg_sleep(60)", &[]).await })
    };
    until_row(&orchestrator, them, |s, q| s == "active" && q.contains("pg_sleep")).await;
    let cancel = "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()";
    assert!(orchestrator.query_one(cancel, &[]).await.unwrap().get::<_, bool>(0));
    let err = tokio::time::timeout(Duration::from_secs(10), stuck).await.unwrap().unwrap().unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err}");
    assert_eq!(worker.query_one("SELECT 2", &[]).await.unwrap().get::<_, i64>(0), 2);
    until_row(&orchestrator, them, |s, _| s == "idle").await;

    // No such backend: false; NULL: NULL.
    let r = orchestrator
        .query_one("SELECT pg_cancel_backend(7), pg_terminate_backend(8, 100), pg_cancel_backend(NULL)", &[])
        .await
        .unwrap();
    assert_eq!((r.get::<_, bool>(0), r.get::<_, bool>(1), r.get::<_, Option<bool>>(2)), (false, false, None));

    // Terminate a worker idle in a transaction: the client is told 57P01,
    // the connection ends, what it had not committed is gone, and it has
    // left its group.
    worker.batch_execute("SUBSCRIBE tasks GROUP workers MEMBER 'w1'").await.unwrap();
    let members = "SELECT count(*) FROM brikk_members WHERE group_name = 'workers'";
    assert_eq!(orchestrator.query_one(members, &[]).await.unwrap().get::<_, i64>(0), 1);
    worker.batch_execute("BEGIN; INSERT INTO board VALUES ('half', 'written')").await.unwrap();
    // With a timeout it returns once the session is gone.
    let terminate = orchestrator.prepare("SELECT pg_terminate_backend($1, 10000)").await.unwrap();
    assert!(orchestrator.query_one(&terminate, &[&(them as i64)]).await.unwrap().get::<_, bool>(0));
    let listed = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1";
    assert_eq!(orchestrator.query_one(listed, &[&them]).await.unwrap().get::<_, i64>(0), 0);
    let ended = tokio::time::timeout(Duration::from_secs(10), connection).await.unwrap().unwrap();
    let err = ended.expect_err("the connection ends with an error");
    assert_eq!(sqlstate(&err).as_deref(), Some("57P01"), "{err}");
    assert!(worker.query("SELECT 1", &[]).await.is_err());
    let left = orchestrator.query_one("SELECT count(*) FROM board", &[]).await.unwrap();
    assert_eq!(left.get::<_, i64>(0), 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while orchestrator.query_one(members, &[]).await.unwrap().get::<_, i64>(0) != 0 {
        assert!(tokio::time::Instant::now() < deadline, "a terminated worker is still a member");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!orchestrator.query_one(&terminate, &[&(them as i64)]).await.unwrap().get::<_, bool>(0), "no such pid now");
    let err = orchestrator.query_one("SELECT pg_terminate_backend(1, -1)", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("22023"), "{err}");
}

#[tokio::test]
async fn prepared_reads_of_system_tables_see_the_present() {
    let (_dir, server) = fresh();
    let client = server.client().await.unwrap();
    client.batch_execute("CREATE STREAM events (kind TEXT)").await.unwrap();
    let records = client.prepare("SELECT records FROM brikk_streams WHERE name = 'events'").await.unwrap();
    let sessions = client.prepare("SELECT count(*) FROM pg_stat_activity").await.unwrap();
    assert_eq!(client.query_one(&records, &[]).await.unwrap().get::<_, i64>(0), 0);
    assert_eq!(client.query_one(&sessions, &[]).await.unwrap().get::<_, i64>(0), 1);
    let other = server.client().await.unwrap();
    other.batch_execute("INSERT INTO events VALUES ('a'), ('b')").await.unwrap();
    assert_eq!(client.query_one(&records, &[]).await.unwrap().get::<_, i64>(0), 2, "as of this execution");
    assert_eq!(client.query_one(&sessions, &[]).await.unwrap().get::<_, i64>(0), 2);
}
