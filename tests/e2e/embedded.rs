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
