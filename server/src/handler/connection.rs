//! Per-connection state and the handler set pgwire asks for.

use std::sync::Arc;

use brikk_query::{Brikk, Session};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers};
use pgwire::error::PgWireError;

use super::{Startup, StatementParser};

/// Per-connection state: the session and its statement parser.
pub struct Connection {
    pub(super) session: Arc<tokio::sync::Mutex<Session>>,
    pub(super) parser: Arc<StatementParser>,
}

impl Connection {
    pub fn new(db: &Brikk) -> Connection {
        let session = Arc::new(tokio::sync::Mutex::new(db.session()));
        Connection { parser: Arc::new(StatementParser::new(db.clone(), session.clone())), session }
    }
}

/// The handlers pgwire asks for, for one connection.
pub struct Handlers {
    connection: Arc<Connection>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Handlers {
    pub fn new(db: &Brikk, startup: Arc<Startup>, connections: Arc<ConnectionManager>) -> Handlers {
        Handlers {
            connection: Arc::new(Connection::new(db)),
            startup,
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.connection.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.connection.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        tracing::debug!(peer = %client.socket_addr(), %error, "statement failed");
    }
}
