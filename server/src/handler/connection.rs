//! Per-connection state and the handler set pgwire asks for.

use std::sync::Arc;

use brikk_query::activity::Control;
use brikk_query::{Brikk, Notification, Session};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ClientInfo, ConnectionHandle, ConnectionManager, ErrorHandler};
use pgwire::error::PgWireError;

use super::{Startup, StatementParser};
use crate::warm::Warm;

/// Per-connection state: the session, its statement parser, the
/// receiving end of its notifications (taken by the connection loop), and
/// whether another session asked it to end.
pub struct Connection {
    pub(crate) session: Arc<tokio::sync::Mutex<Session>>,
    pub(super) copy: super::encode::CopySlot,
    pub(super) parser: Arc<StatementParser>,
    notifications: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Notification>>>,
    pub(crate) termination: Arc<Termination>,
}

/// Set by `pg_terminate_backend`: the connection loop ends the connection
/// with `57P01` (`FATAL`) as soon as it is between statements.
#[derive(Default)]
pub struct Termination {
    asked: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Termination {
    fn ask(&self) {
        self.asked.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// Returns once termination has been asked for.
    pub(crate) async fn asked(&self) {
        while !self.asked.load(std::sync::atomic::Ordering::Acquire) {
            self.wake.notified().await;
        }
    }
}

/// How `pg_cancel_backend` and `pg_terminate_backend` in other sessions
/// reach this connection: its cancel handle (as a client's cancel request
/// does) and its [`Termination`].
pub(crate) struct Signals {
    pub(crate) handle: Arc<ConnectionHandle>,
    pub(crate) termination: Arc<Termination>,
}

impl Control for Signals {
    fn cancel(&self) {
        let handle = self.handle.clone();
        // The handle's lock is async; a statement on this connection holds
        // it only to swap its cancel sender.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move { handle.cancel().await })),
            Err(_) => drop(futures::executor::block_on(handle.cancel())),
        }
    }

    fn terminate(&self) {
        self.termination.ask();
        self.cancel();
    }
}

impl Connection {
    pub fn new(db: &Brikk) -> Connection {
        let mut session = db.session();
        let notifications = std::sync::Mutex::new(Some(session.notifications()));
        let session = Arc::new(tokio::sync::Mutex::new(session));
        Connection {
            parser: Arc::new(StatementParser::new(session.clone())),
            session,
            copy: Default::default(),
            notifications,
            termination: Arc::default(),
        }
    }

    /// The session's notifications; `None` after the first call.
    pub(crate) fn take_notifications(&self) -> Option<tokio::sync::mpsc::Receiver<Notification>> {
        self.notifications.lock().expect("notifications lock").take()
    }
}

/// The handlers the connection loop ([`crate::protocol`]) dispatches to.
pub struct Handlers {
    pub(crate) connection: Arc<Connection>,
    pub(crate) startup: Arc<Startup>,
    pub(crate) cancel: Arc<DefaultCancelHandler>,
    pub(crate) warm: Arc<Warm>,
}

impl Handlers {
    pub fn new(db: &Brikk, startup: Arc<Startup>, connections: Arc<ConnectionManager>, warm: Arc<Warm>) -> Handlers {
        Handlers {
            connection: Arc::new(Connection::new(db)),
            startup,
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
            warm,
        }
    }
}

pub(crate) struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        tracing::debug!(peer = %client.socket_addr(), %error, "statement failed");
    }
}
