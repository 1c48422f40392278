#![allow(clippy::print_stdout)] // a benchmark reports on stdout
//! Append-to-notification latency: Brikk `LISTEN` on a stream against
//! PostgreSQL `LISTEN`/`NOTIFY` and Redis Streams `XREAD BLOCK`, with 1 and
//! with many listeners, side by side on the same machine.
//!
//! PostgreSQL runs twice: as a durable append (an INSERT whose trigger
//! notifies at commit, the comparison the target is about) and as a bare
//! `pg_notify`, which appends and syncs nothing (for reference).
//!
//! A sample's latency is the time from just before the append is sent until
//! the last listener received it; the p99 over every single delivery is
//! reported too.
//!
//! Run with `make notify-bench` (release build).

use std::net::TcpStream as StdTcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use brikk_tests::latency::{forward, jitter, listen, micros_since, percentile, WARMUP};
use brikk_tests::pg::PgCluster;
use brikk_tests::{connect, Server};
use clap::Parser;
use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_postgres::Client;

#[derive(Parser)]
#[command(about = "Append-to-notification latency: Brikk LISTEN vs PostgreSQL NOTIFY vs Redis XREAD BLOCK")]
struct Args {
    /// Latency samples per (system, listeners) run.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// Listener counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    listeners: Vec<usize>,
    /// Skip PostgreSQL (e.g. where it is not installed).
    #[arg(long)]
    no_postgres: bool,
    /// Skip Redis (e.g. where it is not installed).
    #[arg(long)]
    no_redis: bool,
}

/// How long the producer waits for every listener to receive a sample.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
enum System {
    Brikk,
    /// `pg_notify` alone: nothing is appended, nothing is synced.
    Postgres,
    /// A durable append: an INSERT whose trigger notifies at commit.
    PostgresAppend,
    Redis,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Brikk => "brikk",
            System::Postgres => "pg notify",
            System::PostgresAppend => "pg append",
            System::Redis => "redis",
        }
    }
}

/// A delivery: the sequence number a listener received and when (µs since
/// the run's base instant).
type Delivery = (i64, i64);

/// A listener task; ends with the error that stopped it, if any.
type Listener = tokio::task::JoinHandle<Result<()>>;

// ---------------------------------------------------------------------------
// Postgres wire protocol listeners (Brikk and PostgreSQL)
// ---------------------------------------------------------------------------

/// The sequence number in a notification's payload: Brikk sends the record
/// as JSON (`{"partition":..,"row":{"seq":12}}`), PostgreSQL the number.
fn payload_seq(system: System, payload: &str) -> Result<i64> {
    match system {
        System::Brikk => {
            let v: serde_json::Value = serde_json::from_str(payload).context("notification JSON")?;
            v["row"]["seq"].as_i64().ok_or_else(|| anyhow!("no row.seq in notification {payload}"))
        }
        _ => payload.parse().with_context(|| format!("notification payload {payload:?}")),
    }
}

// ---------------------------------------------------------------------------
// Redis: a private durable server and a tiny RESP client
// ---------------------------------------------------------------------------

/// A `redis-server` child on a free port, appendonly with fsync on every
/// write, in a temp dir. Killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> Result<RedisServer> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--dir"])
            .arg(dir.path())
            .args(["--maxclients", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning redis-server (install it, or pass --no-redis)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while StdTcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("redis-server exited at startup: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("redis-server did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RedisServer { child, port, _dir: dir })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RESP reply.
#[derive(Debug)]
enum Resp {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    fn text(&self) -> Result<String> {
        match self {
            Resp::Simple(s) => Ok(s.clone()),
            Resp::Int(n) => Ok(n.to_string()),
            Resp::Bulk(Some(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            other => bail!("expected a string, got {other:?}"),
        }
    }

    fn items(&self) -> Result<&[Resp]> {
        match self {
            Resp::Array(Some(v)) => Ok(v),
            other => bail!("expected an array, got {other:?}"),
        }
    }
}

/// One Redis connection: commands out, replies in, one at a time.
struct Redis {
    conn: BufReader<TcpStream>,
}

impl Redis {
    async fn connect(port: u16) -> Result<Redis> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.context("connecting to redis")?;
        stream.set_nodelay(true)?;
        Ok(Redis { conn: BufReader::new(stream) })
    }

    /// Sends `args` as a RESP array of bulk strings and reads the reply.
    async fn cmd(&mut self, args: &[&str]) -> Result<Resp> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.conn.get_mut().write_all(&out).await?;
        read_resp(&mut self.conn).await
    }
}

/// Reads one RESP value; a server error becomes an `Err`.
fn read_resp(r: &mut BufReader<TcpStream>) -> BoxFuture<'_, Result<Resp>> {
    Box::pin(async move {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            bail!("redis closed the connection");
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        let num = || rest.parse::<i64>().with_context(|| format!("bad RESP line {line:?}"));
        Ok(match kind {
            "+" => Resp::Simple(rest.to_string()),
            "-" => bail!("redis error: {rest}"),
            ":" => Resp::Int(num()?),
            "$" => match num()? {
                n if n < 0 => Resp::Bulk(None),
                n => {
                    let mut buf = vec![0; n as usize + 2];
                    r.read_exact(&mut buf).await?;
                    buf.truncate(n as usize);
                    Resp::Bulk(Some(buf))
                }
            },
            "*" => match num()? {
                n if n < 0 => Resp::Array(None),
                n => {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(read_resp(r).await?);
                    }
                    Resp::Array(Some(items))
                }
            },
            _ => bail!("bad RESP line {line:?}"),
        })
    })
}

/// A Redis Streams consumer: `XREAD BLOCK 0 STREAMS pings <last id>` in a
/// loop from the start of the stream, reporting each entry's `seq` field and
/// arrival on `tx`.
async fn redis_listener(port: u16, base: Instant, tx: mpsc::UnboundedSender<Delivery>) -> Result<Listener> {
    let mut redis = Redis::connect(port).await?;
    Ok(tokio::spawn(async move {
        let mut last_id = "0-0".to_string();
        loop {
            let reply = redis.cmd(&["XREAD", "BLOCK", "0", "STREAMS", "pings", &last_id]).await?;
            let now = micros_since(base);
            // [[stream, [[id, [field, value, ...]], ...]]]
            for stream in reply.items()? {
                for entry in stream.items()?.get(1).context("XREAD reply without entries")?.items()? {
                    let [id, fields] = entry.items()? else { bail!("bad XREAD entry {entry:?}") };
                    last_id = id.text()?;
                    let fields = fields.items()?;
                    let seq = fields.get(1).context("entry without seq")?.text()?.parse()?;
                    if tx.send((seq, now)).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }))
}

// ---------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------

/// Where the producer appends.
enum Producer {
    /// Brikk: `INSERT INTO pings VALUES ($1)`, durable before it returns.
    Brikk(Client),
    /// PostgreSQL: autocommit `SELECT pg_notify('pings', $1::text)`.
    Postgres(Client),
    /// PostgreSQL: autocommit `INSERT INTO pings VALUES ($1)`, notified by
    /// [`PG_APPEND_DDL`]'s trigger, durable before it returns.
    PostgresAppend(Client),
    /// Redis: `XADD pings * seq <n>`, fsynced before it returns.
    Redis(Redis),
}

impl Producer {
    async fn append(&mut self, seq: i64) -> Result<()> {
        match self {
            Producer::Brikk(c) => {
                c.execute("INSERT INTO pings VALUES ($1)", &[&seq]).await?;
            }
            Producer::Postgres(c) => {
                c.execute("SELECT pg_notify('pings', $1::text)", &[&seq.to_string()]).await?;
            }
            Producer::PostgresAppend(c) => {
                c.execute("INSERT INTO pings VALUES ($1)", &[&seq]).await?;
            }
            Producer::Redis(r) => {
                r.cmd(&["XADD", "pings", "*", "seq", &seq.to_string()]).await?;
            }
        }
        Ok(())
    }
}

/// PostgreSQL's durable append with notification: a table of pings whose
/// rows are announced at commit by a trigger, the usual way to pair a
/// LISTEN with stored events.
const PG_APPEND_DDL: &str = "DROP TABLE IF EXISTS pings; \
    CREATE TABLE pings (seq BIGINT); \
    CREATE OR REPLACE FUNCTION notify_ping() RETURNS trigger LANGUAGE plpgsql AS \
      $$BEGIN PERFORM pg_notify('pings', NEW.seq::text); RETURN NEW; END$$; \
    CREATE TRIGGER pings_notify AFTER INSERT ON pings FOR EACH ROW EXECUTE FUNCTION notify_ping()";

/// The latencies (ms, sorted) of one run.
struct Latencies {
    /// Per sample: until the last listener received it.
    last: Vec<f64>,
    /// Every single delivery to every listener.
    all: Vec<f64>,
    /// Deliveries of a sequence number other than the one awaited.
    unexpected: Vec<String>,
}

/// Where a run connects: a Postgres connection string or a Redis port.
enum Endpoint<'a> {
    Pg(&'a str),
    Redis(u16),
}

/// Append-to-notification latencies with `listeners` listeners, after
/// [`WARMUP`] uncounted samples. The producer appends one record at a time,
/// each only after every listener received the previous one.
async fn latency(system: System, endpoint: Endpoint<'_>, listeners: usize, samples: usize) -> Result<Latencies> {
    let base = Instant::now();
    let total = WARMUP + samples;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // `_sessions` keeps the LISTEN sessions open until the end.
    let mut _sessions = Vec::new();
    let mut tasks = Vec::with_capacity(listeners);
    let mut producer = match endpoint {
        Endpoint::Pg(conn_str) => {
            let c = connect(conn_str).await?;
            match system {
                System::Brikk => {
                    c.batch_execute("CREATE STREAM pings (seq BIGINT)").await.context("CREATE STREAM pings")?
                }
                System::PostgresAppend => {
                    c.batch_execute(PG_APPEND_DDL).await.context("the pings table and trigger")?
                }
                _ => {}
            }
            for _ in 0..listeners {
                let tx = tx.clone();
                let (client, task) = listen(conn_str, "pings", base, move |payload, now| {
                    Ok(forward(&tx, (payload_seq(system, payload)?, now)))
                })
                .await?;
                _sessions.push(client);
                tasks.push(task);
            }
            match system {
                System::Brikk => Producer::Brikk(c),
                System::PostgresAppend => Producer::PostgresAppend(c),
                _ => Producer::Postgres(c),
            }
        }
        Endpoint::Redis(port) => {
            let mut r = Redis::connect(port).await?;
            r.cmd(&["DEL", "pings"]).await?;
            for _ in 0..listeners {
                tasks.push(redis_listener(port, base, tx.clone()).await?);
            }
            Producer::Redis(r)
        }
    };
    drop(tx);
    // Let the Redis consumers reach their first XREAD BLOCK (the Postgres
    // ones are listening once LISTEN returned); they'd catch up from 0-0
    // anyway, but the first samples would be skewed.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut lat = Latencies { last: Vec::with_capacity(samples), all: Vec::new(), unexpected: Vec::new() };
    for i in 0..total {
        tokio::time::sleep(jitter(i)).await;
        let seq = i as i64;
        let sent = micros_since(base);
        producer.append(seq).await.context("appending a ping")?;
        let mut got = 0;
        let mut last = 0;
        while got < listeners {
            let received = tokio::time::timeout(RECEIVE_TIMEOUT, rx.recv()).await;
            let Ok(received) = received else {
                bail!(
                    "{}: ping {seq} reached {got} of {listeners} listeners within {RECEIVE_TIMEOUT:?}",
                    system.name()
                );
            };
            let Some((s, at)) = received else {
                for t in tasks {
                    t.await??;
                }
                bail!("{}: listeners stopped", system.name());
            };
            if s != seq {
                lat.unexpected.push(format!("seq {s} while awaiting {seq}"));
                continue;
            }
            got += 1;
            last = last.max(at);
            if i >= WARMUP {
                lat.all.push((at - sent) as f64 / 1000.0);
            }
        }
        if i >= WARMUP {
            lat.last.push((last - sent) as f64 / 1000.0);
        }
    }
    for t in &tasks {
        t.abort();
    }
    lat.last.sort_by(f64::total_cmp);
    lat.all.sort_by(f64::total_cmp);
    Ok(lat)
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.samples == 0 || args.listeners.is_empty() || args.listeners.contains(&0) {
        bail!("--samples and --listeners must be positive");
    }
    let pg = if args.no_postgres { None } else { Some(PgCluster::start()?) };
    let redis = if args.no_redis { None } else { Some(RedisServer::start()?) };

    let mut rows = Vec::new();
    for &n in &args.listeners {
        // A fresh Brikk per run, so each starts from an empty `pings`.
        let dir = tempfile::tempdir()?;
        let brikk = Server::start(dir.path())?;
        let conn_str = brikk.conn_str();
        rows.push((System::Brikk, n, latency(System::Brikk, Endpoint::Pg(&conn_str), n, args.samples).await?));
        drop(brikk);
        if let Some(pg) = &pg {
            let conn_str = pg.conn_str();
            for system in [System::PostgresAppend, System::Postgres] {
                rows.push((system, n, latency(system, Endpoint::Pg(&conn_str), n, args.samples).await?));
            }
        }
        if let Some(redis) = &redis {
            rows.push((System::Redis, n, latency(System::Redis, Endpoint::Redis(redis.port), n, args.samples).await?));
        }
    }

    println!("append -> notification latency: {} samples per run ({WARMUP} warm-up samples not counted)", args.samples);
    println!("{:<10} {:>9} {:>10} {:>10} {:>16}  note", "system", "listeners", "p50 ms", "p99 ms", "p99 any-one ms");
    for (system, n, lat) in &rows {
        let note = if lat.unexpected.is_empty() {
            String::new()
        } else {
            format!("{} unexpected deliveries, first: {}", lat.unexpected.len(), lat.unexpected[0])
        };
        let line = format!(
            "{:<10} {n:>9} {:>10.2} {:>10.2} {:>16.2}  {note}",
            system.name(),
            percentile(&lat.last, 50.0),
            percentile(&lat.last, 99.0),
            percentile(&lat.all, 99.0),
        );
        println!("{}", line.trim_end());
    }
    println!();
    println!("p50/p99: until the last listener received the sample; p99 any-one: over every single delivery");
    println!("brikk:    INSERT INTO pings VALUES ($1) -> LISTEN pings notification (one per record, JSON payload);");
    println!("          the append is durable (fsync) before it is visible, so the latency includes the fsync");
    println!("pg append: autocommit INSERT INTO pings VALUES ($1), an AFTER INSERT trigger calls pg_notify;");
    println!("          the commit is durable (fsync) before it returns, the notification is sent at commit");
    println!("pg notify: autocommit SELECT pg_notify('pings', $1::text) -> LISTEN pings notification;");
    println!("          nothing is appended: the commit writes no WAL and syncs nothing, a listener that is");
    println!("          not connected never sees the ping (shown for reference)");
    println!("redis:    XADD pings * seq n -> XREAD BLOCK 0 STREAMS pings <last id>;");
    println!("          appendonly yes, appendfsync always: the XADD is fsynced before it returns");
    println!("target: brikk p99 no worse than postgres's durable append (pg append)");
    Ok(())
}
