//! Statement outputs and errors as pgwire responses (Arrow → Postgres
//! encoding by `arrow-pg`).

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, PG_OID_ALIAS_KEY};
use brikk_query::datetime::{iso_style, timestamps_as_text};
use brikk_query::floats::floats_as_text;
use brikk_query::types::PG_TYPE_METADATA;
use brikk_query::{Error, Output};
use datafusion::arrow::array::{Array, BinaryArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;

use futures::{stream, Sink, SinkExt, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, QueryResponse, Response, Tag};
use pgwire::api::ConnectionHandle;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use crate::sqlstate::{notice_state, sqlstate};

/// An error as the client sees it: severity ERROR, its SQLSTATE, message.
pub fn to_pg_error(e: &Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

pub(crate) fn error_info(e: &Error) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".to_owned(), sqlstate(e).to_owned(), e.to_string());
    match e {
        Error::UniqueViolation { detail, .. } => info.detail = Some(detail.clone()),
        Error::DependentObjects { detail, .. } => {
            info.detail = Some(detail.clone());
            info.hint = Some("Use DROP ... CASCADE to drop the dependent objects too.".into());
        }
        _ => {}
    }
    info
}

/// Sends what the session's last statements raised besides their
/// results, as Postgres does before the statement's CommandComplete: a
/// ParameterStatus for each reported parameter they changed (`SET TIME
/// ZONE`, `SET application_name`), and their notices (`DROP … IF EXISTS`
/// of nothing, `COMMIT` outside a transaction).
pub(crate) async fn report_changes<C>(client: &mut C, session: &mut brikk_query::Session) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for (name, value) in session.vars().take_changed() {
        client.feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(name.to_string(), value))).await?;
    }
    for notice in session.take_notices() {
        let (severity, code) = notice_state(notice.kind);
        let info = ErrorInfo::new(severity.to_owned(), code.to_owned(), notice.message);
        client.feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(info))).await?;
    }
    Ok(())
}

/// What stops a statement early: a cancel request for its connection
/// (`handle`, the connection's cancel handle), and the session's
/// `statement_timeout` (`deadline`, counted from the statement's start).
/// Rows cut short report it to the session (`stopped`), whose transaction
/// then fails as if the statement had.
#[derive(Clone)]
pub(crate) struct Interrupts {
    handle: Option<Arc<ConnectionHandle>>,
    deadline: Option<tokio::time::Instant>,
    stopped: brikk_query::session::StreamFailure,
}

impl Interrupts {
    /// The interrupts of a statement of `client`'s `session` starting now.
    pub(crate) fn of<C: pgwire::api::ClientInfo>(client: &C, session: &mut brikk_query::Session) -> Interrupts {
        Interrupts {
            handle: client.session_extensions().get::<Arc<ConnectionHandle>>().map(|h| (*h).clone()),
            deadline: session.vars().statement_timeout().map(|t| tokio::time::Instant::now() + t),
            stopped: session.stream_failure(),
        }
    }

    /// Runs a statement's execution (`run`) until it ends, or fails with
    /// [`Error::StatementTimeout`] when the deadline passes first; the
    /// caller then fails the session's transaction ([`Session::fail`]), as
    /// a failed statement would.
    ///
    /// [`Session::fail`]: brikk_query::Session::fail
    ///
    /// A combinator rather than an `async fn`: an `async fn` would hold
    /// `run` twice (as its argument and as the future it awaits), and this
    /// future is copied into a box on every Execute.
    pub(crate) fn run<F: std::future::Future>(
        &self,
        run: F,
    ) -> impl std::future::Future<Output = Result<F::Output, Error>> {
        use futures::future::{Either, FutureExt};
        match self.deadline {
            None => Either::Left(run.map(Ok)),
            Some(deadline) => {
                Either::Right(tokio::time::timeout_at(deadline, run).map(|r| r.map_err(|_| Error::StatementTimeout)))
            }
        }
    }
}

/// Ends `rows` with `57014 canceling statement` when a cancel request for
/// this connection arrives, or the statement's deadline passes, while they
/// stream. pgwire watches for cancels only while a statement is planned;
/// rows are produced later, as they are sent, so the watch is re-armed
/// when the first row is asked for.
fn cancellable<S>(rows: S, interrupts: Interrupts) -> futures::stream::BoxStream<'static, PgWireResult<DataRow>>
where
    S: futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static,
{
    let Interrupts { handle, deadline, stopped: report } = interrupts;
    if handle.is_none() && deadline.is_none() {
        return rows.boxed();
    }
    let stopped: Arc<std::sync::OnceLock<Error>> = Arc::default();
    let why = stopped.clone();
    let stop = async move {
        let by_client = async {
            // Ok: a cancel request; Err: the next statement replaced the watch.
            match handle {
                Some(h) if h.start_query().await.await.is_ok() => Error::Canceled,
                _ => futures::future::pending().await,
            }
        };
        // Without a deadline (the usual case) only the cancel watch runs.
        let reason = match deadline {
            None => by_client.await,
            Some(d) => tokio::select! {
                r = by_client => r,
                _ = tokio::time::sleep_until(d) => Error::StatementTimeout,
            },
        };
        let _ = why.set(reason);
        report.report();
    };
    let tail = stream::once(async move { stopped.get().map(|e| Err(to_pg_error(e))) }).filter_map(|e| async move { e });
    rows.take_until(stop).chain(tail).boxed()
}

/// Where a `COPY … FROM STDIN` waits for the client's data.
pub(crate) type CopySlot = Arc<std::sync::Mutex<Option<brikk_query::copy::CopyIn>>>;
/// Postgres field descriptions of a result schema. JSON columns (Arrow's
/// `arrow.json` extension type) are reported as `json`, or as `jsonb` when
/// their field says so ([`brikk_query::types::PG_TYPE_METADATA`]); text
/// fields that say `uuid` there as `uuid`.
pub(crate) fn pg_fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    let untagged;
    let schema = match without_stale_oid_aliases(schema) {
        Some(s) => {
            untagged = s;
            &untagged
        }
        None => schema,
    };
    let fields = arrow_schema_to_pg_fields(schema, format, options.clone())?;
    Ok(fields
        .into_iter()
        .zip(schema.fields())
        .map(|(info, field)| match text_type(field) {
            Some(ty) => {
                let f = FieldInfo::new(info.name().to_string(), None, None, ty, info.format());
                match &options {
                    Some(o) => f.with_format_options(o.clone()),
                    None => f,
                }
            }
            None => info,
        })
        .collect())
}

/// `schema` without the oid-alias tags (`pg.oid_alias`, which report a
/// field as `oid`, `regtype`…) of fields that no longer hold an integer, if
/// it has any: a catalog column cast to text (`elemtype::regtype::text`)
/// keeps its tag, and would be described as an `oid` holding text.
fn without_stale_oid_aliases(schema: &Schema) -> Option<Schema> {
    let stale = |f: &Field| f.metadata().contains_key(PG_OID_ALIAS_KEY) && !f.data_type().is_integer();
    if !schema.fields().iter().any(|f| stale(f)) {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match stale(f) {
            true => {
                let mut metadata = f.metadata().clone();
                metadata.remove(PG_OID_ALIAS_KEY);
                f.as_ref().clone().with_metadata(metadata)
            }
            false => f.as_ref().clone(),
        })
        .collect();
    Some(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The Postgres type of a text field that holds another type.
fn text_type(field: &Field) -> Option<Type> {
    let tagged = field.metadata().get(PG_TYPE_METADATA).map(String::as_str);
    if tagged == Some("uuid") {
        return Some(Type::UUID);
    }
    if tagged == Some(brikk_query::types::OID_ARRAY_TYPE) {
        return Some(Type::OID_ARRAY);
    }
    if field.extension_type_name() != Some("arrow.json") {
        return None;
    }
    Some(match tagged {
        Some("jsonb") => Type::JSONB,
        _ => Type::JSON,
    })
}

/// `batch` ready for arrow-pg's encoding with `fields`: `jsonb` sent in
/// binary gets its version byte (1) before the text, `uuid` sent in binary
/// is its 16 bytes, and timestamps (in the
/// ISO date style) and floats sent as text are printed here, as Postgres
/// prints them ([`brikk_query::datetime::output`], [`brikk_query::floats`]).
fn wire_ready(batch: RecordBatch, fields: &[FieldInfo], iso: bool) -> PgWireResult<RecordBatch> {
    let jsonb_binary = |f: &FieldInfo| *f.datatype() == Type::JSONB && f.format() == FieldFormat::Binary;
    let uuid_binary = |f: &FieldInfo| *f.datatype() == Type::UUID && f.format() == FieldFormat::Binary;
    let timestamp_text = |i: usize, f: &FieldInfo| {
        iso && f.format() == FieldFormat::Text && matches!(batch.column(i).data_type(), DataType::Timestamp(..))
    };
    let float_text = |i: usize, f: &FieldInfo| {
        f.format() == FieldFormat::Text && matches!(batch.column(i).data_type(), DataType::Float32 | DataType::Float64)
    };
    if !fields
        .iter()
        .enumerate()
        .any(|(i, f)| jsonb_binary(f) || uuid_binary(f) || timestamp_text(i, f) || float_text(i, f))
    {
        return Ok(batch);
    }
    let api = |e| PgWireError::ApiError(Box::new(e));
    let mut columns = batch.columns().to_vec();
    let mut schema_fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, f) in fields.iter().enumerate() {
        if jsonb_binary(f) {
            if let Some(text) = columns[i].as_any().downcast_ref::<StringArray>() {
                let prefixed: StringArray = text.iter().map(|v| v.map(|s| format!("\u{1}{s}"))).collect();
                columns[i] = Arc::new(prefixed);
            }
        } else if uuid_binary(f) {
            // The binary form of a uuid is its 16 bytes.
            if let Some(text) = columns[i].as_any().downcast_ref::<StringArray>() {
                let bytes: BinaryArray = text.iter().map(|v| v.and_then(uuid_bytes)).collect();
                columns[i] = Arc::new(bytes);
                schema_fields[i] = schema_fields[i].clone().with_data_type(DataType::Binary);
            }
        } else if timestamp_text(i, f) {
            columns[i] = timestamps_as_text(&columns[i]).map_err(api)?;
            schema_fields[i] = schema_fields[i].clone().with_data_type(DataType::Utf8);
        } else if float_text(i, f) {
            columns[i] = floats_as_text(&columns[i]);
            schema_fields[i] = schema_fields[i].clone().with_data_type(DataType::Utf8);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), columns).map_err(api)
}

/// The 16 bytes of a UUID's canonical text.
fn uuid_bytes(text: &str) -> Option<Vec<u8>> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    (hex.len() == 32)
        .then(|| hex.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()).collect())
        .flatten()
}

/// Rows as a query response whose completion tag is `tag` (`SELECT`,
/// `UPDATE`, `INSERT 0`, …; the row count is appended when sent).
fn rows_response(
    batches: SendableRecordBatchStream,
    tag: &str,
    format: &Format,
    options: Arc<FormatOptions>,
    interrupts: Interrupts,
) -> PgWireResult<Response> {
    let iso = iso_style(&options.date_style);
    let fields = Arc::new(pg_fields(&batches.schema(), format, Some(options))?);
    let row_fields = fields.clone();
    let rows = batches
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> =
                match batch.map_err(|e| to_pg_error(&Error::from_datafusion(e))) {
                    Ok(b) => match wire_ready(b, &row_fields, iso) {
                        Ok(b) => encode_recordbatch(row_fields.clone(), b),
                        Err(e) => Box::new(std::iter::once(Err(e))),
                    },
                    Err(e) => Box::new(std::iter::once(Err(e))),
                };
            stream::iter(rows)
        })
        .flatten();
    let mut response = QueryResponse::new(fields, cancellable(rows, interrupts));
    response.set_command_tag(tag);
    Ok(Response::Query(response))
}

/// Turns one statement's output into a response; rows stream lazily and
/// stop at a cancel request or the statement's deadline (`interrupts`).
/// A `COPY … FROM STDIN` is parked in `copy` for the copy handler.
pub(crate) fn response(
    output: Output,
    format: &Format,
    options: Arc<FormatOptions>,
    interrupts: Interrupts,
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
        Output::Rows(batches) => rows_response(batches, "SELECT", format, options, interrupts)?,
        Output::Returning { tag, rows } => {
            let tag = if tag == "INSERT" { "INSERT 0".to_string() } else { tag };
            rows_response(rows, &tag, format, options, interrupts)?
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
        // Streamed by the statement's handler (`super::subscribe`), which
        // never makes it a response.
        Output::Subscription(_) => {
            return Err(to_pg_error(&Error::Internal("a subscription cannot be a buffered response".into())))
        }
    })
}
