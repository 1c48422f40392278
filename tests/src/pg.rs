//! A private PostgreSQL cluster for side-by-side benchmarks: initdb'd as
//! the `postgres` user (initdb refuses root) in a temp dir on a free port,
//! with default durability settings (fsync on, synchronous_commit on).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running PostgreSQL cluster, stopped and removed when dropped.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

fn pg_bin_dir() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server not installed (/usr/lib/postgresql missing)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().context("no initdb under /usr/lib/postgresql/*/bin")
}

fn as_postgres(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).args(args);
    c
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PgCluster {
    /// initdb + start. The data directory is under /tmp, owned by postgres.
    pub fn start() -> Result<PgCluster> {
        let bin = pg_bin_dir()?;
        let port = free_port()?;
        let dir = PathBuf::from(format!("/tmp/brikk-bench-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]).status()?;
        if !status.success() {
            bail!("chown of {} failed", dir.display());
        }
        let data = dir.join("data");
        let out = as_postgres(&[
            bin.join("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-instructions",
        ])
        .output()?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200", dir.display());
        let out = as_postgres(&[
            bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-l",
            dir.join("log").to_str().unwrap(),
            "-o",
            &opts,
            "-w",
            "start",
        ])
        .output()?;
        if !out.status.success() {
            bail!("pg_ctl start failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let cluster = PgCluster { bin, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("PostgreSQL did not accept connections");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(cluster)
    }

    pub fn conn_str(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-m",
            "fast",
            "stop",
        ])
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
