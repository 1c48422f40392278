//! End-to-end tests: the real `brikk` binary, over the wire.
//!
//! Each test starts its own server on a free port in its own temp dir.

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
