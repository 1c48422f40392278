//! Where continuous queries run: one thread with its own single-threaded
//! tokio runtime hosts a task per running query, started and stopped by
//! the DDL statements ([`Runtime::create`], `drop`, `pause`, `resume`).
//!
//! The thread holds the database only weakly while idle; a runner holds
//! the store while it runs. Dropping (or closing) the database stops every
//! runner after its current step and joins the thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use brikk_storage::{now_micros, StateWrite, Store, WriteSet};
use tokio::sync::{mpsc, oneshot, watch};

use crate::continuous::def::{Progress, QueryDef, Status};
use crate::continuous::input::Inputs;
use crate::continuous::operator::StepOutput;
use crate::continuous::plan::plan;
use crate::db::{Brikk, Shared};
use crate::error::{Error, ObjectKind, Result};
use crate::sql::continuous::{ContinuousOptions, Start};

/// Records read per input partition and step.
const STEP_BUDGET: usize = 8192;
/// Longest an idle runner sleeps before looking again (a safety net: it is
/// woken by appends and by its operator's deadline).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Key of the next query id.
const NEXT_ID_KEY: &[u8] = b"n";

enum Control {
    Start(QueryDef),
    /// Stop a query's runner; answers once it has stopped.
    Stop(String, oneshot::Sender<()>),
}

/// The continuous-query thread and the control of its runners.
pub struct Runtime {
    control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Serializes CREATE/DROP/PAUSE/RESUME.
    ddl: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            control: Mutex::new(None),
            thread: Mutex::new(None),
            ddl: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        }
    }
}

impl Runtime {
    /// Starts the thread and every stored query whose status is running.
    pub(crate) fn start(&self, db: Weak<Shared>, store: &Store) -> Result<()> {
        let defs = QueryDef::load_all(store)?;
        let stored_next = match store.state_get(NEXT_ID_KEY)? {
            Some(v) => u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
            None => 1,
        };
        let max = defs.iter().map(|d| d.id + 1).max().unwrap_or(1);
        self.next_id.store(stored_next.max(max), Ordering::SeqCst);
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("brikk-continuous".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "continuous queries disabled: cannot build their runtime");
                        return;
                    }
                };
                rt.block_on(control_loop(db, rx));
            })
            .map_err(|e| Error::Internal(format!("cannot start the continuous-query thread: {e}")))?;
        for def in defs.into_iter().filter(|d| d.status == Status::Running) {
            let _ = tx.send(Control::Start(def));
        }
        *self.control.lock().expect("control lock") = Some(tx);
        *self.thread.lock().expect("thread lock") = Some(thread);
        Ok(())
    }

    /// Stops every runner (after its current step) and joins the thread.
    pub(crate) fn shutdown(&self) {
        drop(self.control.lock().expect("control lock").take());
        if let Some(t) = self.thread.lock().expect("thread lock").take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }

    fn send(&self, c: Control) -> Result<()> {
        let guard = self.control.lock().expect("control lock");
        guard.as_ref().ok_or(Error::ShuttingDown)?.send(c).map_err(|_| Error::ShuttingDown)
    }

    async fn stop(&self, name: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Control::Stop(name.to_string(), tx))?;
        rx.await.map_err(|_| Error::ShuttingDown)
    }

    /// `CREATE CONTINUOUS QUERY`: checks that the body plans, stores the
    /// definition durably, and starts it. Returns false if it existed and
    /// `if_not_exists` was given.
    pub async fn create(
        &self,
        db: &Brikk,
        name: &str,
        if_not_exists: bool,
        options: ContinuousOptions,
        body: &str,
    ) -> Result<bool> {
        let _ddl = self.ddl.lock().await;
        let store = db.store();
        if QueryDef::load(store, name)?.is_some() {
            if if_not_exists {
                return Ok(false);
            }
            return Err(Error::AlreadyExists { kind: ObjectKind::Query, name: name.to_string() });
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let def = QueryDef {
            id,
            name: name.to_string(),
            body: body.to_string(),
            options,
            status: Status::Running,
            error: None,
            created_at_micros: now_micros(),
            sink: String::new(),
            inputs: Vec::new(),
            sink_filled: None,
        };
        // Plan now, so a query that cannot run is refused at CREATE.
        let planned = plan(db, &def).await?;
        let mut def = def;
        def.sink = planned.sink.stream.def.name.clone();
        def.inputs = planned.inputs.iter().map(|s| s.def.name.clone()).collect();
        def.sink_filled = Some(planned.sink.filled());
        let mut state = vec![def.to_write(), StateWrite::Put(NEXT_ID_KEY.to_vec(), (id + 1).to_be_bytes().to_vec())];
        if def.options.start == Start::Latest {
            // Fix the starting offsets now, not when the runner gets to it.
            let inputs = Inputs::new(planned.inputs, &[], true)?;
            let progress =
                Progress { inputs: inputs.committed(), updated_at_micros: now_micros(), ..Default::default() };
            state.push(progress.to_write(id));
        }
        store.commit(WriteSet { state, ..Default::default() }).await?;
        self.send(Control::Start(def))?;
        Ok(true)
    }

    /// `DROP CONTINUOUS QUERY`: stops it and deletes its definition and
    /// state in one write. Returns false if it did not exist and `if_exists`.
    pub async fn drop_query(&self, store: &Store, name: &str, if_exists: bool) -> Result<bool> {
        let _ddl = self.ddl.lock().await;
        let Some(def) = QueryDef::load(store, name)? else {
            if if_exists {
                return Ok(false);
            }
            return Err(Error::NotFound { kind: ObjectKind::Query, name: name.to_string() });
        };
        self.stop(name).await?;
        let prefix = crate::continuous::def::state_prefix(def.id);
        let end = brikk_storage::state::prefix_end(&prefix);
        let state =
            vec![StateWrite::Delete(crate::continuous::def::def_key(name)), StateWrite::DeleteRange(prefix, end)];
        store.commit(WriteSet { state, ..Default::default() }).await?;
        Ok(true)
    }

    /// `PAUSE` (`running = false`) or `RESUME` (`running = true`).
    pub async fn set_running(&self, db: &Brikk, name: &str, running: bool) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        let store = db.store();
        let Some(mut def) = QueryDef::load(store, name)? else {
            return Err(Error::NotFound { kind: ObjectKind::Query, name: name.to_string() });
        };
        if running {
            if def.status == Status::Running {
                return Ok(());
            }
            def.status = Status::Running;
            def.error = None;
            store.commit(WriteSet { state: vec![def.to_write()], ..Default::default() }).await?;
            self.send(Control::Start(def))
        } else {
            self.stop(name).await?;
            // A runner that failed while stopping has recorded its error;
            // PAUSE keeps it visible.
            let mut def = QueryDef::load(store, name)?.unwrap_or(def);
            if def.status == Status::Running {
                def.status = Status::Paused;
                store.commit(WriteSet { state: vec![def.to_write()], ..Default::default() }).await?;
            }
            Ok(())
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn control_loop(db: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Control>) {
    let mut running: HashMap<String, Running> = HashMap::new();
    while let Some(c) = rx.recv().await {
        match c {
            Control::Start(def) => {
                if let Some(r) = running.remove(&def.name) {
                    let _ = r.stop.send(true);
                    let _ = r.task.await;
                }
                let (stop, stop_rx) = watch::channel(false);
                let name = def.name.clone();
                let task = tokio::spawn(runner(db.clone(), def, stop_rx));
                running.insert(name, Running { stop, task });
            }
            Control::Stop(name, ack) => {
                if let Some(r) = running.remove(&name) {
                    let _ = r.stop.send(true);
                    let _ = r.task.await;
                }
                let _ = ack.send(());
            }
        }
    }
    // Shutting down: stop every runner after its current step.
    for r in running.values() {
        let _ = r.stop.send(true);
    }
    for (_, r) in running {
        let _ = r.task.await;
    }
}

/// Runs one query until stopped; an error stops it with status failed.
async fn runner(db: Weak<Shared>, def: QueryDef, stop: watch::Receiver<bool>) {
    let Some(store) = db.upgrade().map(|s| Brikk::from_shared(s).store().clone()) else { return };
    match run_steps(db, &def, stop).await {
        Ok(()) => {}
        Err(Error::ShuttingDown) => {}
        Err(e) => {
            tracing::warn!(query = %def.name, error = %e, "continuous query failed");
            let mut failed = match QueryDef::load(&store, &def.name) {
                Ok(Some(d)) if d.id == def.id => d,
                _ => return,
            };
            failed.status = Status::Failed;
            failed.error = Some(e.to_string());
            let _ = store.commit(WriteSet { state: vec![failed.to_write()], ..Default::default() }).await;
        }
    }
}

async fn run_steps(db: Weak<Shared>, def: &QueryDef, mut stop: watch::Receiver<bool>) -> Result<()> {
    let (store, planned) = {
        let db = Brikk::from_shared(db.upgrade().ok_or(Error::ShuttingDown)?);
        (db.store().clone(), plan(&db, def).await?)
    };
    let crate::continuous::plan::Planned { inputs, mut operator, sink } = planned;
    let committed = Progress::load(&store, def.id)?;
    let latest = committed.is_none() && def.options.start == Start::Latest;
    let mut progress = committed.unwrap_or_default();
    let mut inputs = Inputs::new(inputs, &progress.inputs, latest)?;
    let streams = inputs.streams.clone();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        // Register for wake-ups before looking, so no append is missed.
        let mut waits: Vec<_> = streams.iter().map(|s| Box::pin(s.appended().notified())).collect();
        for w in &mut waits {
            w.as_mut().enable();
        }
        let records = inputs.read(&store, store.watermark(), STEP_BUDGET)?;
        let mut out = StepOutput::default();
        if records.is_empty() {
            if let Some(deadline) = operator.next_deadline() {
                if deadline <= now_micros() {
                    // A commit now has a timestamp past the deadline; once it
                    // is durable no record before it can still appear.
                    progress.updated_at_micros = now_micros();
                    store.commit(WriteSet { state: vec![progress.to_write(def.id)], ..Default::default() }).await?;
                    operator.on_time(store.watermark(), &mut out)?;
                }
            }
            if out.rows.is_empty() && out.state.is_empty() {
                let sleep = match operator.next_deadline() {
                    Some(d) => Duration::from_micros((d - now_micros()).clamp(1_000, 1_000_000) as u64),
                    None => IDLE_WAIT,
                };
                let any = futures::future::select_all(waits);
                tokio::select! {
                    _ = any => {}
                    _ = tokio::time::sleep(sleep) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        } else {
            progress.records_in += records.len() as u64;
            operator.process(records, &mut out).await?;
        }
        let appends = sink.appends(std::mem::take(&mut out.rows))?;
        progress.records_out += appends.len() as u64;
        progress.records_late += out.late;
        progress.inputs = inputs.committed();
        progress.updated_at_micros = now_micros();
        let mut state = std::mem::take(&mut out.state);
        state.push(progress.to_write(def.id));
        store.commit(WriteSet { appends, state, ..Default::default() }).await?;
    }
}
