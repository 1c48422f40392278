//! The market: bids and asks matched by a continuous query.
//!
//! ```sql
//! CREATE CONTINUOUS QUERY market AS
//!   INSERT INTO trades
//!   SELECT * FROM MATCH_ORDERS(
//!     bids, asks, CANCELS cancels,
//!     ON bids.skill = asks.skill AND bids.price >= asks.price,
//!     PRICE asks.price)
//! ```
//!
//! Order streams name their columns by convention: `id` (the order's id),
//! `price` (a bid's limit — the most it pays; an ask's — the least it
//! takes), optionally `qty` (default 1) and `expires_at` (a timestamp). A
//! cancel stream has `side` (`'bid'` or `'ask'`) and `id`.
//!
//! `ON` is any condition over a bid row and an ask row; its `bids.x =
//! asks.y` terms split the book into buckets, and a `bids.price >=
//! asks.price` term lets the walk stop early. `PRICE` is the trade price.
//! Trades are `(bid_id, ask_id, quantity, price, bid_offset, ask_offset)`;
//! `SELECT` may name a subset in any order. See [`book`] for the auction,
//! [`operator::MarketOperator`] for state and determinism, and
//! `order_book('market')` for depth per price level.

pub mod book;
pub mod expr;
pub mod operator;
pub mod parse;

pub use operator::{MarketOperator, OrderBookFunction, ORDER_BOOK_FUNCTION};
pub use parse::plan;
