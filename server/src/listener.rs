//! Accepting connections, and shutting down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brikk_query::Brikk;
use pgwire::api::ConnectionManager;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::handler::{Handlers, Startup};
use crate::warm::Warm;

/// How long open connections get to finish their current statement after
/// shutdown begins, before they are closed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `db` on `listener` until `shutdown` resolves; then stops
/// accepting, lets running statements finish (up to [`SHUTDOWN_GRACE`]),
/// closes connections and closes the database, so every commit that was
/// queued is written before this returns. `idle_poll` is how long a worker
/// keeps polling after the last message (see [`crate::warm`]; zero: never).
pub async fn serve(
    db: Brikk,
    listener: TcpListener,
    idle_poll: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(ConnectionManager::new());
    let startup = Arc::new(Startup::new(connections.clone()));
    let warm = Warm::new(idle_poll);
    let warming = tokio::spawn(crate::warm::keep_warm(warm.clone()));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let handlers = Arc::new(Handlers::new(&db, startup.clone(), connections.clone(), warm.clone()));
                    tasks.spawn(connection(socket, peer, handlers));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    warming.abort();
    tracing::info!(open = tasks.len(), "shutting down: no new connections");
    drop(listener);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let closing = db.clone();
    tokio::task::spawn_blocking(move || closing.close()).await.map_err(std::io::Error::other)?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn connection(socket: tokio::net::TcpStream, peer: SocketAddr, handlers: Arc<Handlers>) {
    tracing::debug!(%peer, "connection opened");
    // A malformed or oversized message ends this connection with an error
    // and never reaches the other connections.
    if let Err(e) = crate::protocol::serve_connection(socket, peer, handlers).await {
        tracing::debug!(%peer, error = %e, "connection closed with error");
    }
    tracing::debug!(%peer, "connection closed");
}
