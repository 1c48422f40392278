//! Who is connected and what each session is doing: the sessions of one
//! database as `pg_stat_activity` lists them, and the means to interrupt
//! one (`pg_cancel_backend`, `pg_terminate_backend`).
//!
//! Every [`crate::Session`] registers a [`Backend`] when it is opened and
//! unregisters it when dropped. A statement marks its backend `active`
//! while it runs ([`Backend::start`]); the [`Running`] guard it gets back
//! marks it idle again when the statement's result is done with — for rows
//! streamed to a client, when the last row has been sent, which is when
//! Postgres changes the state too.
//!
//! A session served over the wire is given its client's process id,
//! address and a [`Control`] by the server ([`crate::Session::connected`]);
//! a session opened in-process has a process id of its own and no control:
//! it is listed, but cannot be interrupted from another session.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use brikk_storage::now_micros;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::types::UTC;

/// How a server interrupts the connection a session serves.
pub trait Control: Send + Sync {
    /// Cancels the statement the connection is running, if any, as a
    /// client's cancel request does: it ends with `57014`.
    fn cancel(&self);
    /// Ends the connection: a running statement is canceled, the client is
    /// told `57P01` (`FATAL`), and the session — with any transaction it
    /// had open — goes.
    fn terminate(&self);
}

/// What a backend is doing, as `pg_stat_activity.state` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Idle,
    IdleInTransaction,
    IdleInFailedTransaction,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Idle => "idle",
            State::IdleInTransaction => "idle in transaction",
            State::IdleInFailedTransaction => "idle in transaction (aborted)",
        }
    }
}

/// The registered sessions of one database, by process id.
#[derive(Default)]
pub struct Backends {
    by_pid: Mutex<BTreeMap<i32, Arc<Backend>>>,
    /// Woken whenever a session unregisters.
    gone: tokio::sync::Notify,
}

/// One session, as `pg_stat_activity` shows it.
pub struct Backend {
    started: i64,
    now: Mutex<Doing>,
}

#[derive(Clone)]
struct Doing {
    pid: i32,
    client: Option<SocketAddr>,
    control: Option<Arc<dyn Control>>,
    application_name: String,
    state: State,
    /// The last statement's text: the running one while `Active`.
    query: Arc<str>,
    query_start: Option<i64>,
    xact_start: Option<i64>,
    state_change: i64,
    /// Counts statements started, so that a statement's [`Running`] guard
    /// dropped late (a suspended portal's rows) does not mark a later
    /// statement idle.
    statement: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Backends {
    /// Registers a session with process id `pid`; it is listed until the
    /// returned [`Registration`] drops.
    pub(crate) fn register(self: &Arc<Self>, pid: i32) -> Registration {
        let now = now_micros();
        let backend = Arc::new(Backend {
            started: now,
            now: Mutex::new(Doing {
                pid,
                client: None,
                control: None,
                application_name: String::new(),
                state: State::Idle,
                query: Arc::from(""),
                query_start: None,
                xact_start: None,
                state_change: now,
                statement: 0,
            }),
        });
        lock(&self.by_pid).insert(pid, backend.clone());
        Registration { backends: self.clone(), backend, noted_name: String::new() }
    }

    fn get(&self, pid: i64) -> Option<Arc<Backend>> {
        let pid = i32::try_from(pid).ok()?;
        lock(&self.by_pid).get(&pid).cloned()
    }

    /// Asks the backend with process id `pid` to cancel its statement
    /// (`terminate`: to end its connection). False if there is no such
    /// backend or it cannot be interrupted (a session opened in-process).
    pub fn signal(&self, pid: i64, terminate: bool) -> bool {
        let Some(control) = self.get(pid).and_then(|b| lock(&b.now).control.clone()) else { return false };
        match terminate {
            true => control.terminate(),
            false => control.cancel(),
        }
        true
    }

    /// Waits until no session has process id `pid`, for at most `limit`;
    /// false if one still has it then.
    pub async fn gone(&self, pid: i64, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let gone = self.gone.notified();
            tokio::pin!(gone);
            gone.as_mut().enable();
            if self.get(pid).is_none() {
                return true;
            }
            if tokio::time::timeout_at(deadline, gone).await.is_err() {
                return self.get(pid).is_none();
            }
        }
    }

    /// `pg_stat_activity`'s rows: one per registered session, by process id.
    pub fn snapshot(&self) -> DfResult<RecordBatch> {
        let backends: Vec<Arc<Backend>> = lock(&self.by_pid).values().cloned().collect();
        let rows: Vec<(i64, Doing)> = backends.iter().map(|b| (b.started, lock(&b.now).clone())).collect();
        let n = rows.len();
        let text = |f: &dyn Fn(&Doing) -> Option<String>| -> ArrayRef {
            Arc::new(rows.iter().map(|(_, r)| f(r)).collect::<StringArray>())
        };
        let time = |f: &dyn Fn(i64, &Doing) -> Option<i64>| -> ArrayRef {
            Arc::new(rows.iter().map(|(s, r)| f(*s, r)).collect::<TimestampMicrosecondArray>().with_timezone(UTC))
        };
        let nulls = |ty: &DataType| datafusion::arrow::array::new_null_array(ty, n);
        let columns: Vec<ArrayRef> = vec![
            nulls(&DataType::Int32),
            text(&|_| Some(crate::DATABASE.to_string())),
            Arc::new(rows.iter().map(|(_, r)| Some(r.pid)).collect::<Int32Array>()),
            nulls(&DataType::Int32),
            Arc::new(Int32Array::from(vec![10; n])),
            text(&|_| Some(crate::USER.to_string())),
            text(&|r| Some(r.application_name.clone())),
            text(&|r| r.client.map(|a| a.ip().to_string())),
            nulls(&DataType::Utf8),
            Arc::new(rows.iter().map(|(_, r)| Some(r.client.map_or(-1, |a| a.port() as i32))).collect::<Int32Array>()),
            time(&|started, _| Some(started)),
            time(&|_, r| r.xact_start),
            time(&|_, r| r.query_start),
            time(&|_, r| Some(r.state_change)),
            text(&|r| (r.state != State::Active).then(|| "Client".to_string())),
            text(&|r| (r.state != State::Active).then(|| "ClientRead".to_string())),
            text(&|r| Some(r.state.as_str().to_string())),
            nulls(&DataType::Utf8),
            nulls(&DataType::Utf8),
            nulls(&DataType::Int64),
            text(&|r| Some(r.query.to_string())),
            text(&|_| Some("client backend".to_string())),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// `pg_stat_activity`'s columns, as in PostgreSQL 15 (`client_addr` is
/// text; `datid`, `leader_pid`, `client_hostname`, `backend_xid`,
/// `backend_xmin` and `query_id` are NULL).
pub fn schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
    Arc::new(Schema::new(vec![
        Field::new("datid", DataType::Int32, true),
        Field::new("datname", DataType::Utf8, true),
        Field::new("pid", DataType::Int32, false),
        Field::new("leader_pid", DataType::Int32, true),
        Field::new("usesysid", DataType::Int32, true),
        Field::new("usename", DataType::Utf8, true),
        Field::new("application_name", DataType::Utf8, true),
        Field::new("client_addr", DataType::Utf8, true),
        Field::new("client_hostname", DataType::Utf8, true),
        Field::new("client_port", DataType::Int32, true),
        Field::new("backend_start", ts(), true),
        Field::new("xact_start", ts(), true),
        Field::new("query_start", ts(), true),
        Field::new("state_change", ts(), true),
        Field::new("wait_event_type", DataType::Utf8, true),
        Field::new("wait_event", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("backend_xid", DataType::Utf8, true),
        Field::new("backend_xmin", DataType::Utf8, true),
        Field::new("query_id", DataType::Int64, true),
        Field::new("query", DataType::Utf8, true),
        Field::new("backend_type", DataType::Utf8, true),
    ]))
}

/// A session's place in [`Backends`]; unregisters it when dropped.
pub(crate) struct Registration {
    backends: Arc<Backends>,
    backend: Arc<Backend>,
    /// The `application_name` last noted, so that a statement that does
    /// not change it takes no lock for it.
    noted_name: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let pid = lock(&self.backend.now).pid;
        let mut by_pid = lock(&self.backends.by_pid);
        if by_pid.get(&pid).is_some_and(|b| Arc::ptr_eq(b, &self.backend)) {
            by_pid.remove(&pid);
        }
        drop(by_pid);
        self.backends.gone.notify_waiters();
    }
}

impl Registration {
    /// The session now serves a client: under the process id the client
    /// was given, from `client`, interrupted through `control`.
    pub(crate) fn connected(&self, pid: i32, client: Option<SocketAddr>, control: Arc<dyn Control>) {
        let mut by_pid = lock(&self.backends.by_pid);
        let mut now = lock(&self.backend.now);
        if by_pid.get(&now.pid).is_some_and(|b| Arc::ptr_eq(b, &self.backend)) {
            by_pid.remove(&now.pid);
        }
        now.pid = pid;
        now.client = client;
        now.control = Some(control);
        by_pid.insert(pid, self.backend.clone());
    }

    /// Marks the start of a statement (`query`, its text); `in_transaction`:
    /// a transaction block was open before it. The backend is `active`
    /// until the returned guard drops.
    pub(crate) fn start(&self, query: &Arc<str>, in_transaction: bool) -> Running {
        let t = now_micros();
        let mut now = lock(&self.backend.now);
        now.statement += 1;
        now.state = State::Active;
        now.query = query.clone();
        now.query_start = Some(t);
        now.state_change = t;
        if !in_transaction || now.xact_start.is_none() {
            now.xact_start = Some(t);
        }
        let idle = if in_transaction { State::IdleInTransaction } else { State::Idle };
        Running { backend: self.backend.clone(), statement: now.statement, idle }
    }

    /// Notes the session's `application_name`, if it changed.
    pub(crate) fn name(&mut self, application_name: &str) {
        if self.noted_name != application_name {
            self.noted_name = application_name.to_string();
            lock(&self.backend.now).application_name = application_name.to_string();
        }
    }
}

/// A running statement; its backend goes idle when this drops.
pub(crate) struct Running {
    backend: Arc<Backend>,
    statement: u64,
    idle: State,
}

impl Running {
    /// The state the backend is left in when the statement is done:
    /// what the session's transaction status is once it has run.
    pub(crate) fn leaves(&mut self, idle: State) {
        self.idle = idle;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut now = lock(&self.backend.now);
        if now.statement != self.statement {
            return;
        }
        now.state = self.idle;
        now.state_change = now_micros();
        if self.idle == State::Idle {
            now.xact_start = None;
        }
    }
}

/// `pg_cancel_backend(pid)` and `pg_terminate_backend(pid [, timeout])`:
/// true when a session with that process id was found and signalled.
#[derive(Debug)]
pub struct Signal {
    terminate: bool,
    signature: Signature,
    backends: std::sync::Weak<Backends>,
}

impl PartialEq for Signal {
    fn eq(&self, other: &Signal) -> bool {
        self.terminate == other.terminate && self.backends.ptr_eq(&other.backends)
    }
}

impl Eq for Signal {}

impl std::hash::Hash for Signal {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.terminate.hash(state);
    }
}

impl Signal {
    pub fn new(terminate: bool, backends: &Arc<Backends>) -> Signal {
        let mut forms = vec![TypeSignature::Exact(vec![DataType::Int64])];
        if terminate {
            forms.push(TypeSignature::Exact(vec![DataType::Int64, DataType::Int64]));
        }
        // Volatile: run for every row, never folded away while planning.
        Signal {
            terminate,
            signature: Signature::one_of(forms, Volatility::Volatile),
            backends: Arc::downgrade(backends),
        }
    }
}

impl ScalarUDFImpl for Signal {
    fn name(&self) -> &str {
        match self.terminate {
            true => "pg_terminate_backend",
            false => "pg_cancel_backend",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let backends = self.backends()?;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let signalled: BooleanArray =
            integers(&arrays[0])?.iter().map(|pid| pid.map(|pid| backends.signal(pid, self.terminate))).collect();
        crate::udf::columnar(Arc::new(signalled), scalar)
    }
}

/// `pg_terminate_backend(pid, timeout)` waits, without holding a thread.
#[async_trait::async_trait]
impl AsyncScalarUDFImpl for Signal {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let backends = self.backends()?;
        let pids = args.args[0].to_array(args.number_rows)?;
        let timeouts = match args.args.get(1) {
            Some(t) => Some(t.to_array(args.number_rows)?),
            None => None,
        };
        let timeouts = timeouts.as_ref().map(integers).transpose()?;
        let mut out = datafusion::arrow::array::BooleanBuilder::with_capacity(args.number_rows);
        for (i, pid) in integers(&pids)?.iter().enumerate() {
            let timeout =
                timeouts.map_or(Some(0), |t| datafusion::arrow::array::Array::is_valid(t, i).then(|| t.value(i)));
            let (Some(pid), Some(timeout)) = (pid, timeout) else {
                out.append_null();
                continue;
            };
            if timeout < 0 {
                let negative = crate::Error::InvalidParameter("\"timeout\" must not be negative".into());
                return Err(DataFusionError::External(Box::new(negative)));
            }
            let signalled = backends.signal(pid, self.terminate);
            let limit = std::time::Duration::from_millis(timeout as u64);
            out.append_value(signalled && (timeout == 0 || backends.gone(pid, limit).await));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl Signal {
    fn backends(&self) -> DfResult<Arc<Backends>> {
        self.backends.upgrade().ok_or_else(|| DataFusionError::Execution("the database is closed".into()))
    }
}

/// An argument as the signature coerced it (`bigint`).
fn integers(array: &ArrayRef) -> DfResult<&Int64Array> {
    array.as_any().downcast_ref::<Int64Array>().ok_or_else(|| DataFusionError::Internal("expected a bigint".into()))
}
