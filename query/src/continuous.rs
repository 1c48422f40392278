//! Continuous queries: SQL that runs for ever inside the database.
//!
//! `CREATE CONTINUOUS QUERY q AS INSERT INTO sink SELECT … FROM source …`
//! stores a definition ([`def::QueryDef`]) and starts a runner on the
//! continuous-query thread ([`runtime::Runtime`]).
//!
//! ## The life of a step
//! 1. The runner reads the records its inputs gained since its committed
//!    offsets, up to the store's watermark ([`input::Inputs::read`]), in
//!    one deterministic order: commit timestamp, then input, partition,
//!    offset. Replaying the same inputs gives the same order, which is what
//!    makes windows and the market deterministic.
//! 2. The operator ([`operator::Operator`]) turns them into output rows and
//!    state changes: a filter/projection/join planned by DataFusion over
//!    just these records ([`operator::MapOperator`]), window aggregation
//!    ([`window::WindowOperator`]), or order matching
//!    ([`crate::market::MarketOperator`]).
//! 3. The output rows (appended to the sink), the state changes and the
//!    new input offsets go to the committer as **one** write set: a step is
//!    committed whole or not at all. After a crash the runner resumes from
//!    the last committed step, so every output is in the sink exactly once.
//! 4. A record the operator cannot process (a cast error, say) stops the
//!    query with status `failed` and the error in `brikk_queries`; nothing
//!    of that step is written.
//!
//! ```text
//!  continuous  "q/" name                 -> QueryDef (JSON)
//!              "s/" id u64 "/p"          -> Progress: input offsets, counters (JSON)
//!              "s/" id u64 "/" kind ...  -> operator state (windows, resting orders)
//! ```

pub mod def;
pub mod input;
pub mod operator;
pub mod plan;
pub mod runtime;
pub mod sink;
pub mod system;
pub mod window;

pub use def::{QueryDef, Status};
pub use runtime::Runtime;
