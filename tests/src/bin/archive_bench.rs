#![allow(clippy::print_stdout)] // a benchmark reports on stdout
//! The Parquet archive: archiving throughput, and Nexmark-style analytics
//! over archived bids, Brikk (over the wire) side by side with DuckDB on
//! the same Parquet files.
//!
//! 1. Generates N bids with the `nexmark` crate and loads them into a
//!    stream `bid` (4 partitions, `archive = true`) with `COPY … FROM
//!    STDIN`, the archiver paused (`--archive-interval-ms` of an hour).
//! 2. Restarts the server with the archiver running and times until every
//!    sealed segment is a Parquet file: archiving throughput in rows/s.
//! 3. Runs q1 (currency conversion), q2 (selection), q5 (hot items over
//!    hopping windows of 10 s sliding by 2 s, as a self-join and with a
//!    window function) and q7 (highest bid per tumbling 10 s window) through
//!    Brikk and through DuckDB (Python, installed by
//!    `scripts/install-clients.sh --python`) on the archived
//!    files, best of three each. Each query ends in a small aggregate
//!    (count and a sum) so the figures measure the query, not the transfer
//!    of millions of rows; the two engines' results are printed side by
//!    side.
//!
//! Run with `make archive-bench` (release build). It asserts nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brikk_tests::Server;
use bytes::Bytes;
use clap::Parser;
use futures::SinkExt;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use nexmark::EventGenerator;
use tokio_postgres::{Client, SimpleQueryMessage};

#[derive(Parser)]
#[command(about = "Archive benchmark: archiving throughput, Nexmark analytics on Brikk vs DuckDB")]
struct Args {
    /// Bids to generate and archive.
    #[arg(long, default_value_t = 10_000_000)]
    bids: u64,
    /// Partitions of the bid stream.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Rows per COPY while loading.
    #[arg(long, default_value_t = 500_000)]
    copy_rows: u64,
    /// Skip DuckDB.
    #[arg(long)]
    no_duckdb: bool,
}

/// Brikk's SQL (DataFusion) and DuckDB's for each query: the same meaning,
/// with each engine's name for a time bucket.
fn queries(duck: bool) -> Vec<(&'static str, String)> {
    let bucket = |secs: u32, col: &str| {
        if duck {
            format!("time_bucket(INTERVAL '{secs} seconds', {col}, TIMESTAMP '1970-01-01')")
        } else {
            format!("date_bin(INTERVAL '{secs} seconds', {col}, TIMESTAMP '1970-01-01')")
        }
    };
    // Dollars to euros at 0.908, in integer cents (DuckDB spells integer
    // division `//`).
    let div = if duck { "//" } else { "/" };
    // q5's hopping windows (10 s sliding by 2 s: each bid in five windows)
    // and the bids per auction and window: Brikk has the HOP table
    // function (as Flink's Nexmark q5 uses); DuckDB has none, so each bid
    // is joined with the five window offsets.
    let hop_counts = if duck {
        format!(
            "WITH hop AS (SELECT auction, {b} - d AS ws \
               FROM bid CROSS JOIN (VALUES (INTERVAL '0 seconds'), (INTERVAL '2 seconds'), \
               (INTERVAL '4 seconds'), (INTERVAL '6 seconds'), (INTERVAL '8 seconds')) AS t(d)), \
             counts AS (SELECT auction, ws, count(*) AS num FROM hop GROUP BY auction, ws)",
            b = bucket(2, "date_time")
        )
    } else {
        "WITH counts AS (SELECT auction, window_start AS ws, count(*) AS num \
           FROM HOP(bid, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds') GROUP BY auction, window_start)"
            .to_string()
    };
    vec![
        (
            "q1 currency conversion",
            format!(
                "SELECT count(*), sum(p) FROM (SELECT auction, bidder, (908 * price) {div} 1000 AS p, date_time FROM bid) q"
            ),
        ),
        (
            "q2 selection",
            "SELECT count(*), sum(price) FROM (SELECT auction, price FROM bid WHERE auction % 123 = 0) q".to_string(),
        ),
        (
            "q5 hot items (hop 10s/2s)",
            format!(
                "{hop_counts}, maxes AS (SELECT ws, max(num) AS maxn FROM counts GROUP BY ws) \
                 SELECT count(*), sum(c.auction) FROM counts c JOIN maxes m ON c.ws = m.ws AND c.num = m.maxn"
            ),
        ),
        (
            // q5 again, the hottest items found with a window function
            // instead of joining the counts with their maxima: DataFusion
            // evaluates a CTE once per reference, DuckDB once.
            "q5 hot items, window form",
            format!(
                "{hop_counts}, ranked AS (SELECT auction, num, max(num) OVER (PARTITION BY ws) AS maxn FROM counts) \
                 SELECT count(*), sum(auction) FROM ranked WHERE num = maxn"
            ),
        ),
        (
            "q7 highest bid (tumble 10s)",
            format!(
                "SELECT count(*), sum(b.price) FROM bid b JOIN \
                   (SELECT {w} AS ws, max(price) AS maxp FROM bid GROUP BY 1) m \
                 ON {wb} = m.ws AND b.price = m.maxp",
                w = bucket(10, "date_time"),
                wb = bucket(10, "b.date_time")
            ),
        ),
    ]
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.is_empty() {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

async fn load(c: &Client, args: &Args) -> Result<f64> {
    let mut bids = EventGenerator::new(NexmarkConfig::default()).with_type_filter(EventType::Bid);
    let t0 = Instant::now();
    let mut loaded = 0;
    while loaded < args.bids {
        let n = args.copy_rows.min(args.bids - loaded);
        let sink = c.copy_in::<_, Bytes>("COPY bid FROM STDIN (FORMAT csv)").await?;
        futures::pin_mut!(sink);
        let mut buf = String::with_capacity(1 << 20);
        for _ in 0..n {
            let Some(Event::Bid(b)) = bids.next() else { bail!("the generator gave no bid") };
            let at = chrono::DateTime::from_timestamp_millis(b.date_time as i64).context("bid time")?;
            buf.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                b.auction,
                b.bidder,
                b.price,
                csv_field(&b.channel),
                csv_field(&b.url),
                at.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f"),
                csv_field(&b.extra)
            ));
            if buf.len() > (1 << 20) {
                sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
            }
        }
        sink.send(Bytes::from(buf)).await?;
        sink.finish().await?;
        loaded += n;
    }
    Ok(args.bids as f64 / t0.elapsed().as_secs_f64())
}

async fn one_value(c: &Client, sql: &str) -> Result<i64> {
    Ok(c.query_one(sql, &[]).await?.get(0))
}

/// Runs `sql` three times; the best time and the result's text.
async fn run_brikk(c: &Client, sql: &str) -> Result<(f64, Vec<Vec<String>>)> {
    let mut best = f64::MAX;
    let mut result = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let msgs = c.simple_query(sql).await.with_context(|| sql.to_string())?;
        best = best.min(t0.elapsed().as_secs_f64() * 1000.0);
        result = msgs
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect())
                }
                _ => None,
            })
            .collect();
    }
    Ok((best, result))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    println!("archive-bench: {} bids, {} partitions, data in {}", args.bids, args.partitions, dir.path().display());

    // 1. Load with the archiver paused.
    let mut server = Server::start_with(dir.path(), &["--archive-interval-ms", "3600000"])?;
    let c = server.client().await?;
    c.batch_execute(&format!(
        "CREATE STREAM bid (auction BIGINT, bidder BIGINT, price BIGINT, channel TEXT, url TEXT, \
         date_time TIMESTAMP, extra TEXT) WITH (partitions = {}, archive = true, segment_rows = 1000000, \
         segment_age = '1 second')",
        args.partitions
    ))
    .await?;
    let load_rate = load(&c, &args).await?;
    println!("load (COPY FROM STDIN, csv): {load_rate:>12.0} rows/s");
    drop(c);
    server.terminate()?;

    // 2. Archive everything, timed.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).to_string();
    let server = Server::start_with(dir.path(), &["--archive-interval-ms", "20", "--worker-threads", &cores])?;
    let c = server.client().await?;
    let t0 = Instant::now();
    let live = "SELECT CAST(sum(end_offset - live_start_offset) AS BIGINT) FROM brikk_partitions WHERE stream = 'bid'";
    loop {
        if one_value(&c, live).await? == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(3600) {
            bail!("archiving did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let files = one_value(&c, "SELECT count(*) FROM brikk_archive WHERE stream = 'bid'").await?;
    let bytes = one_value(&c, "SELECT CAST(sum(bytes) AS BIGINT) FROM brikk_archive WHERE stream = 'bid'").await?;
    println!(
        "archiving: {:>12.0} rows/s ({} rows, {files} files, {:.1} MB of Parquet, {secs:.1} s)",
        args.bids as f64 / secs,
        args.bids,
        bytes as f64 / 1e6
    );

    // 3. The queries, Brikk then DuckDB.
    let mut brikk = Vec::new();
    for (name, sql) in queries(false) {
        brikk.push((name, run_brikk(&c, &sql).await?));
    }
    let duck = if args.no_duckdb {
        None
    } else {
        let listed = c
            .query("SELECT location || '/' || path FROM brikk_archive WHERE stream = 'bid' ORDER BY path", &[])
            .await?;
        let files: Vec<String> = listed.iter().map(|r| r.get(0)).collect();
        let qfile = dir.path().join("queries.json");
        let qs: serde_json::Map<String, serde_json::Value> =
            queries(true).into_iter().map(|(n, s)| (n.to_string(), s.into())).collect();
        std::fs::write(&qfile, serde_json::Value::Object(qs).to_string())?;
        let venv = brikk_tests::clients_venv();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/archive_duckdb.py");
        let out = std::process::Command::new(venv.join("bin/python")).arg(script).arg(&qfile).args(&files).output()?;
        if !out.status.success() {
            bail!("DuckDB failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Some(serde_json::from_slice::<serde_json::Value>(&out.stdout)?)
    };
    println!();
    println!("| query | brikk ms | duckdb ms | brikk/duckdb | same result |");
    println!("|---|---:|---:|---:|---|");
    for (name, (ms, result)) in &brikk {
        let d = duck.as_ref().and_then(|d| d.get(*name));
        let dms = d.and_then(|d| d[0].as_f64());
        let dres: Option<Vec<Vec<String>>> = d.and_then(|d| serde_json::from_value(d[1].clone()).ok());
        let same = match &dres {
            Some(r) => {
                if r == result {
                    "yes".to_string()
                } else {
                    format!("no: {result:?} vs {r:?}")
                }
            }
            None => "-".into(),
        };
        match dms {
            Some(dms) => println!("| {name} | {ms:.0} | {dms:.0} | {:.2}x | {same} |", ms / dms),
            None => println!("| {name} | {ms:.0} | - | - | - |"),
        }
    }
    Ok(())
}
