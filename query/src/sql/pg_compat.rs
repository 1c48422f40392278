//! Postgres forms that clients' catalog queries use and DataFusion lacks,
//! rewritten to equivalents DataFusion plans. Applied after
//! `datafusion-pg-catalog`'s own rewrites, to every statement it parses.
//!
//! - `ARRAY(SELECT e FROM unnest(a) x)` (psql's `\d+` reads a table's
//!   TOAST options so) becomes `array_transform(a, x -> e)`: the same array,
//!   element by element, without a correlated subquery.
//! - Any other `ARRAY(subquery)` becomes `(SELECT array_agg(e) FROM …)`
//!   with the subquery's ORDER BY as the aggregate's order. (An empty
//!   result is then NULL rather than `'{}'`.)
//! - A correlated scalar subquery that does not aggregate, `(SELECT e FROM
//!   t WHERE t.k = outer.k)`, which DataFusion refuses, becomes `(SELECT
//!   first_value(e) FROM …)`: the same value when at most one row matches
//!   (drivers' catalog lookups by key, as SQLAlchemy's reflection), NULL
//!   when none does. Where several rows match, Postgres fails with `21000`
//!   and Brikk returns one of them.
//! - `e::json` and `e::jsonb` (DataFusion has no JSON type) become `json(e)`
//!   and `jsonb(e)`: text checked to be JSON and typed `json`/`jsonb` (see
//!   [`crate::json`]); `e::uuid` becomes `uuid_in(e)`, text checked to be a
//!   UUID, canonical, typed `uuid`.
//! - Set-returning calls in a select list, `jsonb_array_elements(j)`,
//!   `jsonb_object_keys(j)`, `generate_series(a, b)` and their kin, become
//!   `unnest` of a list, `jsonb(unnest(json_array_items(j)))` (see
//!   [`crate::sql::table_functions`] and [`crate::json::elements`]),
//!   headed as written.
//! - A literal cast to an unconstrained `numeric` (`1.50::numeric`,
//!   `'0.125'::numeric`) keeps the literal's digits, as Postgres prints it:
//!   the cast gets the literal's precision and scale instead of DataFusion's
//!   `decimal(38, 10)`, which would print `1.5000000000`; text in exponent
//!   form (`'1e3'::numeric`), which DataFusion's cast does not read, is
//!   written out plainly first.
//! - `current_role` and `user`, keywords for the current role in Postgres
//!   that the parser reads as column names, become `session_user()` (the
//!   one role, `brikk`), headed as written.
//! - `pg_type`'s `regproc` columns (`typinput`, `typoutput`, …) hold
//!   function names, so a comparison of one with a function, `typinput =
//!   'pg_catalog.array_in'::regproc` (which the crate turns into a lookup
//!   of the function's oid), compares it with the name, `'array_in'`
//!   (pgjdbc asks so for a type it does not know, as `jsonb`).
//! - `FROM ONLY t`, `UPDATE ONLY t`, `DELETE FROM ONLY t` (which sqlparser
//!   reads as a relation `only` aliased `t`) become `FROM t`: `ONLY`
//!   leaves out a table's inheritance children in Postgres, and Brikk's
//!   relations have none. (`only` is reserved in Postgres: no relation is
//!   named so unquoted.)
//! - An unqualified `pg_stat_activity` (a view Brikk adds to `pg_catalog`,
//!   which the crate does not qualify as it does its own tables) becomes
//!   `pg_catalog.pg_stat_activity`, as Postgres finds it on its search path.
//! - `'name'::regclass`, which the crate turns into a lookup in `pg_class`
//!   (`(SELECT c.oid FROM pg_catalog.pg_class c … parse_ident('name') …)`),
//!   becomes `regclass_of((SELECT max(c.oid) …), 'name')`: an unqualified
//!   name is looked up in `pg_catalog` and the current schema (Postgres's
//!   search path), and a name no relation has is `42P01` (DataFusion
//!   refused the empty lookup with an internal error); `to_regclass('name')`
//!   is the lookup alone, NULL for such a name.
//! - A field of a parenthesized composite value, `(e).name`, becomes `(e)['name']`,
//!   which DataFusion reads as the struct's field (`name` folded to lower
//!   case unless quoted, as identifiers are).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, DataType, ExactNumberInfo, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentClause, FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, LambdaFunction,
    LambdaFunctionParameter, LambdaSyntax, NonBlock, ObjectName, OneOrManyWithParens, Query, SelectItem, SetExpr,
    Statement, TableFactor, Value, Visit, VisitMut, Visitor, VisitorMut,
};

/// Refuses, with `0A000`, a data-modifying statement in WITH (`WITH up AS
/// (UPDATE … RETURNING …) SELECT …`) and `SELECT … INTO new_table`, which
/// DataFusion would refuse in its own words; the forms of
/// [`crate::sql::row_limits`] it cannot run; and Postgres forms Brikk would otherwise accept and
/// quietly run with another meaning: `FOR UPDATE … SKIP LOCKED` and
/// `NOWAIT` (Brikk takes no row locks, so nothing would be skipped: two
/// workers would get the same rows). A plain `FOR UPDATE`/`FOR SHARE` is
/// accepted: a transaction that read and then wrote a row fails its COMMIT
/// with `40001` if another wrote the row first, which keeps what the lock
/// protects in Postgres.
pub fn check(stmt: &Statement) -> crate::error::Result<()> {
    struct Locks;
    impl Visitor for Locks {
        type Break = &'static str;
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<&'static str> {
            let writes = |q: &Query| {
                matches!(*q.body, SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_))
            };
            if query.with.as_ref().is_some_and(|w| w.cte_tables.iter().any(|c| writes(&c.query))) {
                return ControlFlow::Break("WITH");
            }
            if matches!(query.body.as_ref(), SetExpr::Select(s) if s.into.is_some()) {
                return ControlFlow::Break("INTO");
            }
            match query.locks.iter().find_map(|l| l.nonblock.as_ref()) {
                Some(NonBlock::SkipLocked) => ControlFlow::Break("SKIP LOCKED"),
                Some(NonBlock::Nowait) => ControlFlow::Break("NOWAIT"),
                None => ControlFlow::Continue(()),
            }
        }
    }
    crate::sql::row_limits::check(stmt)?;
    match stmt.visit(&mut Locks) {
        ControlFlow::Break("WITH") => Err(crate::error::Error::Unsupported(
            "a data-modifying statement in WITH (run the INSERT, UPDATE or DELETE on its own, with RETURNING)".into(),
        )),
        ControlFlow::Break("INTO") => Err(crate::error::Error::Unsupported(
            "SELECT … INTO a new table (CREATE TABLE … with its PRIMARY KEY, or CREATE STREAM, \
             then INSERT INTO … SELECT …)"
                .into(),
        )),
        ControlFlow::Break(what) => Err(crate::error::Error::Unsupported(format!(
            "FOR UPDATE … {what} (Brikk takes no row locks; a queue group hands out work: \
             CLAIM … FROM stream GROUP name, then ACK)"
        ))),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Rewrites the forms above everywhere in `stmt`.
pub fn rewrite(stmt: &mut Statement) {
    name_role_items(stmt);
    name_select_items(stmt, |e| crate::sql::table_functions::select_list_rows(e).map(|(name, _)| name));
    let _ = stmt.visit(&mut SetReturningCall);
    name_select_items(stmt, ordered_json_agg);
    let _ = stmt.visit(&mut OrderedJsonAgg);
    let _ = stmt.visit(&mut RoleKeyword);
    let _ = stmt.visit(&mut ArrayConstructor);
    let _ = stmt.visit(&mut CorrelatedScalar);
    let _ = stmt.visit(&mut ArrayLiteral);
    let _ = stmt.visit(&mut IntegerArrayCounts);
    let _ = stmt.visit(&mut JsonCast);
    let _ = stmt.visit(&mut NumericLiteral);
    name_select_items(stmt, field_name);
    let _ = stmt.visit(&mut FieldAccess);
    let _ = stmt.visit(&mut RegprocName);
    let _ = stmt.visit(&mut OnlyRelation);
    let _ = stmt.visit(&mut RegclassLookup);
    crate::sql::row_limits::rewrite(stmt);
}

/// `'name'::regclass` and `to_regclass('name')` (see the module docs).
struct RegclassLookup;

impl VisitorMut for RegclassLookup {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(name) = crate_regclass_operand(expr) {
            *expr = call("regclass_of", vec![relation_oid(&name), name], vec![]);
        } else if let Some([name]) = function_args(expr, "to_regclass") {
            *expr = relation_oid(&name);
        }
        ControlFlow::Continue(())
    }
}

/// The oid of the relation `name` (text: `rel` or `schema.rel`) names, a
/// scalar subquery that is NULL when none has that name.
fn relation_oid(name: &Expr) -> Expr {
    static LOOKUP: std::sync::LazyLock<Box<Query>> = std::sync::LazyLock::new(|| {
        let sql = "SELECT max(c.oid) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
             CROSS JOIN (SELECT parse_ident($1) AS parts) p \
             WHERE (array_length(p.parts, 1) = 1 AND n.nspname IN ('pg_catalog', current_schema()) \
                    AND c.relname = p.parts[1]) \
                OR (array_length(p.parts, 1) = 2 AND n.nspname = p.parts[1] AND c.relname = p.parts[2])";
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        match datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).map(|mut s| s.remove(0)) {
            Ok(Statement::Query(q)) => q,
            other => unreachable!("the relation lookup parses: {other:?}"),
        }
    });
    struct Bind<'a>(&'a Expr);
    impl VisitorMut for Bind<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if matches!(expr, Expr::Value(v) if matches!(&v.value, Value::Placeholder(p) if p == "$1")) {
                *expr = Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
                    expr: Box::new(self.0.clone()),
                    data_type: DataType::Text,
                    array: false,
                    format: None,
                };
            }
            ControlFlow::Continue(())
        }
    }
    let mut query = LOOKUP.clone();
    let _ = VisitMut::visit(&mut *query, &mut Bind(name));
    Expr::Subquery(query)
}

/// The name the crate's rewrite of `name::regclass` looks up, if `expr` is
/// that rewrite: the operand of its `parse_ident(name::TEXT)`.
fn crate_regclass_operand(expr: &Expr) -> Option<Expr> {
    let Expr::Subquery(q) = expr else { return None };
    let SetExpr::Select(select) = q.body.as_ref() else { return None };
    let selects_oid = matches!(select.projection.as_slice(), [SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p))]
        if p.len() == 2 && p[0].value == "c" && p[1].value == "oid");
    let from_pg_class = matches!(select.from.first().map(|t| &t.relation),
        Some(TableFactor::Table { name, .. }) if name.to_string() == "pg_catalog.pg_class");
    if !selects_oid || !from_pg_class {
        return None;
    }
    struct Find(Option<Expr>);
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Some([arg]) = function_args(expr, "parse_ident") {
                self.0 = Some(match arg {
                    Expr::Cast { expr, data_type: DataType::Text, .. } => *expr,
                    other => other,
                });
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut find = Find(None);
    let _ = q.visit(&mut find);
    find.0
}

/// The `N` plain arguments of a call of function `name`, if `expr` is one.
fn function_args<const N: usize>(expr: &Expr, name: &str) -> Option<[Expr; N]> {
    let Expr::Function(f) = expr else { return None };
    let last = f.name.0.last()?.as_ident()?;
    if !last.value.eq_ignore_ascii_case(name) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else { return None };
    let args: Vec<Expr> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    args.try_into().ok()
}

/// `FROM ONLY t` is `FROM t`, and `pg_stat_activity` is in `pg_catalog`
/// (see the module docs).
struct OnlyRelation;

impl VisitorMut for OnlyRelation {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, args: None, .. } = factor else { return ControlFlow::Continue(()) };
        if let [part] = name.0.as_slice() {
            if part
                .as_ident()
                .is_some_and(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("pg_stat_activity"))
            {
                *name = ObjectName::from(vec![Ident::new("pg_catalog"), Ident::new("pg_stat_activity")]);
                return ControlFlow::Continue(());
            }
        }
        let only = matches!(name.0.as_slice(), [part] if part.as_ident().is_some_and(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("only")));
        if only && alias.as_ref().is_some_and(|a| !a.explicit && a.columns.is_empty()) {
            let relation = alias.take().expect("checked").name;
            *name = ObjectName::from(vec![relation]);
        }
        ControlFlow::Continue(())
    }
}

/// `typinput = 'array_in'::regproc` compares names (see the module docs).
struct RegprocName;

/// The columns of `pg_type` that hold function names.
const REGPROC_COLUMNS: [&str; 7] =
    ["typinput", "typoutput", "typreceive", "typsend", "typmodin", "typmodout", "typanalyze"];

impl VisitorMut for RegprocName {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } = expr else {
            return ControlFlow::Continue(());
        };
        let column = |e: &Expr| {
            let name = match e {
                Expr::Identifier(i) => i,
                Expr::CompoundIdentifier(parts) => parts.last()?,
                _ => return None,
            };
            REGPROC_COLUMNS.contains(&name.value.to_ascii_lowercase().as_str()).then_some(())
        };
        if let Some(name) = column(left).and_then(|()| function_lookup(right)) {
            **right = Expr::value(Value::SingleQuotedString(name));
        } else if let Some(name) = column(right).and_then(|()| function_lookup(left)) {
            **left = Expr::value(Value::SingleQuotedString(name));
        }
        ControlFlow::Continue(())
    }
}

/// The name (without its schema) that `(SELECT oid FROM
/// pg_catalog.pg_proc WHERE proname = 'pg_catalog.array_in')` looks up:
/// what the crate makes of `'pg_catalog.array_in'::regproc`.
fn function_lookup(expr: &Expr) -> Option<String> {
    let Expr::Subquery(q) = expr else { return None };
    let text = q.to_string();
    let literal = text.strip_prefix("SELECT oid FROM pg_catalog.pg_proc WHERE proname = '")?.strip_suffix('\'')?;
    let name = literal.rsplit('.').next()?;
    (!name.contains('\'')).then(|| name.to_string())
}

/// The heading of `(e).name`: `name`, as Postgres heads it.
fn field_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::CompoundFieldAccess { root, access_chain } if matches!(root.as_ref(), Expr::Nested(_)) => {
            match access_chain.last()? {
                AccessExpr::Dot(Expr::Identifier(field)) => Some(crate::sql::parser::normalize(field)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `(e).name` becomes `(e)['name']` (see the module docs).
struct FieldAccess;

impl VisitorMut for FieldAccess {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // `t.col[1]` is a column's element, not a field of `t`: only a
        // parenthesized value has fields.
        if let Expr::CompoundFieldAccess { root, access_chain } = expr {
            if !matches!(root.as_ref(), Expr::Nested(_)) {
                return ControlFlow::Continue(());
            }
            for access in access_chain {
                if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                    let name = crate::sql::parser::normalize(field);
                    *access = AccessExpr::Dot(Expr::value(Value::SingleQuotedString(name)));
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `current_role` or `user` written bare: Postgres keywords for the
/// current role. The parser takes `current_role` for a column name and
/// `user` for a call without parentheses, which DataFusion then reads as a
/// column name too.
fn role_keyword(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("current_role") => {
            Some(&i.value)
        }
        Expr::Function(f) if matches!(f.args, FunctionArguments::None) => match f.name.0.as_slice() {
            [part] => part
                .as_ident()
                .filter(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("user"))
                .map(|i| i.value.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// Heads the select-list items `current_role` and `user` as Postgres does
/// (the items become `session_user()` calls, see [`RoleKeyword`]).
fn name_role_items(stmt: &mut Statement) {
    name_select_items(stmt, |e| role_keyword(e).map(str::to_ascii_lowercase));
}

/// Gives each unaliased item of the outer query's select list the name
/// `name_of` returns for its expression, if any: the heading Postgres gives
/// an item that a rewrite is about to change.
pub(crate) fn name_select_items(stmt: &mut Statement, name_of: impl Fn(&Expr) -> Option<String>) {
    let Statement::Query(q) = stmt else { return };
    let SetExpr::Select(select) = q.body.as_mut() else { return };
    for item in &mut select.projection {
        let SelectItem::UnnamedExpr(expr) = item else { continue };
        if let Some(name) = name_of(expr) {
            *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::new(name) };
        }
    }
}

/// `current_role` and `user` become `session_user()`: Brikk has one role,
/// so the current, session and any other user are the same.
struct RoleKeyword;

impl VisitorMut for RoleKeyword {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if role_keyword(expr).is_some() {
            *expr = call("session_user", vec![], vec![]);
        }
        ControlFlow::Continue(())
    }
}

/// A set-returning call in an expression (`jsonb_array_elements(j)`,
/// `generate_series(1, 3)`) becomes `unnest` of its list (see
/// [`crate::sql::table_functions::select_list_rows`]).
struct SetReturningCall;

impl VisitorMut for SetReturningCall {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some((_, rows)) = crate::sql::table_functions::select_list_rows(expr) {
            *expr = rows;
        }
        ControlFlow::Continue(())
    }
}

/// `json_agg(v ORDER BY k)` becomes `json_array_of(array_agg(to_json(v)
/// ORDER BY k))` (`jsonb_…` for `jsonb_agg`): DataFusion's `array_agg`
/// keeps the order, also across partitions (see
/// [`crate::json::ORDERED_ARRAY`]). `FILTER` and `DISTINCT` stay with the
/// aggregate.
struct OrderedJsonAgg;

/// The name of `json_agg(v ORDER BY k)` or `jsonb_agg(…)`, which
/// [`OrderedJsonAgg`] rewrites.
fn ordered_json_agg(expr: &Expr) -> Option<String> {
    let Expr::Function(f) = expr else { return None };
    let [part] = f.name.0.as_slice() else { return None };
    let name = part.as_ident()?.value.to_ascii_lowercase();
    let FunctionArguments::List(list) = &f.args else { return None };
    let ordered = list.clauses.iter().any(|c| matches!(c, FunctionArgumentClause::OrderBy(_)));
    (ordered && f.over.is_none() && list.args.len() == 1 && (name == "json_agg" || name == "jsonb_agg")).then_some(name)
}

impl VisitorMut for OrderedJsonAgg {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Some(name) = ordered_json_agg(expr) else { return ControlFlow::Continue(()) };
        let jsonb = name == "jsonb_agg";
        let Expr::Function(Function { args: FunctionArguments::List(list), .. }) = expr else {
            return ControlFlow::Continue(());
        };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(value))] = list.args.as_mut_slice() else {
            return ControlFlow::Continue(());
        };
        let value = std::mem::replace(value, Expr::value(Value::Null));
        let to_json = if jsonb { "to_jsonb" } else { "to_json" };
        let mut aggregate = std::mem::replace(expr, Expr::value(Value::Null));
        if let Expr::Function(agg) = &mut aggregate {
            agg.name = ObjectName::from(vec![Ident::new("array_agg")]);
            if let FunctionArguments::List(list) = &mut agg.args {
                list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(call(to_json, vec![value], vec![])))];
            }
        }
        let of = if jsonb { "jsonb_array_of" } else { crate::json::ORDERED_ARRAY };
        *expr = call(of, vec![aggregate], vec![]);
        ControlFlow::Continue(())
    }
}

/// `'{a,"b c",NULL}'::text[]` (or `CAST(… AS t[])`, or dollar-quoted)
/// becomes `ARRAY['a', 'b c', NULL]::text[]`: the text read as Postgres
/// reads an array literal (see [`array_elements`]), each element a string
/// the cast then reads as the element type. Text that is not a
/// one-dimensional array literal stays as it is, for the cast to refuse.
struct ArrayLiteral;

impl VisitorMut for ArrayLiteral {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Cast { expr: inner, data_type: DataType::Array(_), .. } = expr else {
            return ControlFlow::Continue(());
        };
        let Expr::Value(v) = inner.as_ref() else { return ControlFlow::Continue(()) };
        let text = match &v.value {
            Value::SingleQuotedString(t) | Value::EscapedStringLiteral(t) => t.as_str(),
            Value::DollarQuotedString(d) => d.value.as_str(),
            _ => return ControlFlow::Continue(()),
        };
        if let Some(elements) = array_elements(text) {
            let elem =
                elements.into_iter().map(|e| Expr::value(e.map_or(Value::Null, Value::SingleQuotedString))).collect();
            **inner = Expr::Array(datafusion::sql::sqlparser::ast::Array { elem, named: true });
        }
        ControlFlow::Continue(())
    }
}

/// The elements of a one-dimensional Postgres array literal, `{a, "b,c",
/// NULL, "x\"y"}`: separated by commas; an element in double quotes is as
/// written (a backslash takes the next character as it is), one without is
/// trimmed, and unquoted `NULL` (any case) is NULL. `None` for anything
/// else (no braces, nested arrays, unbalanced quotes).
pub(crate) fn array_elements(text: &str) -> Option<Vec<Option<String>>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    if body.trim().is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let element = match chars.peek() {
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => s.push(chars.next()?),
                        c => s.push(c),
                    }
                }
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                Some(s)
            }
            _ => {
                let mut s = String::new();
                while let Some(c) = chars.next_if(|c| *c != ',') {
                    match c {
                        '{' | '}' | '"' => return None,
                        '\\' => s.push(chars.next()?),
                        c => s.push(c),
                    }
                }
                let s = s.trim_end().to_string();
                match s.eq_ignore_ascii_case("null") {
                    true => None,
                    false if s.is_empty() => return None,
                    false => Some(s),
                }
            }
        };
        out.push(element);
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// `cardinality(a)`, `array_length(a, d)`, `array_position(a, x)` and
/// `array_ndims(a)` are Postgres `integer`s: DataFusion's unsigned 64-bit
/// results went out as `numeric` (psycopg read `Decimal('3')`).
struct IntegerArrayCounts;

impl VisitorMut for IntegerArrayCounts {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(f) = expr else { return ControlFlow::Continue(()) };
        let [part] = f.name.0.as_slice() else { return ControlFlow::Continue(()) };
        let name = part.as_ident().map(|i| i.value.to_ascii_lowercase());
        if !matches!(name.as_deref(), Some("cardinality" | "array_length" | "array_position" | "array_ndims")) {
            return ControlFlow::Continue(());
        }
        let call = std::mem::replace(expr, Expr::value(Value::Null));
        *expr = Expr::Cast {
            kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
            expr: Box::new(call),
            data_type: DataType::Integer(None),
            array: false,
            format: None,
        };
        ControlFlow::Continue(())
    }
}

/// A literal cast to `numeric` without precision takes the literal's own.
struct NumericLiteral;

impl VisitorMut for NumericLiteral {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Cast { expr: inner, data_type, .. } = expr else { return ControlFlow::Continue(()) };
        let (DataType::Numeric(info) | DataType::Decimal(info)) = data_type else { return ControlFlow::Continue(()) };
        let Expr::Value(v) = inner.as_mut() else { return ControlFlow::Continue(()) };
        let text = match &v.value {
            Value::Number(n, _) => n.clone(),
            Value::SingleQuotedString(s) => {
                // Exponent form ('1.5e3'), which the cast does not read,
                // as the plain decimal it stands for.
                if let Some(plain) = without_exponent(s) {
                    v.value = Value::SingleQuotedString(plain);
                }
                let Value::SingleQuotedString(s) = &v.value else { unreachable!("set above") };
                s.trim().to_string()
            }
            _ => return ControlFlow::Continue(()),
        };
        if *info == ExactNumberInfo::None {
            if let Some((precision, scale)) = literal_digits(&text) {
                *data_type = DataType::Numeric(ExactNumberInfo::PrecisionAndScale(precision, scale as i64));
            }
        }
        ControlFlow::Continue(())
    }
}

/// Decimal text in exponent form (`1.5e3`, `-2E-2`) written out plainly
/// (`1500`, `-0.02`); `None` for text without an exponent or that is not
/// a number.
fn without_exponent(text: &str) -> Option<String> {
    let t = text.trim();
    let at = t.find(['e', 'E'])?;
    let exponent: i64 = t[at + 1..].parse().ok()?;
    let mantissa = &t[..at];
    let frac = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i64);
    let scale = u8::try_from((frac - exponent).max(0)).ok()?;
    let units = brikk_storage::numeric::parse(t, scale).ok()?;
    Some(brikk_storage::numeric::to_text(units, scale))
}

/// The precision and scale a plain decimal literal (`-12.50`, `.5`, `7`)
/// is written with; `None` for anything else (exponents, text that is not
/// a number, more digits than `numeric` columns take), which keeps the
/// cast as it is.
fn literal_digits(text: &str) -> Option<(u64, u64)> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.len() + frac.len() == 0 || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int_digits = int.trim_start_matches('0').len() as u64;
    let scale = frac.len() as u64;
    let precision = (int_digits + scale).max(1);
    (precision <= brikk_storage::numeric::MAX_PRECISION as u64).then_some((precision, scale))
}

struct JsonCast;

impl VisitorMut for JsonCast {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Cast { expr: inner, data_type, .. } = expr else { return ControlFlow::Continue(()) };
        let function = match data_type {
            DataType::JSON => crate::json::JSON_CAST,
            DataType::JSONB => crate::json::JSONB_CAST,
            DataType::Uuid => crate::json::UUID_CAST,
            _ => return ControlFlow::Continue(()),
        };
        let value = std::mem::replace(inner.as_mut(), Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
        *expr = call(function, vec![value], vec![]);
        ControlFlow::Continue(())
    }
}

struct CorrelatedScalar;

impl VisitorMut for CorrelatedScalar {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Subquery(query) = expr else { return ControlFlow::Continue(()) };
        if query.limit_clause.is_some() || query.order_by.is_some() {
            return ControlFlow::Continue(());
        }
        let SetExpr::Select(select) = query.body.as_mut() else { return ControlFlow::Continue(()) };
        let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
        if grouped || select.projection.len() != 1 || select.distinct.is_some() || select.having.is_some() {
            return ControlFlow::Continue(());
        }
        let Some(own) = own_relations(select) else { return ControlFlow::Continue(()) };
        let (SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }) = &select.projection[0]
        else {
            return ControlFlow::Continue(());
        };
        let value = value.clone();
        if is_aggregate(&value) || !references_outer(select, &own) {
            return ControlFlow::Continue(());
        }
        // Conditions on the outer row only decide whether any row matches:
        // they move out, `CASE WHEN cond THEN (SELECT …) END`, as DataFusion
        // decorrelates only conditions that join the two.
        let (outer_only, rest): (Vec<Expr>, Vec<Expr>) =
            select.selection.take().map(conjuncts).unwrap_or_default().into_iter().partition(|c| only_outer(c, &own));
        select.selection = rest.into_iter().reduce(and);
        let query = query.as_ref().clone();
        let with = |e: Expr| {
            let mut q = query.clone();
            if let SetExpr::Select(select) = q.body.as_mut() {
                select.projection = vec![SelectItem::UnnamedExpr(e)];
            }
            Expr::Subquery(Box::new(q))
        };
        let result = if mentions(&value, &own, Side::Outer) {
            // The value uses the outer row too, which DataFusion cannot
            // decorrelate: each inner part gets its own subquery, and the
            // whole is NULL when no row matches.
            let parts = split(value, &own, &|e| with(call("first_value", vec![e], vec![])));
            let one = Expr::value(datafusion::sql::sqlparser::ast::Value::Number("1".into(), false));
            let count = with(call("count", vec![one], vec![]));
            let matched = Expr::BinaryOp {
                left: Box::new(count),
                op: BinaryOperator::Gt,
                right: Box::new(Expr::value(datafusion::sql::sqlparser::ast::Value::Number("0".into(), false))),
            };
            case_when(matched, parts)
        } else {
            with(call("first_value", vec![value], vec![]))
        };
        *expr = match outer_only.into_iter().reduce(and) {
            Some(cond) => case_when(cond, result),
            None => result,
        };
        ControlFlow::Continue(())
    }
}

fn case_when(condition: Expr, result: Expr) -> Expr {
    use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen { condition, result }],
        else_result: None,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// Columns of the subquery's own relations (or unqualified ones).
    Inner,
    /// Columns of the enclosing query's relations.
    Outer,
}

/// Whether `e` names a column of `side`.
fn mentions(e: &Expr, own: &[String], side: Side) -> bool {
    let found = datafusion::sql::sqlparser::ast::visit_expressions(e, |e: &Expr| {
        let this = match e {
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                if own.contains(&parts[parts.len() - 2].value.to_ascii_lowercase()) {
                    Side::Inner
                } else {
                    Side::Outer
                }
            }
            Expr::Identifier(_) => Side::Inner,
            _ => return ControlFlow::Continue(()),
        };
        if this == side {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found.is_break()
}

/// `e` with each largest part that names inner columns only replaced by
/// `inner(part)`.
fn split(e: Expr, own: &[String], inner: &dyn Fn(Expr) -> Expr) -> Expr {
    if !mentions(&e, own, Side::Inner) {
        return e;
    }
    if !mentions(&e, own, Side::Outer) {
        return inner(e);
    }
    let go = |e: Box<Expr>| Box::new(split(*e, own, inner));
    match e {
        Expr::BinaryOp { left, op, right } => Expr::BinaryOp { left: go(left), op, right: go(right) },
        Expr::UnaryOp { op, expr } => Expr::UnaryOp { op, expr: go(expr) },
        Expr::Nested(e) => Expr::Nested(go(e)),
        Expr::IsNull(e) => Expr::IsNull(go(e)),
        Expr::IsNotNull(e) => Expr::IsNotNull(go(e)),
        Expr::Cast { kind, expr, data_type, array, format } => {
            Expr::Cast { kind, expr: go(expr), data_type, array, format }
        }
        Expr::Function(mut f) => {
            if let FunctionArguments::List(list) = &mut f.args {
                for arg in &mut list.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(a)) = arg {
                        *a = split(a.clone(), own, inner);
                    }
                }
            }
            Expr::Function(f)
        }
        // Other shapes stay as they are (and DataFusion reports them).
        other => other,
    }
}

fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            let mut out = conjuncts(*left);
            out.extend(conjuncts(*right));
            out
        }
        Expr::Nested(inner) if matches!(*inner, Expr::BinaryOp { op: BinaryOperator::And, .. }) => conjuncts(*inner),
        other => vec![other],
    }
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::BinaryOp { left: Box::new(a), op: BinaryOperator::And, right: Box::new(b) }
}

/// Whether `e` names columns only through relations not in `own` (and
/// names some), with no subquery.
fn only_outer(e: &Expr, own: &[String]) -> bool {
    let mut outer = false;
    let inner = datafusion::sql::sqlparser::ast::visit_expressions(e, |e: &Expr| match e {
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            if own.contains(&parts[parts.len() - 2].value.to_ascii_lowercase()) {
                ControlFlow::Break(())
            } else {
                outer = true;
                ControlFlow::Continue(())
            }
        }
        Expr::Identifier(_) | Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    outer && inner.is_continue()
}

/// Names and aliases of the relations in `select`'s FROM; `None` when FROM
/// holds a kind of relation whose names this cannot tell (then nothing is
/// rewritten).
fn own_relations(select: &datafusion::sql::sqlparser::ast::Select) -> Option<Vec<String>> {
    fn add(factor: &TableFactor, own: &mut Vec<String>) -> Option<()> {
        let alias = match factor {
            TableFactor::Table { name, alias, .. } => {
                if let Some(n) = name.0.last().and_then(|p| p.as_ident()) {
                    own.push(n.value.to_ascii_lowercase());
                }
                alias
            }
            TableFactor::Derived { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::TableFunction { alias, .. } => alias,
            TableFactor::NestedJoin { table_with_joins, alias } => {
                add(&table_with_joins.relation, own)?;
                for j in &table_with_joins.joins {
                    add(&j.relation, own)?;
                }
                alias
            }
            _ => return None,
        };
        if let Some(a) = alias {
            own.push(a.name.value.to_ascii_lowercase());
        }
        Some(())
    }
    let mut own: Vec<String> = Vec::new();
    for twj in &select.from {
        add(&twj.relation, &mut own)?;
        for j in &twj.joins {
            add(&j.relation, &mut own)?;
        }
    }
    Some(own)
}

fn is_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
            crate::sql::select_subqueries::AGGREGATES.contains(&i.value.to_ascii_lowercase().as_str())
        }),
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => is_aggregate(e),
        _ => false,
    }
}

/// Whether `select` names a column through a relation it does not have in
/// its FROM (`outer_table.column`): a correlated subquery.
fn references_outer(select: &datafusion::sql::sqlparser::ast::Select, own: &[String]) -> bool {
    datafusion::sql::sqlparser::ast::visit_expressions(select, |e: &Expr| match e {
        Expr::CompoundIdentifier(parts)
            if parts.len() >= 2 && !own.contains(&parts[parts.len() - 2].value.to_ascii_lowercase()) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

struct ArrayConstructor;

impl VisitorMut for ArrayConstructor {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(f) = expr else { return ControlFlow::Continue(()) };
        let is_array =
            f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("array"));
        let FunctionArguments::Subquery(query) = &f.args else { return ControlFlow::Continue(()) };
        if !is_array {
            return ControlFlow::Continue(());
        }
        if let Some(new) = over_unnest(query).or_else(|| aggregated(query)) {
            *expr = new;
        }
        ControlFlow::Continue(())
    }
}

/// `SELECT e FROM unnest(a) [AS] x[(y)]` → `array_transform(a, x -> e)`.
fn over_unnest(query: &Query) -> Option<Expr> {
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let plain = select.distinct.is_none()
        && select.selection.is_none()
        && select.having.is_none()
        && select.projection.len() == 1
        && select.from.len() == 1
        && select.from[0].joins.is_empty()
        && matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if !plain {
        return None;
    }
    let (array, alias) = match &select.from[0].relation {
        TableFactor::UNNEST { alias, array_exprs, with_offset: false, with_ordinality: false, .. }
            if array_exprs.len() == 1 =>
        {
            (array_exprs[0].clone(), alias.clone())
        }
        TableFactor::Table { name, args: Some(args), alias, .. }
            if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("unnest"))
                && args.args.len() == 1 =>
        {
            let FunctionArg::Unnamed(FunctionArgExpr::Expr(a)) = &args.args[0] else { return None };
            (a.clone(), alias.clone())
        }
        _ => return None,
    };
    // The element is named by the alias's column, else the alias, else
    // `unnest`, as in Postgres.
    let param = match &alias {
        Some(a) if a.columns.len() == 1 => a.columns[0].name.clone(),
        Some(a) if a.columns.is_empty() => a.name.clone(),
        Some(_) => return None,
        None => Ident::new("unnest"),
    };
    let body = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let lambda = Expr::Lambda(LambdaFunction {
        params: OneOrManyWithParens::One(LambdaFunctionParameter { name: param, data_type: None }),
        body: Box::new(body),
        syntax: LambdaSyntax::Arrow,
    });
    Some(call("array_transform", vec![array, lambda], vec![]))
}

/// `ARRAY(SELECT e FROM … ORDER BY o)` → `(SELECT array_agg(e ORDER BY o) FROM …)`.
fn aggregated(query: &Query) -> Option<Expr> {
    let mut query = query.clone();
    let order = query.order_by.take();
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    if select.projection.len() != 1 {
        return None;
    }
    let e = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    // `ORDER BY 1` names the (only) output column, which inside the
    // aggregate is the expression itself.
    let order = order.map(|o| {
        order_exprs(o)
            .into_iter()
            .map(|mut o| {
                if matches!(&o.expr, Expr::Value(v) if v.value.to_string() == "1") {
                    o.expr = e.clone();
                }
                o
            })
            .collect::<Vec<_>>()
    });
    let clauses = order.map(|o| vec![FunctionArgumentClause::OrderBy(o)]).unwrap_or_default();
    select.projection = vec![SelectItem::UnnamedExpr(call("array_agg", vec![e], clauses))];
    Some(Expr::Subquery(Box::new(query)))
}

fn order_exprs(order: datafusion::sql::sqlparser::ast::OrderBy) -> Vec<datafusion::sql::sqlparser::ast::OrderByExpr> {
    match order.kind {
        datafusion::sql::sqlparser::ast::OrderByKind::Expressions(e) => e,
        datafusion::sql::sqlparser::ast::OrderByKind::All(_) => Vec::new(),
    }
}

pub(crate) fn call(name: &str, args: Vec<Expr>, clauses: Vec<FunctionArgumentClause>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses,
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn rewritten(sql: &str) -> String {
        let mut stmt = PostgresCompatibilityParser::new().parse(sql).unwrap().remove(0);
        rewrite(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn array_literals_read_as_postgres_reads_them() {
        let s = |v: &[Option<&str>]| v.iter().map(|e| e.map(str::to_string)).collect::<Vec<_>>();
        assert_eq!(array_elements("{a,b}"), Some(s(&[Some("a"), Some("b")])));
        assert_eq!(
            array_elements(" { a , \"b, c\" ,NULL,\"NULL\"} "),
            Some(s(&[Some("a"), Some("b, c"), None, Some("NULL")]))
        );
        assert_eq!(array_elements(r#"{"x\"y",z\,w}"#), Some(s(&[Some("x\"y"), Some("z,w")])));
        assert_eq!(array_elements("{}"), Some(vec![]));
        for bad in ["a,b", "{{1,2},{3,4}}", "{\"a}", "{a,,b}", "{a\"b}"] {
            assert_eq!(array_elements(bad), None, "{bad}");
        }
        assert_eq!(
            rewritten("SELECT $${\"a b\",c}$$::text[], CAST('{1, 2}' AS INT[])"),
            "SELECT ARRAY['a b', 'c']::TEXT[], CAST(ARRAY['1', '2'] AS INT[])"
        );
    }

    #[test]
    fn array_over_unnest_becomes_array_transform() {
        let out =
            rewritten("SELECT array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ') FROM pg_class c, pg_class tc");
        assert!(out.contains("array_transform(tc.reloptions, x -> 'toast.' || x)"), "{out}");
        let out = rewritten("SELECT array(SELECT u * 2 FROM unnest(a) AS t(u)) FROM t");
        assert!(out.contains("array_transform(a, u -> u * 2)"), "{out}");
    }

    #[test]
    fn numeric_literals_keep_their_digits() {
        assert_eq!(literal_digits("1.50"), Some((3, 2)));
        assert_eq!(literal_digits("-0.125"), Some((3, 3)));
        assert_eq!(literal_digits("007"), Some((1, 0)));
        assert_eq!(literal_digits(".5"), Some((1, 1)));
        assert_eq!(literal_digits("0"), Some((1, 0)));
        for other in ["1e3", "abc", "", ".", &"9".repeat(40)] {
            assert_eq!(literal_digits(other), None, "{other}");
        }
        assert_eq!(without_exponent("1.5e3").as_deref(), Some("1500"));
        assert_eq!(without_exponent(" -2E-2 ").as_deref(), Some("-0.02"));
        assert_eq!(without_exponent("12"), None);
        assert_eq!(without_exponent("xe3"), None);
        let out = rewritten("SELECT 1.50::numeric, x::numeric FROM t");
        assert!(out.contains("1.50::NUMERIC(3,2), x::NUMERIC"), "{out}");
    }

    #[test]
    fn correlated_scalar_subqueries_aggregate() {
        let out = rewritten(
            "SELECT CASE WHEN a.atthasdef THEN (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d \
             WHERE d.adrelid = a.attrelid) END, coalesce((SELECT count(*) FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid)), \
             coalesce((SELECT 1 FROM pg_catalog.pg_type WHERE pg_type.oid = 5)) FROM pg_catalog.pg_attribute a",
        );
        assert!(out.contains("(SELECT first_value(pg_get_expr(d.adbin, d.adrelid)) FROM"), "{out}");
        assert!(out.contains("(SELECT count(*) FROM"), "aggregated already: {out}");
        assert!(out.contains("(SELECT 1 FROM"), "not correlated: {out}");
        // Columns of a derived table in the subquery's FROM are its own.
        let sql = "SELECT coalesce((SELECT d.n FROM (SELECT 1 AS n) d WHERE d.n = 1)) FROM pg_catalog.pg_class c";
        assert_eq!(rewritten(sql), PostgresCompatibilityParser::new().parse(sql).unwrap()[0].to_string());
        let out = rewritten(
            "SELECT coalesce((SELECT s.seqstart FROM pg_catalog.pg_sequence s WHERE a.attidentity != '' AND s.seqrelid = a.attrelid)) \
             FROM pg_catalog.pg_attribute a",
        );
        assert!(
            out.contains("CASE WHEN a.attidentity <> '' THEN (SELECT first_value(s.seqstart) FROM pg_catalog.pg_sequence s WHERE s.seqrelid = a.attrelid) END"),
            "{out}"
        );
    }

    #[test]
    fn outer_columns_in_the_value_split_it() {
        let out = rewritten(
            "SELECT coalesce((SELECT json_build_object('always', a.attidentity = 'a', 'start', s.seqstart) \
             FROM pg_catalog.pg_sequence s WHERE s.seqrelid = a.attrelid)) FROM pg_catalog.pg_attribute a",
        );
        assert!(
            out.contains(
                "CASE WHEN (SELECT count(1) FROM pg_catalog.pg_sequence s WHERE s.seqrelid = a.attrelid) > 0 \
                 THEN json_build_object('always', a.attidentity = 'a', 'start', \
                 (SELECT first_value(s.seqstart) FROM pg_catalog.pg_sequence s WHERE s.seqrelid = a.attrelid)) END"
            ),
            "{out}"
        );
    }

    #[test]
    fn other_array_subqueries_aggregate() {
        let out = rewritten("SELECT array(SELECT rolname FROM pg_roles WHERE oid > 10 ORDER BY 1)");
        assert!(
            out.contains("(SELECT array_agg(rolname ORDER BY rolname) FROM pg_catalog.pg_roles WHERE oid > 10)"),
            "{out}"
        );
    }
}
