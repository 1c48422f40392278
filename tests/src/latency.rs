//! Helpers the latency benchmarks share: a clock for ping payloads, the
//! producer's pacing, percentiles, and a LISTEN session that reports each
//! notification with its arrival time.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client};

/// Samples run first and not counted.
pub const WARMUP: usize = 20;

/// Microseconds since `base`: the clock written into each ping.
pub fn micros_since(base: Instant) -> i64 {
    base.elapsed().as_micros() as i64
}

/// Between 1.5 and 2.5 ms, varying by sample so appends don't beat in step.
pub fn jitter(i: usize) -> Duration {
    Duration::from_micros(1500 + (i as u64 * 7919) % 1000)
}

/// Nearest-rank percentile `p` (0..=100) of sorted `v`.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A task driving a connection; ends with the error that stopped it.
pub type Driver = tokio::task::JoinHandle<Result<()>>;

/// A `LISTEN channel` session over a connection it polls itself: every
/// notification's payload goes to `on` with its arrival time
/// ([`micros_since`] `base`); `on` returning false stops the session.
/// The returned client keeps the session open.
pub async fn listen<F>(conn_str: &str, channel: &str, base: Instant, mut on: F) -> Result<(Client, Driver)>
where
    F: FnMut(&str, i64) -> Result<bool> + Send + 'static,
{
    let (client, mut connection) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(msg) = messages.next().await {
            if let AsyncMessage::Notification(n) = msg.context("LISTEN connection")? {
                if !on(n.payload(), micros_since(base))? {
                    break;
                }
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {channel}")).await.with_context(|| format!("LISTEN {channel}"))?;
    Ok((client, task))
}

/// Forwards each value to `tx`; false once the receiver is gone.
pub fn forward<T>(tx: &mpsc::UnboundedSender<T>, value: T) -> bool {
    tx.send(value).is_ok()
}
