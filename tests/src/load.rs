//! Closed-loop load for the benchmarks: N clients, each running its
//! operation as fast as it can for a fixed time.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

/// One client's view of a run: whether to stop, and where to count.
#[derive(Clone)]
pub struct Run {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
}

impl Run {
    /// Whether the run is over.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Counts `n` operations done.
    pub fn done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// Runs `client(i, run)` for clients `0..clients` for `secs` seconds and
/// returns the operations counted per second. Each client loops until
/// `run.stopped()`; an error of any client fails the run.
pub async fn for_seconds<F, Fut>(clients: usize, secs: u64, client: F) -> Result<f64>
where
    F: Fn(usize, Run) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let run = Run { stop: Arc::new(AtomicBool::new(false)), done: Arc::new(AtomicU64::new(0)) };
    let tasks: Vec<_> = (0..clients).map(|i| tokio::spawn(client(i, run.clone()))).collect();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let n = run.done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    run.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / elapsed)
}
