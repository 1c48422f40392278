#![allow(clippy::print_stdout)] // a benchmark reports on stdout
//! The market: live matching over the wire vs PostgreSQL with a PL/pgSQL
//! matching trigger, and replay of orders already in the log vs the same
//! order book in process with no storage. Run with `make market-bench`.
//!
//! 1. **Live**: `--connections` clients append 100-row INSERTs of orders
//!    (half bids, half asks, ten skills, prices around 100) for
//!    `--seconds`; Brikk's market query matches them and appends durable
//!    trades. Throughput is orders appended and matched per second (until
//!    the query has caught up). PostgreSQL gets the same INSERTs into an
//!    `orders` table whose trigger matches each order with price–time
//!    priority and inserts the trades, in the same transaction.
//!    Latency: a crossing bid is inserted alone and the time until its
//!    trade is visible is measured (Brikk: a `LISTEN trades` notification;
//!    PostgreSQL: the INSERT's return, as the trigger runs inside it).
//! 2. **Replay**: `--replay` orders are loaded first, then a new market
//!    query is created and timed until it has caught up; the same orders go
//!    through `brikk_query::market::book::Book` in process (the ceiling).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use brikk_query::market::book::{Book, Order, Rule, Side};
use brikk_storage::Value;
use brikk_tests::pg::PgCluster;
use brikk_tests::{connect, Server};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Market benchmark: Brikk's MATCH_ORDERS vs a PostgreSQL trigger, and replay vs an in-process book")]
struct Args {
    /// Seconds of live load.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Client connections appending orders.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Latency samples.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Orders preloaded for the replay figure.
    #[arg(long, default_value_t = 1_000_000)]
    replay: u64,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_postgres: bool,
}

/// The n-th order of a client's sequence: (side is bid, id, skill, price, qty).
fn order(client: u64, n: u64) -> (bool, String, String, i64, i64) {
    let mut x = (client << 40 | n).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |m: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let bid = next(2) == 0;
    let skill = format!("skill{}", next(10));
    // Bids centre a little above asks, so about half of the orders cross.
    let price = if bid { 95 + next(12) as i64 } else { 100 + next(12) as i64 };
    (bid, format!("c{client}-{n}"), skill, price, 1 + next(5) as i64)
}

const BRIKK_DDL: &str = "
    CREATE STREAM bids (id TEXT, skill TEXT, price BIGINT, qty BIGINT) WITH (partitions = 4, key = 'id');
    CREATE STREAM asks (id TEXT, skill TEXT, price BIGINT, qty BIGINT) WITH (partitions = 4, key = 'id');
    CREATE STREAM trades (bid_id TEXT, ask_id TEXT, quantity BIGINT, price BIGINT, bid_offset BIGINT, ask_offset BIGINT)
      WITH (partitions = 4, key = 'ask_id')";

fn market_sql(name: &str) -> String {
    format!(
        "CREATE CONTINUOUS QUERY {name} AS INSERT INTO trades SELECT * FROM MATCH_ORDERS(bids, asks, \
         ON bids.skill = asks.skill AND bids.price >= asks.price, PRICE asks.price)"
    )
}

const PG_DDL: &str = r#"
    CREATE TABLE orders (id TEXT PRIMARY KEY, side TEXT NOT NULL, skill TEXT NOT NULL, price BIGINT NOT NULL,
                         qty BIGINT NOT NULL, remaining BIGINT NOT NULL, seq BIGSERIAL);
    CREATE INDEX orders_book ON orders (side, skill, price, seq) WHERE remaining > 0;
    CREATE TABLE trades (bid_id TEXT, ask_id TEXT, quantity BIGINT, price BIGINT);
    CREATE FUNCTION match_order() RETURNS trigger AS $$
    DECLARE r record; q bigint; rem bigint := NEW.remaining;
    BEGIN
      IF NEW.side = 'bid' THEN
        FOR r IN SELECT id, price, remaining FROM orders
                 WHERE side = 'ask' AND skill = NEW.skill AND price <= NEW.price AND remaining > 0
                 ORDER BY price, seq FOR UPDATE LOOP
          q := least(rem, r.remaining);
          INSERT INTO trades VALUES (NEW.id, r.id, q, r.price);
          UPDATE orders SET remaining = remaining - q WHERE id = r.id;
          rem := rem - q;
          EXIT WHEN rem = 0;
        END LOOP;
      ELSE
        FOR r IN SELECT id, price, remaining FROM orders
                 WHERE side = 'bid' AND skill = NEW.skill AND price >= NEW.price AND remaining > 0
                 ORDER BY price DESC, seq FOR UPDATE LOOP
          q := least(rem, r.remaining);
          INSERT INTO trades VALUES (r.id, NEW.id, q, NEW.price);
          UPDATE orders SET remaining = remaining - q WHERE id = r.id;
          rem := rem - q;
          EXIT WHEN rem = 0;
        END LOOP;
      END IF;
      IF rem <> NEW.remaining THEN
        UPDATE orders SET remaining = rem WHERE id = NEW.id;
      END IF;
      RETURN NULL;
    END $$ LANGUAGE plpgsql;
    CREATE TRIGGER match AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION match_order();"#;

/// The INSERT statements of one 100-order batch.
fn batch_sql(brikk: bool, client: u64, first: u64) -> Vec<String> {
    let (mut bids, mut asks, mut all) = (Vec::new(), Vec::new(), Vec::new());
    for n in first..first + 100 {
        let (bid, id, skill, price, qty) = order(client, n);
        if brikk {
            let row = format!("('{id}', '{skill}', {price}, {qty})");
            if bid {
                bids.push(row)
            } else {
                asks.push(row)
            }
        } else {
            let side = if bid { "bid" } else { "ask" };
            all.push(format!("('{id}', '{side}', '{skill}', {price}, {qty}, {qty})"));
        }
    }
    if brikk {
        let mut out = Vec::new();
        if !bids.is_empty() {
            out.push(format!("INSERT INTO bids VALUES {}", bids.join(", ")));
        }
        if !asks.is_empty() {
            out.push(format!("INSERT INTO asks VALUES {}", asks.join(", ")));
        }
        out
    } else {
        // Matching is serialised, as a single market maker would be: row
        // locks taken by concurrent triggers in different orders deadlock,
        // and each deadlock costs PostgreSQL `deadlock_timeout` (1 s).
        vec![format!(
            "BEGIN; LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE; \
             INSERT INTO orders (id, side, skill, price, qty, remaining) VALUES {}; COMMIT",
            all.join(", ")
        )]
    }
}

/// Orders appended per second by `conns` clients for `secs`; returns the
/// number of orders appended and the elapsed time.
async fn load(conn_str: &str, brikk: bool, conns: usize, secs: u64) -> Result<(u64, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in 0..conns as u64 {
        let (conn_str, stop, done) = (conn_str.to_string(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let c = connect(&conn_str).await?;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                for sql in batch_sql(brikk, client, n) {
                    c.batch_execute(&sql).await?;
                }
                n += 100;
                done.fetch_add(100, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok((done.load(Ordering::Relaxed), start.elapsed().as_secs_f64()))
}

async fn lag(c: &tokio_postgres::Client) -> Result<i64> {
    Ok(c.query_one("SELECT coalesce(sum(lag), 0)::BIGINT FROM brikk_queries", &[]).await?.get(0))
}

async fn wait_caught_up(c: &tokio_postgres::Client) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while lag(c).await? > 0 {
        if Instant::now() > deadline {
            bail!("the market query did not catch up");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Brikk: bid → trade notification latency, in ms.
async fn brikk_latency(conn_str: &str, samples: usize) -> Result<(f64, f64)> {
    let (listener, mut conn) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        use futures::StreamExt;
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    listener.batch_execute("LISTEN trades").await?;
    let c = connect(conn_str).await?;
    c.batch_execute("INSERT INTO asks VALUES ('probe-ask', 'probe', 1, 1000000000)").await?;
    let insert = c.prepare("INSERT INTO bids VALUES ($1, 'probe', 2, 1)").await?;
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples + 20 {
        let id = format!("probe-{i}");
        let t0 = Instant::now();
        c.execute(&insert, &[&id]).await?;
        loop {
            let payload = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await?.unwrap_or_default();
            if payload.contains(&format!("\"{id}\"")) {
                break;
            }
        }
        if i >= 20 {
            lat.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    pump.abort();
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok((percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

/// PostgreSQL: the INSERT of a crossing bid returns with its trade made.
async fn pg_latency(conn_str: &str, samples: usize) -> Result<(f64, f64)> {
    let c = connect(conn_str).await?;
    c.batch_execute("INSERT INTO orders (id, side, skill, price, qty, remaining) VALUES ('probe-ask', 'ask', 'probe', 1, 1000000000, 1000000000)").await?;
    let insert = c
        .prepare("INSERT INTO orders (id, side, skill, price, qty, remaining) VALUES ($1, 'bid', 'probe', 2, 1, 1)")
        .await?;
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples + 20 {
        let id = format!("probe-{i}");
        let t0 = Instant::now();
        c.execute(&insert, &[&id]).await?;
        if i >= 20 {
            lat.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok((percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

/// The ceiling: the same orders through the order book in process.
struct AskPrice;

impl Rule for AskPrice {
    fn matches(&self, bid: &[Value], ask: &[Value]) -> brikk_query::Result<bool> {
        Ok(bid[1] == ask[1] && brikk_query::market::expr::num(&bid[2]) >= brikk_query::market::expr::num(&ask[2]))
    }
    fn price(&self, _bid: &[Value], ask: &[Value]) -> brikk_query::Result<Value> {
        Ok(ask[2].clone())
    }
    fn requires_cross(&self) -> bool {
        true
    }
}

/// The same orders as the replay's `clients` loaders appended, `per_client`
/// each, fed client by client (the log interleaves the clients, so the trade
/// count differs a little from Brikk's).
fn in_process(clients: u64, per_client: u64) -> Result<(f64, u64)> {
    let start = Instant::now();
    let mut book = Book::default();
    let mut changes = Vec::new();
    let mut trades = 0u64;
    let orders = (0..clients).flat_map(|c| (0..per_client).map(move |n| order(c, n)));
    for (i, (bid, id, skill, price, qty)) in (0u64..).zip(orders) {
        let o = Order {
            seq: i,
            side: if bid { Side::Bid } else { Side::Ask },
            id: Value::Text(id.clone()),
            price: price as f64,
            remaining: qty,
            expires_at: None,
            bucket: skill.as_bytes().to_vec(),
            row: vec![Value::Text(id), Value::Text(skill), Value::Int(price), Value::Int(qty)],
            partition: 0,
            offset: i,
        };
        trades += book.submit(o, i as i64, &AskPrice, &mut changes)?.len() as u64;
        changes.clear();
    }
    Ok(((clients * per_client) as f64 / start.elapsed().as_secs_f64(), trades))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("market benchmark ({} s of live load, {} connections, 100-order INSERTs)", args.seconds, args.connections);

    // 1. Live.
    let dir = tempfile::tempdir()?;
    let brikk = Server::start(dir.path())?;
    let c = connect(&brikk.conn_str()).await?;
    c.batch_execute(BRIKK_DDL).await?;
    c.batch_execute(&market_sql("market")).await?;
    let start = Instant::now();
    let (orders, _) = load(&brikk.conn_str(), true, args.connections, args.seconds).await?;
    wait_caught_up(&c).await?;
    let brikk_live = orders as f64 / start.elapsed().as_secs_f64();
    let trades: i64 = c.query_one("SELECT count(*) FROM trades", &[]).await?.get(0);
    let (b50, b99) = brikk_latency(&brikk.conn_str(), args.samples).await?;
    drop(brikk);

    let pg = if args.no_postgres { None } else { Some(PgCluster::start()?) };
    let pg_figures = match &pg {
        Some(pg) => {
            let c = connect(&pg.conn_str()).await?;
            c.batch_execute(PG_DDL).await?;
            let (orders, secs) = load(&pg.conn_str(), false, args.connections, args.seconds).await?;
            let pg_trades: i64 = c.query_one("SELECT count(*) FROM trades", &[]).await?.get(0);
            let (p50, p99) = pg_latency(&pg.conn_str(), args.samples).await?;
            Some((orders as f64 / secs, pg_trades, p50, p99))
        }
        None => None,
    };
    println!();
    println!("live: orders appended and matched per second, and bid -> trade visible latency");
    println!("{:>10} {:>14} {:>10} {:>10} {:>10}", "system", "orders/s", "trades", "p50 ms", "p99 ms");
    println!("{:>10} {:>14.0} {:>10} {:>10.2} {:>10.2}", "brikk", brikk_live, trades, b50, b99);
    if let Some((o, t, p50, p99)) = pg_figures {
        println!("{:>10} {:>14.0} {:>10} {:>10.2} {:>10.2}", "postgres", o, t, p50, p99);
        println!("ratio (brikk/postgres orders/s): {:.1}x", brikk_live / o);
    }
    drop(pg);

    // 2. Replay.
    let dir = tempfile::tempdir()?;
    let brikk = Server::start(dir.path())?;
    let c = connect(&brikk.conn_str()).await?;
    c.batch_execute(BRIKK_DDL).await?;
    let per_client = args.replay / 4;
    let mut loaders = Vec::new();
    for client in 0..4u64 {
        let conn = brikk.conn_str();
        loaders.push(tokio::spawn(async move {
            let c = connect(&conn).await?;
            let mut n = 0;
            while n < per_client {
                for sql in batch_sql(true, client, n) {
                    c.batch_execute(&sql).await?;
                }
                n += 100;
            }
            anyhow::Ok(())
        }));
    }
    for l in loaders {
        l.await??;
    }
    let start = Instant::now();
    c.batch_execute(&market_sql("replay")).await?;
    wait_caught_up(&c).await?;
    let replay = (per_client * 4) as f64 / start.elapsed().as_secs_f64();
    let replay_trades: i64 = c.query_one("SELECT count(*) FROM trades", &[]).await?.get(0);
    let (ceiling, ceiling_trades) = tokio::task::spawn_blocking(move || in_process(4, per_client)).await??;
    println!();
    println!("replay: a new market query catching up over {} orders in the log", per_client * 4);
    println!("{:>22} {:>14} {:>10}", "", "orders/s", "trades");
    println!("{:>22} {:>14.0} {:>10}", "brikk (durable)", replay, replay_trades);
    println!("{:>22} {:>14.0} {:>10}", "in-process book", ceiling, ceiling_trades);
    println!("brikk / in-process: {:.0}%", 100.0 * replay / ceiling);
    Ok(())
}
