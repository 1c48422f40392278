//! Turning a continuous query's `INSERT INTO sink SELECT …` into inputs,
//! an operator and a sink.
//!
//! - `… FROM MATCH_ORDERS(…)` is the market ([`crate::market`]);
//! - `… FROM TUMBLE(s, t, size)` / `HOP(s, t, slide, size)` with
//!   `GROUP BY window_start, …` is a [`WindowOperator`];
//! - any other SELECT over exactly one stream (filters, projections,
//!   functions, joins with tables) is a [`MapOperator`]. Aggregation and
//!   window functions need a window: they are refused (`0A000`).

use std::sync::Arc;

use brikk_storage::StreamHandle;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr, TableFactor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::Tokenizer;

use crate::continuous::def::QueryDef;
use crate::continuous::operator::{MapOperator, Operator};
use crate::continuous::sink::Sink;
use crate::continuous::window::{AggKind, OutputColumn, WindowOperator, WindowSpec};
use crate::db::Brikk;
use crate::error::{Error, ObjectKind, Result};
use crate::sql::continuous::is_word;
use crate::sql::parser::{normalize, quote_ident};
use crate::sql::{self, Statement};

/// A continuous query ready to run.
pub struct Planned {
    pub inputs: Vec<Arc<StreamHandle>>,
    pub operator: Box<dyn Operator>,
    pub sink: Sink,
}

/// Plans `def`'s body against the current catalog.
pub async fn plan(db: &Brikk, def: &QueryDef) -> Result<Planned> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, &def.body).tokenize_with_location()?;
    if tokens.iter().any(|t| is_word(&t.token, "MATCH_ORDERS")) {
        return crate::market::plan(db, def, &tokens).await;
    }
    let mut stmts = sql::parse(&def.body, &db.shared().compat)?;
    let insert = match (stmts.pop(), stmts.is_empty()) {
        (Some(Statement::Sql(s)), true) => match *s {
            ast::Statement::Insert(i) => i,
            _ => return Err(body_error()),
        },
        _ => return Err(body_error()),
    };
    let ast::TableObject::TableName(sink_name) = &insert.table else { return Err(body_error()) };
    if insert.on.is_some() || insert.returning.is_some() {
        return Err(Error::Unsupported("ON CONFLICT or RETURNING in a continuous query".into()));
    }
    let Some(source) = insert.source.as_ref() else { return Err(body_error()) };
    let store = db.store();
    let operator: Box<dyn Operator> = match window_source(source) {
        Some(w) => Box::new(plan_window(db, def, source, w).await?),
        None => {
            let plan = db.plan_query(ast::Statement::Query(source.clone()), crate::types::UTC).await?;
            let input = single_input(db, &plan)?;
            Box::new(MapOperator::new(input, plan, db.shared().ctx.state())?)
        }
    };
    let inputs = operator.inputs();
    let sink = Sink::new(store, sink_name, &insert.columns, &operator.output_schema(), def.sink_filled)?;
    Ok(Planned { inputs, operator, sink })
}

fn body_error() -> Error {
    Error::Syntax("a continuous query is INSERT INTO <stream> SELECT … (or … FROM MATCH_ORDERS(…))".into())
}

/// The one stream `plan` reads; tables may be joined to it.
fn single_input(db: &Brikk, plan: &LogicalPlan) -> Result<Arc<StreamHandle>> {
    let mut streams: Vec<String> = Vec::new();
    let mut aggregated = false;
    plan.apply(|p| {
        match p {
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table().to_string();
                if db.store().stream(&name).is_some() && !streams.contains(&name) {
                    streams.push(name);
                }
            }
            LogicalPlan::Aggregate(_) | LogicalPlan::Window(_) => aggregated = true,
            _ => {}
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    if aggregated {
        return Err(Error::Unsupported(
            "aggregation in a continuous query without a window (use FROM TUMBLE(stream, time, size) or HOP(…) with GROUP BY window_start)".into(),
        ));
    }
    match streams.as_slice() {
        [one] => {
            db.store().stream(one).ok_or_else(|| Error::NotFound { kind: ObjectKind::Relation, name: one.clone() })
        }
        [] => Err(Error::InvalidParameter("a continuous query reads a stream; this one reads none".into())),
        _ => Err(Error::Unsupported(format!(
            "a continuous query over several streams ({}): join a stream with tables, or use MATCH_ORDERS",
            streams.join(", ")
        ))),
    }
}

use datafusion::common::tree_node::TreeNode;

/// `TUMBLE(…)`/`HOP(…)` in FROM: (function, arguments, alias).
struct WindowSource<'a> {
    hop: bool,
    args: &'a [FunctionArg],
    alias: Option<&'a ast::Ident>,
}

fn window_source(q: &ast::Query) -> Option<WindowSource<'_>> {
    let SetExpr::Select(select) = q.body.as_ref() else { return None };
    let [from] = select.from.as_slice() else { return None };
    let TableFactor::Table { name, args: Some(args), alias, .. } = &from.relation else { return None };
    let f = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    (f == "tumble" || f == "hop").then_some(WindowSource {
        hop: f == "hop",
        args: &args.args,
        alias: alias.as_ref().map(|a| &a.name),
    })
}

fn arg_expr(a: &FunctionArg) -> Result<&ast::Expr> {
    match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
        other => Err(Error::Syntax(format!("unexpected window argument {other}"))),
    }
}

fn ident_arg(a: &FunctionArg, what: &str) -> Result<String> {
    match arg_expr(a)? {
        ast::Expr::Identifier(i) => Ok(normalize(i)),
        other => Err(Error::Syntax(format!("the {what} of a window is a name, not {other}"))),
    }
}

fn interval_arg(a: &FunctionArg) -> Result<i64> {
    let text = match arg_expr(a)? {
        ast::Expr::Interval(i) => {
            let base = match i.value.as_ref() {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            match &i.leading_field {
                Some(f) => format!("{base} {f}"),
                None => base,
            }
        }
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        other => return Err(Error::Syntax(format!("a window size is an INTERVAL, not {other}"))),
    };
    let micros = crate::sql::parse_duration(&text)?;
    if micros <= 0 {
        return Err(Error::InvalidParameter(format!("a window size must be positive, got '{text}'")));
    }
    Ok(micros)
}

fn is_window_bound(e: &ast::Expr) -> Option<OutputColumn> {
    let ast::Expr::Identifier(i) = e else { return None };
    match normalize(i).as_str() {
        "window_start" | "tumble_start" | "hop_start" => Some(OutputColumn::WindowStart),
        "window_end" | "tumble_end" | "hop_end" => Some(OutputColumn::WindowEnd),
        _ => None,
    }
}

async fn plan_window(db: &Brikk, def: &QueryDef, q: &ast::Query, w: WindowSource<'_>) -> Result<WindowOperator> {
    let SetExpr::Select(select) = q.body.as_ref() else { return Err(body_error()) };
    let want = if w.hop { 4 } else { 3 };
    if w.args.len() != want {
        return Err(Error::Syntax(if w.hop {
            "HOP(stream, time_column, slide, size)".into()
        } else {
            "TUMBLE(stream, time_column, size)".to_string()
        }));
    }
    let stream = ident_arg(&w.args[0], "stream")?;
    let input = db
        .store()
        .stream(&stream)
        .ok_or_else(|| Error::NotFound { kind: ObjectKind::Relation, name: stream.clone() })?;
    let time = ident_arg(&w.args[1], "time column")?;
    let (slide, size) = if w.hop {
        (interval_arg(&w.args[2])?, interval_arg(&w.args[3])?)
    } else {
        let s = interval_arg(&w.args[2])?;
        (s, s)
    };
    if slide > size {
        return Err(Error::InvalidParameter("a HOP window's slide cannot exceed its size".into()));
    }
    if select.having.is_some() || select.distinct.is_some() || q.order_by.is_some() || q.limit_clause.is_some() {
        return Err(Error::Unsupported("HAVING, DISTINCT, ORDER BY or LIMIT in a windowed continuous query".into()));
    }
    let group_by: Vec<ast::Expr> = match &select.group_by {
        ast::GroupByExpr::Expressions(e, _) => e.clone(),
        ast::GroupByExpr::All(_) => return Err(Error::Unsupported("GROUP BY ALL in a continuous query".into())),
    };
    // Positional GROUP BY refers to SELECT items.
    let items: Vec<(&ast::Expr, Option<String>)> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Ok((e, None)),
            SelectItem::ExprWithAlias { expr, alias } => Ok((expr, Some(normalize(alias)))),
            _ => Err(Error::Unsupported("* in a windowed continuous query: name the columns".into())),
        })
        .collect::<Result<_>>()?;
    let resolve = |e: &ast::Expr| -> ast::Expr {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Number(n, _) = &v.value {
                if let Some(item) = n.parse::<usize>().ok().and_then(|i| i.checked_sub(1)).and_then(|i| items.get(i)) {
                    return item.0.clone();
                }
            }
        }
        // An alias of a SELECT item.
        if let ast::Expr::Identifier(i) = e {
            if let Some(item) = items.iter().find(|(_, a)| a.as_deref() == Some(normalize(i).as_str())) {
                return item.0.clone();
            }
        }
        e.clone()
    };
    let group_by: Vec<ast::Expr> = group_by.iter().map(resolve).collect();
    if !group_by.iter().any(|g| is_window_bound(g).is_some()) {
        return Err(Error::InvalidParameter(
            "a windowed continuous query must GROUP BY window_start (or window_end)".into(),
        ));
    }
    let keys: Vec<ast::Expr> = group_by.iter().filter(|g| is_window_bound(g).is_none()).cloned().collect();
    let mut aggs = Vec::new();
    let mut agg_args: Vec<String> = Vec::new();
    let mut columns = Vec::new();
    let mut names = Vec::new();
    for (e, alias) in &items {
        let (column, default_name) = if let Some(b) = is_window_bound(e) {
            let n = match e {
                ast::Expr::Identifier(i) => normalize(i),
                _ => "window_start".into(),
            };
            (b, n)
        } else if let Some(k) = keys.iter().position(|k| k == *e) {
            let n = match e {
                ast::Expr::Identifier(i) => normalize(i),
                ast::Expr::CompoundIdentifier(p) => p.last().map(normalize).unwrap_or_default(),
                _ => "?column?".into(),
            };
            (OutputColumn::Key(k), n)
        } else if let ast::Expr::Function(f) = e {
            let name = f.name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
            let FunctionArguments::List(list) = &f.args else {
                return Err(Error::Unsupported(format!("{e} in a windowed continuous query")));
            };
            let (star, arg) = match list.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => (true, "1".to_string()),
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => (false, a.to_string()),
                _ => return Err(Error::Unsupported(format!("{e} in a windowed continuous query"))),
            };
            if f.filter.is_some() || f.over.is_some() || list.duplicate_treatment.is_some() {
                return Err(Error::Unsupported(format!("{e} in a windowed continuous query")));
            }
            let kind = AggKind::by_name(&name, star).ok_or_else(|| {
                Error::Unsupported(format!("aggregate {name} in a continuous query (count, sum, min, max, avg)"))
            })?;
            aggs.push(kind);
            agg_args.push(arg);
            (OutputColumn::Agg(aggs.len() - 1), name)
        } else {
            return Err(Error::Plan(format!(
                "{e} must appear in the GROUP BY clause or be used in an aggregate function"
            )));
        };
        columns.push(column);
        names.push(alias.clone().unwrap_or(default_name));
    }
    // The pre-projection: time, keys, aggregate arguments, over the stream.
    let mut select_list = vec![format!("{} AS __t", quote_ident(&time))];
    select_list.extend(keys.iter().enumerate().map(|(i, k)| format!("{k} AS __k{i}")));
    select_list.extend(agg_args.iter().enumerate().map(|(i, a)| format!("{a} AS __a{i}")));
    let alias = w.alias.map(|a| format!(" AS {a}")).unwrap_or_default();
    let filter = select.selection.as_ref().map(|s| format!(" WHERE {s}")).unwrap_or_default();
    let pre_sql = format!("SELECT {} FROM {}{alias}{filter}", select_list.join(", "), quote_ident(&stream));
    let mut stmts = sql::parse(&pre_sql, &db.shared().compat)?;
    let Some(Statement::Sql(pre_stmt)) = stmts.pop() else { return Err(body_error()) };
    let pre_plan = db.plan_query(*pre_stmt, crate::types::UTC).await?;
    let pre = MapOperator::new(input, pre_plan, db.shared().ctx.state())?;
    let spec = WindowSpec { size, slide, commit_time: time == "_timestamp", lateness: def.options.lateness_micros };
    WindowOperator::new(def.id, spec, pre, keys.len(), aggs, columns, names, db.store())
}
