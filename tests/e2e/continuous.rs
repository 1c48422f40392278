//! Continuous queries under SIGKILL: a market and a filter keep running
//! while the server is killed again and again; at the end their sinks hold
//! exactly what an uninterrupted run produces — nothing lost, nothing twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brikk_tests::Server;
use tokio_postgres::Client;

/// Waits until every continuous query has read everything.
async fn caught_up(c: &Client, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let rows = c.query("SELECT name, status, lag, last_error FROM brikk_queries", &[]).await.unwrap();
        let busy: Vec<String> = rows
            .iter()
            .filter(|r| r.get::<_, i64>(2) > 0 || r.get::<_, String>(1) != "running")
            .map(|r| {
                format!(
                    "{} {} lag {} {:?}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, Option<String>>(3)
                )
            })
            .collect();
        if busy.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "continuous queries did not catch up: {busy:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Trade = (String, String, i64, String, i64, i64);

async fn trades(c: &Client, sink: &str) -> BTreeMap<Trade, usize> {
    let mut out = BTreeMap::new();
    let sql = format!("SELECT bid_id, ask_id, quantity, CAST(price AS TEXT), bid_offset, ask_offset FROM {sink}");
    for r in c.query(&sql, &[]).await.unwrap() {
        *out.entry((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).or_insert(0) += 1;
    }
    out
}

const MARKET_DDL: &str = "
    CREATE STREAM bids (id TEXT, skill TEXT, price BIGINT, qty BIGINT) WITH (partitions = 2, key = 'id');
    CREATE STREAM asks (id TEXT, skill TEXT, price BIGINT, qty BIGINT) WITH (partitions = 2, key = 'id');
    CREATE STREAM cancels (side TEXT, id TEXT);
    CREATE STREAM trades (bid_id TEXT, ask_id TEXT, quantity BIGINT, price BIGINT, bid_offset BIGINT, ask_offset BIGINT);
    CREATE STREAM trades_ref (bid_id TEXT, ask_id TEXT, quantity BIGINT, price BIGINT, bid_offset BIGINT, ask_offset BIGINT);
    CREATE STREAM jobs (id BIGINT, kind TEXT);
    CREATE STREAM done_jobs (id BIGINT)";

fn market(name: &str, sink: &str) -> String {
    format!(
        "CREATE CONTINUOUS QUERY {name} AS INSERT INTO {sink} SELECT * FROM MATCH_ORDERS(bids, asks, CANCELS cancels, \
         ON bids.skill = asks.skill AND bids.price >= asks.price, PRICE (bids.price + asks.price) / 2)"
    )
}

/// One batch of orders, deterministic in `round`.
fn batch(round: u64) -> Vec<String> {
    let mut x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut sql = Vec::new();
    let (mut bids, mut asks) = (Vec::new(), Vec::new());
    for i in 0..30 {
        let skill = ["code", "write", "review"][next(3) as usize];
        let row = format!("('{round}-{i}', '{skill}', {}, {})", 10 + next(20), 1 + next(4));
        if next(2) == 0 {
            bids.push(row);
        } else {
            asks.push(row);
        }
    }
    if !bids.is_empty() {
        sql.push(format!("INSERT INTO bids VALUES {}", bids.join(", ")));
    }
    if !asks.is_empty() {
        sql.push(format!("INSERT INTO asks VALUES {}", asks.join(", ")));
    }
    if round.is_multiple_of(3) {
        let side = if next(2) == 0 { "bid" } else { "ask" };
        sql.push(format!("INSERT INTO cancels VALUES ('{side}', '{}-{}')", round.saturating_sub(1), next(30)));
    }
    sql.push(format!(
        "INSERT INTO jobs VALUES {}",
        (0..10)
            .map(|j| format!("({}, '{}')", round * 10 + j, if j % 2 == 0 { "done" } else { "open" }))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    sql
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sigkill_neither_loses_nor_repeats_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).unwrap();
    let c = server.client().await.unwrap();
    c.batch_execute(MARKET_DDL).await.unwrap();
    c.batch_execute(&market("market", "trades")).await.unwrap();
    c.batch_execute("CREATE CONTINUOUS QUERY finish AS INSERT INTO done_jobs SELECT id FROM jobs WHERE kind = 'done'")
        .await
        .unwrap();
    let mut round = 0u64;
    for kill in 0..4 {
        let c = server.client().await.unwrap();
        // Orders stream in; the kill lands while the queries are busy.
        let until = Instant::now() + Duration::from_millis(600 + 150 * kill);
        while Instant::now() < until {
            for sql in batch(round) {
                if c.batch_execute(&sql).await.is_err() {
                    break;
                }
            }
            round += 1;
        }
        server.kill9();
        server = Server::start(dir.path()).unwrap();
    }
    let c = server.client().await.unwrap();
    for _ in 0..5 {
        for sql in batch(round) {
            c.batch_execute(&sql).await.unwrap();
        }
        round += 1;
    }
    caught_up(&c, Duration::from_secs(60)).await;
    // The uninterrupted run: a new market over the same orders from offset 0.
    c.batch_execute(&market("market_ref", "trades_ref")).await.unwrap();
    caught_up(&c, Duration::from_secs(60)).await;
    let (got, want) = (trades(&c, "trades").await, trades(&c, "trades_ref").await);
    assert!(!want.is_empty(), "the orders made no trades; the test tests nothing");
    assert!(want.values().all(|n| *n == 1), "a trade repeats within one run");
    assert_eq!(got, want, "trades after {round} rounds and 4 kills differ from an uninterrupted run");
    // The filter: every 'done' job exactly once.
    let done: Vec<i64> =
        c.query("SELECT id FROM done_jobs ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let expected: Vec<i64> = c
        .query("SELECT id FROM jobs WHERE kind = 'done' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(done, expected, "done_jobs differs from the done jobs");
}
