//! Statement outputs and errors as pgwire responses (Arrow → Postgres
//! encoding by `arrow-pg`).

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use brikk_query::{Error, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{stream, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, QueryResponse, Response, Tag};
use pgwire::api::ConnectionHandle;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use crate::sqlstate::sqlstate;

/// An error as the client sees it: severity ERROR, its SQLSTATE, message.
pub fn to_pg_error(e: &Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

pub(crate) fn error_info(e: &Error) -> ErrorInfo {
    ErrorInfo::new("ERROR".to_owned(), sqlstate(e).to_owned(), e.to_string())
}

/// Ends `rows` with `57014 canceling statement` when a cancel request for
/// this connection arrives while they stream. pgwire watches for cancels
/// only while a statement is planned; rows are produced later, as they are
/// sent, so the watch is re-armed when the first row is asked for.
fn cancellable<S>(
    rows: S,
    handle: Option<Arc<ConnectionHandle>>,
) -> futures::stream::BoxStream<'static, PgWireResult<DataRow>>
where
    S: futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static,
{
    let Some(handle) = handle else { return rows.boxed() };
    let canceled = Arc::new(AtomicBool::new(false));
    let flag = canceled.clone();
    let cancel = async move {
        // Ok: a cancel request; Err: the next statement replaced the watch.
        if handle.start_query().await.await.is_ok() {
            flag.store(true, Ordering::Release);
        } else {
            futures::future::pending::<()>().await;
        }
    };
    let tail = stream::once(async move { canceled.load(Ordering::Acquire) })
        .filter_map(|c| async move { c.then(|| Err(to_pg_error(&Error::Canceled))) });
    rows.take_until(cancel).chain(tail).boxed()
}

/// Where a `COPY … FROM STDIN` waits for the client's data.
pub(crate) type CopySlot = Arc<std::sync::Mutex<Option<brikk_query::copy::CopyIn>>>;

/// Turns one statement's output into a response; rows stream lazily and
/// stop at a cancel request (`handle` is the connection's cancel handle).
/// A `COPY … FROM STDIN` is parked in `copy` for the copy handler.
pub(crate) fn response(
    output: Output,
    format: &Format,
    options: Arc<FormatOptions>,
    handle: Option<Arc<ConnectionHandle>>,
    copy: &CopySlot,
) -> PgWireResult<Response> {
    Ok(match output {
        Output::CopyIn(c) => {
            let columns = c.columns();
            *copy.lock().expect("copy slot") = Some(c);
            Response::CopyIn(CopyResponse::new(0, columns, stream::empty().boxed()))
        }
        Output::CopyOut { columns, rows } => {
            let data = rows.map(|r| r.map(CopyData::new).map_err(|e| to_pg_error(&e)));
            Response::CopyOut(CopyResponse::new(0, columns, data.boxed()))
        }
        Output::Rows(batches) => {
            let fields = Arc::new(arrow_schema_to_pg_fields(&batches.schema(), format, Some(options))?);
            let row_fields = fields.clone();
            let rows = batches
                .map(move |batch| {
                    let rows: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> = match batch {
                        Ok(b) => encode_recordbatch(row_fields.clone(), b),
                        Err(e) => Box::new(std::iter::once(Err(to_pg_error(&Error::from_datafusion(e))))),
                    };
                    stream::iter(rows)
                })
                .flatten();
            Response::Query(QueryResponse::new(fields, cancellable(rows, handle)))
        }
        Output::Command { tag, rows } => {
            let mut t = Tag::new(&tag);
            if tag == "INSERT" {
                t = t.with_oid(0);
            }
            if let Some(n) = rows {
                t = t.with_rows(n);
            }
            Response::Execution(t)
        }
        Output::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Output::End { tag } => Response::TransactionEnd(Tag::new(&tag)),
        Output::Empty => Response::EmptyQuery,
    })
}
