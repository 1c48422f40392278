//! `COPY`: bulk export and import of streams and tables, in text, CSV, JSON
//! lines and Parquet.
//!
//! ```sql
//! COPY bids TO '/tmp/bids.parquet';                      -- format from the extension
//! COPY (SELECT * FROM bids WHERE price > 10) TO '/tmp/x.csv' (FORMAT csv, HEADER);
//! COPY bids FROM '/tmp/bids.jsonl';                       -- JSON lines
//! COPY bids (auction, price) FROM STDIN (FORMAT csv);     -- psql's \copy
//! COPY bids TO STDOUT;                                    -- Postgres text format
//! ```
//!
//! - `COPY … TO 'file'` runs the query and writes the file under a
//!   temporary name, renamed when complete: a failed COPY leaves no file.
//! - `COPY … FROM` decodes every row, coerces each value to its column as
//!   `INSERT` does ([`crate::types::assign`]) and appends all rows in one
//!   atomic write (or in the open transaction): a bad row anywhere means
//!   nothing is written, and the error names its line. A table's rows go
//!   through a prepared `INSERT`, one execution per row, all in one
//!   transaction (defaults, identities, keys, NOT NULL as INSERT has them).
//! - `COPY … FROM STDIN` returns [`CopyIn`]: the server feeds it the
//!   client's `CopyData` and finishes it at `CopyDone`
//!   ([`crate::Session::copy_in_done`]).
//! - The format is the `FORMAT` option, or the file's extension
//!   (`.parquet`, `.csv`, `.json`/`.jsonl`/`.ndjson`, `.txt`/`.tsv`), or
//!   text for STDIN/STDOUT. Files are paths on the server's machine and
//!   must be absolute.

mod decode;
mod encode;
mod exec;
pub mod format;

pub use decode::CopyIn;
pub use encode::{text_cell, CsvOptions};
pub use format::{CopyFormat, Format};
