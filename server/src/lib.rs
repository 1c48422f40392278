//! # brikk-server
//!
//! The Postgres wire protocol in front of [`brikk_query::Brikk`]: psql and
//! any Postgres driver talk to Brikk through this crate. It holds no
//! storage logic: each connection gets a [`brikk_query::Session`], each
//! message becomes a call on it, and each error leaves through the one
//! SQLSTATE table in [`sqlstate`].
//!
//! ```text
//!  TCP ─ listener::serve ─ protocol::serve_connection ─ handler::Connection ─ Session
//!         (accept, SIGTERM)   (pgwire framing, coalesced   (simple / extended)
//!                              writes)
//! ```
//!
//! `COPY (SUBSCRIBE …) TO STDOUT` is the one statement that writes without
//! end: `handler::subscribe` streams it, with [`peer`] noticing a client
//! that goes away meanwhile. [`warm`] keeps a worker polling for a moment
//! after each message, so a busy server's replies do not wait for a
//! sleeping CPU to wake.

pub mod handler;
pub mod listener;
pub mod peer;
pub mod protocol;
pub mod sqlstate;
pub mod transfer;
pub mod warm;

/// The port `brikk serve` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 5487;
/// The data directory `brikk serve` uses unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "brikk-data";
