//! The simple query protocol.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::portal::Format;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use brikk_query::Output;

use super::encode::{error_info, report_changes, response, Interrupts};
use super::Connection;

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let mut session = self.session.lock().await;
        let interrupts = Interrupts::of(client, &mut session);
        let results = match interrupts.run(session.execute(query)).await {
            Ok(results) => results,
            Err(timeout) => {
                session.fail();
                vec![Err(timeout)]
            }
        };
        report_changes(client, &mut session).await?;
        drop(session);
        let mut responses = Vec::new();
        for result in results {
            match result {
                // The only statement of its string (the session refuses it
                // in a transaction), streamed until it ends with an error.
                Ok(Output::Subscription(sub)) => return Err(super::subscribe::stream(client, sub).await),
                Ok(output) => responses.push(response(
                    output,
                    &Format::UnifiedText,
                    options.clone(),
                    interrupts.clone(),
                    &self.copy,
                )?),
                Err(e) => {
                    tracing::debug!(peer = %client.socket_addr(), error = %e, sql = %query, "statement failed");
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}
