//! The `brikk` command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use brikk_server::{listener, DEFAULT_DATA_DIR, DEFAULT_PORT};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

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
        /// Threads serving connections and running queries. The default,
        /// one per core less one (at least one), leaves a core to the commit
        /// thread that folds and syncs every write.
        #[arg(long)]
        worker_threads: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BRIKK_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { data_dir, listen, allow_remote, worker_threads } => {
            if !listen.ip().is_loopback() && !allow_remote {
                bail!(
                    "refusing to listen on {listen}: Brikk has no authentication yet; \
                     use a loopback address, or pass --allow-remote if you accept that"
                );
            }
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let threads = worker_threads.unwrap_or(cores.saturating_sub(1)).max(1);
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
            runtime.block_on(serve(data_dir, listen))
        }
    }
}

async fn serve(data_dir: PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    let db = {
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || brikk_query::Brikk::open(&dir))
            .await?
            .with_context(|| format!("opening data directory {}", data_dir.display()))?
    };
    let listener = TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    let local = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when given port 0.
    tracing::info!(data_dir = %data_dir.display(), "brikk listening on {local}");
    eprintln!("brikk listening on {local}");
    listener::serve(db, listener, shutdown_signal()).await?;
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
