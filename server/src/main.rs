//! The `brikk` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use brikk_server::transfer::{self, Target};
use brikk_server::{listener, DEFAULT_DATA_DIR, DEFAULT_PORT};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

/// The server allocates per message, per row and per batch from many threads;
/// mimalloc's thread-local free lists cost less than glibc's arenas there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "brikk", version, about = "Brikk: an embedded streaming database for multi-agent coordination")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a database over the Postgres wire protocol.
    Serve {
        /// Directory holding the database (created if missing).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
        listen: SocketAddr,
        /// Allow listening on a non-loopback address. Brikk has no passwords
        /// yet: anyone who can reach the port can read and write everything.
        #[arg(long)]
        allow_remote: bool,
        /// Threads serving connections and running queries; default: one
        /// per core. The commit thread that folds and syncs every write
        /// spends most of its time waiting for the disk, so it needs no core
        /// of its own (docs/benchmarks.md, "One worker per core").
        #[arg(long)]
        worker_threads: Option<usize>,
        /// Microseconds a worker keeps polling for work after the last
        /// message before it sleeps; 0 lets it sleep at once. Polling spends
        /// CPU while connections are busy and saves the wake-up of an idle
        /// CPU (tens of microseconds on a virtual machine) on the path of
        /// every statement.
        #[arg(long, default_value_t = 300)]
        idle_poll_us: u64,
        /// How often the archiver looks for sealed segments, in
        /// milliseconds, when it found none last time.
        #[arg(long, default_value_t = 1000)]
        archive_interval_ms: u64,
        /// Megabytes of the most recently committed records kept in memory,
        /// over all streams, so consumers that keep up (FETCH, CLAIM,
        /// LISTEN, continuous queries) read them without going to RocksDB;
        /// 0 turns the cache off.
        #[arg(long, default_value_t = brikk_storage::DEFAULT_TAIL_CACHE_BYTES >> 20)]
        tail_cache_mb: usize,
    },
    /// Load a file (Parquet, CSV, JSON lines or text) into a stream or
    /// table of a running server, as one atomic COPY, with a progress bar.
    Import {
        /// The file to load.
        file: PathBuf,
        /// The stream to append to, or the table to insert into (`--table`).
        #[arg(long, alias = "table")]
        stream: String,
        /// parquet, csv, json or text (default: from the file's extension).
        #[arg(long)]
        format: Option<String>,
        /// CSV or text: the first line is a header.
        #[arg(long)]
        header: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Write a stream (or a query's rows) of a running server to a file:
    /// Parquet, CSV, JSON lines or text, with a progress bar.
    Export {
        /// The file to write (replaced only when complete).
        file: PathBuf,
        /// The stream to export (all its user columns)...
        #[arg(long, conflicts_with = "query", required_unless_present = "query")]
        stream: Option<String>,
        /// ...or the rows of a query.
        #[arg(long)]
        query: Option<String>,
        /// parquet, csv, json or text (default: from the file's extension).
        #[arg(long)]
        format: Option<String>,
        /// CSV or text: write a header line.
        #[arg(long)]
        header: bool,
        #[command(flatten)]
        target: Target,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BRIKK_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Import { file, stream, format, header, target } => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(transfer::import(&target, &file, &stream, format.as_deref(), header))
        }
        Command::Export { file, stream, query, format, header, target } => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(transfer::export(
                &target,
                &file,
                stream.as_deref(),
                query.as_deref(),
                format.as_deref(),
                header,
            ))
        }
        Command::Serve {
            data_dir,
            listen,
            allow_remote,
            worker_threads,
            idle_poll_us,
            archive_interval_ms,
            tail_cache_mb,
        } => {
            if !listen.ip().is_loopback() && !allow_remote {
                bail!(
                    "refusing to listen on {listen}: Brikk has no authentication yet; \
                     use a loopback address, or pass --allow-remote if you accept that"
                );
            }
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let threads = worker_threads.unwrap_or(cores).max(1);
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
            let archive =
                brikk_connectors::ArchiverOptions { interval: Duration::from_millis(archive_interval_ms.max(1)) };
            let storage = brikk_storage::StoreOptions { tail_cache_bytes: tail_cache_mb.saturating_mul(1 << 20) };
            runtime.block_on(serve(data_dir, listen, Duration::from_micros(idle_poll_us), archive, storage))
        }
    }
}

async fn serve(
    data_dir: PathBuf,
    listen: SocketAddr,
    idle_poll: Duration,
    archive: brikk_connectors::ArchiverOptions,
    storage: brikk_storage::StoreOptions,
) -> anyhow::Result<()> {
    let db = {
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || brikk_query::Brikk::open_with(&dir, storage))
            .await?
            .with_context(|| format!("opening data directory {}", data_dir.display()))?
    };
    // Reads of archived offsets, and the task that archives sealed segments
    // (it first removes files a crash left half-done).
    let archiver = brikk_connectors::install(&db, archive).context("starting the archive")?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    let local = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when given port 0.
    tracing::info!(data_dir = %data_dir.display(), "brikk listening on {local}");
    eprintln!("brikk listening on {local}");
    listener::serve(db, listener, idle_poll, shutdown_signal()).await?;
    drop(archiver);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}
