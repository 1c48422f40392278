//! Prepared statements (the extended protocol's Parse/Bind/Execute).
//!
//! A statement is parsed and planned once at Parse; Execute binds
//! parameters into the kept plan. INSERTs keep an [`InsertPlan`] and never
//! touch DataFusion again; queries keep their logical plan.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};

use datafusion::sql::sqlparser::ast;

use crate::db::Brikk;
use crate::error::{Error, Result};
use crate::session::exec::{is_query, result_schema_of};
use crate::session::insert::InsertPlan;
use crate::session::vars::Vars;
use crate::sql;
use crate::sql::colnames::ColumnNames;
use crate::sql::Statement;
use crate::tables::dml::{self, DmlPlan};
use crate::tables::lookup::LookupPlan;
use crate::types::{compares, is_uuid_column};

/// A statement ready to execute many times.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The statement's text, as the client sent it.
    pub sql: Arc<str>,
    pub(crate) kind: PreparedKind,
    param_types: Vec<DataType>,
    /// Parameters (zero-based, ascending) bound to a `uuid` column.
    uuid_params: Vec<usize>,
    /// [`brikk_storage::Catalog::alterations`] when it was planned.
    alterations: u64,
    /// Parameters the statement casts to `oid` (`false`) or `oid[]`
    /// (`true`); see [`oid_params`].
    oid_params: Vec<(usize, bool)>,
}

#[derive(Debug, Clone)]
pub(crate) enum PreparedKind {
    Empty,
    Insert(Box<InsertPlan>),
    /// INSERT, UPDATE or DELETE on a table.
    Dml(Box<DmlPlan>),
    /// A primary-key lookup run without DataFusion.
    Lookup(Box<LookupPlan>),
    /// A query, with the Postgres names of its columns.
    Query(Box<LogicalPlan>, Option<ColumnNames>),
    /// `SELECT pg_notify(…)`: the query of its (channel, payload) rows.
    Notify(Box<LogicalPlan>),
    /// Statements without parameters or planning (BEGIN, SET, DDL): run as is.
    Other(Box<Statement>, Option<SchemaRef>),
    /// `DECLARE … CURSOR FOR query`, with the types of the query's
    /// parameters.
    Declare(Box<ast::Declare>, Vec<DataType>),
}

impl Prepared {
    /// The cursor this statement is a `FETCH` from, if it is one: only a
    /// session knows what its rows look like ([`crate::Session::prepare`]).
    pub(crate) fn fetched_cursor(&self) -> Option<&str> {
        match &self.kind {
            PreparedKind::Other(stmt, None) => match &**stmt {
                Statement::Sql(s) => match &**s {
                    ast::Statement::Fetch { name, .. } => Some(&name.value),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }
    /// `declared`: the client's parameter types, for parameters the plan
    /// does not type (`$1::integer` leaves `$1` untyped).
    pub(crate) fn new(sql: String, kind: PreparedKind, declared: &[Option<DataType>]) -> Result<Prepared> {
        let param_types = match &kind {
            PreparedKind::Insert(p) => p.param_types.clone(),
            PreparedKind::Dml(p) => p.param_types.clone(),
            PreparedKind::Lookup(p) => p.param_types.clone(),
            PreparedKind::Query(plan, _) | PreparedKind::Notify(plan) => query_param_types(plan, declared)?,
            PreparedKind::Other(stmt, _) => match stmt.as_ref() {
                Statement::Group(g) => vec![DataType::Int64; g.param_count()],
                _ => Vec::new(),
            },
            PreparedKind::Declare(_, types) => types.clone(),
            PreparedKind::Empty => Vec::new(),
        };
        let uuid_params = match &kind {
            PreparedKind::Insert(p) => p.uuid_params.clone(),
            PreparedKind::Dml(p) => p.uuid_params.clone(),
            PreparedKind::Lookup(p) => p.uuid_params.clone(),
            PreparedKind::Query(plan, _) => uuid_params_of_plan(plan),
            _ => Vec::new(),
        };
        let oid_params = oid_params(&sql);
        Ok(Prepared { sql: sql.into(), kind, param_types, uuid_params, alterations: 0, oid_params })
    }

    /// Whether no definition has been altered since this was planned (a
    /// statement that plans nothing is always current).
    pub(crate) fn is_current(&self, db: &Brikk) -> bool {
        matches!(self.kind, PreparedKind::Empty | PreparedKind::Other(..))
            || self.alterations == db.shared().store.catalog().alterations()
    }

    /// Types of `$1..$n`, as they should be described to the client.
    pub fn param_types(&self) -> &[DataType] {
        &self.param_types
    }

    /// The parameters (zero-based, ascending) that are assigned to or
    /// compared with a `uuid` column. They are text in
    /// [`Prepared::param_types`], as Brikk binds them; a server describes
    /// them as `uuid`, so that drivers which encode parameters by the
    /// server's description (asyncpg) accept UUID objects.
    pub fn uuid_params(&self) -> &[usize] {
        &self.uuid_params
    }

    /// Parameters (zero-based) the statement casts to `oid` (`false`) or
    /// `oid[]` (`true`), which a client should be told are of that type.
    pub fn oid_params(&self) -> &[(usize, bool)] {
        &self.oid_params
    }

    /// The schema of the rows this statement returns, or `None` if it
    /// returns none (a command).
    pub fn result_schema(&self) -> Option<SchemaRef> {
        match &self.kind {
            PreparedKind::Query(plan, None) => Some(plan.schema().inner().clone()),
            PreparedKind::Query(plan, Some(names)) => Some(names.apply(plan.schema().inner())),
            PreparedKind::Notify(_) => Some(crate::session::listen::pg_notify_schema()),
            PreparedKind::Dml(plan) => plan.returning_schema(),
            PreparedKind::Insert(plan) => plan.returning_schema(),
            PreparedKind::Lookup(plan) => Some(plan.schema()),
            PreparedKind::Other(_, schema) => schema.clone(),
            PreparedKind::Empty | PreparedKind::Declare(..) => None,
        }
    }

    /// Whether the statement is empty (no SQL at all).
    pub fn is_empty(&self) -> bool {
        matches!(self.kind, PreparedKind::Empty)
    }
}

/// Parameter types of a plan, `$1` first; a parameter DataFusion cannot type
/// takes the client's declared type, or text.
pub(crate) fn param_types(plan: &LogicalPlan, declared: &[Option<DataType>]) -> Result<Vec<DataType>> {
    let inferred = inferred_param_types(plan)?;
    let count = inferred
        .keys()
        .filter_map(|k| k.strip_prefix('$')?.parse::<usize>().ok())
        .max()
        .unwrap_or(0)
        .max(declared.len());
    Ok((1..=count)
        .map(|i| {
            declared
                .get(i - 1)
                .cloned()
                .flatten()
                .or_else(|| inferred.get(&format!("${i}")).cloned().flatten())
                .unwrap_or(DataType::Utf8)
        })
        .collect())
}

/// The parameter types DataFusion infers from `plan`, and the one it
/// leaves open that Postgres would not: the array of `x = ANY($1)` (and
/// `<> ALL`), which DataFusion plans as `array_has($1, x)`, is a list of
/// `x`'s type, so a driver that encodes by the server's description
/// (asyncpg) sends an array; `$1::text[]` is the array type it is cast to.
fn inferred_param_types(plan: &LogicalPlan) -> Result<std::collections::HashMap<String, Option<DataType>>> {
    let mut inferred = plan.get_parameter_types()?;
    plan.apply(|node| {
        let Some(input) = node.inputs().first().map(|i| i.schema().clone()) else {
            return Ok(TreeNodeRecursion::Continue);
        };
        for e in node.expressions() {
            e.apply(|e| {
                let mut open = |p: &Placeholder, t: DataType| {
                    if p.field.is_none() {
                        inferred.entry(p.id.clone()).or_insert(None).get_or_insert(t);
                    }
                };
                match e {
                    Expr::ScalarFunction(f) if f.name() == "array_has" => {
                        if let [Expr::Placeholder(p), element] = f.args.as_slice() {
                            if let Ok(t) = element.get_type(&input) {
                                open(p, DataType::List(std::sync::Arc::new(Field::new_list_field(t, true))));
                            }
                        }
                    }
                    // `pg_terminate_backend($1)`: the one type the
                    // function takes there.
                    Expr::ScalarFunction(f) => {
                        for (at, arg) in f.args.iter().enumerate() {
                            if let Expr::Placeholder(p) = arg {
                                let taken = argument_type(&f.func.signature().type_signature, f.args.len(), at);
                                if let Some(t) = taken.filter(described_by_cast) {
                                    open(p, t);
                                }
                            }
                        }
                    }
                    // `$1::int`, `$1::timestamptz`: the type it is cast to,
                    // as Postgres describes it; `$1::text[]`: the array
                    // itself, not text made a list of one.
                    Expr::Cast(c) if described_by_cast(c.field.data_type()) => {
                        if let Expr::Placeholder(p) = c.expr.as_ref() {
                            open(p, c.field.data_type().clone());
                        }
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(inferred)
}

/// The type a function with signature `signature`, called with `arity`
/// arguments, takes as argument `at`, when its signature allows only one.
fn argument_type(signature: &datafusion::logical_expr::TypeSignature, arity: usize, at: usize) -> Option<DataType> {
    use datafusion::logical_expr::TypeSignature;
    match signature {
        TypeSignature::Exact(types) if types.len() == arity => types.get(at).cloned(),
        TypeSignature::Uniform(n, types) if *n == arity && types.len() == 1 => types.first().cloned(),
        TypeSignature::OneOf(forms) => {
            let mut taken = forms.iter().filter_map(|f| argument_type(f, arity, at));
            let first = taken.next()?;
            taken.all(|t| t == first).then_some(first)
        }
        _ => None,
    }
}

/// Whether a parameter cast to `t` (`$1::t`) is described as `t`: the
/// types whose values every client sends and Brikk reads in both formats.
/// A parameter cast to another type (`json`, `uuid`, `bytea`, …) stays text,
/// which the cast reads.
fn described_by_cast(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_)
            | DataType::Boolean
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Interval(_)
            | DataType::Time64(_)
    )
}

/// Parameter types of a query, `$1` first: as the plan types them (the
/// values are bound into the plan as they are), else as the client
/// declared them, else text.
fn query_param_types(plan: &LogicalPlan, declared: &[Option<DataType>]) -> Result<Vec<DataType>> {
    let inferred = inferred_param_types(plan)?;
    let count = param_types(plan, declared)?.len();
    Ok((1..=count)
        .map(|i| {
            inferred
                .get(&format!("${i}"))
                .cloned()
                .flatten()
                .or_else(|| declared.get(i - 1).cloned().flatten())
                .unwrap_or(DataType::Utf8)
        })
        .collect())
}

/// Adds to `out` the parameters that `exprs` compare with a `uuid` column
/// (`col = $1`, `$1 <> col`, `col IN ($1, $2)`; not a cast column), resolving
/// columns in `schemas`; `out` stays ascending and without repeats.
pub(crate) fn uuid_params<'a>(exprs: impl IntoIterator<Item = &'a Expr>, schemas: &[&DFSchema], out: &mut Vec<usize>) {
    let mut compared = |column: &Expr, param: &Expr| {
        let Expr::Placeholder(p) = param else { return };
        if let (true, Some(i)) = (is_uuid_column(column, schemas), crate::tables::expr::param_index(&p.id)) {
            out.push(i);
        }
    };
    for e in exprs {
        // Infallible: the closure never fails.
        let _ = e.apply(|e| {
            match e {
                Expr::BinaryExpr(b) if compares(b.op) => {
                    compared(&b.left, &b.right);
                    compared(&b.right, &b.left);
                }
                Expr::InList(l) => l.list.iter().for_each(|item| compared(&l.expr, item)),
                _ => {}
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    out.sort_unstable();
    out.dedup();
}

/// [`uuid_params`] of every expression of `plan` and its subqueries, each
/// against its node's inputs.
pub(crate) fn uuid_params_of_plan(plan: &LogicalPlan) -> Vec<usize> {
    let mut out = Vec::new();
    // Infallible: the closures never fail.
    let _ = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        let schemas: Vec<&DFSchema> = inputs.iter().map(|p| p.schema().as_ref()).collect();
        node.apply_expressions(|e| {
            uuid_params([e], &schemas, &mut out);
            Ok(TreeNodeRecursion::Continue)
        })
    });
    out
}

/// Whether `s` is an EXPLAIN of an INSERT/UPDATE/DELETE on a table (Brikk
/// explains those itself).
fn explains_table_dml(db: &Brikk, s: &ast::Statement) -> bool {
    match s {
        ast::Statement::Explain { statement, analyze: false, .. } => {
            dml::target_name(statement).and_then(|n| dml::table_of(&db.shared().store, n)).is_some()
        }
        _ => false,
    }
}

/// The schema of EXPLAIN's result.
pub(crate) fn explain_schema() -> SchemaRef {
    std::sync::Arc::new(Schema::new(vec![Field::new("QUERY PLAN", DataType::Utf8, false)]))
}

/// A one-column text schema, for `SHOW name`.
/// The column is named as Postgres names the parameter (`TimeZone` for
/// `SHOW TIME ZONE` and `SHOW timezone`, `DateStyle`, …).
pub(crate) fn show_schema(name: &str) -> SchemaRef {
    let column = match name.to_ascii_lowercase().as_str() {
        "time zone" | "timezone" => "TimeZone".to_string(),
        "datestyle" => "DateStyle".to_string(),
        "intervalstyle" => "IntervalStyle".to_string(),
        other => other.to_string(),
    };
    std::sync::Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, true)]))
}

impl Brikk {
    /// Parses and plans one statement for repeated execution in any
    /// session. `declared` are the parameter types the client declared.
    pub async fn prepare(&self, sql: &str, declared: &[Option<DataType>]) -> Result<Prepared> {
        self.prepare_in(sql, declared, &crate::session::vars::Vars::default()).await
    }

    /// [`Brikk::prepare`] with a session's settings `vars`: in its
    /// `TimeZone` (text without an offset that the statement casts to
    /// `timestamptz` is a local time of that zone), `current_setting(…)`
    /// read from them (see [`crate::sql::settings`]).
    pub async fn prepare_in(&self, sql: &str, declared: &[Option<DataType>], vars: &Vars) -> Result<Prepared> {
        // Read before planning: an ALTER that lands while this plans makes
        // the statement plan again when it runs.
        let alterations = self.shared().store.catalog().alterations();
        let zone = vars.zone();
        let state = match crate::types::is_utc(zone) {
            true => self.shared().state.clone(),
            false => std::sync::Arc::new(crate::zone::state_in_zone(self.shared().ctx.state(), zone)),
        };
        let mut statements = sql::parse(sql, &self.shared().compat)?;
        if statements.len() > 1 {
            return Err(Error::Syntax("cannot insert multiple commands into a prepared statement".into()));
        }
        if let Some(Statement::Sql(stmt)) = statements.last_mut() {
            crate::sql::settings::rewrite(stmt, vars)?;
        }
        let kind = match statements.pop() {
            None => PreparedKind::Empty,
            Some(Statement::Sql(stmt)) => match *stmt {
                s @ (ast::Statement::Insert(_) | ast::Statement::Update(_) | ast::Statement::Delete(_))
                    if dml::target_name(&s).and_then(|n| dml::table_of(&self.shared().store, n)).is_some() =>
                {
                    let table = dml::target_name(&s)
                        .and_then(|n| dml::table_of(&self.shared().store, n))
                        .ok_or_else(|| Error::Internal("table vanished".into()))?;
                    let plan = DmlPlan::new(&s, table, &state, declared).await?;
                    PreparedKind::Dml(Box::new(plan))
                }
                ast::Statement::Query(q) if crate::session::listen::pg_notify_call(&q).is_some() => {
                    let args = crate::session::listen::pg_notify_arguments(&q).expect("checked");
                    let (plan, _) = self.plan_named(ast::Statement::Query(Box::new(args)), zone).await?;
                    PreparedKind::Notify(Box::new(plan))
                }
                ast::Statement::Query(q) => match LookupPlan::try_new(&q, &self.shared().store, &state, declared)? {
                    Some(plan) => PreparedKind::Lookup(Box::new(plan)),
                    None => {
                        let (plan, names) = self.plan_named(ast::Statement::Query(q), zone).await?;
                        PreparedKind::Query(Box::new(plan), names)
                    }
                },
                s @ ast::Statement::Explain { .. } if explains_table_dml(self, &s) => {
                    PreparedKind::Other(Box::new(Statement::Sql(Box::new(s))), Some(explain_schema()))
                }
                ast::Statement::Insert(insert) => {
                    let plan = InsertPlan::new(&insert, &self.shared().store, &self.shared().ctx, declared).await?;
                    PreparedKind::Insert(Box::new(plan))
                }
                s if is_query(&s) => {
                    let (plan, names) = self.plan_named(s, zone).await?;
                    PreparedKind::Query(Box::new(plan), names)
                }
                ast::Statement::Declare { mut stmts } if stmts.len() == 1 && stmts[0].for_query.is_some() => {
                    let declare = stmts.remove(0);
                    let query = declare.for_query.clone().expect("checked");
                    let (plan, _) = self.plan_named(ast::Statement::Query(query), zone).await?;
                    PreparedKind::Declare(Box::new(declare), query_param_types(&plan, declared)?)
                }
                s => {
                    let schema = result_schema_of(&s);
                    PreparedKind::Other(Box::new(Statement::Sql(Box::new(s))), schema)
                }
            },
            Some(Statement::ShowStreams) => PreparedKind::Query(Box::new(self.plan_show_streams().await?), None),
            Some(Statement::Continuous(c)) if *c == crate::sql::continuous::ContinuousStatement::Show => {
                PreparedKind::Query(Box::new(self.plan_show_queries().await?), None)
            }
            Some(Statement::Group(g)) => {
                let schema = crate::session::groups::result_schema(&self.shared().store, &g)?;
                PreparedKind::Other(Box::new(Statement::Group(g)), schema)
            }
            Some(other) => PreparedKind::Other(Box::new(other), None),
        };
        let mut prepared = Prepared::new(sql.to_string(), kind, declared)?;
        prepared.alterations = alterations;
        Ok(prepared)
    }
}

/// The parameters `sql` casts to `oid` or `oid[]` (`$1::oid[]`), with
/// whether it is the array. Brikk holds OIDs as integers, so the plan types
/// them `integer`; a driver that asks the catalog about types it does not
/// know (asyncpg, with `… = any($1::oid[])`) must be told `oid[]`, whose
/// codec it has, or it asks about `integer[]` with the same query again.
fn oid_params(sql: &str) -> Vec<(usize, bool)> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.to_ascii_lowercase().contains("::oid") {
        return Vec::new();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else { return Vec::new() };
    let tokens: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let mut out = Vec::new();
    for (i, window) in tokens.windows(3).enumerate() {
        let [Token::Placeholder(p), Token::DoubleColon, Token::Word(w)] = window else { continue };
        let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).filter(|n| *n > 0) else { continue };
        if w.value.eq_ignore_ascii_case("oid") {
            let array = matches!(tokens.get(i + 3), Some(Token::LBracket))
                && matches!(tokens.get(i + 4), Some(Token::RBracket));
            out.push((n - 1, array));
        }
    }
    out
}
