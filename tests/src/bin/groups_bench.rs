#![allow(clippy::print_stdout)] // a benchmark reports on stdout
//! Consumer groups: Brikk vs PostgreSQL, side by side on the same machine.
//!
//! 1. Consume+commit throughput of 4 workers draining N preloaded records:
//!    Brikk `FETCH ... GROUP` + `COMMIT OFFSETS` against the usual
//!    PostgreSQL work queue (`DELETE ... FOR UPDATE SKIP LOCKED RETURNING`).
//! 2. Wake-up latency from append to consumer: Brikk `FETCH ... WAIT`
//!    against PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! Run with `make groups-bench` (release build).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brikk_tests::latency::{forward, jitter, listen, micros_since, percentile, WARMUP};
use brikk_tests::pg::PgCluster;
use brikk_tests::{connect, Server};
use clap::Parser;
use tokio::sync::mpsc;
use tokio_postgres::{Client, Statement};

#[derive(Parser)]
#[command(about = "Consumer-group benchmark: Brikk vs PostgreSQL (work queue, LISTEN/NOTIFY)")]
struct Args {
    /// Records to preload and consume in the throughput test (Brikk drains
    /// 400k in about a second; fewer make the measurement too short to
    /// trust).
    #[arg(long, default_value_t = 400_000)]
    records: u64,
    /// Append-to-consumer latency samples.
    #[arg(long, default_value_t = 500)]
    samples: usize,
    /// Skip PostgreSQL (e.g. where it is not installed).
    #[arg(long)]
    no_postgres: bool,
}

/// Consuming workers in the throughput test.
const WORKERS: usize = 4;
/// Records per consume round trip (FETCH n / LIMIT n).
const BATCH: usize = 100;
/// Rows per multi-row INSERT while preloading.
const PRELOAD_BATCH: u64 = 1000;

#[derive(Clone, Copy)]
enum Target {
    /// FETCH, then COMMIT OFFSETS: two round trips per batch.
    Brikk,
    /// `COMMIT OFFSETS` of the previous batch and `FETCH` of the next in one
    /// query string: one round trip per batch, like PostgreSQL's DELETE.
    BrikkOneTrip,
    Postgres,
}

// ---------------------------------------------------------------------------
// 1. Consume+commit throughput
// ---------------------------------------------------------------------------

/// Creates `tasks` and fills it with `n` records (id, kind, 64-byte
/// payload) in multi-row INSERTs of [`PRELOAD_BATCH`] rows.
async fn preload(c: &Client, target: Target, n: u64) -> Result<()> {
    let ddl = match target {
        Target::Brikk | Target::BrikkOneTrip => {
            "CREATE STREAM tasks (id TEXT, kind TEXT, payload TEXT) WITH (partitions = 8, key = 'id')"
        }
        Target::Postgres => "CREATE TABLE tasks (seq BIGSERIAL PRIMARY KEY, id TEXT, kind TEXT, payload TEXT)",
    };
    c.batch_execute(ddl).await.with_context(|| ddl.to_string())?;
    let payload = "x".repeat(64);
    let mut start = 0;
    while start < n {
        let end = (start + PRELOAD_BATCH).min(n);
        let values: Vec<String> = (start..end).map(|i| format!("('task-{i}', 'bench', '{payload}')")).collect();
        c.batch_execute(&format!("INSERT INTO tasks (id, kind, payload) VALUES {}", values.join(", ")))
            .await
            .context("preloading tasks")?;
        start = end;
    }
    Ok(())
}

/// Opens the worker connections; on Brikk each joins group `workers`, so
/// partitions are assigned before the clock starts.
async fn open_workers(conn_str: &str, target: Target) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(WORKERS);
    for w in 0..WORKERS {
        let c = connect(conn_str).await?;
        if let Target::Brikk | Target::BrikkOneTrip = target {
            let sql = format!("SUBSCRIBE tasks GROUP workers MEMBER 'w{w}'");
            c.batch_execute(&sql).await.with_context(|| sql.clone())?;
        }
        clients.push(c);
    }
    Ok(clients)
}

/// A worker's statements, prepared once on its connection, as a worker
/// loop written against any driver would do.
struct Statements {
    /// Brikk: `FETCH n ... GROUP`; PostgreSQL: the work-queue `DELETE`.
    take: Statement,
    /// Brikk: `COMMIT OFFSETS`; none on PostgreSQL (the DELETE commits).
    commit: Option<Statement>,
}

impl Statements {
    async fn prepare(c: &Client, target: Target) -> Result<Self> {
        let (take, commit) = match target {
            Target::Brikk => (
                format!("FETCH {BATCH} FROM tasks GROUP workers WAIT '200ms'"),
                Some("COMMIT OFFSETS FOR tasks GROUP workers"),
            ),
            Target::BrikkOneTrip => unreachable!("one_trip_worker consumes for BrikkOneTrip"),
            Target::Postgres => (
                format!(
                    "DELETE FROM tasks WHERE seq IN \
                     (SELECT seq FROM tasks ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT {BATCH}) \
                     RETURNING id, kind, payload"
                ),
                None,
            ),
        };
        let take = c.prepare(&take).await.with_context(|| take.clone())?;
        let commit = match commit {
            Some(sql) => Some(c.prepare(sql).await.context(sql)?),
            None => None,
        };
        Ok(Self { take, commit })
    }
}

/// One durable consume step: the number of records taken off the queue.
/// Brikk: FETCH a batch, then COMMIT OFFSETS (skipped when nothing came).
/// PostgreSQL: one autocommit DELETE ... SKIP LOCKED ... RETURNING.
async fn consume_batch(c: &Client, statements: &Statements) -> Result<u64> {
    let rows = c.query(&statements.take, &[]).await.context("taking a batch")?;
    if let (Some(commit), false) = (&statements.commit, rows.is_empty()) {
        c.execute(commit, &[]).await.context("COMMIT OFFSETS")?;
    }
    Ok(rows.len() as u64)
}

/// Consumes until `done` (shared by all workers) reaches `n`; returns the
/// instant of this worker's last durable consume, if it consumed anything.
async fn worker(
    c: Client,
    target: Target,
    statements: Statements,
    done: Arc<AtomicU64>,
    n: u64,
) -> Result<Option<Instant>> {
    let mut last = None;
    while done.load(Ordering::Relaxed) < n {
        let got = consume_batch(&c, &statements).await?;
        if got > 0 {
            done.fetch_add(got, Ordering::Relaxed);
            last = Some(Instant::now());
        } else if let Target::Postgres = target {
            // The rest is locked by other workers (or gone): don't spin hot.
            tokio::task::yield_now().await;
        }
    }
    Ok(last)
}

/// A worker that commits the previous batch and fetches the next in one
/// round trip; a batch counts as consumed once its commit has returned.
async fn one_trip_worker(c: Client, done: Arc<AtomicU64>, n: u64) -> Result<Option<Instant>> {
    let mut last = None;
    let mut pending = 0u64;
    while done.load(Ordering::Relaxed) < n {
        // With a batch to commit, don't wait for more: its commit is due.
        let wait = if pending == 0 { " WAIT '200ms'" } else { "" };
        let sql = format!("COMMIT OFFSETS FOR tasks GROUP workers; FETCH {BATCH} FROM tasks GROUP workers{wait}");
        let messages = c.simple_query(&sql).await.with_context(|| sql.clone())?;
        if pending > 0 {
            done.fetch_add(pending, Ordering::Relaxed);
            last = Some(Instant::now());
        }
        pending = messages.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count() as u64;
    }
    Ok(last)
}

/// Records/s of [`WORKERS`] workers consuming `n` preloaded records, from
/// the workers' start to the last record durably consumed.
async fn throughput(conn_str: &str, target: Target, n: u64) -> Result<f64> {
    let admin = connect(conn_str).await?;
    preload(&admin, target, n).await?;
    let clients = open_workers(conn_str, target).await?;
    let mut prepared = Vec::with_capacity(clients.len());
    for c in clients {
        let statements = match target {
            Target::BrikkOneTrip => None,
            _ => Some(Statements::prepare(&c, target).await?),
        };
        prepared.push((c, statements));
    }
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|(c, statements)| match statements {
            None => tokio::spawn(one_trip_worker(c, done.clone(), n)),
            Some(s) => tokio::spawn(worker(c, target, s, done.clone(), n)),
        })
        .collect();
    let mut end = start;
    for t in tasks {
        if let Some(last) = t.await?? {
            end = end.max(last);
        }
    }
    let consumed = done.load(Ordering::Relaxed);
    if consumed != n {
        bail!("consumed {consumed} records, expected exactly {n} (redeliveries?)");
    }
    if let Target::Postgres = target {
        let left: i64 = admin.query_one("SELECT count(*) FROM tasks", &[]).await?.get(0);
        if left != 0 {
            bail!("{left} tasks left in the PostgreSQL queue");
        }
    }
    Ok(n as f64 / (end - start).as_secs_f64())
}

// ---------------------------------------------------------------------------
// 2. Wake-up latency
// ---------------------------------------------------------------------------

/// A consumer task; ends with the error that stopped it, if any.
type Consumer = tokio::task::JoinHandle<Result<()>>;

/// Brikk consumer: subscribes to `pings` in group `g`, then FETCHes one
/// ping at a time with WAIT and reports each ping's age (µs) on `tx`,
/// until `total` pings arrived.
async fn brikk_consumer(
    conn_str: &str,
    base: Instant,
    total: usize,
    tx: mpsc::UnboundedSender<i64>,
) -> Result<Consumer> {
    let c = connect(conn_str).await?;
    c.batch_execute("SUBSCRIBE pings GROUP g MEMBER 'consumer'").await.context("SUBSCRIBE pings")?;
    Ok(tokio::spawn(async move {
        let mut seen = 0;
        while seen < total {
            let fetch = "FETCH 1 FROM pings GROUP g WAIT '5s'";
            let rows = c.query(fetch, &[]).await.context(fetch)?;
            let now = micros_since(base);
            for r in rows {
                let sent: i64 = r.try_get("sent_us")?;
                seen += 1;
                if tx.send(now - sent).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }))
}

/// Append-to-consumer latencies in ms (sorted), after [`WARMUP`] uncounted
/// samples. The producer appends one ping at a time, each only after the
/// previous one arrived, stamped with the time just before it is sent.
async fn latency(conn_str: &str, target: Target, samples: usize) -> Result<Vec<f64>> {
    let base = Instant::now();
    let total = WARMUP + samples;
    let producer = connect(conn_str).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // `_listener` keeps the PostgreSQL LISTEN session open until the end.
    let (_listener, mut consumer) = match target {
        Target::Brikk | Target::BrikkOneTrip => {
            producer.batch_execute("CREATE STREAM pings (sent_us BIGINT) WITH (partitions = 1)").await?;
            (None, brikk_consumer(conn_str, base, total, tx).await?)
        }
        Target::Postgres => {
            producer.batch_execute("CREATE TABLE pings (sent_us BIGINT)").await?;
            let (client, task) = listen(conn_str, "pings", base, move |payload, now| {
                let sent: i64 = payload.parse().context("notification payload")?;
                Ok(forward(&tx, now - sent))
            })
            .await?;
            (Some(client), task)
        }
    };
    let mut ms = Vec::with_capacity(samples);
    for i in 0..total {
        tokio::time::sleep(jitter(i)).await;
        let sent = micros_since(base);
        let sql = match target {
            Target::Brikk | Target::BrikkOneTrip => format!("INSERT INTO pings (sent_us) VALUES ({sent})"),
            Target::Postgres => {
                format!("BEGIN; INSERT INTO pings (sent_us) VALUES ({sent}); NOTIFY pings, '{sent}'; COMMIT")
            }
        };
        producer.batch_execute(&sql).await.context("appending a ping")?;
        let received = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        let Some(age) = received.context("ping not received within 10 s")? else {
            (&mut consumer).await??;
            bail!("consumer stopped");
        };
        if i >= WARMUP {
            ms.push(age as f64 / 1000.0);
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// One row of the report: label, Brikk, PostgreSQL (if run), ratio, note.
fn row(label: &str, brikk: f64, pg: Option<f64>, decimals: usize, ratio: bool, note: &str) {
    let pg_text = pg.map(|p| format!("{p:.decimals$}")).unwrap_or_else(|| "-".into());
    let ratio_text = match pg {
        Some(p) if ratio => format!("{:.2}x", brikk / p),
        _ => "-".into(),
    };
    let line = format!("{label:<30} {brikk:>12.decimals$} {pg_text:>12} {ratio_text:>8}  {note}");
    println!("{}", line.trim_end());
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.records == 0 || args.samples == 0 {
        bail!("--records and --samples must be positive");
    }
    let dir = tempfile::tempdir()?;
    let brikk = Server::start(dir.path())?;
    let pg = if args.no_postgres { None } else { Some(PgCluster::start()?) };

    let b_rate = throughput(&brikk.conn_str(), Target::Brikk, args.records).await?;
    let dir2 = tempfile::tempdir()?;
    let brikk2 = Server::start(dir2.path())?;
    let b1_rate = throughput(&brikk2.conn_str(), Target::BrikkOneTrip, args.records).await?;
    drop(brikk2);
    let p_rate = match &pg {
        Some(pg) => Some(throughput(&pg.conn_str(), Target::Postgres, args.records).await?),
        None => None,
    };
    let b_lat = latency(&brikk.conn_str(), Target::Brikk, args.samples).await?;
    let p_lat = match &pg {
        Some(pg) => Some(latency(&pg.conn_str(), Target::Postgres, args.samples).await?),
        None => None,
    };

    println!(
        "consumer groups: {} records consumed by {WORKERS} workers ({BATCH} per round trip); {} latency samples",
        args.records, args.samples
    );
    println!("{:<30} {:>12} {:>12} {:>8}", "", "brikk", "postgres", "ratio");
    row("consume+commit records/s", b_rate, p_rate, 0, true, "(target >= 5x)");
    row("  one round trip per batch", b1_rate, p_rate, 0, true, "");
    let p = |v: &Option<Vec<f64>>, q| v.as_ref().map(|v| percentile(v, q));
    row("wake-up latency p50 ms", percentile(&b_lat, 50.0), p(&p_lat, 50.0), 2, false, "");
    row("wake-up latency p99 ms", percentile(&b_lat, 99.0), p(&p_lat, 99.0), 2, false, "(target: brikk p99 < 5 ms)");
    println!();
    println!("brikk:    FETCH n GROUP + COMMIT OFFSETS per batch (one round trip: COMMIT OFFSETS of the previous");
    println!(
        "          batch + FETCH of the next in one query string); latency = INSERT sent -> FETCH ... WAIT returns;"
    );
    println!("          the INSERT is durable (fsync) before it is visible, so the latency includes the fsync");
    println!("postgres: autocommit DELETE ... FOR UPDATE SKIP LOCKED LIMIT n RETURNING per batch;");
    println!("          latency = BEGIN; INSERT; NOTIFY; COMMIT sent -> notification received (LISTEN)");
    Ok(())
}
