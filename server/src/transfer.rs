//! `brikk import` and `brikk export`: files in and out of a running server
//! over the wire, with a progress bar.
//!
//! - import streams the file's bytes through `COPY stream FROM STDIN (FORMAT …)`:
//!   the server decodes them (Parquet, CSV, JSON lines, text) and appends
//!   every row in one atomic write; the bar counts the file's bytes.
//! - export runs `COPY (query) TO STDOUT` for text, CSV and JSON lines,
//!   writing a temporary file renamed when complete; the bar counts rows
//!   (`CopyData` messages) against `count(*)`. Parquet is written by the server itself
//!   (`COPY … TO 'file'`, so the path must be on the server's machine,
//!   which it is for a loopback server).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use brikk_query::copy::Format;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};

/// Where the server is.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Host of the Brikk server.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port of the Brikk server.
    #[arg(long, default_value_t = crate::DEFAULT_PORT)]
    pub port: u16,
}

async fn connect(t: &Target) -> Result<tokio_postgres::Client> {
    let conn = format!("host={} port={} user=brikk dbname=brikk", t.host, t.port);
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to Brikk at {}:{}", t.host, t.port))?;
    tokio::spawn(connection);
    Ok(client)
}

fn format_of(file: &Path, format: Option<&str>) -> Result<Format> {
    match format {
        Some(f) => match f.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "json" | "jsonl" | "ndjson" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            other => bail!("unknown format {other}: parquet, csv, json or text"),
        },
        None => Format::of_path(&file.to_string_lossy())
            .with_context(|| format!("cannot tell the format of {} from its name: pass --format", file.display())),
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn options(format: Format, header: bool) -> String {
    if header {
        format!("(FORMAT {}, HEADER)", format.name())
    } else {
        format!("(FORMAT {})", format.name())
    }
}

fn bar(len: Option<u64>, template: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `brikk import`.
pub async fn import(t: &Target, file: &Path, stream: &str, format: Option<&str>, header: bool) -> Result<()> {
    let format = format_of(file, format)?;
    let mut input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = input.metadata()?.len();
    let client = connect(t).await?;
    let sql = format!("COPY {} FROM STDIN {}", ident(stream), options(format, header));
    let sink = client.copy_in::<_, Bytes>(&sql).await.context("starting the COPY")?;
    futures::pin_mut!(sink);
    let progress = bar(Some(size), "{spinner} {bytes}/{total_bytes} [{bar:40}] {bytes_per_sec}, {eta} left");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sink.send(Bytes::copy_from_slice(&buf[..n])).await.context("sending the file")?;
        progress.inc(n as u64);
    }
    progress.set_message("committing");
    let rows = sink.finish().await.context("the server refused the file; nothing was imported")?;
    progress.finish_and_clear();
    eprintln!("imported {rows} rows into {stream} from {}", file.display());
    Ok(())
}

/// `brikk export`.
pub async fn export(
    t: &Target,
    file: &Path,
    stream: Option<&str>,
    query: Option<&str>,
    format: Option<&str>,
    header: bool,
) -> Result<()> {
    let format = format_of(file, format)?;
    let query = match (stream, query) {
        (Some(s), _) => format!("SELECT * FROM {}", ident(s)),
        (None, Some(q)) => q.trim().trim_end_matches(';').to_string(),
        (None, None) => bail!("pass --stream or --query"),
    };
    let client = connect(t).await?;
    if format == Format::Parquet {
        let path = std::path::absolute(file)?;
        let sql = format!(
            "COPY ({query}) TO '{}' {}",
            path.display().to_string().replace('\'', "''"),
            options(format, false)
        );
        let progress = bar(None, "{spinner} writing {msg} ({elapsed})");
        progress.set_message(path.display().to_string());
        let rows = client.execute(sql.as_str(), &[]).await.context("exporting")?;
        progress.finish_and_clear();
        eprintln!("exported {rows} rows to {}", path.display());
        return Ok(());
    }
    let total: i64 = client.query_one(format!("SELECT count(*) FROM ({query}) AS q").as_str(), &[]).await?.get(0);
    let sql = format!("COPY ({query}) TO STDOUT {}", options(format, header));
    let rows = client.copy_out(sql.as_str()).await.context("starting the COPY")?;
    futures::pin_mut!(rows);
    let name = file.file_name().context("the file needs a name")?.to_string_lossy().into_owned();
    let tmp = file.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
    let progress = bar(Some(total as u64), "{spinner} {pos}/{len} rows [{bar:40}] {per_sec}, {eta} left");
    let result: Result<u64> = async {
        let mut n = 0u64;
        while let Some(chunk) = rows.next().await {
            let chunk = chunk.context("reading rows")?;
            out.write_all(&chunk)?;
            // The server sends about one CopyData message per row.
            n += 1;
            progress.set_position(n.min(total as u64));
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(n)
    }
    .await;
    progress.finish_and_clear();
    match result {
        Ok(_) => {
            std::fs::rename(&tmp, file)?;
            eprintln!("exported {total} rows to {}", file.display());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
