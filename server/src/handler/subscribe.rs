//! `COPY (SUBSCRIBE …) TO STDOUT` on the wire: a live subscription
//! streamed as COPY OUT data, the way Postgres streams `COPY … TO STDOUT`.
//!
//! The statement's handler writes the rows itself and returns only when
//! the subscription ends, so every way of ending it goes through pgwire's
//! ordinary error path:
//!
//! 1. `CopyOutResponse` (text or csv, one column per field), written at once.
//! 2. Each time [`Subscription::next`] wakes with records (never polling:
//!    it waits on the stream's append notification), one `CopyData` per
//!    record, in offset order per partition, then the socket is written
//!    through: a record reaches the client once it is durable, not when a
//!    buffer fills.
//! 3. It ends only with an error, never with `CopyDone`:
//!    - a cancel request (psql's Ctrl-C): pgwire drops this future and
//!      answers `57014`; the connection is ready for the next statement;
//!    - the client closing the connection, seen by [`PeerWatch`] even while
//!      no record comes: the statement and the connection's task end, and
//!      the subscription leaves `brikk_subscriptions`;
//!    - the stream being dropped (`42P01`), or the log failing.
//!
//! A client that stops reading only stops this statement: the socket's
//! buffers fill, the next write waits, and the subscription reads no more
//! of the log until it can write again. Writers never wait for it.

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::encoder::encode_value;
use brikk_query::sql::subscribe::CopyFormat;
use brikk_query::{Error, Subscription};
use futures::{Sink, SinkExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyTextOptions, FieldFormat, FieldInfo};
use pgwire::api::{ClientInfo, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyOutResponse;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use super::encode::{pg_fields, to_pg_error};
use crate::peer::{PeerWatch, WriteThrough};

/// Streams `sub` to the client until it is canceled, the client goes away
/// or the subscription fails; returns the error that ended it.
pub(crate) async fn stream<C>(client: &mut C, mut sub: Subscription) -> PgWireError
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let (Some(watch), Some(write_through)) =
        (client.session_extensions().get::<PeerWatch>(), client.session_extensions().get::<WriteThrough>())
    else {
        return to_pg_error(&Error::Internal("connection without a peer watch".into()));
    };
    let _through = write_through.on();
    tokio::select! {
        e = watch.closed() => PgWireError::IoError(e),
        e = pump(client, &mut sub) => e,
    }
}

async fn pump<C>(client: &mut C, sub: &mut Subscription) -> PgWireError
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let result: PgWireResult<Infallible> = async {
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(pg_fields(sub.schema(), &Format::UnifiedText, Some(options))?);
        let columns = fields.len();
        let mut encoder = new_encoder(sub.format(), fields.clone());
        client
            .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(0, columns as i16, vec![0; columns])))
            .await?;
        if sub.header() {
            let mut names = new_encoder(sub.format(), Arc::new(fields.iter().map(text_field).collect()));
            for f in fields.iter() {
                names.encode_field(&f.name())?;
            }
            client.send(PgWireBackendMessage::CopyData(names.take_copy())).await?;
        }
        loop {
            let batches = sub.next().await.map_err(|e| to_pg_error(&e))?;
            for batch in batches {
                let schema = batch.schema();
                for row in 0..batch.num_rows() {
                    for (col, field) in fields.iter().enumerate() {
                        encode_value(&mut encoder, batch.column(col), row, schema.field(col), field)?;
                    }
                    client.feed(PgWireBackendMessage::CopyData(encoder.take_copy())).await?;
                }
            }
            client.flush().await?;
        }
    }
    .await;
    match result {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn new_encoder(format: CopyFormat, fields: Arc<Vec<FieldInfo>>) -> CopyEncoder {
    match format {
        CopyFormat::Text => CopyEncoder::new_text(fields, CopyTextOptions::default()),
        CopyFormat::Csv => CopyEncoder::new_csv(fields, CopyCsvOptions::default()),
    }
}

fn text_field(f: &FieldInfo) -> FieldInfo {
    FieldInfo::new(f.name().to_string(), None, None, Type::TEXT, FieldFormat::Text)
}
