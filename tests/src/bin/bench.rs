#![allow(clippy::print_stdout)] // a benchmark reports on stdout
//! Durable appends over the wire: Brikk vs PostgreSQL, side by side, plus
//! the storage ceiling (synced RocksDB write batches, no SQL, no wire).
//!
//! For 1, 8 and 32 connections and single-row and 100-row INSERTs (prepared
//! statements), it runs each system for a fixed time and prints rows/s and
//! the Brikk/PostgreSQL ratio. Then one connection sends 1,000-row INSERTs
//! of literals as plain query strings, as `psql -f` loads a script. Run with
//! `make bench` (release build).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use brikk_tests::load::for_seconds;
use brikk_tests::pg::PgCluster;
use brikk_tests::{connect, Server};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Durable-append benchmark: Brikk vs PostgreSQL vs raw RocksDB")]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Connection counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    connections: Vec<usize>,
    /// Rows per INSERT to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    rows: Vec<usize>,
    /// Rows per INSERT of literals sent as a plain query string by one
    /// connection (like `psql -f`); 0 skips that measurement.
    #[arg(long, default_value_t = 1000)]
    script_rows: usize,
    /// Skip PostgreSQL (e.g. where it is not installed).
    #[arg(long)]
    no_postgres: bool,
}

#[derive(Clone, Copy)]
enum Target {
    Brikk,
    Postgres,
}

/// Creates the relation the rows go to: a stream with 8 partitions keyed by
/// the first column on Brikk, a plain table on PostgreSQL.
async fn create(conn_str: &str, target: Target, table: &str) -> Result<()> {
    let ddl = match target {
        Target::Brikk => format!(
            "CREATE STREAM {table} (task_id TEXT, kind TEXT, payload TEXT) WITH (partitions = 8, key = 'task_id')"
        ),
        Target::Postgres => format!("CREATE TABLE {table} (task_id TEXT, kind TEXT, payload TEXT)"),
    };
    connect(conn_str).await?.batch_execute(&ddl).await?;
    Ok(())
}

/// Rows/s of `conns` connections each running prepared `rows`-row INSERTs.
async fn wire(conn_str: &str, target: Target, conns: usize, rows: usize, secs: u64) -> Result<f64> {
    let table = format!("bench_{conns}_{rows}");
    create(conn_str, target, &table).await?;
    let values: Vec<String> = (0..rows).map(|r| format!("(${}, ${}, ${})", 3 * r + 1, 3 * r + 2, 3 * r + 3)).collect();
    let sql = format!("INSERT INTO {table} VALUES {}", values.join(", "));
    for_seconds(conns, secs, |w, run| {
        let (conn_str, sql) = (conn_str.to_string(), sql.clone());
        async move {
            let c = connect(&conn_str).await?;
            let st = c.prepare(&sql).await?;
            let payload = "x".repeat(64);
            let mut i = 0u64;
            while !run.stopped() {
                let ids: Vec<String> = (0..rows).map(|r| format!("w{w}-{i}-{r}")).collect();
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::with_capacity(rows * 3);
                for id in &ids {
                    params.push(id);
                    params.push(&"bench");
                    params.push(&payload);
                }
                c.execute(&st, &params).await?;
                run.done(rows as u64);
                i += 1;
            }
            Ok(())
        }
    })
    .await
}

/// Rows/s of one connection sending `rows`-row INSERTs of literals as plain
/// query strings, the way `psql -f` loads a script.
async fn script(conn_str: &str, target: Target, rows: usize, secs: u64) -> Result<f64> {
    let table = format!("script_{rows}");
    create(conn_str, target, &table).await?;
    for_seconds(1, secs, |_, run| {
        let (conn_str, table) = (conn_str.to_string(), table.clone());
        async move {
            let c = connect(&conn_str).await?;
            let payload = "x".repeat(64);
            let mut i = 0u64;
            while !run.stopped() {
                let values: Vec<String> = (0..rows).map(|r| format!("('s-{i}-{r}', 'bench', '{payload}')")).collect();
                c.batch_execute(&format!("INSERT INTO {table} VALUES {}", values.join(", "))).await?;
                run.done(rows as u64);
                i += 1;
            }
            Ok(())
        }
    })
    .await
}

/// Rows/s of `threads` threads each writing synced `rows`-put WriteBatches
/// straight into RocksDB: the ceiling for any durable append path.
fn rocksdb_ceiling(threads: usize, rows: usize, secs: u64) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let db = Arc::new(rocksdb::DB::open(&opts, dir.path())?);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, stop, done) = (db.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut wo = rocksdb::WriteOptions::default();
                wo.set_sync(true);
                let value = vec![b'x'; 90];
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut b = rocksdb::WriteBatch::default();
                    for r in 0..rows {
                        let mut key = (t as u64).to_be_bytes().to_vec();
                        key.extend_from_slice(&i.to_be_bytes());
                        key.extend_from_slice(&(r as u32).to_be_bytes());
                        b.put(key, &value);
                    }
                    db.write_opt(b, &wo).expect("write");
                    done.fetch_add(rows as u64, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    Ok(n as f64 / elapsed)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let brikk = Server::start(dir.path())?;
    let pg = if args.no_postgres { None } else { Some(PgCluster::start()?) };
    println!("durable appends, rows/s ({} s per cell; prepared INSERTs of 3 text columns)", args.seconds);
    println!(
        "{:>6} {:>5} {:>12} {:>12} {:>8} {:>14} {:>8}",
        "conns", "rows", "brikk", "postgres", "ratio", "rocksdb-raw", "of-raw"
    );
    for &rows in &args.rows {
        for &conns in &args.connections {
            let b = wire(&brikk.conn_str(), Target::Brikk, conns, rows, args.seconds).await?;
            let p = match &pg {
                Some(pg) => Some(wire(&pg.conn_str(), Target::Postgres, conns, rows, args.seconds).await?),
                None => None,
            };
            let raw = tokio::task::spawn_blocking({
                let secs = args.seconds;
                move || rocksdb_ceiling(conns, rows, secs)
            })
            .await??;
            println!(
                "{:>6} {:>5} {:>12.0} {:>12} {:>8} {:>14.0} {:>7.0}%",
                conns,
                rows,
                b,
                p.map(|p| format!("{p:.0}")).unwrap_or_else(|| "-".into()),
                p.map(|p| format!("{:.2}x", b / p)).unwrap_or_else(|| "-".into()),
                raw,
                100.0 * b / raw
            );
        }
    }
    if args.script_rows > 0 {
        let rows = args.script_rows;
        let b = script(&brikk.conn_str(), Target::Brikk, rows, args.seconds).await?;
        let p = match &pg {
            Some(pg) => Some(script(&pg.conn_str(), Target::Postgres, rows, args.seconds).await?),
            None => None,
        };
        println!(
            "script: 1 connection, {rows}-row INSERTs of literals as query strings: brikk {b:.0}, postgres {}, ratio {}",
            p.map(|p| format!("{p:.0}")).unwrap_or_else(|| "-".into()),
            p.map(|p| format!("{:.2}x", b / p)).unwrap_or_else(|| "-".into()),
        );
    }
    Ok(())
}
