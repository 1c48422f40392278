//! Cursors over the wire: DECLARE, FETCH in pieces, CLOSE, the end of the
//! transaction, WITH HOLD, and the errors Postgres gives.

use brikk_tests::sqlstate;
use tokio_postgres::SimpleQueryMessage;

use super::fresh;

/// The first column of `sql`'s rows, as text, and its command tag's count.
async fn rows(c: &tokio_postgres::Client, sql: &str) -> (Vec<String>, u64) {
    let mut out = Vec::new();
    let mut count = u64::MAX;
    for m in c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}")) {
        match m {
            SimpleQueryMessage::Row(r) => out.push(r.get(0).unwrap_or("NULL").to_string()),
            SimpleQueryMessage::CommandComplete(n) => count = n,
            _ => {}
        }
    }
    (out, count)
}

/// Runs `sql`, which must fail with SQLSTATE `code`.
async fn fails(c: &tokio_postgres::Client, sql: &str, code: &str) {
    let e = c.batch_execute(sql).await.expect_err(sql);
    assert_eq!(sqlstate(&e).as_deref(), Some(code), "{sql}: {e:?}");
}

#[tokio::test]
async fn a_cursor_hands_out_its_rows_in_pieces_until_the_transaction_ends() {
    let (_dir, server) = fresh();
    let c = server.client().await.unwrap();
    let values: Vec<String> = (0..10).map(|i| format!("('k{i}', {i})")).collect();
    c.batch_execute(&format!(
        "CREATE STREAM items (k TEXT, n BIGINT) WITH (partitions = 3, key = 'k');
         INSERT INTO items VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();

    // Outside a transaction block a cursor without HOLD is refused.
    fails(&c, "DECLARE c CURSOR FOR SELECT k FROM items", "25P01").await;

    c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT k FROM items ORDER BY n").await.unwrap();
    assert_eq!(rows(&c, "FETCH 4 FROM c").await, (vec!["k0".into(), "k1".into(), "k2".into(), "k3".into()], 4));
    assert_eq!(rows(&c, "MOVE 0 IN c").await, (vec![], 0));
    assert_eq!(rows(&c, "FETCH NEXT FROM c").await, (vec!["k4".into()], 1));
    assert_eq!(rows(&c, "FETCH FORWARD 2 IN c").await, (vec!["k5".into(), "k6".into()], 2));
    // The extended protocol describes the cursor's rows too.
    let got = c.query("FETCH 2 FROM c", &[]).await.unwrap();
    assert_eq!(got.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), ["k7", "k8"]);
    assert_eq!(rows(&c, "MOVE FORWARD 1 FROM c").await, (vec![], 1), "MOVE skips k9");
    assert_eq!(rows(&c, "FETCH ALL FROM c").await, (vec![], 0));
    assert_eq!(rows(&c, "FETCH 5 FROM c").await, (vec![], 0), "an exhausted cursor gives no rows");

    // Errors: a duplicate name, a missing cursor, moving backwards.
    c.batch_execute("DECLARE d CURSOR FOR SELECT n FROM items").await.unwrap();
    fails(&c, "DECLARE d CURSOR FOR SELECT n FROM items", "42P03").await;
    c.batch_execute("ROLLBACK; BEGIN; DECLARE d CURSOR FOR SELECT n FROM items").await.unwrap();
    fails(&c, "FETCH BACKWARD 1 FROM d", "55000").await;
    c.batch_execute("ROLLBACK").await.unwrap();

    // COMMIT closes cursors declared without HOLD...
    c.batch_execute("BEGIN; DECLARE e CURSOR FOR SELECT k FROM items; COMMIT").await.unwrap();
    fails(&c, "FETCH 1 FROM e", "34000").await;
    // ...and a WITH HOLD cursor lives until CLOSE.
    c.batch_execute("DECLARE h CURSOR WITH HOLD FOR SELECT k FROM items ORDER BY n").await.unwrap();
    assert_eq!(rows(&c, "FETCH 1 FROM h").await.0, ["k0"]);
    c.batch_execute("BEGIN; COMMIT").await.unwrap();
    assert_eq!(rows(&c, "FETCH 1 FROM h").await.0, ["k1"]);
    c.batch_execute("CLOSE h").await.unwrap();
    fails(&c, "CLOSE h", "34000").await;
    // A WITH HOLD cursor goes with a transaction that rolls back.
    c.batch_execute("BEGIN; DECLARE r CURSOR WITH HOLD FOR SELECT k FROM items; ROLLBACK").await.unwrap();
    fails(&c, "FETCH 1 FROM r", "34000").await;

    // Declared through the extended protocol, with a parameter.
    c.batch_execute("BEGIN").await.unwrap();
    c.execute("DECLARE p CURSOR FOR SELECT k FROM items WHERE n >= $1 ORDER BY n", &[&8i64]).await.unwrap();
    assert_eq!(rows(&c, "FETCH ALL FROM p").await, (vec!["k8".into(), "k9".into()], 2));
    c.batch_execute("COMMIT").await.unwrap();

    // A FETCH with GROUP is still the consumer-group read.
    c.batch_execute("SUBSCRIBE items GROUP g").await.unwrap();
    assert_eq!(rows(&c, "FETCH 100 FROM items GROUP g").await.0.len(), 10);
}
