//! `COPY … FROM STDIN`: the client's `CopyData` fed to the parked
//! [`brikk_query::copy::CopyIn`], finished at `CopyDone`.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::Tag;
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::PgWireBackendMessage;

use super::encode::to_pg_error;
use super::Connection;
use brikk_query::{Error, Output};

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(copy) = self.copy.lock().expect("copy slot").as_mut() {
            copy.feed(&data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(copy) = self.copy.lock().expect("copy slot").take() else {
            return Err(to_pg_error(&Error::WrongState("no COPY FROM STDIN is in progress".into())));
        };
        let mut session = self.session.lock().await;
        match session.copy_in_done(copy).await {
            Ok(Output::Command { rows, .. }) => {
                let tag = Tag::new("COPY").with_rows(rows.unwrap_or(0));
                client.send(PgWireBackendMessage::CommandComplete(tag.into())).await?;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(peer = %client.socket_addr(), error = %e, "COPY FROM STDIN failed");
                Err(to_pg_error(&e))
            }
        }
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.copy.lock().expect("copy slot").take();
        self.session.lock().await.fail();
        to_pg_error(&Error::BadCopyData(format!("COPY from stdin failed: {}", fail.message)))
    }
}
