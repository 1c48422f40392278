//! Connection start-up: who may connect, and the parameters reported.
//!
//! Until roles exist, Brikk has one user, `brikk`, and one database,
//! `brikk`; connections are accepted without a password. The listener
//! refuses non-loopback addresses unless explicitly allowed, so this is
//! only reachable from the machine itself by default.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, DefaultServerParameterProvider,
    StartupHandler,
};
use pgwire::api::{ClientInfo, ConnectionManager, PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::sqlstate::code;

/// The only user and database name Brikk accepts.
pub const USER: &str = "brikk";

/// Accepts user `brikk` on database `brikk`.
pub struct Startup {
    params: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
    pub(crate) connections: Arc<ConnectionManager>,
}

impl Startup {
    pub fn new(connections: Arc<ConnectionManager>) -> Startup {
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = brikk_query::SERVER_VERSION.to_string();
        params.time_zone = "UTC".into();
        Startup { params, pids: RandomPidSecretKeyGenerator::default(), connections }
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message)))
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(startup) = message else {
            return Ok(());
        };
        let user = startup.parameters.get("user").cloned().unwrap_or_default();
        let database = startup.parameters.get("database").cloned().unwrap_or_else(|| user.clone());
        if user != USER {
            return Err(fatal(
                code::INVALID_AUTHORIZATION,
                format!("role \"{user}\" does not exist (connect as user \"{USER}\")"),
            ));
        }
        if database != brikk_query::DATABASE {
            return Err(fatal(
                code::INVALID_CATALOG_NAME,
                format!("database \"{database}\" does not exist (the database is \"{}\")", brikk_query::DATABASE),
            ));
        }
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let (pid, secret) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret);
        let (pid, secret) = client.pid_and_secret_key();
        let (handle, guard) = self.connections.register(pid, secret);
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        finish_authentication(client, &self.params).await?;
        client.flush().await?;
        Ok(())
    }
}
