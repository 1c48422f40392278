//! The in-process API: open a directory, run SQL, get Arrow batches; the
//! same directory then served over the wire.

use brikk_query::Brikk;
use datafusion::arrow::util::pretty::pretty_format_batches;

#[tokio::test]
async fn embedded_then_served() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Brikk::open(dir.path()).unwrap();
        db.execute("CREATE STREAM events (kind TEXT, n BIGINT) WITH (partitions = 2, key = 'kind')").await.unwrap();
        db.execute("INSERT INTO events VALUES ('a', 1), ('b', 2), ('a', 3)").await.unwrap();
        let batches = db.execute("SELECT kind, sum(n) AS total FROM events GROUP BY kind ORDER BY kind").await.unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        assert_eq!(
            text,
            "+------+-------+\n| kind | total |\n+------+-------+\n| a    | 4     |\n| b    | 2     |\n+------+-------+"
        );
        // While open here, the directory cannot be served by another process.
        assert!(brikk_tests::Server::start(dir.path()).is_err());
        db.close();
    }
    let server = brikk_tests::Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    let r = c.query_one("SELECT count(*) FROM events", &[]).await.unwrap();
    assert_eq!(r.get::<_, i64>(0), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_live_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let db = Brikk::open(dir.path()).unwrap();
    db.execute("CREATE STREAM events (kind TEXT, n BIGINT)").await.unwrap();
    db.execute("INSERT INTO events VALUES ('a', 1)").await.unwrap();
    let mut session = db.session();
    let output = session.execute("COPY (SUBSCRIBE events FROM BEGINNING) TO STDOUT").await.pop().unwrap().unwrap();
    let brikk_query::Output::Subscription(mut sub) = output else { panic!("{output:?}") };
    let first = sub.next().await.unwrap();
    let text = pretty_format_batches(&first).unwrap().to_string();
    assert!(text.contains("| 0          | 0       |") && text.contains("| a    | 1 |"), "{text}");
    // next() waits for the next commit.
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            db.execute("INSERT INTO events VALUES ('b', 2)").await.unwrap();
        })
    };
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next()).await.unwrap().unwrap();
    writer.await.unwrap();
    assert_eq!(sub.positions(), [2]);
    let text = pretty_format_batches(&next).unwrap().to_string();
    assert!(text.contains("| b    | 2 |"), "{text}");
    let live = db.execute("SELECT stream, sent FROM brikk_subscriptions").await.unwrap();
    assert!(pretty_format_batches(&live).unwrap().to_string().contains("| events | 2    |"));
    drop(sub);
    assert!(db.execute("SELECT * FROM brikk_subscriptions").await.unwrap().iter().all(|b| b.num_rows() == 0));
}

#[tokio::test]
async fn embedded_sessions_are_listed_in_pg_stat_activity() {
    let dir = tempfile::tempdir().unwrap();
    let db = Brikk::open(dir.path()).unwrap();
    db.execute("CREATE STREAM events (kind TEXT)").await.unwrap();
    let mut watcher = db.session();
    let output = watcher.execute("COPY (SUBSCRIBE events) TO STDOUT").await.pop().unwrap().unwrap();
    let brikk_query::Output::Subscription(sub) = output else { panic!("{output:?}") };
    let pid = watcher.vars().backend_pid();
    let row = format!(
        "SELECT state, query, client_addr IS NULL, pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = {pid}"
    );
    let text = pretty_format_batches(&db.execute(&row).await.unwrap()).unwrap().to_string();
    // Active while its subscription lives; no client to signal.
    assert!(text.contains("| active | COPY (SUBSCRIBE events) TO STDOUT | true "), "{text}");
    assert!(text.contains("| false "), "{text}");
    drop(sub);
    let text = pretty_format_batches(&db.execute(&row).await.unwrap()).unwrap().to_string();
    assert!(text.contains("| idle "), "{text}");
    drop(watcher);
    assert!(db.execute(&row).await.unwrap().iter().all(|b| b.num_rows() == 0));
}
