//! The per-connection message loop, and write coalescing.
//!
//! pgwire decodes and dispatches each message; this loop owns the socket so
//! that responses are written the way Postgres writes them: buffered while
//! the client still has messages in flight, and flushed once the server is
//! about to wait for the client. pgwire flushes after BindComplete,
//! CommandComplete and ReadyForQuery; written through, a prepared INSERT
//! would cost three `write` calls (and three client wake-ups) instead of one.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use brikk_query::Notification;
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::response::{NotificationResponse, TransactionStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message, MaybeTls};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use crate::handler::{Handlers, LogErrors, WireStatement};
use crate::peer::{PeerWatch, WriteThrough};
use crate::sqlstate::code;

/// A client that has not finished start-up within this time is dropped.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Buffered output beyond this many bytes is written at once.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Serves one client until it disconnects or sends something malformed.
pub async fn serve_connection(socket: TcpStream, peer: SocketAddr, handlers: Arc<Handlers>) -> io::Result<()> {
    let watch = PeerWatch::new(&socket)?;
    let negotiated = tokio::time::timeout(STARTUP_TIMEOUT, negotiate_tls::<Arc<WireStatement>>(socket, None)).await;
    // Ok(None): a direct-TLS hello, which Brikk does not speak; Err: I/O.
    let Ok(Some(framed)) = negotiated.map_or(Ok(None), |r| r) else {
        tracing::debug!(%peer, "no start-up, or TLS requested directly; closing");
        return Ok(());
    };
    let old = framed.into_parts();
    let write_through = WriteThrough::default();
    let mut parts = FramedParts::new(Coalesce::new(old.io, write_through.clone()), old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);
    // For statements that stream without reading (COPY (SUBSCRIBE …)).
    socket.session_extensions().insert(watch);
    socket.session_extensions().insert(write_through);
    // For start-up parameters that set the session's (TimeZone).
    socket.session_extensions().insert(handlers.connection.session.clone());
    // For the session's `Control` (`pg_terminate_backend`).
    let termination = handlers.connection.termination.clone();
    socket.session_extensions().insert(termination.clone());

    let startup = handlers.startup.clone();
    let simple = handlers.connection.clone();
    let extended = handlers.connection.clone();
    let copy = handlers.connection.clone();
    let cancel = handlers.cancel.clone();
    let errors = LogErrors;
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    let mut notifications = handlers.connection.take_notifications();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
        );
        let msg = if starting {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            // Between messages, outside a transaction block, notifications
            // go out as they come: an idle client gets them too.
            let idle = matches!(socket.state(), PgWireConnectionState::ReadyForQuery)
                && matches!(socket.transaction_status(), TransactionStatus::Idle);
            tokio::select! {
                biased;
                _ = termination.asked() => {
                    let info = ErrorInfo::new(
                        "FATAL".into(),
                        code::ADMIN_SHUTDOWN.into(),
                        "terminating connection due to administrator command".into(),
                    );
                    socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await?;
                    break;
                }
                m = socket.next() => m,
                Some(n) = recv(&mut notifications), if idle => {
                    let n = NotificationResponse::new(n.pid, n.channel, n.payload);
                    // Into the coalescing buffer; written when the loop next
                    // waits to read, so a burst goes out in few writes.
                    socket.send(PgWireBackendMessage::NotificationResponse(n)).await?;
                    continue;
                }
            }
        };
        handlers.warm.touch();
        let msg = match msg {
            Some(Ok(PgWireFrontendMessage::Terminate(_))) | None => break,
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                // Malformed or oversized: end this connection only.
                tracing::debug!(%peer, error = %e, "bad message; closing connection");
                let _ = process_error(&mut socket, e, false).await;
                break;
            }
        };
        if let Some(description) = describe_cursor(&msg, &socket, &handlers).await {
            socket.send(PgWireBackendMessage::RowDescription(description)).await?;
            continue;
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => msg.is_extended_query(),
        };
        let processed = std::panic::AssertUnwindSafe(process_message(
            msg,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        ))
        .catch_unwind()
        .await;
        let result = match processed {
            Ok(result) => result,
            Err(panic) => Err(panicked(&peer, panic_text(panic), &handlers).await),
        };
        if let Err(mut e) = result {
            pgwire::api::ErrorHandler::on_error(&errors, &socket, &mut e);
            process_error(&mut socket, e, extended_query).await?;
        }
    }
    socket.close().await
}

/// The error a statement that panicked (a bug, in Brikk or a library) ends
/// with: `XX000`, and its transaction failed, as after any error. The
/// panic ends that statement only; the connection and the server go on.
async fn panicked(peer: &SocketAddr, what: String, handlers: &Handlers) -> PgWireError {
    tracing::error!(%peer, panic = %what, "statement panicked");
    handlers.connection.session.lock().await.fail();
    crate::handler::encode::to_pg_error(&brikk_query::Error::Internal(format!("statement failed: {what}")))
}

/// What a panic said.
fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(panic) => panic.downcast_ref::<&str>().map_or_else(|| "a panic".to_string(), |s| s.to_string()),
    }
}

/// The rows of a cursor, when `msg` describes a portal that pgwire does not
/// know but the session has a cursor of that name: in Postgres a `DECLARE`d
/// cursor is also a portal, and psycopg 3 describes its named cursors so.
async fn describe_cursor<S>(
    msg: &PgWireFrontendMessage,
    socket: &S,
    handlers: &Handlers,
) -> Option<pgwire::messages::data::RowDescription>
where
    S: pgwire::api::ClientPortalStore,
    S::PortalStore: pgwire::api::store::PortalStore,
{
    use pgwire::api::store::PortalStore;
    let PgWireFrontendMessage::Describe(d) = msg else { return None };
    let name =
        d.name.as_deref().filter(|_| d.target_type == pgwire::messages::extendedquery::TARGET_TYPE_BYTE_PORTAL)?;
    if socket.portal_store().get_portal(name).is_some() {
        return None;
    }
    let schema = handlers.connection.session.lock().await.cursor_schema(name)?;
    let fields = crate::handler::encode::pg_fields(&schema, &pgwire::api::portal::Format::UnifiedText, None).ok()?;
    Some(pgwire::messages::data::RowDescription::new(fields.iter().map(Into::into).collect()))
}

/// The next notification, or never if there is no receiver.
async fn recv(rx: &mut Option<tokio::sync::mpsc::Receiver<Notification>>) -> Option<Notification> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Buffers writes until the connection would wait to read (or the buffer
/// is large); `flush` alone does not write, unless `write_through` is on
/// (a statement streaming without reading). Shutdown writes everything.
pub struct Coalesce<IO> {
    io: IO,
    buf: Vec<u8>,
    written: usize,
    write_through: WriteThrough,
}

impl<IO> Coalesce<IO> {
    pub fn new(io: IO, write_through: WriteThrough) -> Coalesce<IO> {
        Coalesce { io, buf: Vec::with_capacity(4096), written: 0, write_through }
    }
}

impl<IO: AsyncWrite + Unpin> Coalesce<IO> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesce<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {
                // About to wait for the client: what it is waiting for goes
                // out now. The read waker is already registered.
                match this.poll_drain(cx) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Pending,
                }
            }
            ready => ready,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalesce<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > COALESCE_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_through.is_on() {
            return this.poll_drain(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// The stream type the loop runs on.
pub type Socket = Coalesce<MaybeTls>;
