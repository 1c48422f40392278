//! What statements produce, and the transaction status clients see.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

use crate::zone::{zoned_batch, zoned_schema};

/// Something an output keeps alive while it is in use ([`Output::holding`]).
pub(crate) type Kept = Box<dyn std::any::Any + Send + Sync>;

/// What one statement produced.
pub enum Output {
    /// Rows, streamed as Arrow batches.
    Rows(SendableRecordBatchStream),
    /// The rows of `INSERT/UPDATE/DELETE … RETURNING`, completed with the
    /// command's tag (`UPDATE 2`) rather than `SELECT 2`.
    Returning { tag: String, rows: SendableRecordBatchStream },
    /// A command's completion tag (`INSERT 0 5`, `CREATE STREAM`), with the
    /// affected row count where the command has one.
    Command { tag: String, rows: Option<usize> },
    /// `BEGIN` opened a transaction block.
    Begin,
    /// `COMMIT` or `ROLLBACK` (tag says which happened) closed one.
    End { tag: String },
    /// The statement text was empty.
    Empty,
    /// `COPY … FROM STDIN`: the server feeds the client's data to it and
    /// finishes it with [`crate::Session::copy_in_done`].
    CopyIn(crate::copy::CopyIn),
    /// `COPY … TO STDOUT`: one item per row (a line of text, CSV or JSON;
    /// the first also carries the header line, if any).
    CopyOut { columns: usize, rows: futures::stream::BoxStream<'static, crate::Result<bytes::Bytes>> },
    /// `COPY (SUBSCRIBE …) TO STDOUT`: rows as they are committed, for as
    /// long as the caller keeps the subscription.
    Subscription(super::Subscription),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Rows(s) => write!(f, "Rows({:?})", s.schema()),
            Output::Returning { tag, rows } => write!(f, "Returning({tag}, {:?})", rows.schema()),
            Output::Command { tag, rows } => write!(f, "Command({tag}, {rows:?})"),
            Output::Begin => write!(f, "Begin"),
            Output::End { tag } => write!(f, "End({tag})"),
            Output::Empty => write!(f, "Empty"),
            Output::CopyIn(c) => write!(f, "CopyIn({} columns)", c.columns()),
            Output::CopyOut { columns, .. } => write!(f, "CopyOut({columns} columns)"),
            Output::Subscription(s) => write!(f, "Subscription({s:?})"),
        }
    }
}

impl Output {
    /// This output with `on_error` called when its rows (if it streams any)
    /// end in an error.
    pub(crate) fn on_error(self, on_error: impl Fn() + Send + Sync + 'static) -> Output {
        let on_error = Arc::new(on_error);
        let watch = |rows: SendableRecordBatchStream| -> SendableRecordBatchStream {
            let on_error = on_error.clone();
            let schema = rows.schema();
            Box::pin(RecordBatchStreamAdapter::new(schema, rows.inspect_err(move |_| on_error())))
        };
        match self {
            Output::Rows(rows) => Output::Rows(watch(rows)),
            Output::Returning { tag, rows } => Output::Returning { tag, rows: watch(rows) },
            Output::CopyOut { columns, rows } => {
                Output::CopyOut { columns, rows: rows.inspect_err(move |_| on_error()).boxed() }
            }
            other => other,
        }
    }

    /// This output, keeping `kept` until it is done with: when its rows
    /// (or COPY lines) have been read or dropped, when a `COPY FROM STDIN`
    /// has finished, when a subscription ends; for any other output, now.
    pub(crate) fn holding(self, kept: impl Send + Sync + 'static) -> Output {
        fn keep(rows: SendableRecordBatchStream, kept: Kept) -> SendableRecordBatchStream {
            let schema = rows.schema();
            Box::pin(RecordBatchStreamAdapter::new(schema, rows.map(move |b| (&kept, b).1)))
        }
        let kept: Kept = Box::new(kept);
        match self {
            Output::Rows(rows) => Output::Rows(keep(rows, kept)),
            Output::Returning { tag, rows } => Output::Returning { tag, rows: keep(rows, kept) },
            Output::CopyOut { columns, rows } => {
                Output::CopyOut { columns, rows: rows.map(move |l| (&kept, l).1).boxed() }
            }
            Output::CopyIn(mut c) => {
                c.kept = Some(kept);
                Output::CopyIn(c)
            }
            Output::Subscription(mut s) => {
                s.kept = Some(kept);
                Output::Subscription(s)
            }
            other => other,
        }
    }

    /// This output with its columns named `names`.
    pub(crate) fn named(self, names: Option<&crate::sql::colnames::ColumnNames>) -> Output {
        match (self, names) {
            (Output::Rows(rows), Some(names)) => Output::Rows(names.rename(rows)),
            (other, _) => other,
        }
    }

    /// This output with its `timestamptz` columns (Arrow timestamps with a
    /// zone) in `zone`, the session's `TimeZone`: the instants are the
    /// same, but they read (and Postgres clients see them in text) as local
    /// times of `zone`. Plain `timestamp` columns are left as they are.
    pub(crate) fn in_time_zone(self, zone: &str) -> Output {
        if crate::types::is_utc(zone) {
            return self;
        }
        let retag = |rows: SendableRecordBatchStream| -> SendableRecordBatchStream {
            let to = zoned_schema(&rows.schema(), zone);
            if Arc::ptr_eq(&to, &rows.schema()) {
                return rows;
            }
            let schema = to.clone();
            let batches = rows.map(move |batch| Ok(zoned_batch(batch?, &schema)?));
            Box::pin(RecordBatchStreamAdapter::new(to, batches))
        };
        match self {
            Output::Rows(rows) => Output::Rows(retag(rows)),
            Output::Returning { tag, rows } => Output::Returning { tag, rows: retag(rows) },
            other => other,
        }
    }

    /// This output with its rows computed: an error in them is returned
    /// here rather than met while sending them.
    pub(crate) async fn computed(self) -> crate::Result<Output> {
        async fn buffer(rows: SendableRecordBatchStream) -> crate::Result<SendableRecordBatchStream> {
            let schema = rows.schema();
            let batches: Vec<RecordBatch> = rows.try_collect().await?;
            Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(batches.into_iter().map(Ok)))))
        }
        Ok(match self {
            Output::Rows(rows) => Output::Rows(buffer(rows).await?),
            Output::Returning { tag, rows } => Output::Returning { tag, rows: buffer(rows).await? },
            Output::CopyOut { columns, rows } => {
                let lines: Vec<bytes::Bytes> = rows.try_collect().await?;
                Output::CopyOut { columns, rows: futures::stream::iter(lines.into_iter().map(Ok)).boxed() }
            }
            other => other,
        })
    }
}

/// Where a session is with respect to transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Idle,
    InTransaction,
    Failed,
}
