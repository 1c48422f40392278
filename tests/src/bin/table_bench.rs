#![allow(clippy::print_stdout)] // a benchmark reports on stdout
//! The blackboard over the wire: prepared primary-key lookups and durable
//! upserts per second, Brikk vs PostgreSQL side by side on the same schema,
//! at 1 and 16 connections. Run with `make table-bench` (release build).
//!
//! Both systems get `kv (id BIGINT PRIMARY KEY, fact TEXT, author TEXT,
//! version BIGINT)` preloaded with `--rows` rows. Lookups are `SELECT … WHERE
//! id = $1` on random ids; upserts are `INSERT … ON CONFLICT (id) DO UPDATE
//! SET …, version = kv.version + 1` on random ids, each its own durable
//! transaction (PostgreSQL with its default `synchronous_commit = on`).

use anyhow::Result;
use brikk_tests::load::for_seconds;
use brikk_tests::pg::PgCluster;
use brikk_tests::{connect, Server};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Blackboard benchmark: primary-key lookups and upserts, Brikk vs PostgreSQL")]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Connection counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    connections: Vec<usize>,
    /// Rows preloaded into the table.
    #[arg(long, default_value_t = 10_000)]
    rows: i64,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_postgres: bool,
}

const DDL: &str = "CREATE TABLE kv (id BIGINT PRIMARY KEY, fact TEXT, author TEXT, version BIGINT NOT NULL)";
const LOOKUP: &str = "SELECT id, fact, author, version FROM kv WHERE id = $1";
const UPSERT: &str = "INSERT INTO kv VALUES ($1, $2, $3, 1) ON CONFLICT (id) \
     DO UPDATE SET fact = excluded.fact, author = excluded.author, version = kv.version + 1";

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Lookup,
    Upsert,
}

async fn preload(conn_str: &str, rows: i64) -> Result<()> {
    let c = connect(conn_str).await?;
    c.batch_execute(DDL).await?;
    let mut id = 0;
    while id < rows {
        let end = (id + 1000).min(rows);
        let values: Vec<String> = (id..end).map(|i| format!("({i}, 'fact {i}', 'agent', 1)")).collect();
        c.batch_execute(&format!("INSERT INTO kv VALUES {}", values.join(", "))).await?;
        id = end;
    }
    Ok(())
}

/// Operations/s of `conns` connections running `op` for `secs` seconds.
async fn run(conn_str: &str, op: Op, conns: usize, rows: i64, secs: u64) -> Result<f64> {
    for_seconds(conns, secs, |w, run| {
        let conn_str = conn_str.to_string();
        async move {
            let c = connect(&conn_str).await?;
            let st = c.prepare(if op == Op::Lookup { LOOKUP } else { UPSERT }).await?;
            // A per-connection linear congruential sequence of ids.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
            let fact = "x".repeat(48);
            let author = format!("agent-{w}");
            while !run.stopped() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let id = ((x >> 33) % rows as u64) as i64;
                match op {
                    Op::Lookup => {
                        let r = c.query_one(&st, &[&id]).await?;
                        debug_assert_eq!(r.get::<_, i64>(0), id);
                    }
                    Op::Upsert => {
                        c.execute(&st, &[&id, &fact, &author]).await?;
                    }
                }
                run.done(1);
            }
            Ok(())
        }
    })
    .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let brikk = Server::start(dir.path())?;
    preload(&brikk.conn_str(), args.rows).await?;
    let pg = if args.no_postgres { None } else { Some(PgCluster::start()?) };
    if let Some(pg) = &pg {
        preload(&pg.conn_str(), args.rows).await?;
    }
    println!(
        "blackboard over the wire, operations/s ({} s per cell, {} rows, prepared statements)",
        args.seconds, args.rows
    );
    println!("{:>8} {:>6} {:>12} {:>12} {:>8}", "op", "conns", "brikk", "postgres", "ratio");
    for (op, name) in [(Op::Lookup, "lookup"), (Op::Upsert, "upsert")] {
        for &conns in &args.connections {
            let b = run(&brikk.conn_str(), op, conns, args.rows, args.seconds).await?;
            let p = match &pg {
                Some(pg) => Some(run(&pg.conn_str(), op, conns, args.rows, args.seconds).await?),
                None => None,
            };
            println!(
                "{:>8} {:>6} {:>12.0} {:>12} {:>8}",
                name,
                conns,
                b,
                p.map(|p| format!("{p:.0}")).unwrap_or_else(|| "-".into()),
                p.map(|p| format!("{:.2}x", b / p)).unwrap_or_else(|| "-".into()),
            );
        }
    }
    Ok(())
}
