//! End-to-end tests: the real `brikk` binary, over the wire.
//!
//! Each test starts its own server on a free port in its own temp dir.

mod activity;
mod archive;
mod continuous;
mod copy;
mod crash;
mod cursors;
mod datetime;
mod embedded;
mod examples;
mod external;
mod groups;
mod listen;
mod psql;
mod rust_client;
mod s3;
mod slt;
mod subscribe;
mod tables;
mod time_zone;
mod wire;

use brikk_tests::Server;

/// A server over a fresh temp dir; the dir lives as long as the returned guard.
pub fn fresh() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path()).expect("start brikk");
    (dir, server)
}

/// `sql`'s rows as text, columns joined by " | ", NULL as `NULL` (simple
/// protocol, so values arrive as the server prints them).
pub async fn texts(c: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL")).collect::<Vec<_>>().join(" | "))
            }
            _ => None,
        })
        .collect()
}
