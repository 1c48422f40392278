//! `current_setting(name [, missing_ok])`: a session setting's value, as
//! `SHOW name` gives it.
//!
//! The session's settings are not a function DataFusion can call, so each
//! call with a literal name becomes the value's text when the statement is
//! planned. An unknown name is `42704`, or NULL with `missing_ok` true. A
//! prepared statement reads the setting when it is prepared (Postgres reads
//! it at each execution).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value, VisitMut, VisitorMut,
};

use crate::error::{Error, ObjectKind, Result};
use crate::session::vars::Vars;

/// Replaces every `current_setting('name')` in `stmt` with its value in
/// `vars`.
pub fn rewrite(stmt: &mut Statement, vars: &Vars) -> Result<()> {
    // Headed as the call, as Postgres heads it, not as the literal.
    crate::sql::pg_compat::name_select_items(stmt, |e| call(e).map(|_| "current_setting".to_string()));
    struct Pass<'a>(&'a Vars);
    impl VisitorMut for Pass<'_> {
        type Break = Error;
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
            let Some((name, missing_ok)) = call(expr) else { return ControlFlow::Continue(()) };
            *expr = match (self.0.get(&name), missing_ok) {
                (Some(v), _) => Expr::value(Value::SingleQuotedString(v)),
                (None, true) => Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                    expr: Box::new(Expr::value(Value::Null)),
                    data_type: datafusion::sql::sqlparser::ast::DataType::Text,
                    array: false,
                    format: None,
                },
                (None, false) => return ControlFlow::Break(Error::NotFound { kind: ObjectKind::Parameter, name }),
            };
            ControlFlow::Continue(())
        }
    }
    match stmt.visit(&mut Pass(vars)) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// `current_setting('name' [, true|false])`: the name (lower case) and
/// `missing_ok`.
fn call(expr: &Expr) -> Option<(String, bool)> {
    let Expr::Function(f) = expr else { return None };
    let fname = f.name.0.last()?.as_ident()?;
    if !fname.value.eq_ignore_ascii_case("current_setting") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else { return None };
    let literal = |a: &FunctionArg| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => Some(v.value.clone()),
        _ => None,
    };
    let name = match list.args.first().and_then(literal)? {
        Value::SingleQuotedString(s) => s.to_ascii_lowercase(),
        _ => return None,
    };
    let missing_ok = match list.args.get(1).map(literal) {
        None => false,
        Some(Some(Value::Boolean(b))) => b,
        Some(_) => return None,
    };
    (list.args.len() <= 2).then_some((name, missing_ok))
}
