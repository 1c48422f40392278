//! The partitioned append-only log: streams, their partitions, group commit
//! and range reads.

pub mod commit;
pub mod hash;
pub mod read;
pub mod retention;
pub mod stream;
pub(crate) mod tail;

pub use commit::{now_micros, Append, CommitReceipt, WriteSet};
pub use hash::{murmur2, partition_for_key};
pub use stream::StreamHandle;
