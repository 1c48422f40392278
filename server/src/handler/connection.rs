//! Per-connection state and the handler set pgwire asks for.

use std::sync::Arc;

use brikk_query::{Brikk, Notification, Session};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ClientInfo, ConnectionManager, ErrorHandler};
use pgwire::error::PgWireError;

use super::{Startup, StatementParser};
use crate::warm::Warm;

/// Per-connection state: the session, its statement parser, and the
/// receiving end of its notifications (taken by the connection loop).
pub struct Connection {
    pub(crate) session: Arc<tokio::sync::Mutex<Session>>,
    pub(super) copy: super::encode::CopySlot,
    pub(super) parser: Arc<StatementParser>,
    notifications: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Notification>>>,
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
