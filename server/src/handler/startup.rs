//! Connection start-up: who may connect, and the parameters reported.
//!
//! Until roles exist, Brikk has one user, `brikk`, and one database,
//! `brikk`; connections are accepted without a password. The listener
//! refuses non-loopback addresses unless explicitly allowed, so this is
//! only reachable from the machine itself by default.
//!
//! A `TimeZone` start-up parameter (pgjdbc sends the JVM's zone) sets the
//! session's zone, and the zone is reported back in ParameterStatus; a zone
//! Brikk does not know ends start-up with 22023. `application_name` is
//! kept too. Both are what `RESET` returns to.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use std::collections::HashMap;

use brikk_query::session::vars::DEFAULT_ZONE;
use brikk_query::Session;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, DefaultServerParameterProvider,
    ServerParameterProvider, StartupHandler,
};
use pgwire::api::{ClientInfo, ConnectionManager, PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::connection::{Signals, Termination};
use crate::sqlstate::code;

/// The only user name Brikk accepts.
pub use brikk_query::USER;

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
        params.time_zone = DEFAULT_ZONE.into();
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
        let zone_asked = requested(&startup.parameters, "TimeZone");
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let mut zone = DEFAULT_ZONE.to_string();
        let session = client.session_extensions().get::<Arc<tokio::sync::Mutex<Session>>>();
        if let Some(session) = &session {
            let mut session = session.lock().await;
            if let Some(v) = &zone_asked {
                let set = session.vars().start_with("TimeZone", v);
                set.map_err(|e| fatal(code::INVALID_PARAMETER_VALUE, e.to_string()))?;
                zone = session.vars().zone().to_string();
            }
            for name in ["application_name", "statement_timeout"] {
                if let Some(value) = requested(&startup.parameters, name) {
                    let set = session.vars().start_with(name, &value);
                    set.map_err(|e| fatal(code::INVALID_PARAMETER_VALUE, e.to_string()))?;
                }
            }
        }
        let (pid, secret) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret);
        let (pid, secret) = client.pid_and_secret_key();
        let (handle, guard) = self.connections.register(pid, secret);
        if let Some(session) = session {
            let termination = client.session_extensions().get::<Arc<Termination>>().map(|t| (*t).clone());
            let signals = Signals { handle: handle.clone(), termination: termination.unwrap_or_default() };
            session.lock().await.connected(pid, Some(client.socket_addr()), Arc::new(signals));
        }
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        finish_authentication(client, &Reported { params: &self.params, zone }).await?;
        client.flush().await?;
        Ok(())
    }
}

/// The value a client asks for parameter `name` (`TimeZone`,
/// `statement_timeout`, …) at start-up: a start-up parameter of that name
/// (any case), or `-c name=…` in `options` (libpq's `PGOPTIONS`), which wins
/// over the parameter; within `options` the last setting wins.
fn requested(parameters: &std::collections::BTreeMap<String, String>, name: &str) -> Option<String> {
    let is_named = |k: &str| k.eq_ignore_ascii_case(name);
    let from_options = parameters.get("options").and_then(|o| {
        let words: Vec<&str> = o.split_whitespace().collect();
        let settings = words.iter().enumerate().filter_map(|(i, w)| match w.strip_prefix("-c") {
            Some("") => words.get(i + 1).copied(),
            Some(rest) => Some(rest),
            None => w.strip_prefix("--"),
        });
        settings.filter_map(|s| s.split_once('=')).filter(|(k, _)| is_named(k)).map(|(_, v)| v.to_string()).next_back()
    });
    from_options.or_else(|| parameters.iter().find(|(k, _)| is_named(k)).map(|(_, v)| v.clone()))
}

/// The parameters reported at start-up: the defaults, with the session's
/// zone as `TimeZone`.
struct Reported<'a> {
    params: &'a DefaultServerParameterProvider,
    zone: String,
}

impl ServerParameterProvider for Reported<'_> {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        let mut params = self.params.server_parameters(client)?;
        params.insert("TimeZone".into(), self.zone.clone());
        Some(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_a_parameter_or_the_options() {
        let asked = |pairs: &[(&str, &str)], name: &str| {
            let params = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            requested(&params, name)
        };
        let zone = |pairs: &[(&str, &str)]| asked(pairs, "TimeZone");
        assert_eq!(zone(&[("TimeZone", "Europe/Berlin")]).as_deref(), Some("Europe/Berlin"));
        assert_eq!(zone(&[("options", "-c timezone=Asia/Tokyo")]).as_deref(), Some("Asia/Tokyo"));
        assert_eq!(zone(&[("options", "-cTimeZone=UTC --x=1")]).as_deref(), Some("UTC"));
        assert_eq!(zone(&[("options", "--timezone=-7")]).as_deref(), Some("-7"));
        assert_eq!(zone(&[("options", "-c search_path=x"), ("user", "brikk")]), None);
        let timeout = |pairs: &[(&str, &str)]| asked(pairs, "statement_timeout");
        assert_eq!(timeout(&[("statement_timeout", "5s")]).as_deref(), Some("5s"));
        let both = [("statement_timeout", "5s"), ("options", "-c statement_timeout=100")];
        assert_eq!(timeout(&both).as_deref(), Some("100"));
    }
}
