//! Set-returning functions in FROM, as Postgres runs them.
//!
//! `generate_series`, `generate_subscripts`, `unnest`,
//! `json(b)_array_elements(_text)`, `json(b)_each(_text)` and
//! `json(b)_object_keys` in a FROM list. DataFusion
//! has one set-returning function, `unnest` of a list in a select list, which
//! keeps the other columns of the row it unnests; every call here becomes
//! `unnest` of a list (see [`crate::json::elements`] for the JSON ones), in
//! one of two ways:
//!
//! - A call that refers to no other FROM item (`FROM jsonb_each('{"a": 1}')
//!   AS e`) becomes a derived table, `(SELECT unnest(json_object_key_list(…))
//!   AS key, … AS value) AS e`; a series on its own stays DataFusion's table
//!   function, which makes its rows a batch at a time, its column renamed:
//!   `(SELECT value AS g FROM brikk_series(1, 3)) AS g`.
//! - A call whose arguments refer to one earlier FROM item (`FROM board b,
//!   jsonb_array_elements(b.fact -> 'tags') AS t`, also written with
//!   `LATERAL`, `CROSS JOIN LATERAL` or `JOIN LATERAL … ON cond`) joins
//!   each of that item's rows with the rows the call gives for it: the item
//!   becomes `(SELECT b.*, jsonb(unnest(json_array_items(b.fact -> 'tags')))
//!   AS value FROM board b) AS b`, the call leaves the FROM list, and the
//!   query's references to the call's alias (`t.value`, `t`, `t.*`) become
//!   references to the item's new columns.
//!
//! Columns are named as in Postgres: by the column list of the alias if
//! there is one (`AS t(tag)`); else `value` for the array elements, `key`
//! and `value` for `json(b)_each`; else the alias (`AS g`); else the
//! function's name. A call's alias alone (`SELECT t FROM …`) is its column
//! when it has one.
//!
//! `LEFT JOIN LATERAL jsonb_array_elements(…) ON true` (any JSON function)
//! keeps the rows the call gives nothing for, with NULL columns: the list
//! is unnested as `make_array(NULL)` when it is empty or NULL.
//!
//! Refused with `0A000`: `WITH ORDINALITY`, `LEFT JOIN LATERAL` with
//! `generate_series` or `unnest`, a call that refers to two items, or that
//! follows a join it would have to move.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, OrderBy,
    Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableFactor,
    TableWithJoins, Value, Visit, VisitMut, Visitor, VisitorMut, WildcardAdditionalOptions,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};
use crate::json::elements::Part;
use crate::sql::parser::normalize;
use crate::sql::pg_compat::call;

/// DataFusion's `generate_series` table function, under the name a series
/// on its own in FROM runs on (see [`Call::own_rows`]): a name this rewrite
/// does not know, so it leaves the call alone.
pub const SERIES_FUNCTION: &str = "brikk_series";

/// A set-returning function Brikk runs as `unnest` of a list.
#[derive(Debug, Clone, Copy)]
enum SetFunction {
    /// `generate_series(start, stop [, step])`: DataFusion's list of the
    /// same values.
    Series,
    /// `generate_subscripts(array, dim)`: the series from 1 to the array's
    /// length in dimension `dim`.
    Subscripts,
    /// `information_schema._pg_expandarray(array)`: a record `(x, n)` per
    /// element, `x` the element and `n` its subscript (pgjdbc's
    /// `getPrimaryKeys` and `getIndexInfo` ask for it).
    ExpandArray,
    /// `unnest(array)`.
    Unnest,
    /// A JSON document's parts: one column per part, with its name (`None`:
    /// named like the call).
    Json(&'static [(Part, Option<&'static str>)]),
}

impl SetFunction {
    /// The function called `name` (optionally in schema `pg_catalog`,
    /// or `information_schema` for its one), with its name in lower case.
    fn named(name: &ObjectName) -> Option<(String, SetFunction)> {
        let parts: Vec<String> = name.0.iter().map(|p| p.as_ident().map(normalize)).collect::<Option<_>>()?;
        let name = match parts.as_slice() {
            [n] => n,
            [schema, n] if schema == "pg_catalog" || (schema == "information_schema" && n == "_pg_expandarray") => n,
            _ => return None,
        };
        let f = match name.as_str() {
            "generate_series" => SetFunction::Series,
            "generate_subscripts" => SetFunction::Subscripts,
            "unnest" => SetFunction::Unnest,
            "_pg_expandarray" => SetFunction::ExpandArray,
            "json_array_elements" | "jsonb_array_elements" => SetFunction::Json(&[(Part::Items, Some("value"))]),
            "json_array_elements_text" | "jsonb_array_elements_text" => {
                SetFunction::Json(&[(Part::Texts, Some("value"))])
            }
            "json_each" | "jsonb_each" => {
                SetFunction::Json(&[(Part::Keys, Some("key")), (Part::Values, Some("value"))])
            }
            "json_each_text" | "jsonb_each_text" => {
                SetFunction::Json(&[(Part::Keys, Some("key")), (Part::ValueTexts, Some("value"))])
            }
            "json_object_keys" | "jsonb_object_keys" => SetFunction::Json(&[(Part::Keys, None)]),
            _ => return None,
        };
        Some((name.clone(), f))
    }

    /// The columns a call with `args` gives, each an expression of `unnest`,
    /// with its name (`None`: named like the call); `None` if the function
    /// takes another number of arguments.
    fn columns(self, args: &[Expr]) -> Option<Vec<(Option<&'static str>, Expr)>> {
        match self {
            SetFunction::Series if (2..=3).contains(&args.len()) => {
                Some(vec![(None, call("unnest", vec![call("generate_series", args.to_vec(), vec![])], vec![]))])
            }
            SetFunction::Subscripts if args.len() == 2 => Some(vec![(None, subscripts(args.to_vec()))]),
            SetFunction::ExpandArray if args.len() == 1 => {
                let dimension = Expr::value(Value::Number("1".into(), false));
                let subscripts = subscripts(vec![args[0].clone(), dimension]);
                let field = |name: &str| Expr::value(Value::SingleQuotedString(name.into()));
                let elements = call("unnest", args.to_vec(), vec![]);
                Some(vec![(None, call("named_struct", vec![field("x"), elements, field("n"), subscripts], vec![]))])
            }
            SetFunction::Unnest if args.len() == 1 => Some(vec![(None, call("unnest", args.to_vec(), vec![]))]),
            SetFunction::Json(parts) if args.len() == 1 => {
                Some(parts.iter().map(|(part, name)| (*name, json_rows(*part, args[0].clone()))).collect())
            }
            _ => None,
        }
    }
}

/// `generate_subscripts(array, dim)` (`args`) as `unnest` of a series.
fn subscripts(args: Vec<Expr>) -> Expr {
    let one = Expr::value(Value::Number("1".into(), false));
    let length = call("array_length", args, vec![]);
    call("unnest", vec![call("generate_series", vec![one, length], vec![])], vec![])
}

/// `unnest` of the list of `part`s of the JSON `doc`, typed `jsonb` when
/// the parts are JSON.
fn json_rows(part: Part, doc: Expr) -> Expr {
    let rows = call("unnest", vec![call(part.function(), vec![doc], vec![])], vec![]);
    match part.is_json() {
        true => call(crate::json::JSONB_CAST, vec![rows], vec![]),
        false => rows,
    }
}

/// A select-list call of a one-column set-returning function that
/// DataFusion does not run as one (`generate_series(1, 3)`,
/// `jsonb_array_elements(j)`, `jsonb_object_keys(j)`): the name Postgres
/// heads its column with, and the `unnest` expression that gives its rows.
pub(crate) fn select_list_rows(expr: &Expr) -> Option<(String, Expr)> {
    let Expr::Function(f) = expr else { return None };
    let (name, function) = SetFunction::named(&f.name)?;
    if matches!(function, SetFunction::Unnest) || f.over.is_some() || f.filter.is_some() {
        return None;
    }
    let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &f.args else { return None };
    if !list.clauses.is_empty() || list.duplicate_treatment.is_some() {
        return None;
    }
    let args = plain_args(&list.args)?;
    match function.columns(&args)?.as_slice() {
        [(_, rows)] => Some((name, rows.clone())),
        _ => None,
    }
}

fn plain_args(args: &[FunctionArg]) -> Option<Vec<Expr>> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Rewrites every set-returning function in a FROM list of `stmt`, as the
/// module describes.
pub fn rewrite(stmt: &mut Statement) -> Result<()> {
    struct Pass;
    impl VisitorMut for Pass {
        type Break = Error;

        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Error> {
            match in_set_expr(&mut query.body, query.order_by.as_mut()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        }
    }
    match stmt.visit(&mut Pass) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn in_set_expr(body: &mut SetExpr, order_by: Option<&mut OrderBy>) -> Result<()> {
    match body {
        SetExpr::Select(select) => in_select(select, order_by),
        SetExpr::SetOperation { left, right, .. } => {
            in_set_expr(left, None)?;
            in_set_expr(right, None)
        }
        _ => Ok(()),
    }
}

/// Where a factor sits in a FROM list: the relation of item `i`, or the
/// relation of join `j` of item `i`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum At {
    Item(usize),
    Join(usize, usize),
}

/// Every factor position of `from`, in order.
fn positions(from: &[TableWithJoins]) -> Vec<At> {
    let mut out = Vec::new();
    for (i, item) in from.iter().enumerate() {
        out.push(At::Item(i));
        out.extend((0..item.joins.len()).map(|j| At::Join(i, j)));
    }
    out
}

fn factor(from: &mut [TableWithJoins], at: At) -> &mut TableFactor {
    match at {
        At::Item(i) => &mut from[i].relation,
        At::Join(i, j) => &mut from[i].joins[j].relation,
    }
}

/// A set-returning call found in FROM.
struct Call {
    name: String,
    function: SetFunction,
    args: Vec<Expr>,
    columns: Vec<(Option<&'static str>, Expr)>,
    alias: Option<TableAlias>,
    ordinality: bool,
}

impl Call {
    fn of(factor: &TableFactor) -> Option<Call> {
        let (name, function, args, alias, ordinality) = match factor {
            TableFactor::Table { name, args: Some(args), alias, with_ordinality, .. } => {
                let (n, f) = SetFunction::named(name)?;
                (n, f, plain_args(&args.args)?, alias, *with_ordinality)
            }
            TableFactor::Function { name, args, alias, with_ordinality, .. } => {
                let (n, f) = SetFunction::named(name)?;
                (n, f, plain_args(args)?, alias, *with_ordinality)
            }
            TableFactor::UNNEST { alias, array_exprs, with_offset: false, with_ordinality, .. } => {
                ("unnest".to_string(), SetFunction::Unnest, array_exprs.clone(), alias, *with_ordinality)
            }
            _ => return None,
        };
        let columns = function.columns(&args)?;
        Some(Call { name, function, args, columns, alias: alias.clone(), ordinality })
    }

    /// The name the call goes by in the query: its alias, or its name.
    fn label(&self) -> String {
        self.alias.as_ref().map_or_else(|| self.name.clone(), |a| normalize(&a.name))
    }

    /// Its rows on their own, its columns called `names`. A series of
    /// constants is DataFusion's table function, which makes its rows a
    /// batch at a time (`unnest` of the list would hold them all at once).
    fn own_rows(&self, names: &[String]) -> Query {
        // The table function takes constants only: a series with a
        // parameter (`generate_series(1, $1)`) is a list, unnested.
        let constant = !self.args.iter().any(has_parameter);
        if let (SetFunction::Series, true) = (self.function, constant) {
            let mut query = select_of(vec![], None);
            let SetExpr::Select(select) = query.body.as_mut() else { unreachable!("a SELECT") };
            let series = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&format!("SELECT 1 FROM {SERIES_FUNCTION}(1, 2)"))
                .and_then(|mut p| p.parse_select())
                .expect("a valid template");
            let mut relation = series.from.into_iter().next().expect("one relation").relation;
            if let TableFactor::Table { args: Some(args), .. } = &mut relation {
                args.args = self.args.iter().cloned().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect();
            }
            select.projection = vec![SelectItem::ExprWithAlias {
                expr: Expr::Identifier(Ident::new("value")),
                alias: ident(&names[0]),
            }];
            select.from = vec![TableWithJoins { relation, joins: vec![] }];
            return query;
        }
        let projection = self
            .columns
            .iter()
            .zip(names)
            .map(|((_, e), n)| SelectItem::ExprWithAlias { expr: e.clone(), alias: ident(n) })
            .collect();
        select_of(projection, None)
    }

    /// The names of its columns, as the module describes.
    fn column_names(&self) -> Result<Vec<String>> {
        let given: Vec<String> = self.alias.iter().flat_map(|a| a.columns.iter().map(|c| normalize(&c.name))).collect();
        if given.len() > self.columns.len() {
            return Err(Error::InvalidColumnReference(format!(
                "table \"{}\" has {} columns available but {} columns specified",
                self.label(),
                self.columns.len(),
                given.len()
            )));
        }
        let named_like_call = self.label();
        Ok(self
            .columns
            .iter()
            .enumerate()
            .map(|(k, (name, _))| match given.get(k) {
                Some(g) => g.clone(),
                None => name.map_or_else(|| named_like_call.clone(), str::to_string),
            })
            .collect())
    }
}

/// Whether `e` holds a parameter (`$1`).
fn has_parameter(e: &Expr) -> bool {
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Find).is_break()
}

/// The name a FROM factor's columns are qualified with, if it has one.
fn label_of(factor: &TableFactor) -> Option<String> {
    match factor {
        TableFactor::Table { alias: Some(a), .. }
        | TableFactor::Derived { alias: Some(a), .. }
        | TableFactor::Function { alias: Some(a), .. }
        | TableFactor::UNNEST { alias: Some(a), .. } => Some(normalize(&a.name)),
        TableFactor::Table { name, args: None, .. } => name.0.last().and_then(ObjectNamePart::as_ident).map(normalize),
        _ => None,
    }
}

/// The relations the columns in `args` are qualified with, and whether any
/// column is unqualified.
fn references(args: &[Expr]) -> (HashSet<String>, bool) {
    struct Refs(HashSet<String>, bool);
    impl Visitor for Refs {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    self.0.insert(normalize(&parts[parts.len() - 2]));
                }
                Expr::Identifier(_) => self.1 = true,
                _ => {}
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            // A subquery's columns are its own; stop there.
            ControlFlow::Break(())
        }
    }
    let mut refs = Refs(HashSet::new(), false);
    for a in args {
        let _ = a.visit(&mut refs);
    }
    (refs.0, refs.1)
}

fn in_select(select: &mut Select, mut order_by: Option<&mut OrderBy>) -> Result<()> {
    // Columns each wrapped item has gained, so a second call on the same
    // item names its columns apart.
    let mut added: HashMap<String, HashSet<String>> = HashMap::new();
    loop {
        let found =
            positions(&select.from).into_iter().find_map(|at| Call::of(factor(&mut select.from, at)).map(|c| (at, c)));
        let Some((at, call)) = found else { return Ok(()) };
        if call.ordinality {
            return Err(Error::Unsupported(format!("{}(…) WITH ORDINALITY in FROM", call.name)));
        }
        let label = call.label();
        let names = call.column_names()?;
        let earlier: Vec<(At, String)> = positions(&select.from)
            .into_iter()
            .take_while(|p| *p != at)
            .filter_map(|p| label_of(factor(&mut select.from, p)).map(|l| (p, l)))
            .collect();
        let (qualifiers, unqualified) = references(&call.args);
        let mut hosts: Vec<&(At, String)> = earlier.iter().filter(|(_, l)| qualifiers.contains(l)).collect();
        if unqualified && hosts.is_empty() {
            match earlier.as_slice() {
                [] => {}
                [only] => hosts.push(only),
                _ => {
                    return Err(Error::Unsupported(format!(
                        "an unqualified column in the arguments of {}(…) in FROM after several relations \
                         (qualify it: relation.column)",
                        call.name
                    )))
                }
            }
        }
        hosts.dedup_by(|a, b| a.1 == b.1);
        if hosts.is_empty() {
            if let Some(outer) = qualifiers.iter().next() {
                // DataFusion cannot plan a derived table that refers to an
                // enclosing query.
                return Err(Error::Unsupported(format!(
                    "{}(…) in FROM referring to \"{outer}\", which is not an earlier item of this FROM list \
                     (in a subquery, join the function in the outer query's FROM instead)",
                    call.name
                )));
            }
        }
        match hosts.as_slice() {
            [] => {
                // Refers to no earlier item: a derived table of its own.
                *factor(&mut select.from, at) = derived(call.own_rows(&names), &label);
                let same: Vec<(String, String)> = names.iter().map(|n| (n.clone(), n.clone())).collect();
                rename_references(select, order_by.as_deref_mut(), &label, &label, &same);
            }
            [(host_at, host)] => {
                let (host_at, host) = (*host_at, host.clone());
                let joined = detach(&mut select.from, at, &call)?;
                let taken = added.entry(host.clone()).or_default();
                let (projection, renames) = host_columns(&call, &names, &label, &host, taken, &joined);
                let original = std::mem::replace(factor(&mut select.from, host_at), empty_factor());
                *factor(&mut select.from, host_at) = derived(select_of(projection, Some(original)), &host);
                if let Joined::Where(condition) = joined {
                    select.selection = Some(match select.selection.take() {
                        Some(w) => Expr::BinaryOp {
                            left: Box::new(Expr::Nested(Box::new(w))),
                            op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                            right: Box::new(Expr::Nested(condition)),
                        },
                        None => *condition,
                    });
                }
                hide_from_host_wildcards(select, &host, &renames);
                rename_references(select, order_by.as_deref_mut(), &label, &host, &renames);
            }
            _ => {
                return Err(Error::Unsupported(format!(
                    "{}(…) in FROM referring to columns of more than one relation",
                    call.name
                )))
            }
        }
    }
}

/// How a call taken out of the FROM list joined its item's rows.
enum Joined {
    /// Each row of the item with each of the call's (a comma, `CROSS JOIN`,
    /// `JOIN … ON true`).
    Rows,
    /// And the item's rows for which the call gives none, with NULL
    /// (`LEFT JOIN … ON true`).
    KeepingEmpty,
    /// Those of [`Joined::Rows`] for which the join's condition holds
    /// (`JOIN … ON cond`), which joins the query's WHERE.
    Where(Box<Expr>),
}

/// The select list of a host item wrapped for `call`: all the item's
/// columns (`host.*`) and the call's, named `names` (a name the item
/// already gained from an earlier call becomes `label.name`, recorded in
/// `taken`); and each call column's name with the host column holding it.
fn host_columns(
    call: &Call,
    names: &[String],
    label: &str,
    host: &str,
    taken: &mut HashSet<String>,
    joined: &Joined,
) -> (Vec<SelectItem>, Vec<(String, String)>) {
    let mut projection = vec![SelectItem::QualifiedWildcard(
        SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![ident(host)])),
        WildcardAdditionalOptions::default(),
    )];
    let mut renames = Vec::new();
    for ((_, e), n) in call.columns.iter().zip(names) {
        let inner = match taken.contains(n) {
            false => n.clone(),
            true => format!("{label}.{n}"),
        };
        taken.insert(inner.clone());
        let mut e = e.clone();
        if let Joined::KeepingEmpty = joined {
            let _ = VisitMut::visit(&mut e, &mut KeepEmpty);
        }
        projection.push(SelectItem::ExprWithAlias { expr: e, alias: ident(&inner) });
        renames.push((n.clone(), inner));
    }
    (projection, renames)
}

/// Takes the call at `at` out of the FROM list, if it joins its item's
/// rows in a way the wrapped item can: a plain comma, `CROSS JOIN`, or an
/// inner `JOIN … ON` (the condition joins WHERE); for a JSON function also
/// `LEFT JOIN … ON true`.
fn detach(from: &mut Vec<TableWithJoins>, at: At, call: &Call) -> Result<Joined> {
    let name = &call.name;
    match at {
        At::Item(i) if from[i].joins.is_empty() => {
            from.remove(i);
            Ok(Joined::Rows)
        }
        At::Item(_) => {
            Err(Error::Unsupported(format!("a join after {name}(…) in FROM referring to an earlier relation")))
        }
        At::Join(i, j) => {
            let on_true = |c: &JoinConstraint| match c {
                JoinConstraint::None => true,
                JoinConstraint::On(Expr::Value(v)) => matches!(v.value, Value::Boolean(true)),
                _ => false,
            };
            let joined = match &from[i].joins[j].join_operator {
                JoinOperator::CrossJoin(c) | JoinOperator::Join(c) | JoinOperator::Inner(c) if on_true(c) => {
                    Joined::Rows
                }
                JoinOperator::Join(JoinConstraint::On(cond)) | JoinOperator::Inner(JoinConstraint::On(cond)) => {
                    Joined::Where(Box::new(cond.clone()))
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c)
                    if on_true(c) && matches!(call.function, SetFunction::Json(_)) =>
                {
                    Joined::KeepingEmpty
                }
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => {
                    return Err(Error::Unsupported(format!(
                        "LEFT JOIN LATERAL {name}(…) (JSON functions take it with ON true; CROSS JOIN LATERAL \
                         gives the rows that have some)"
                    )))
                }
                _ => return Err(Error::Unsupported(format!("this join with {name}(…) in FROM"))),
            };
            from[i].joins.remove(j);
            Ok(joined)
        }
    }
}

/// `unnest(list)` becomes `unnest(CASE WHEN cardinality(list) > 0 THEN list
/// ELSE make_array(NULL) END)`: one row of NULL where the list is empty or
/// NULL, as `LEFT JOIN LATERAL` gives.
struct KeepEmpty;

impl VisitorMut for KeepEmpty {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(f) = expr else { return ControlFlow::Continue(()) };
        let unnest = matches!(f.name.0.as_slice(), [p] if p.as_ident().is_some_and(|i| i.value == "unnest"));
        let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &mut f.args else {
            return ControlFlow::Continue(());
        };
        if let (true, [FunctionArg::Unnamed(FunctionArgExpr::Expr(l))]) = (unnest, list.args.as_mut_slice()) {
            let mut case = Parser::new(&PostgreSqlDialect {})
                .try_with_sql("CASE WHEN cardinality(list) > 0 THEN list ELSE make_array(NULL) END")
                .and_then(|mut p| p.parse_expr())
                .expect("a valid template");
            let _ = VisitMut::visit(&mut case, &mut Substitute(l));
            *l = case;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// Puts a copy of an expression where the template says `list`.
struct Substitute<'a>(&'a Expr);

impl VisitorMut for Substitute<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if matches!(expr, Expr::Identifier(i) if i.value == "list") {
            *expr = self.0.clone();
        }
        ControlFlow::Continue(())
    }
}

/// `host.*` of the outer query leaves out the columns the call added to it,
/// as the host had none of them.
fn hide_from_host_wildcards(select: &mut Select, host: &str, renames: &[(String, String)]) {
    for item in &mut select.projection {
        let SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), opts) = item else {
            continue;
        };
        if name.0.last().and_then(ObjectNamePart::as_ident).map(normalize).as_deref() != Some(host) {
            continue;
        }
        let mut excluded = match opts.opt_exclude.take() {
            Some(datafusion::sql::sqlparser::ast::ExcludeSelectItem::Single(one)) => vec![one],
            Some(datafusion::sql::sqlparser::ast::ExcludeSelectItem::Multiple(many)) => many,
            None => vec![],
        };
        excluded.extend(renames.iter().map(|(_, inner)| ObjectName::from(vec![ident(inner)])));
        opts.opt_exclude = Some(datafusion::sql::sqlparser::ast::ExcludeSelectItem::Multiple(excluded));
    }
}

/// Points the query's references to the call `label` at the columns
/// `renames` (the call's column → the column of `host` that holds it).
fn rename_references(
    select: &mut Select,
    order_by: Option<&mut OrderBy>,
    label: &str,
    host: &str,
    renames: &[(String, String)],
) {
    // The alias alone stands for the call's one column.
    let whole_row = match renames {
        [(name, inner)] if name != label || host != label => Some(inner.clone()),
        _ => None,
    };
    let column = |inner: &str| Expr::CompoundIdentifier(vec![ident(host), ident(inner)]);
    let mut items = Vec::with_capacity(select.projection.len());
    for item in std::mem::take(&mut select.projection) {
        match item {
            SelectItem::UnnamedExpr(Expr::Identifier(i)) if normalize(&i) == label && whole_row.is_some() => {
                let inner = whole_row.as_deref().expect("checked");
                items.push(SelectItem::ExprWithAlias { expr: column(inner), alias: i });
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _)
                if host != label
                    && name.0.last().and_then(ObjectNamePart::as_ident).map(normalize).as_deref() == Some(label) =>
            {
                for (n, inner) in renames {
                    items.push(SelectItem::ExprWithAlias { expr: column(inner), alias: ident(n) });
                }
            }
            other => items.push(other),
        }
    }
    select.projection = items;
    let mut refs = Renamer { label, host, renames, whole_row: whole_row.as_deref() };
    let _ = select.visit(&mut refs);
    if let Some(o) = order_by {
        let _ = o.visit(&mut refs);
    }
}

struct Renamer<'a> {
    label: &'a str,
    host: &'a str,
    renames: &'a [(String, String)],
    whole_row: Option<&'a str>,
}

impl VisitorMut for Renamer<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let target = match expr {
            Expr::CompoundIdentifier(parts) if parts.len() == 2 && normalize(&parts[0]) == self.label => {
                let name = normalize(&parts[1]);
                self.renames.iter().find(|(n, _)| *n == name).map(|(_, inner)| inner.as_str())
            }
            Expr::Identifier(i) if normalize(i) == self.label => self.whole_row,
            _ => None,
        };
        if let Some(inner) = target {
            *expr = Expr::CompoundIdentifier(vec![ident(self.host), ident(inner)]);
        }
        ControlFlow::Continue(())
    }
}

/// An identifier for a normalized name: quoted (inner quotes doubled)
/// unless Postgres would read it back the same unquoted.
pub(crate) fn ident(name: &str) -> Ident {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    match plain {
        true => Ident::new(name),
        false => Ident::with_quote('"', name),
    }
}

/// `SELECT projection [FROM from]`.
fn select_of(projection: Vec<SelectItem>, from: Option<TableFactor>) -> Query {
    let mut query = Parser::new(&PostgreSqlDialect {})
        .try_with_sql("SELECT 1 FROM x")
        .and_then(|mut p| p.parse_query())
        .expect("a valid template");
    let SetExpr::Select(select) = query.body.as_mut() else { unreachable!("a SELECT") };
    select.projection = projection;
    select.from = from.map(|f| TableWithJoins { relation: f, joins: vec![] }).into_iter().collect();
    *query
}

fn derived(query: Query, alias: &str) -> TableFactor {
    TableFactor::Derived {
        lateral: false,
        subquery: Box::new(query),
        alias: Some(TableAlias { explicit: true, name: ident(alias), columns: vec![], at: None }),
        sample: None,
    }
}

/// A placeholder while a factor moves.
fn empty_factor() -> TableFactor {
    TableFactor::Derived { lateral: false, subquery: Box::new(select_of(vec![], None)), alias: None, sample: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite(&mut stmt).unwrap();
        stmt.to_string()
    }

    fn refused(sql: &str) -> Error {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite(&mut stmt).unwrap_err()
    }

    #[test]
    fn a_call_on_its_own_becomes_a_derived_table() {
        assert_eq!(
            rewritten("SELECT g FROM generate_series(1, 3) g"),
            "SELECT g FROM (SELECT value AS g FROM brikk_series(1, 3)) AS g"
        );
        assert_eq!(
            rewritten("SELECT * FROM LATERAL generate_series(1, 3)"),
            "SELECT * FROM (SELECT value AS generate_series FROM brikk_series(1, 3)) AS generate_series"
        );
        assert_eq!(
            rewritten("SELECT t FROM jsonb_array_elements_text('[1]') AS t"),
            "SELECT t.value AS t FROM (SELECT unnest(json_array_texts('[1]')) AS value) AS t"
        );
        assert_eq!(
            rewritten("SELECT k FROM jsonb_each('{}') AS e(k, v) ORDER BY e.v"),
            "SELECT k FROM (SELECT unnest(json_object_key_list('{}')) AS k, \
             jsonb(unnest(json_object_value_list('{}'))) AS v) AS e ORDER BY e.v"
        );
        assert_eq!(
            rewritten("SELECT * FROM unnest(ARRAY[1, 2]) AS u"),
            "SELECT * FROM (SELECT unnest(ARRAY[1, 2]) AS u) AS u"
        );
    }

    #[test]
    fn a_call_on_an_earlier_item_joins_its_rows() {
        assert_eq!(
            rewritten(
                "SELECT b.topic, t FROM board b, jsonb_array_elements_text(b.fact -> 'tags') AS t WHERE t <> 'x'"
            ),
            "SELECT b.topic, b.value AS t FROM (SELECT b.*, unnest(json_array_texts(b.fact -> 'tags')) AS value \
             FROM board b) AS b WHERE b.value <> 'x'"
        );
        assert_eq!(
            rewritten("SELECT e.key FROM board CROSS JOIN LATERAL jsonb_each(fact) e ORDER BY e.value"),
            "SELECT board.key FROM (SELECT board.*, unnest(json_object_key_list(fact)) AS key, \
             jsonb(unnest(json_object_value_list(fact))) AS value FROM board) AS board ORDER BY board.value"
        );
        assert_eq!(
            rewritten("SELECT board.*, t.* FROM board JOIN LATERAL generate_series(1, board.n) AS t(i) ON true"),
            "SELECT board.* EXCLUDE (i), board.i AS i FROM (SELECT board.*, unnest(generate_series(1, board.n)) AS i \
             FROM board) AS board"
        );
        // Two calls on one item: rows of the second for each of the first.
        assert_eq!(
            rewritten("SELECT x.value, y.value FROM d, jsonb_array_elements(d.a) x, jsonb_array_elements(x.value) y"),
            "SELECT d.value, d.\"y.value\" FROM (SELECT d.*, jsonb(unnest(json_array_items(d.value))) AS \"y.value\" \
             FROM (SELECT d.*, jsonb(unnest(json_array_items(d.a))) AS value FROM d) AS d) AS d"
        );
    }

    #[test]
    fn an_inner_join_condition_joins_where() {
        assert_eq!(
            rewritten("SELECT t.id FROM t JOIN LATERAL jsonb_array_elements_text(t.j) e ON e = 'x' WHERE t.id > 1"),
            "SELECT t.id FROM (SELECT t.*, unnest(json_array_texts(t.j)) AS value FROM t) AS t \
             WHERE (t.id > 1) AND (t.value = 'x')"
        );
    }

    #[test]
    fn a_left_join_keeps_rows_without_elements() {
        assert_eq!(
            rewritten("SELECT t.id, e FROM t LEFT JOIN LATERAL jsonb_array_elements_text(t.j) e ON true"),
            "SELECT t.id, t.value AS e FROM (SELECT t.*, unnest(CASE WHEN cardinality(json_array_texts(t.j)) > 0 \
             THEN json_array_texts(t.j) ELSE make_array(NULL) END) AS value FROM t) AS t"
        );
    }

    #[test]
    fn refuses_what_it_cannot_keep() {
        for sql in [
            "SELECT * FROM t LEFT JOIN LATERAL unnest(t.a) e ON true",
            "SELECT * FROM generate_series(1, 3) WITH ORDINALITY",
            "SELECT * FROM a, b, jsonb_each(a.j || b.j)",
            "SELECT * FROM a, b, jsonb_each(j)",
            "SELECT (SELECT count(*) FROM jsonb_array_elements(b.j)) FROM b",
        ] {
            assert!(matches!(refused(sql), Error::Unsupported(_)), "{sql}");
        }
        assert!(matches!(refused("SELECT * FROM jsonb_each('{}') AS e(a, b, c)"), Error::InvalidColumnReference(_)));
    }

    #[test]
    fn select_list_calls() {
        let parse = |sql: &str| Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).unwrap().parse_expr().unwrap();
        let (name, rows) = select_list_rows(&parse("generate_series(1, 3)")).unwrap();
        assert_eq!((name.as_str(), rows.to_string().as_str()), ("generate_series", "unnest(generate_series(1, 3))"));
        let (name, rows) = select_list_rows(&parse("JSONB_OBJECT_KEYS(j)")).unwrap();
        assert_eq!(
            (name.as_str(), rows.to_string().as_str()),
            ("jsonb_object_keys", "unnest(json_object_key_list(j))")
        );
        assert!(select_list_rows(&parse("jsonb_each(j)")).is_none());
        assert!(select_list_rows(&parse("unnest(a)")).is_none());
        assert!(select_list_rows(&parse("generate_series(1)")).is_none());
    }
}
