//! Test and benchmark harness: the real `brikk` binary on a free port in a
//! temp dir, real clients (tokio-postgres, psql), and a sqllogictest driver
//! that speaks the wire protocol.

pub mod latency;
pub mod load;
pub mod pg;
pub mod slt;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Path of the `brikk` binary: `$BRIKK_BIN`, or next to the running test
/// executable's directory (`target/<profile>/brikk`).
pub fn brikk_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BRIKK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("brikk")
}

/// The Python venv of the client programs and readers:
/// `$BRIKK_CLIENTS_VENV`, or `~/.cache/brikk-clients-venv`.
pub fn clients_venv() -> PathBuf {
    std::env::var("BRIKK_CLIENTS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/brikk-clients-venv"))
}

/// Installs the Python packages (`scripts/install-clients.sh --python`:
/// the drivers, the archive readers, moto) and returns the venv.
pub fn install_python_clients() -> Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    let out = Command::new(root.join("scripts/install-clients.sh")).arg("--python").output()?;
    if !out.status.success() {
        bail!("installing the Python packages: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(clients_venv())
}

/// A running `brikk serve` process. Killed (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `brikk serve` on 127.0.0.1:0 over `data_dir` and waits until
    /// it is listening.
    pub fn start(data_dir: &Path) -> Result<Server> {
        Server::start_with(data_dir, &[])
    }

    /// [`Server::start`] with extra `brikk serve` arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Result<Server> {
        Server::start_with_env(data_dir, extra, &[])
    }

    /// [`Server::start_with`] with extra environment variables for the
    /// server process.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Server> {
        let bin = brikk_bin();
        if !bin.exists() {
            bail!("{} not found: build it first (cargo build --bin brikk) or set BRIKK_BIN", bin.display());
        }
        let mut child = Command::new(&bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("BRIKK_LOG", std::env::var("BRIKK_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    if let Some(addr) = line.strip_prefix("brikk listening on ") {
                        let _ = tx.send(addr.trim().to_string());
                    }
                    log.lock().expect("log").push(line);
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().context("parsing listen address")?,
            Err(_) => {
                let _ = child.kill();
                bail!("brikk did not start; its log:\n{}", log.lock().expect("log").join("\n"));
            }
        };
        Ok(Server { child: Some(child), addr, data_dir: data_dir.to_path_buf(), log })
    }

    /// A connection string for this server.
    pub fn conn_str(&self) -> String {
        format!("host={} port={} user=brikk dbname=brikk", self.addr.ip(), self.addr.port())
    }

    /// A new tokio-postgres client; its connection task runs on the
    /// current runtime.
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.conn_str()).await
    }

    /// Kills the server with SIGKILL and waits for it to die.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (up to 30 s) for a clean exit.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        let mut c = self.child.take().ok_or_else(|| anyhow!("server already stopped"))?;
        let status = Command::new("kill").args(["-TERM", &c.id().to_string()]).status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                bail!("brikk did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Runs `psql` against this server with `args`, returning stdout;
    /// fails with stderr if psql exits non-zero.
    pub fn psql(&self, args: &[&str]) -> Result<String> {
        let out = self.psql_command(args).output().context("running psql (is postgresql-client installed?)")?;
        if !out.status.success() {
            bail!("psql {:?} failed: {}", args, String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Server {
    /// A `psql` command connected to this server (no `.psqlrc`), with
    /// `args` after the connection options; for tests that drive psql
    /// while it runs.
    pub fn psql_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("psql");
        cmd.args([
            "-X",
            "-h",
            &self.addr.ip().to_string(),
            "-p",
            &self.addr.port().to_string(),
            "-U",
            "brikk",
            "-d",
            "brikk",
        ])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10");
        cmd
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Connects with tokio-postgres and drives the connection on a task.
pub async fn connect(conn_str: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Connects like [`connect`], also returning the connection task: aborting
/// it drops the socket without a goodbye, as a killed client would.
pub async fn connect_killable(conn_str: &str) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let (client, connection) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, task))
}

/// Runs `COPY … FROM STDIN` (`sql`) with `data` sent in chunks of at most
/// `chunk` bytes; the row count the server reports, or its error.
pub async fn copy_from_stdin(
    c: &tokio_postgres::Client,
    sql: &str,
    data: &[u8],
    chunk: usize,
) -> std::result::Result<u64, tokio_postgres::Error> {
    use futures::SinkExt;
    let sink = c.copy_in::<_, bytes::Bytes>(sql).await?;
    futures::pin_mut!(sink);
    for part in data.chunks(chunk.max(1)) {
        sink.send(bytes::Bytes::copy_from_slice(part)).await?;
    }
    sink.finish().await
}

/// The SQLSTATE of a tokio-postgres error, if the server sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_string())
}
