//! `current_setting(name [, missing_ok])`: a session setting's value, as
//! `SHOW name` gives it.
//!
//! The session's settings are not a function DataFusion can call, so each
//! call with a literal name becomes the value's text when the statement is
//! planned. An unknown name is `42704`, or NULL with `missing_ok` true. A
//! call whose name is an expression (a parameter, `current_setting($1)`, as
//! SQLAlchemy sends it) becomes a `CASE` over the names the session knows,
//! NULL for any other. A prepared statement reads the settings when it is
//! prepared (Postgres reads them at each execution).
//!
//! `pg_backend_pid()` becomes the session's process id the same way.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    CaseWhen, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value, VisitMut, VisitorMut,
};

use crate::error::{Error, ObjectKind, Result};
use crate::session::vars::Vars;

/// Replaces every `current_setting('name')` in `stmt` with its value in
/// `vars`, and every `pg_backend_pid()` with the session's process id.
pub fn rewrite(stmt: &mut Statement, vars: &Vars) -> Result<()> {
    // Headed as the call, as Postgres heads it, not as the literal.
    crate::sql::pg_compat::name_select_items(stmt, |e| match (call(e), is_backend_pid(e)) {
        (Some(_), _) => Some("current_setting".to_string()),
        (None, true) => Some("pg_backend_pid".to_string()),
        (None, false) => None,
    });
    struct Pass<'a>(&'a Vars);
    impl VisitorMut for Pass<'_> {
        type Break = Error;
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
            if is_backend_pid(expr) {
                *expr = Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                    expr: Box::new(Expr::value(Value::Number(self.0.backend_pid().to_string(), false))),
                    data_type: datafusion::sql::sqlparser::ast::DataType::Int(None),
                    array: false,
                    format: None,
                };
                return ControlFlow::Continue(());
            }
            let Some((name, missing_ok)) = call(expr) else { return ControlFlow::Continue(()) };
            let name = match name {
                Name::Literal(name) => name,
                Name::Expr(name) => {
                    *expr = by_name(name, self.0);
                    return ControlFlow::Continue(());
                }
            };
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

/// The name a `current_setting` call asks for.
enum Name {
    /// A literal, lower case.
    Literal(String),
    /// Anything else: a parameter, a column.
    Expr(Box<Expr>),
}

/// `CASE lower(name) WHEN 'timezone' THEN 'UTC' … END`: the value of the
/// setting `name` names, of those `vars` knows.
fn by_name(name: Box<Expr>, vars: &Vars) -> Expr {
    let text = Expr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
        expr: name,
        data_type: datafusion::sql::sqlparser::ast::DataType::Text,
        array: false,
        format: None,
    };
    let literal = |s: String| Expr::value(Value::SingleQuotedString(s));
    let conditions = vars
        .known()
        .into_iter()
        .map(|(name, value)| CaseWhen { condition: literal(name), result: literal(value) })
        .collect();
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: Some(Box::new(crate::sql::pg_compat::call("lower", vec![text], vec![]))),
        conditions,
        else_result: None,
    }
}

/// Whether `expr` is `pg_backend_pid()`.
fn is_backend_pid(expr: &Expr) -> bool {
    let Expr::Function(f) = expr else { return false };
    let named =
        f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("pg_backend_pid"));
    let no_args = match &f.args {
        FunctionArguments::None => true,
        FunctionArguments::List(l) => l.args.is_empty(),
        FunctionArguments::Subquery(_) => false,
    };
    named && no_args
}

/// `current_setting(name [, true|false])`: the name and `missing_ok`.
fn call(expr: &Expr) -> Option<(Name, bool)> {
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
    let name = match list.args.first()? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) => Name::Literal(s.to_ascii_lowercase()),
            Value::Placeholder(_) => Name::Expr(Box::new(Expr::Value(v.clone()))),
            _ => return None,
        },
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Name::Expr(Box::new(e.clone())),
        _ => return None,
    };
    let missing_ok = match list.args.get(1).map(literal) {
        None => false,
        Some(Some(Value::Boolean(b))) => b,
        Some(_) => return None,
    };
    (list.args.len() <= 2).then_some((name, missing_ok))
}
