//! Running statements: dispatch, transactions, `SET`/`SHOW`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use brikk_storage::{now_micros, CommitReceipt, StreamDef, StreamId, WriteSet};
use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, Set};

use super::groups::SessionGroups;
use super::insert::{InsertPlan, Inserted};
use super::listen::{Listening, Notification};
use super::notice::{Notice, NoticeKind};
use super::output::{Output, TxnStatus};
use super::prepared::{self, Prepared, PreparedKind};
use super::vars::Vars;
use crate::activity::{Control, Registration, Running, State};
use crate::db::Brikk;
use crate::error::{Error, ObjectKind, Result};
use crate::session::listen::MAX_PAYLOAD;
use crate::sql::colnames::ColumnNames;
use crate::sql::continuous::ContinuousStatement;
use crate::sql::parser::{normalize, CreateStream};
use crate::sql::{self, Statement};
use crate::tables::dml::{self, Built, DmlPlan};
use crate::tables::TxnRows;
use crate::types::{is_utc, UTC};
use crate::zone::state_in_zone;
use datafusion::execution::context::SessionState;

enum Txn {
    Idle,
    Active {
        writes: WriteSet,
        implicit: bool,
        savepoints: Vec<Savepoint>,
    },
    /// A statement failed: only ROLLBACK (or ROLLBACK TO a savepoint, which
    /// takes back what came after it) ends this state.
    Failed {
        writes: WriteSet,
        savepoints: Vec<Savepoint>,
    },
}

impl Txn {
    fn active(implicit: bool) -> Txn {
        Txn::Active { writes: WriteSet::default(), implicit, savepoints: Vec::new() }
    }
}

/// Reports that a session's last result stream stopped early
/// ([`Session::stream_failure`]).
#[derive(Debug, Clone)]
pub struct StreamFailure(Arc<AtomicBool>);

impl StreamFailure {
    pub fn report(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Serial numbers of transactions, so a cursor knows whether the
/// transaction that declared it is still the open one.
static TXN_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How much of the transaction existed when `SAVEPOINT name` ran.
struct Savepoint {
    name: String,
    appends: usize,
    groups: usize,
    rows: usize,
    notifies: usize,
    /// The session's parameters, which ROLLBACK TO restores.
    vars: Vars,
    vars_session: Option<Vars>,
}

/// One client's view of the database. Not shared between tasks; open one
/// per connection with [`Brikk::session`].
pub struct Session {
    pub(crate) db: Brikk,
    txn: Txn,
    pub(crate) vars: Vars,
    pub(crate) groups: SessionGroups,
    listening: Listening,
    /// The open transaction's own table rows, seen by its later statements.
    /// Empty whenever no transaction is open.
    rows: Arc<TxnRows>,
    /// Set when a result stream this session returned ended in an error:
    /// the statement failed while its rows were being sent, after it had
    /// returned. The session's next call aborts the transaction then, as it
    /// would have had the statement failed at once ([`Session::settle`]).
    stream_failed: Arc<AtomicBool>,
    pub(crate) cursors: super::cursors::Cursors,
    /// The serial of the transaction last begun (see [`TXN_SERIAL`]).
    txn_serial: u64,
    /// [`Session::state`] in a zone other than UTC, and that zone.
    zoned: std::sync::Mutex<Option<(String, Arc<SessionState>)>>,
    /// The parameters as they were before the open transaction's first
    /// `SET` or `RESET`: a rollback takes its changes back, as in Postgres.
    vars_before: Option<Vars>,
    /// After a `SET LOCAL` in the open transaction: the parameters as its
    /// other changes leave them, which a commit keeps.
    vars_session: Option<Vars>,
    /// Notices raised since the server last took them ([`Session::take_notices`]).
    notices: Vec<Notice>,
    /// Statements planned again after an `ALTER` (see
    /// [`Session::current_plan`]), by SQL text.
    replanned: HashMap<String, Arc<Prepared>>,
    /// `PREPARE`d statements by name ([`super::statements`]).
    pub(crate) statements: HashMap<String, Arc<Prepared>>,
    /// The session's row in `pg_stat_activity`.
    activity: Registration,
}

/// How often an autocommit statement on a table runs again when a row it
/// read changed before its write committed.
const MAX_ROW_RETRIES: usize = 64;

impl Session {
    pub(crate) fn new(db: Brikk) -> Session {
        let vars = Vars::default();
        Session {
            activity: db.shared().backends.register(vars.backend_pid()),
            db,
            txn: Txn::Idle,
            vars,
            groups: SessionGroups::new(),
            listening: Listening::default(),
            rows: Arc::new(TxnRows::default()),
            stream_failed: Arc::new(AtomicBool::new(false)),
            cursors: Default::default(),
            txn_serial: 0,
            zoned: Default::default(),
            vars_before: None,
            vars_session: None,
            notices: Vec::new(),
            replanned: HashMap::new(),
            statements: HashMap::new(),
        }
    }

    /// Aborts the transaction if a result stream failed since the last
    /// call, and closes the cursors of ended transactions. Notices the
    /// caller did not take are dropped: they belong to the last call.
    fn settle(&mut self) {
        self.notices.clear();
        if self.stream_failed.swap(false, Ordering::AcqRel) {
            self.fail();
        }
        self.cursors.end_others(self.open_transaction());
    }

    /// Opens a transaction (explicit, or implicit for a multi-statement
    /// string) with a new serial.
    fn begin(&mut self, implicit: bool) {
        self.txn = Txn::active(implicit);
        self.vars_before = None;
        self.vars_session = None;
        self.txn_serial = TXN_SERIAL.fetch_add(1, Ordering::Relaxed);
    }

    /// The serial of the open transaction, if one is open (and not failed).
    pub(crate) fn open_transaction(&self) -> Option<u64> {
        matches!(self.txn, Txn::Active { .. }).then_some(self.txn_serial)
    }

    /// `output`, with its rows (if any) in the session's `TimeZone` and
    /// reporting an error to this session.
    fn watched(&self, output: Output) -> Output {
        let failed = self.stream_failed.clone();
        output.in_time_zone(self.vars.zone()).on_error(move || failed.store(true, Ordering::Release))
    }

    /// A way to report, from outside, that the result stream of the last
    /// statement stopped early (canceled, timed out): as when the stream
    /// itself fails, the open transaction fails at the next statement.
    pub fn stream_failure(&self) -> StreamFailure {
        StreamFailure(self.stream_failed.clone())
    }

    /// Where this session's notifications go (`LISTEN`): take the
    /// receiver once and read it while the session lives. A session whose
    /// receiver was never taken accepts LISTEN and drops its notifications.
    pub fn notifications(&mut self) -> tokio::sync::mpsc::Receiver<Notification> {
        self.listening.receiver()
    }

    /// The notices the last [`Session::execute`] or
    /// [`Session::execute_prepared`] raised, in order; the server sends
    /// them before the statements' results. The next call drops the ones
    /// not taken.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// The session's configuration parameters.
    pub fn vars(&mut self) -> &mut Vars {
        &mut self.vars
    }

    /// Transaction status, as Postgres reports it in ReadyForQuery.
    pub fn status(&self) -> TxnStatus {
        if self.stream_failed.load(Ordering::Acquire) && !matches!(self.txn, Txn::Idle) {
            return TxnStatus::Failed;
        }
        match self.txn {
            Txn::Idle => TxnStatus::Idle,
            Txn::Active { implicit: true, .. } => TxnStatus::Idle,
            Txn::Active { .. } => TxnStatus::InTransaction,
            Txn::Failed { .. } => TxnStatus::Failed,
        }
    }

    /// Runs every statement in `sql`, in order, stopping at the first error.
    ///
    /// Returns one result per statement run; if the last is an `Err`, the
    /// statements after it were not run. With more than one statement and no
    /// open transaction, the statements form one implicit transaction: their
    /// appends commit together at the end, or not at all. With more than one
    /// statement, each one's rows are computed before the next runs, so an
    /// error stops the rest. A single statement's rows are streamed; an
    /// error while streaming them aborts an open transaction.
    pub async fn execute(&mut self, sql: &str) -> Vec<Result<Output>> {
        let mut running = self.activity.start(&Arc::from(sql), self.status() != TxnStatus::Idle);
        let mut results = self.execute_all(sql).await;
        self.finished(&mut running);
        if let [Ok(output)] = results.as_mut_slice() {
            // Streamed: running until its rows are done with.
            *output = std::mem::replace(output, Output::Empty).holding(running);
        }
        results
    }

    /// [`Session::execute`], the statement run, bar `pg_stat_activity`.
    async fn execute_all(&mut self, sql: &str) -> Vec<Result<Output>> {
        self.settle();
        let statements = match sql::parse(sql, &self.db.shared().compat) {
            Ok(s) => s,
            Err(e) => {
                self.fail();
                return vec![Err(e)];
            }
        };
        if statements.is_empty() {
            return vec![Ok(Output::Empty)];
        }
        if statements.len() > 1 && matches!(self.txn, Txn::Idle) {
            self.begin(true);
        }
        let several = statements.len() > 1;
        let mut results = Vec::with_capacity(statements.len());
        for stmt in statements {
            let r = match self.run(stmt, &[]).await {
                Ok(output) if several => output.in_time_zone(self.vars.zone()).computed().await,
                Ok(output) => Ok(self.watched(output)),
                Err(e) => Err(e),
            };
            let failed = r.is_err();
            results.push(r);
            if failed {
                self.fail();
                return results;
            }
        }
        if let Txn::Active { implicit: true, .. } = self.txn {
            if let Err(e) = self.commit().await {
                results.push(Err(e));
            }
        }
        results
    }

    /// Parses and plans one statement for repeated execution.
    /// `declared` are the parameter types the client declared, if any.
    /// A `FETCH` from one of this session's cursors describes the cursor's
    /// rows.
    pub async fn prepare(&self, sql: &str, declared: &[Option<DataType>]) -> Result<Prepared> {
        let mut prepared = self.db.prepare_in(sql, declared, &self.vars).await?;
        if let Some(schema) = prepared.fetched_cursor().and_then(|name| self.cursor_schema(name)) {
            if let PreparedKind::Other(_, result) = &mut prepared.kind {
                *result = Some(schema);
            }
        }
        Ok(prepared)
    }
}

impl Session {
    /// Executes a prepared statement with `params` bound (`$1` first).
    ///
    /// The rows are streamed; an error while streaming them aborts an open
    /// transaction.
    pub async fn execute_prepared(&mut self, prepared: &Prepared, params: Vec<ScalarValue>) -> Result<Output> {
        let mut running = self.activity.start(&prepared.sql, self.status() != TxnStatus::Idle);
        self.settle();
        let result = match self.run_current(prepared, params).await {
            Ok(output) => Ok(self.watched(output)),
            Err(e) => {
                self.fail();
                Err(e)
            }
        };
        self.finished(&mut running);
        result.map(|output| output.holding(running))
    }

    /// Notes in `pg_stat_activity` what a statement that has run leaves
    /// the session as: idle, or idle in a (failed) transaction, and under
    /// which `application_name`.
    fn finished(&mut self, running: &mut Running) {
        running.leaves(match self.status() {
            TxnStatus::Idle => State::Idle,
            TxnStatus::InTransaction => State::IdleInTransaction,
            TxnStatus::Failed => State::IdleInFailedTransaction,
        });
        self.activity.name(self.vars.application_name());
    }

    /// The session now serves a client over the wire: it takes the process
    /// id the server gave the connection (`pg_backend_pid()`, and what
    /// `pg_cancel_backend` and `pg_terminate_backend` are given), and
    /// `pg_stat_activity` shows the client's address; `control` is how
    /// those functions reach the connection.
    pub fn connected(&mut self, pid: i32, client: Option<std::net::SocketAddr>, control: Arc<dyn Control>) {
        self.vars.set_backend_pid(pid);
        self.activity.connected(pid, client, control);
        self.activity.name(self.vars.application_name());
    }

    /// Runs `prepared`, planned again first if an `ALTER` changed a
    /// definition since it was planned.
    pub(crate) async fn run_current(&mut self, prepared: &Prepared, params: Vec<ScalarValue>) -> Result<Output> {
        let replanned = match prepared.is_current(&self.db) {
            true => None,
            false => Some(Box::pin(self.current_plan(prepared)).await?),
        };
        self.run_prepared(replanned.as_deref().unwrap_or(prepared), params).await
    }

    /// `prepared` planned again under the current definitions, after an
    /// `ALTER` changed one since it was planned (its plan may hold the old
    /// definition). The client described it already, so a new plan that
    /// would take other parameters or give other columns is refused, as
    /// Postgres refuses it: `cached plan must not change result type`.
    async fn current_plan(&mut self, prepared: &Prepared) -> Result<Arc<Prepared>> {
        let cached = self.replanned.get(&*prepared.sql).filter(|p| p.is_current(&self.db)).cloned();
        let fresh = match cached {
            Some(p) => p,
            None => {
                let declared: Vec<Option<DataType>> = prepared.param_types().iter().cloned().map(Some).collect();
                let fresh = Arc::new(self.prepare(&prepared.sql, &declared).await?);
                self.replanned.insert(prepared.sql.to_string(), fresh.clone());
                fresh
            }
        };
        // Checked for each statement: two of the same text may have been
        // prepared (and described) before different ALTERs.
        let same_columns = match (prepared.result_schema(), fresh.result_schema()) {
            (Some(a), Some(b)) => {
                a.fields().len() == b.fields().len()
                    && a.fields()
                        .iter()
                        .zip(b.fields())
                        .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
            }
            (a, b) => a.is_none() && b.is_none(),
        };
        if !same_columns || fresh.param_types() != prepared.param_types() {
            return Err(Error::PlanChanged);
        }
        Ok(fresh)
    }

    /// Runs a prepared statement. The DataFusion paths are boxed so that
    /// their large futures (tens of KB) do not make the future of every call
    /// as large: the server allocates and moves that future per Execute, and
    /// the key-read, DML, append and group paths keep it a few KB.
    async fn run_prepared(&mut self, prepared: &Prepared, params: Vec<ScalarValue>) -> Result<Output> {
        if !params.is_empty() && params.len() != prepared.param_types().len() {
            return Err(Error::InvalidParameter(format!(
                "statement has {} parameters, {} given",
                prepared.param_types().len(),
                params.len()
            )));
        }
        match &prepared.kind {
            PreparedKind::Empty => Ok(Output::Empty),
            PreparedKind::Other(stmt, _) => self.run((**stmt).clone(), &params).await,
            PreparedKind::Declare(declare, _) => {
                self.check_not_failed()?;
                Box::pin(self.declare((**declare).clone(), &params)).await
            }
            PreparedKind::Dml(plan) => {
                self.check_not_failed()?;
                self.run_dml(plan, &params).await
            }
            PreparedKind::Lookup(plan) => {
                self.check_not_failed()?;
                let batch = plan.execute(&self.db.shared().store, &self.state(), &self.rows, &params)?;
                let stream = RecordBatchStreamAdapter::new(batch.schema(), futures::stream::iter(vec![Ok(batch)]));
                Ok(Output::Rows(Box::pin(stream)))
            }
            PreparedKind::Insert(plan) => {
                self.check_not_failed()?;
                if plan.stream.is_dropped() {
                    return Err(Error::NotFound { kind: ObjectKind::Relation, name: plan.stream.def.name.clone() });
                }
                self.insert(plan, params).await
            }
            PreparedKind::Query(plan, names) => {
                self.check_not_failed()?;
                let plan =
                    if params.is_empty() { (**plan).clone() } else { (**plan).clone().with_param_values(params)? };
                Ok(Box::pin(self.run_plan(plan)).await?.named(names.as_ref()))
            }
            PreparedKind::Notify(plan) => {
                self.check_not_failed()?;
                let plan =
                    if params.is_empty() { (**plan).clone() } else { (**plan).clone().with_param_values(params)? };
                Box::pin(self.pg_notify(plan)).await
            }
        }
    }

    fn check_not_failed(&self) -> Result<()> {
        match self.txn {
            Txn::Failed { .. } => Err(Error::InFailedTransaction),
            _ => Ok(()),
        }
    }

    /// Marks the transaction failed after an error: an explicit transaction
    /// waits for ROLLBACK (`25P02` until then); an implicit one is
    /// discarded. Called for errors that happen outside the session too,
    /// such as a failed Parse in the extended protocol.
    pub fn fail(&mut self) {
        self.listening.pending.clear();
        self.txn = match std::mem::replace(&mut self.txn, Txn::Idle) {
            // Kept until the transaction ends: ROLLBACK TO may resume it.
            Txn::Active { implicit: false, writes, savepoints } => Txn::Failed { writes, savepoints },
            Txn::Active { implicit: true, writes, .. } => {
                discard(writes);
                self.rows = Arc::default();
                self.cursors.rolled_back(self.txn_serial);
                self.restore_vars();
                Txn::Idle
            }
            failed @ Txn::Failed { .. } => failed,
            Txn::Idle => Txn::Idle,
        };
    }

    /// Runs one parsed statement. A DDL statement inside a transaction
    /// block warns that it is not transactional only if it succeeded.
    async fn run(&mut self, stmt: Statement, params: &[ScalarValue]) -> Result<Output> {
        let before = self.notices.len();
        let result = self.run_statement(stmt, params).await;
        if result.is_err() && self.notices.len() > before {
            let raised = self.notices.split_off(before);
            self.notices.extend(raised.into_iter().filter(|n| n.kind != NoticeKind::NotTransactional));
        }
        result
    }

    /// Runs one parsed statement. Group statements (prepared FETCH and
    /// COMMIT OFFSETS are hot) run inline; every other kind is boxed, for
    /// the reason given at [`Session::run_prepared`].
    async fn run_statement(&mut self, stmt: Statement, params: &[ScalarValue]) -> Result<Output> {
        if let Txn::Failed { .. } = self.txn {
            let ends = matches!(&stmt, Statement::Sql(s) if matches!(**s, ast::Statement::Commit { .. } | ast::Statement::Rollback { .. }));
            if !ends {
                return Err(Error::InFailedTransaction);
            }
        }
        match stmt {
            Statement::CreateStream(cs) => Box::pin(self.create_stream(cs)).await,
            Statement::DropStream { names, if_exists, cascade } => {
                Box::pin(self.drop_streams(names, if_exists, cascade)).await
            }
            Statement::ShowStreams => Box::pin(self.show_streams()).await,
            Statement::Group(g) => self.run_group(*g, params).await,
            Statement::CopySubscribe(c) => {
                // It streams until the client ends it: nothing after it in
                // the same query string or transaction would ever run.
                if !matches!(self.txn, Txn::Idle) {
                    return Err(Error::ActiveTransaction("COPY (SUBSCRIBE …)".into()));
                }
                let shared = self.db.shared();
                Ok(Output::Subscription(super::Subscription::start(&shared.store, &shared.subscriptions, &c)?))
            }
            Statement::Continuous(c) => Box::pin(self.run_continuous(*c)).await,
            Statement::MoveCursor(fetch) => Box::pin(self.move_cursor(&fetch)).await,
            Statement::Sql(stmt) => Box::pin(self.run_sql(*stmt, params)).await,
        }
    }

    async fn show_streams(&mut self) -> Result<Output> {
        let plan = self.db.plan_show_streams().await?;
        self.run_plan(plan).await
    }

    async fn create_stream(&mut self, cs: CreateStream) -> Result<Output> {
        self.ddl_allowed("CREATE STREAM", &[]).await?;
        crate::defaults::check(&self.state(), &cs.columns)?;
        let key_column = cs.key.as_ref().and_then(|k| cs.columns.iter().position(|c| &c.name == k));
        let def = StreamDef {
            id: StreamId(0),
            name: cs.name,
            columns: cs.columns,
            partitions: cs.partitions,
            key_column,
            retention_micros: cs.retention_micros,
            created_at_micros: now_micros(),
            retention_bytes: cs.retention_bytes,
            archive: cs.archive,
            changelog_of: None,
            original_columns: None,
        };
        let name = def.name.clone();
        if self.db.shared().store.create_stream(def, cs.if_not_exists).await?.is_none() {
            self.notices.push(Notice::skipped_create(&name));
        }
        Ok(command("CREATE STREAM", None))
    }

    async fn drop_streams(&mut self, names: Vec<String>, if_exists: bool, cascade: bool) -> Result<Output> {
        self.ddl_allowed("DROP STREAM", &names).await?;
        let store = &self.db.shared().store;
        if !if_exists {
            if let Some(missing) = names.iter().find(|n| store.stream(n).is_none()) {
                return Err(Error::NotFound { kind: ObjectKind::Relation, name: missing.clone() });
            }
        }
        self.drop_dependent_views("stream", &names, cascade).await?;
        let store = &self.db.shared().store;
        for name in &names {
            if !store.drop_stream(name, if_exists).await? {
                self.notices.push(Notice::skipped_drop("stream", name));
            }
        }
        Ok(command("DROP STREAM", None))
    }

    /// Before a DROP of `names` (`what`: `table`, `stream`, `view`): refuses
    /// it while views read them, or with `cascade` drops those views, each
    /// with a notice.
    async fn drop_dependent_views(&mut self, what: &str, names: &[String], cascade: bool) -> Result<()> {
        let store = &self.db.shared().store;
        let present: Vec<String> = names
            .iter()
            .filter(|n| store.table(n).is_some() || store.stream(n).is_some() || store.view(n).is_some())
            .cloned()
            .collect();
        for view in crate::catalog::views::drop_dependents(&self.db, what, &present, cascade).await? {
            self.notices.push(Notice::cascaded(&view));
        }
        Ok(())
    }

    async fn run_sql(&mut self, stmt: ast::Statement, params: &[ScalarValue]) -> Result<Output> {
        use ast::Statement as S;
        match stmt {
            S::StartTransaction { .. } => {
                match &mut self.txn {
                    Txn::Idle => self.begin(false),
                    // BEGIN inside a multi-statement string makes the
                    // implicit transaction explicit; a nested BEGIN is a
                    // no-op, as Postgres warns and carries on.
                    Txn::Active { implicit, .. } if *implicit => *implicit = false,
                    Txn::Active { .. } => self
                        .notices
                        .push(Notice::new(NoticeKind::ActiveTransaction, "there is already a transaction in progress")),
                    Txn::Failed { .. } => return Err(Error::InFailedTransaction),
                }
                Ok(Output::Begin)
            }
            S::Commit { chain: false, .. } => match std::mem::replace(&mut self.txn, Txn::Idle) {
                // Postgres commits an implicit transaction too, and warns.
                Txn::Failed { writes, .. } => {
                    self.listening.pending.clear();
                    self.rows = Arc::default();
                    discard(writes);
                    self.restore_vars();
                    Ok(Output::End { tag: "ROLLBACK".into() })
                }
                Txn::Idle => {
                    self.notices.push(Notice::no_transaction());
                    Ok(Output::End { tag: "COMMIT".into() })
                }
                active => {
                    if let Txn::Active { implicit: true, .. } = active {
                        self.notices.push(Notice::no_transaction());
                    }
                    self.txn = active;
                    self.commit().await?;
                    Ok(Output::End { tag: "COMMIT".into() })
                }
            },
            S::Rollback { chain: false, savepoint: None } => {
                self.listening.pending.clear();
                self.rows = Arc::default();
                if let Txn::Active { implicit: true, .. } = self.txn {
                    self.notices.push(Notice::no_transaction());
                }
                match std::mem::replace(&mut self.txn, Txn::Idle) {
                    Txn::Active { writes, .. } | Txn::Failed { writes, .. } => {
                        discard(writes);
                        self.cursors.rolled_back(self.txn_serial);
                        self.restore_vars();
                    }
                    Txn::Idle => self.notices.push(Notice::no_transaction()),
                }
                Ok(Output::End { tag: "ROLLBACK".into() })
            }
            S::Rollback { chain: false, savepoint: Some(name) } => {
                self.rollback_to(&normalize(&name))?;
                Ok(command("ROLLBACK", None))
            }
            S::Savepoint { name } => {
                let name = normalize(&name);
                let notifies = self.listening.pending.len();
                match &mut self.txn {
                    Txn::Active { implicit: false, writes, savepoints } => {
                        savepoints.push(Savepoint {
                            name,
                            appends: writes.appends.len(),
                            groups: writes.groups.len(),
                            rows: writes.rows.len(),
                            notifies,
                            vars: self.vars.clone(),
                            vars_session: self.vars_session.clone(),
                        });
                        Ok(command("SAVEPOINT", None))
                    }
                    _ => Err(Error::NoTransaction("SAVEPOINT".into())),
                }
            }
            S::ReleaseSavepoint { name } => {
                let name = normalize(&name);
                match &mut self.txn {
                    Txn::Active { implicit: false, savepoints, .. } => {
                        let at = savepoints.iter().rposition(|sp| sp.name == name).ok_or(Error::NoSavepoint(name))?;
                        savepoints.truncate(at);
                        Ok(command("RELEASE", None))
                    }
                    _ => Err(Error::NoTransaction("RELEASE SAVEPOINT".into())),
                }
            }
            S::Commit { .. } | S::Rollback { .. } => Err(Error::Unsupported("COMMIT/ROLLBACK AND CHAIN".into())),
            S::Set(set) => self.set(set),
            S::Reset(reset) => {
                self.reset(&reset);
                Ok(command("RESET", None))
            }
            S::ShowVariable { variable } => {
                self.show(&variable.iter().map(|i| i.value.clone()).collect::<Vec<_>>().join(" "))
            }
            S::Discard { .. } => {
                self.listening.unlisten(None);
                self.cursors.close_all();
                Ok(command("DISCARD ALL", None))
            }
            S::LISTEN { channel } => {
                let shared = self.db.shared();
                self.listening.listen(&shared.hub, &shared.store, &crate::sql::parser::normalize(&channel));
                Ok(command("LISTEN", None))
            }
            S::UNLISTEN { channel } => {
                let name = crate::sql::parser::normalize(&channel);
                self.listening.unlisten((name != "*").then_some(name.as_str()));
                Ok(command("UNLISTEN", None))
            }
            S::NOTIFY { channel, payload } => {
                self.notify(crate::sql::parser::normalize(&channel), payload.unwrap_or_default())?;
                Ok(command("NOTIFY", None))
            }
            S::Deallocate { name, .. } => Ok(self.deallocate(&name)),
            S::Prepare { name, data_types, statement } => {
                Box::pin(self.prepare_named(&name, &data_types, &statement)).await
            }
            S::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                into,
                using,
                output: false,
                default: false,
                ..
            } if into.is_empty() && using.is_empty() => Box::pin(self.execute_named(&name, &parameters)).await,
            S::Copy { source, to, target, options, legacy_options, .. } => {
                self.copy(source, to, target, options, legacy_options).await
            }
            s @ (S::Insert(_) | S::Update(_) | S::Delete(_)) => {
                let store = &self.db.shared().store;
                if let Some(table) = dml::target_name(&s).and_then(|n| dml::table_of(store, n)) {
                    let plan = DmlPlan::new(&s, table, &self.state(), &[]).await?;
                    return self.run_dml(&plan, params).await;
                }
                match s {
                    S::Insert(insert) => {
                        let shared = self.db.shared();
                        let plan = InsertPlan::new(&insert, &shared.store, &shared.ctx, &[]).await?;
                        self.insert(&plan, params.to_vec()).await
                    }
                    S::Update(u) => Err(not_a_table(store, &u.table.relation.to_string(), "UPDATE")),
                    _ => {
                        let name = dml::target_name(&s).map(|n| n.to_string()).unwrap_or_default();
                        Err(not_a_table(store, &name, "DELETE"))
                    }
                }
            }
            S::Truncate(t) => Box::pin(self.truncate(t)).await,
            S::AlterTable(at) => Box::pin(self.alter_table(at)).await,
            S::CreateTable(ct) => {
                self.ddl_allowed("CREATE TABLE", &[]).await?;
                let def = crate::tables::ddl::table_def(&ct)?;
                crate::defaults::check(&self.state(), &def.columns)?;
                let name = def.name.clone();
                if self.db.shared().store.create_table(def, ct.if_not_exists).await?.is_none() {
                    self.notices.push(Notice::skipped_create(&name));
                }
                Ok(command("CREATE TABLE", None))
            }
            S::Drop { object_type: ast::ObjectType::Table, names, if_exists, cascade, .. } => {
                let names: Vec<String> = names
                    .iter()
                    .map(|n| n.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default())
                    .collect();
                self.ddl_allowed("DROP TABLE", &names).await?;
                let store = &self.db.shared().store;
                for name in &names {
                    if store.table(name).is_none() && store.stream(name).is_some() {
                        return Err(Error::WrongObjectType(format!("\"{name}\" is a stream; use DROP STREAM")));
                    }
                    if store.view(name).is_some() {
                        return Err(Error::WrongObjectType(format!("\"{name}\" is a view; use DROP VIEW")));
                    }
                    if store.table(name).is_none() && !if_exists {
                        return Err(Error::NotFound { kind: ObjectKind::Relation, name: name.clone() });
                    }
                }
                self.drop_dependent_views("table", &names, cascade).await?;
                let store = &self.db.shared().store;
                for name in &names {
                    if !store.drop_table(name, if_exists).await? {
                        self.notices.push(Notice::skipped_drop("table", name));
                    }
                }
                Ok(command("DROP TABLE", None))
            }
            S::CreateView(cv) => {
                self.ddl_allowed("CREATE VIEW", &[]).await?;
                let def = crate::catalog::views::definition(&self.db, &cv, self.vars.zone()).await?;
                self.db.shared().store.create_view(def, cv.or_replace).await?;
                Ok(command("CREATE VIEW", None))
            }
            S::Drop { object_type: ast::ObjectType::View, names, if_exists, cascade, .. } => {
                let names: Vec<String> = names
                    .iter()
                    .map(|n| n.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default())
                    .collect();
                self.ddl_allowed("DROP VIEW", &[]).await?;
                // (A name that is a table or stream is refused below.)
                let store = &self.db.shared().store;
                if !names.iter().any(|n| store.table(n).is_some() || store.stream(n).is_some()) {
                    self.drop_dependent_views("view", &names, cascade).await?;
                }
                for name in crate::catalog::views::drop(&self.db, &names, if_exists).await? {
                    self.notices.push(Notice::skipped_drop("view", &name));
                }
                Ok(command("DROP VIEW", None))
            }
            S::Drop { object_type, .. } => Err(Error::Unsupported(format!("DROP {object_type}"))),
            S::Explain { statement, analyze: false, .. }
                if matches!(*statement, S::Insert(_) | S::Update(_) | S::Delete(_))
                    && dml::target_name(&statement)
                        .and_then(|n| dml::table_of(&self.db.shared().store, n))
                        .is_some() =>
            {
                let table = dml::target_name(&statement)
                    .and_then(|n| dml::table_of(&self.db.shared().store, n))
                    .ok_or_else(|| Error::Internal("table vanished".into()))?;
                let plan = DmlPlan::new(&statement, table, &self.state(), &[]).await?;
                Ok(explain_text(&plan.explain()))
            }
            S::Query(q) if crate::session::listen::pg_notify_call(&q).is_some() => {
                let args = crate::session::listen::pg_notify_arguments(&q).expect("checked");
                let (plan, _) = self.db.plan_named(S::Query(Box::new(args)), self.vars.zone()).await?;
                let plan = if params.is_empty() { plan } else { plan.with_param_values(params.to_vec())? };
                self.pg_notify(plan).await
            }
            s if is_query(&s) => self.query(s, params).await,
            S::Declare { mut stmts } if stmts.len() == 1 => self.declare(stmts.remove(0), params).await,
            S::Fetch { name, direction, into: None, .. } => self.fetch_cursor(&name, &direction).await,
            S::Close { cursor } => self.close_cursor(&cursor),
            other => {
                let text = other.to_string();
                let verb: Vec<&str> = text.split_whitespace().take(2).collect();
                Err(Error::Unsupported(verb.join(" ")))
            }
        }
    }

    /// `ROLLBACK TO SAVEPOINT name`: takes back what the transaction did
    /// after the savepoint (which stays), and ends an aborted state.
    fn rollback_to(&mut self, name: &str) -> Result<()> {
        let (writes, savepoints) = match std::mem::replace(&mut self.txn, Txn::Idle) {
            Txn::Active { implicit: false, writes, savepoints } | Txn::Failed { writes, savepoints } => {
                (writes, savepoints)
            }
            other => {
                self.txn = other;
                return Err(Error::NoTransaction("ROLLBACK TO SAVEPOINT".into()));
            }
        };
        let Some(at) = savepoints.iter().rposition(|sp| sp.name == name) else {
            self.txn = Txn::Failed { writes, savepoints };
            return Err(Error::NoSavepoint(name.to_string()));
        };
        let (mut writes, mut savepoints) = (writes, savepoints);
        let sp = &savepoints[at];
        let undone = WriteSet { groups: writes.groups.split_off(sp.groups), ..Default::default() };
        writes.appends.truncate(sp.appends);
        writes.rows.truncate(sp.rows);
        Arc::make_mut(&mut self.rows).truncate(sp.rows);
        self.listening.pending.truncate(sp.notifies);
        self.vars.restore(&sp.vars);
        self.vars_session = sp.vars_session.clone();
        discard(undone);
        savepoints.truncate(at + 1);
        self.txn = Txn::Active { writes, implicit: false, savepoints };
        Ok(())
    }

    /// `ALTER TABLE` (or `ALTER STREAM`) of a table or stream; see
    /// [`crate::tables::alter`].
    async fn alter_table(&mut self, at: ast::AlterTable) -> Result<Output> {
        let old = at.name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
        self.ddl_allowed("ALTER TABLE", std::slice::from_ref(&old)).await?;
        let shared = self.db.shared();
        let store = &shared.store;
        if let [ast::AlterTableOperation::RenameTable { table_name }] = at.operations.as_slice() {
            let (ast::RenameTableNameKind::To(new) | ast::RenameTableNameKind::As(new)) = table_name;
            let new = new.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
            match crate::tables::alter::check_rename(store, &old, &new) {
                Err(Error::NotFound { kind: ObjectKind::Relation, name }) if at.if_exists => {
                    self.notices.push(Notice::skipped_drop("relation", &name));
                    return Ok(command("ALTER TABLE", None));
                }
                other => other?,
            }
            store.rename(&old, &new).await?;
            return Ok(command("ALTER TABLE", None));
        }
        let (name, changes, present) = match crate::tables::alter::changes(&self.state(), store, &at) {
            Err(Error::NotFound { kind: ObjectKind::Relation, name }) if at.if_exists => {
                self.notices.push(Notice::skipped_drop("relation", &name));
                return Ok(command("ALTER TABLE", None));
            }
            other => other?,
        };
        for column in present {
            self.notices.push(Notice::skipped_column(&column, &name));
        }
        store.alter(&name, changes).await?;
        Ok(command("ALTER TABLE", None))
    }

    /// DDL is not transactional. In an implicit transaction (a query string
    /// of several statements) the writes before it commit first. Inside a
    /// transaction block it takes effect at once, durably, with a warning
    /// that ROLLBACK will not undo it, while the block's writes stay
    /// pending; it is refused if it changes a relation of `changed` (drops,
    /// alters or renames it) that the block has written to, which would
    /// leave those writes without their relation or shape.
    async fn ddl_allowed(&mut self, what: &str, changed: &[String]) -> Result<()> {
        match &self.txn {
            Txn::Active { implicit: false, writes, .. } => {
                let store = &self.db.shared().store;
                let written = |name: &String| {
                    store.stream(name).is_some_and(|s| writes.touches_stream(s.def.id))
                        || store.table(name).is_some_and(|t| writes.touches_table(t.def.id))
                };
                if let Some(name) = changed.iter().find(|n| written(n)) {
                    return Err(Error::WrittenInTransaction { what: what.into(), name: name.clone() });
                }
                self.notices.push(Notice::not_transactional(what));
                Ok(())
            }
            Txn::Active { implicit: true, .. } => {
                self.commit().await?;
                self.begin(true);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn insert(&mut self, plan: &InsertPlan, params: Vec<ScalarValue>) -> Result<Output> {
        if plan.returns_commit_columns() && matches!(self.txn, Txn::Active { .. }) {
            return Err(Error::Unsupported(
                "RETURNING _offset or _timestamp inside a transaction block (COMMIT assigns them)".into(),
            ));
        }
        let kept_params = if plan.returning_schema().is_some() { params.clone() } else { Vec::new() };
        let Inserted { writes, rows } = plan.execute(&self.db.shared().ctx, params, self.vars.zone()).await?;
        let n = writes.appends.len();
        let Some(rows) = rows else {
            self.write(writes).await?;
            return Ok(command("INSERT", Some(n)));
        };
        let appends = writes.appends.clone();
        let receipt = self.write(writes).await?;
        let returned = plan.returned(&self.state(), &kept_params, rows, &appends, receipt.as_ref())?;
        let batch = returned.expect("a plan with RETURNING returns rows");
        let stream = RecordBatchStreamAdapter::new(batch.schema(), futures::stream::iter(vec![Ok(batch)]));
        Ok(Output::Returning { tag: "INSERT".into(), rows: Box::pin(stream) })
    }

    /// Adds `writes` to the open transaction (`None`), or commits them now
    /// (where they landed).
    pub(crate) async fn write(&mut self, writes: WriteSet) -> Result<Option<CommitReceipt>> {
        match &mut self.txn {
            Txn::Active { writes: pending, .. } => {
                pending.extend(writes);
                Ok(None)
            }
            _ => {
                let undo = writes.groups.clone();
                match self.db.shared().store.commit(writes).await {
                    Ok(receipt) => Ok(Some(receipt)),
                    Err(e) => {
                        discard(WriteSet { groups: undo, ..Default::default() });
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// Opens an implicit transaction for a statement that writes in steps
    /// (COPY into a table: one INSERT per row), unless a transaction is
    /// open; whether it did, for [`Session::end_steps`].
    pub(crate) fn begin_steps(&mut self) -> bool {
        let idle = matches!(self.txn, Txn::Idle);
        if idle {
            self.begin(true);
        }
        idle
    }

    /// Ends the steps [`Session::begin_steps`] began: with `done` Ok, the
    /// implicit transaction it opened commits; otherwise that transaction
    /// is discarded (an open one fails), and nothing of the steps lands.
    pub(crate) async fn end_steps(&mut self, opened: bool, done: Result<()>) -> Result<()> {
        match done {
            Ok(()) if opened => self.commit().await,
            Ok(()) => Ok(()),
            Err(e) => {
                self.fail();
                Err(e)
            }
        }
    }

    /// Commits the open transaction's writes; the session is idle afterwards
    /// whether or not the commit succeeded.
    async fn commit(&mut self) -> Result<()> {
        let notifies = std::mem::take(&mut self.listening.pending);
        self.rows = Arc::default();
        if let Txn::Active { writes, .. } = std::mem::replace(&mut self.txn, Txn::Idle) {
            let undo = writes.groups.clone();
            if let Err(e) = self.db.shared().store.commit(writes).await {
                discard(WriteSet { groups: undo, ..Default::default() });
                self.restore_vars();
                return Err(e.into());
            }
        }
        self.vars_before = None;
        if let Some(session) = self.vars_session.take() {
            self.vars.restore(&session);
        }
        for (channel, payload) in notifies {
            self.db.shared().hub.notify(&channel, &payload, self.vars.backend_pid());
        }
        Ok(())
    }

    /// Plans and runs a query in the session's zone, with `params` bound.
    pub(crate) async fn query(&self, mut stmt: ast::Statement, params: &[ScalarValue]) -> Result<Output> {
        crate::sql::settings::rewrite(&mut stmt, &self.vars)?;
        let (plan, names) = self.db.plan_named(stmt, self.vars.zone()).await?;
        let plan = if params.is_empty() { plan } else { plan.with_param_values(params.to_vec())? };
        Ok(self.run_plan(plan).await?.named(names.as_ref()))
    }

    /// Sends `payload` on `channel` (`NOTIFY`, `pg_notify`): at once, or at
    /// COMMIT inside a transaction.
    fn notify(&mut self, channel: String, payload: String) -> Result<()> {
        check_notification(&channel, &payload)?;
        match self.txn {
            Txn::Active { .. } => self.listening.pending.push((channel, payload)),
            _ => self.db.shared().hub.notify(&channel, &payload, self.vars.backend_pid()),
        }
        Ok(())
    }

    /// Runs `plan` (the (channel, payload) rows of a `SELECT pg_notify(…)`)
    /// and notifies each row, as Postgres calls the function once per row:
    /// a NULL channel is refused, a NULL payload is empty. Returns one
    /// null `pg_notify` per row. The rows are all computed first, so an
    /// error in any of them notifies nothing.
    async fn pg_notify(&mut self, plan: LogicalPlan) -> Result<Output> {
        use datafusion::arrow::array::{Array, StringArray};
        use datafusion::arrow::compute::cast;
        use futures::TryStreamExt;
        let Output::Rows(rows) = self.run_plan(plan).await? else {
            return Err(Error::Internal("pg_notify: a query without rows".into()));
        };
        let batches: Vec<RecordBatch> = rows.try_collect().await?;
        let mut sends = Vec::new();
        for batch in &batches {
            let text = |i: usize| -> Result<StringArray> {
                let col = cast(batch.column(i), &DataType::Utf8)?;
                Ok(col.as_any().downcast_ref::<StringArray>().expect("cast to Utf8").clone())
            };
            let (channels, payloads) = (text(0)?, text(1)?);
            for (channel, payload) in channels.iter().zip(payloads.iter()) {
                sends.push((channel.unwrap_or_default().to_string(), payload.unwrap_or_default().to_string()));
            }
        }
        let n = sends.len();
        for (channel, payload) in &sends {
            check_notification(channel, payload)?;
        }
        for (channel, payload) in sends {
            self.notify(channel, payload)?;
        }
        let schema = crate::session::listen::pg_notify_schema();
        let column: Arc<dyn Array> = Arc::new(StringArray::new_null(n));
        let batch = RecordBatch::try_new(schema.clone(), vec![column])?;
        Ok(Output::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(vec![Ok(batch)])))))
    }

    async fn run_plan(&self, plan: LogicalPlan) -> Result<Output> {
        let settings = scans_settings(&plan);
        if !settings && self.rows.is_empty() && is_utc(self.vars.zone()) {
            let df = self.db.shared().ctx.execute_logical_plan(plan).await?;
            return Ok(Output::Rows(df.execute_stream().await?));
        }
        // In the session's zone; inside a transaction that wrote table
        // rows, scans see them; `pg_settings` lists the session's
        // parameters too. `now()` is the time of this statement.
        let mut state = (*self.state()).clone();
        if settings {
            let settings = crate::catalog::pg::SessionSettings(self.vars.settings());
            state.config_mut().set_extension(Arc::new(settings));
        }
        state.mark_start_execution();
        let physical = state.create_physical_plan(&plan).await?;
        Ok(Output::Rows(datafusion::physical_plan::execute_stream(physical, state.task_ctx())?))
    }

    /// The DataFusion state this session's statements run in: the shared
    /// one, in the session's `TimeZone`, plus the transaction's own rows
    /// when it has written some.
    pub(crate) fn state(&self) -> Arc<SessionState> {
        let zone = self.vars.zone();
        if self.rows.is_empty() {
            return match is_utc(zone) {
                true => self.db.shared().state.clone(),
                false => self.zoned_state(zone),
            };
        }
        let mut state = state_in_zone(self.db.shared().ctx.state(), zone);
        state.config_mut().set_extension(self.rows.clone());
        Arc::new(state)
    }

    /// The shared state in `zone`, made once per zone the session is in:
    /// prepared lookups and upserts ask for it on every execution.
    fn zoned_state(&self, zone: &str) -> Arc<SessionState> {
        let mut cached = self.zoned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*cached {
            Some((z, state)) if z == zone => state.clone(),
            _ => {
                let state = Arc::new(state_in_zone((*self.db.shared().state).clone(), zone));
                *cached = Some((zone.to_string(), state.clone()));
                state
            }
        }
    }

    /// Runs a planned INSERT/UPDATE/DELETE on a table. In autocommit, a row
    /// that changed between the read and the write makes the statement run
    /// again on the new row (so a lost compare-and-set reports 0 rows);
    /// inside a transaction the writes wait for COMMIT, which refuses them
    /// with `40001` if a row they read has changed by then.
    pub(crate) async fn run_dml(&mut self, plan: &DmlPlan, params: &[ScalarValue]) -> Result<Output> {
        let (count, returned) = self.write_dml(&[plan], params).await?.pop().expect("one plan, one result");
        let tag = plan.tag();
        Ok(match returned {
            Some(batch) => {
                let schema = batch.schema();
                let stream = RecordBatchStreamAdapter::new(schema, futures::stream::iter(vec![Ok(batch)]));
                Output::Returning { tag: tag.to_string(), rows: Box::pin(stream) }
            }
            None => command(tag, Some(count)),
        })
    }

    /// Builds `plans` against the rows as they are now and writes them as
    /// one: into the open transaction, or committed at once, when a
    /// concurrent writer changed a row they read, built and tried again (up
    /// to [`MAX_ROW_RETRIES`] times). Each plan's row count and RETURNING
    /// rows, in order. The plans must write different tables.
    async fn write_dml(
        &mut self,
        plans: &[&DmlPlan],
        params: &[ScalarValue],
    ) -> Result<Vec<(usize, Option<RecordBatch>)>> {
        let mut attempt = 0;
        loop {
            let state = self.state();
            let mut writes = Vec::new();
            let mut results = Vec::with_capacity(plans.len());
            for plan in plans {
                let Built { writes: built, count, returned } =
                    plan.build(&self.db.shared().store, &state, &self.rows, params).await?;
                // One plan (every statement but TRUNCATE): its vector as it is.
                if writes.is_empty() {
                    writes = built;
                } else {
                    writes.extend(built);
                }
                results.push((count, returned));
            }
            // The state holds the transaction's rows too: let it go, so
            // that they change in place rather than being copied.
            drop(state);
            if matches!(self.txn, Txn::Active { .. }) {
                let pending = Arc::make_mut(&mut self.rows);
                let rows = writes
                    .into_iter()
                    .map(|(w, row)| {
                        pending.set(w.table, w.key.clone(), row);
                        w
                    })
                    .collect();
                self.write(WriteSet { rows, ..Default::default() }).await?;
            } else {
                let rows = writes.into_iter().map(|(w, _)| w).collect();
                match self.db.shared().store.commit(WriteSet { rows, ..Default::default() }).await {
                    Ok(_) => {}
                    Err(brikk_storage::Error::RowConflict { .. }) if attempt < MAX_ROW_RETRIES => {
                        attempt += 1;
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(results);
        }
    }

    /// `TRUNCATE [TABLE] t, ...`: deletes every row of the tables in one
    /// write, each deletion a change in the table's changelog, as `DELETE
    /// FROM t` would (so history and `changes()` readers see it). Identity
    /// sequences continue (`RESTART IDENTITY` is refused); `CASCADE` and
    /// `RESTRICT` change nothing, as there are no foreign keys. A stream
    /// cannot be truncated (its offsets are forever; retention deletes).
    async fn truncate(&mut self, t: ast::Truncate) -> Result<Output> {
        if matches!(t.identity, Some(ast::TruncateIdentityOption::Restart)) {
            return Err(Error::Unsupported("TRUNCATE … RESTART IDENTITY".into()));
        }
        if t.partitions.is_some() || t.on_cluster.is_some() {
            return Err(Error::Unsupported("TRUNCATE … PARTITION / ON CLUSTER".into()));
        }
        let store = self.db.shared().store.clone();
        let mut plans = Vec::with_capacity(t.table_names.len());
        let mut seen = std::collections::HashSet::new();
        for target in &t.table_names {
            let name = target.name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
            let Some(table) = store.table(&name) else {
                return Err(match store.stream(&name) {
                    Some(_) => Error::Unsupported(format!(
                        "TRUNCATE of stream \"{name}\" (offsets are never reused: use retention, or DROP STREAM)"
                    )),
                    None => Error::NotFound { kind: ObjectKind::Relation, name: target.name.to_string() },
                });
            };
            if !seen.insert(table.def.id) {
                continue;
            }
            let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
            let sql = format!("DELETE FROM {}", target.name);
            let delete = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, &sql)
                .map_err(|e| Error::Syntax(e.to_string()))?
                .pop()
                .ok_or_else(|| Error::Internal(format!("no statement in {sql}")))?;
            plans.push(DmlPlan::new(&delete, table, &self.state(), &[]).await?);
        }
        let refs: Vec<&DmlPlan> = plans.iter().collect();
        self.write_dml(&refs, &[]).await?;
        Ok(command("TRUNCATE TABLE", None))
    }

    /// Called before a `SET` or `RESET` changes the parameters: inside a
    /// transaction, remembers them as they were for a rollback.
    fn before_vars_change(&mut self) {
        if matches!(self.txn, Txn::Active { .. }) && self.vars_before.is_none() {
            self.vars_before = Some(self.vars.clone());
        }
    }

    /// Takes back the parameter changes of the transaction ending in a
    /// rollback.
    fn restore_vars(&mut self) {
        self.vars_session = None;
        if let Some(before) = self.vars_before.take() {
            self.vars.restore(&before);
        }
    }

    /// `SET`. `SET LOCAL` lasts until the transaction ends, committed or
    /// not (outside one it does nothing, as in Postgres); a plain `SET`
    /// inside one lasts if it commits.
    fn set(&mut self, set: Set) -> Result<Output> {
        let local = match &set {
            Set::SingleAssignment { scope, .. } => matches!(scope, Some(ast::ContextModifier::Local)),
            Set::SetTimeZone { local, .. } => *local,
            _ => false,
        };
        if local && !matches!(self.txn, Txn::Active { .. }) {
            self.notices
                .push(Notice::new(NoticeKind::NoActiveTransaction, "SET LOCAL can only be used in transaction blocks"));
            return Ok(command("SET", None));
        }
        self.before_vars_change();
        if local {
            self.vars_session.get_or_insert_with(|| self.vars.clone());
        } else if let Some(session) = &mut self.vars_session {
            apply_set(session, &set)?;
        }
        apply_set(&mut self.vars, &set)?;
        Ok(command("SET", None))
    }

    /// `RESET name` or `RESET ALL`: a session-level change.
    fn reset(&mut self, reset: &ast::ResetStatement) {
        self.before_vars_change();
        for vars in std::iter::once(&mut self.vars).chain(self.vars_session.as_mut()) {
            match &reset.reset {
                ast::Reset::ALL => vars.reset_all(),
                ast::Reset::ConfigurationParameter(name) => vars.reset(&name.to_string()),
            }
        }
    }

    fn show(&self, name: &str) -> Result<Output> {
        let name = name.to_ascii_lowercase();
        let (schema, names, values): (SchemaRef, Vec<String>, Vec<String>) = if name == "all" {
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]));
            let (n, v) = self.vars.all().map(|(k, v)| (k.clone(), v.clone())).unzip();
            (schema, n, v)
        } else {
            let value =
                self.vars.get(&name).ok_or(Error::NotFound { kind: ObjectKind::Parameter, name: name.clone() })?;
            (prepared::show_schema(&name), vec![], vec![value])
        };
        let columns: Vec<Arc<dyn datafusion::arrow::array::Array>> = if name == "all" {
            vec![Arc::new(StringArray::from(names)), Arc::new(StringArray::from(values))]
        } else {
            vec![Arc::new(StringArray::from(values))]
        };
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Output::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(vec![Ok(batch)])))))
    }
}

pub(super) fn result_schema_of(stmt: &ast::Statement) -> Option<SchemaRef> {
    match stmt {
        ast::Statement::ShowVariable { variable } => {
            let name = variable.iter().map(|i| i.value.to_ascii_lowercase()).collect::<Vec<_>>().join(" ");
            Some(prepared::show_schema(&name))
        }
        _ => None,
    }
}

pub(super) fn is_query(s: &ast::Statement) -> bool {
    matches!(
        s,
        ast::Statement::Query(_)
            | ast::Statement::Explain { .. }
            | ast::Statement::ShowTables { .. }
            | ast::Statement::ShowColumns { .. }
    )
}

/// Forgets writes that will not be committed. Members whose offset commits
/// are discarded re-read from their committed offsets: the records they
/// fetched in the transaction are delivered again.
fn discard(writes: WriteSet) {
    for w in writes.groups {
        if let brikk_storage::GroupWrite::Offsets { group, member, .. } = w {
            group.rewind(member);
        }
    }
}

/// The error for UPDATE or DELETE on a relation that is not a table.
fn not_a_table(store: &brikk_storage::Store, name: &str, verb: &str) -> Error {
    let name = name.trim_matches('"').to_ascii_lowercase();
    if store.stream(&name).is_some() {
        Error::WrongObjectType(format!("cannot {verb} stream \"{name}\": streams are append-only (use retention)"))
    } else if store.view(&name).is_some() {
        Error::WrongState(format!("cannot {verb} view \"{name}\": views are read-only"))
    } else {
        Error::NotFound { kind: ObjectKind::Relation, name }
    }
}

/// A one-column `QUERY PLAN` result, as EXPLAIN returns.
fn explain_text(line: &str) -> Output {
    let schema = prepared::explain_schema();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![line.to_string()]))])
        .expect("one text column");
    Output::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(vec![Ok(batch)]))))
}

pub(crate) fn command(tag: &str, rows: Option<usize>) -> Output {
    Output::Command { tag: tag.to_string(), rows }
}

/// Applies a `SET` to `vars`.
fn apply_set(vars: &mut Vars, set: &Set) -> Result<()> {
    match set {
        Set::SingleAssignment { variable, values, .. } => {
            let name = variable.to_string().to_ascii_lowercase();
            let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
            if value.eq_ignore_ascii_case("default") {
                vars.reset(&name);
            } else {
                vars.set(&name, value)?;
            }
        }
        Set::SetTimeZone { value, .. } => vars.set_time_zone(&value_text(value))?,
        Set::SetNames { charset_name, .. } => vars.set("client_encoding", charset_name.to_string())?,
        // Brikk's isolation is fixed; accept the statements drivers send.
        Set::SetTransaction { .. } | Set::SetSessionParam(_) => {}
        other => return Err(Error::Unsupported(other.to_string())),
    }
    Ok(())
}

/// Refuses what Postgres refuses to notify: an empty (or NULL) channel, a
/// payload of [`MAX_PAYLOAD`] bytes or more.
fn check_notification(channel: &str, payload: &str) -> Result<()> {
    if channel.is_empty() {
        return Err(Error::InvalidParameter("channel name cannot be empty".into()));
    }
    if payload.len() >= MAX_PAYLOAD {
        return Err(Error::InvalidParameter("payload string too long".into()));
    }
    Ok(())
}

fn value_text(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        ast::Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

/// Planning needs the catalog and the DataFusion context, not a session.
impl Brikk {
    /// Plans a query, with the Postgres names of its result columns.
    /// `zone` is the session's `TimeZone` (see [`Brikk::plan_query`]).
    pub(crate) async fn plan_named(
        &self,
        stmt: ast::Statement,
        zone: &str,
    ) -> Result<(LogicalPlan, Option<ColumnNames>)> {
        let names = ColumnNames::of(&stmt);
        // Postgres lets two items of a select list have the same name;
        // DataFusion refuses them. Planned again with distinct aliases.
        let again = ColumnNames::may_repeat(&stmt).then(|| stmt.clone());
        match (self.plan_query(stmt, zone).await, again) {
            (Err(e), Some(mut stmt)) if ColumnNames::is_repeated_name(&e) => match ColumnNames::distinct(&mut stmt) {
                Some(names) => Ok((self.plan_query(stmt, zone).await?, Some(names))),
                None => Err(e),
            },
            (plan, _) => Ok((plan?, names)),
        }
    }

    /// Plans a query in `zone`: `now()` is a time of that zone, and text
    /// without an offset cast to `timestamptz` is a local time there.
    pub(crate) async fn plan_query(&self, mut stmt: ast::Statement, zone: &str) -> Result<LogicalPlan> {
        let shared = self.shared();
        let store = &shared.store;
        crate::sql::rewrite::before_planning(&mut stmt, store)?;
        let plan = state_in_zone(shared.ctx.state(), zone)
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(stmt)))
            .await?;
        match &plan {
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) | LogicalPlan::Statement(_) => {
                Err(Error::Unsupported(format!("{} in this position", plan.display())))
            }
            _ => crate::types::oid_arrays_of_catalog(crate::types::uuid_literals_in_plan(plan)?),
        }
    }

    pub(crate) async fn plan_show_queries(&self) -> Result<LogicalPlan> {
        let sql = "SELECT name, status, sink, inputs, lag, records_in, records_out, last_error \
                   FROM brikk_queries ORDER BY name";
        let mut stmts = sql::parse(sql, &self.shared().compat)?;
        match stmts.pop() {
            Some(Statement::Sql(s)) => self.plan_query(*s, UTC).await,
            _ => Err(Error::Internal("SHOW CONTINUOUS QUERIES query did not parse".into())),
        }
    }

    pub(crate) async fn plan_show_streams(&self) -> Result<LogicalPlan> {
        let sql = "SELECT name, partitions, key, retention, records, created_at FROM brikk_streams ORDER BY name";
        let mut stmts = sql::parse(sql, &self.shared().compat)?;
        match stmts.pop() {
            Some(Statement::Sql(s)) => self.plan_query(*s, UTC).await,
            _ => Err(Error::Internal("SHOW STREAMS query did not parse".into())),
        }
    }
}

impl Session {
    /// Continuous-query DDL: durable when acknowledged, not transactional.
    async fn run_continuous(&mut self, stmt: ContinuousStatement) -> Result<Output> {
        let db = self.db.clone();
        let runtime = &db.shared().continuous;
        match stmt {
            ContinuousStatement::Create { name, if_not_exists, options, body } => {
                self.ddl_allowed("CREATE CONTINUOUS QUERY", &[]).await?;
                runtime.create(&db, &name, if_not_exists, options, &body).await?;
                Ok(command("CREATE CONTINUOUS QUERY", None))
            }
            ContinuousStatement::Drop { name, if_exists } => {
                self.ddl_allowed("DROP CONTINUOUS QUERY", &[]).await?;
                runtime.drop_query(db.store(), &name, if_exists).await?;
                Ok(command("DROP CONTINUOUS QUERY", None))
            }
            ContinuousStatement::Pause { name } => {
                self.ddl_allowed("PAUSE CONTINUOUS QUERY", &[]).await?;
                runtime.set_running(&db, &name, false).await?;
                Ok(command("PAUSE CONTINUOUS QUERY", None))
            }
            ContinuousStatement::Resume { name } => {
                self.ddl_allowed("RESUME CONTINUOUS QUERY", &[]).await?;
                runtime.set_running(&db, &name, true).await?;
                Ok(command("RESUME CONTINUOUS QUERY", None))
            }
            ContinuousStatement::Show => {
                let plan = db.plan_show_queries().await?;
                self.run_plan(plan).await
            }
        }
    }
}

/// Whether `plan` (or a subquery of it) reads `pg_settings`.
fn scans_settings(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found = matches!(node, LogicalPlan::TableScan(t) if t.table_name.table() == "pg_settings");
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}
