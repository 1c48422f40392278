//! One client connection: pgwire's handler traits over a Brikk session.
//!
//! pgwire drives the protocol (startup, simple and extended query, sync,
//! error recovery); every statement goes to the connection's
//! [`brikk_query::Session`]. Parse plans once ([`brikk_query::Brikk::prepare`]);
//! Bind/Execute only binds parameters.

mod connection;
mod copy;
pub(crate) mod encode;
mod extended;
mod simple;
mod startup;
mod subscribe;

pub(crate) use connection::LogErrors;
pub use connection::{Connection, Handlers};
pub use encode::to_pg_error;
pub use extended::{StatementParser, WireStatement};
pub use startup::Startup;
