//! `INSERT INTO trades SELECT … FROM MATCH_ORDERS(…)`: syntax and planning.

use std::sync::Arc;

use brikk_storage::{ColumnType, StreamHandle};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator as Op};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::continuous::def::QueryDef;
use crate::continuous::plan::Planned;
use crate::continuous::sink::Sink;
use crate::db::Brikk;
use crate::error::{Error, ObjectKind, Result};
use crate::market::expr::RowExpr;
use crate::market::operator::{CompiledRule, MarketOperator, SideColumns, TradeColumn};
use crate::sql::parser::{expect_end, expect_word, normalize};
use crate::tables::expr::Scope;
use crate::types::column_field;

/// What `MATCH_ORDERS(…)` says.
struct MatchSpec {
    sink: ast::ObjectName,
    sink_columns: Vec<ast::ObjectName>,
    /// `None`: `SELECT *`.
    select: Option<Vec<String>>,
    bids: String,
    asks: String,
    cancels: Option<String>,
    on: ast::Expr,
    price: ast::Expr,
}

fn syntax() -> Error {
    Error::Syntax(
        "expected INSERT INTO <stream> SELECT * FROM MATCH_ORDERS(<bids>, <asks>[, CANCELS <cancels>], ON <condition>, PRICE <expression>)"
            .into(),
    )
}

fn parse_spec(tokens: &[TokenWithSpan]) -> Result<MatchSpec> {
    let mut p = Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(tokens.to_vec());
    expect_word(&mut p, "INSERT")?;
    expect_word(&mut p, "INTO")?;
    let sink = p.parse_object_name(false)?;
    let mut sink_columns = Vec::new();
    if p.consume_token(&Token::LParen) {
        sink_columns = p.parse_comma_separated(|p| p.parse_object_name(false))?;
        p.expect_token(&Token::RParen)?;
    }
    expect_word(&mut p, "SELECT")?;
    let select = if p.consume_token(&Token::Mul) {
        None
    } else {
        Some(p.parse_comma_separated(|p| p.parse_identifier())?.iter().map(normalize).collect())
    };
    expect_word(&mut p, "FROM")?;
    expect_word(&mut p, "MATCH_ORDERS")?;
    p.expect_token(&Token::LParen)?;
    let bids = normalize(&p.parse_identifier()?);
    p.expect_token(&Token::Comma)?;
    let asks = normalize(&p.parse_identifier()?);
    let (mut on, mut price, mut cancels) = (None, None, None);
    while p.consume_token(&Token::Comma) {
        let word = match p.next_token().token {
            Token::Word(w) => w.value.to_ascii_uppercase(),
            _ => return Err(syntax()),
        };
        match word.as_str() {
            "ON" if on.is_none() => on = Some(p.parse_expr()?),
            "PRICE" if price.is_none() => price = Some(p.parse_expr()?),
            "CANCELS" if cancels.is_none() => cancels = Some(normalize(&p.parse_identifier()?)),
            _ => return Err(syntax()),
        }
    }
    p.expect_token(&Token::RParen)?;
    expect_end(&mut p)?;
    let (Some(on), Some(price)) = (on, price) else { return Err(syntax()) };
    Ok(MatchSpec { sink, sink_columns, select, bids, asks, cancels, on, price })
}

fn stream(db: &Brikk, name: &str) -> Result<Arc<StreamHandle>> {
    db.store()
        .stream(name)
        .or_else(|| db.store().table(name).map(|t| t.changelog.clone()))
        .ok_or_else(|| Error::NotFound { kind: ObjectKind::Relation, name: name.to_string() })
}

fn column(s: &StreamHandle, names: &[&str], required: bool) -> Result<Option<usize>> {
    let found = names.iter().find_map(|n| s.def.columns.iter().position(|c| c.name == *n));
    if found.is_none() && required {
        return Err(Error::NotFound {
            kind: ObjectKind::Column,
            name: format!("{}\" of order stream \"{}", names[0], s.def.name),
        });
    }
    Ok(found)
}

fn side_columns(s: &StreamHandle) -> Result<SideColumns> {
    let id = column(s, &["id"], true)?.expect("required");
    let price = column(s, &["price"], true)?.expect("required");
    let qty = column(s, &["qty", "quantity"], false)?;
    let expires = column(s, &["expires_at"], false)?;
    let numeric = |c: usize| {
        matches!(
            s.def.columns[c].ty,
            ColumnType::SmallInt
                | ColumnType::Integer
                | ColumnType::BigInt
                | ColumnType::Real
                | ColumnType::Double
                | ColumnType::Numeric { .. }
        )
    };
    if !numeric(price) {
        return Err(Error::TypeMismatch(format!(
            "column \"price\" of order stream \"{}\" must be numeric",
            s.def.name
        )));
    }
    if let Some(q) = qty {
        if !matches!(s.def.columns[q].ty, ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt) {
            return Err(Error::TypeMismatch(format!(
                "the quantity of order stream \"{}\" must be an integer",
                s.def.name
            )));
        }
    }
    if let Some(e) = expires {
        if !matches!(s.def.columns[e].ty, ColumnType::Timestamp | ColumnType::TimestampTz) {
            return Err(Error::TypeMismatch(format!(
                "\"expires_at\" of order stream \"{}\" must be a timestamp",
                s.def.name
            )));
        }
    }
    Ok(SideColumns { id, price, qty, expires })
}

/// The `bids.x = asks.y` terms of `on` (top-level AND), as column pairs,
/// and whether it requires `bids.price >= asks.price`.
fn analyse(
    on: &Expr,
    bid_width: usize,
    scope: &datafusion::common::DFSchema,
    price: (usize, usize),
) -> (Vec<(usize, usize)>, bool) {
    fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op: Op::And, right }) => {
                conjuncts(left, out);
                conjuncts(right, out);
            }
            Expr::Alias(a) => conjuncts(&a.expr, out),
            other => out.push(other),
        }
    }
    let col = |e: &Expr| match e {
        Expr::Column(c) => scope.index_of_column(c).ok(),
        _ => None,
    };
    let mut all = Vec::new();
    conjuncts(on, &mut all);
    let mut buckets = Vec::new();
    let mut cross = false;
    for c in all {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = c else { continue };
        let (Some(l), Some(r)) = (col(left), col(right)) else { continue };
        // Normalize to (bid column, ask column).
        let (b, a, op) = match (l < bid_width, r < bid_width) {
            (true, false) => (l, r - bid_width, *op),
            (false, true) => (
                r,
                l - bid_width,
                match op {
                    Op::Lt => Op::Gt,
                    Op::LtEq => Op::GtEq,
                    Op::Gt => Op::Lt,
                    Op::GtEq => Op::LtEq,
                    o => *o,
                },
            ),
            _ => continue,
        };
        match op {
            Op::Eq => buckets.push((b, a)),
            Op::GtEq | Op::Gt if (b, a) == price => cross = true,
            _ => {}
        }
    }
    (buckets, cross)
}

/// Plans a MATCH_ORDERS query.
pub async fn plan(db: &Brikk, def: &QueryDef, tokens: &[TokenWithSpan]) -> Result<Planned> {
    let spec = parse_spec(tokens)?;
    let bids = stream(db, &spec.bids)?;
    let asks = stream(db, &spec.asks)?;
    if bids.def.id == asks.def.id {
        return Err(Error::InvalidParameter("bids and asks must be two streams".into()));
    }
    let bid_cols = side_columns(&bids)?;
    let ask_cols = side_columns(&asks)?;
    let cancels = match &spec.cancels {
        Some(name) => {
            let s = stream(db, name)?;
            let side = column(&s, &["side"], true)?.expect("required");
            let id = column(&s, &["id"], true)?.expect("required");
            Some((s, side, id))
        }
        None => None,
    };
    let user_schema = |s: &StreamHandle| {
        Arc::new(Schema::new(s.def.columns.iter().map(|c| column_field(&c.name, c.ty, c.nullable)).collect::<Vec<_>>()))
    };
    let scope = Scope::new(&[(&spec.bids, user_schema(&bids)), (&spec.asks, user_schema(&asks))])?;
    let state = db.shared().ctx.state();
    let on = scope.plan(&state, &spec.on)?;
    if !matches!(scope.type_of(&on)?, DataType::Boolean | DataType::Null) {
        return Err(Error::TypeMismatch("the ON condition of MATCH_ORDERS must be boolean".into()));
    }
    let price = scope.plan(&state, &spec.price)?;
    let price_type = scope.type_of(&price)?;
    if !price_type.is_numeric() {
        return Err(Error::TypeMismatch("the PRICE of MATCH_ORDERS must be numeric".into()));
    }
    let df_schema = scope.df_schema();
    let width = bids.def.columns.len();
    let (buckets, cross) = analyse(&on, width, &df_schema, (bid_cols.price, ask_cols.price));
    let rule = CompiledRule {
        on: RowExpr::compile(&on, &df_schema, width)?,
        price: RowExpr::compile(&price, &df_schema, width)?,
        cross,
        buckets,
    };
    // The trade columns, in SELECT order.
    let all = [
        ("bid_id", TradeColumn::BidId),
        ("ask_id", TradeColumn::AskId),
        ("quantity", TradeColumn::Quantity),
        ("price", TradeColumn::Price),
        ("bid_offset", TradeColumn::BidOffset),
        ("ask_offset", TradeColumn::AskOffset),
    ];
    let columns: Vec<(String, TradeColumn)> = match &spec.select {
        None => all.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                all.iter().find(|(a, _)| a == n).map(|(a, c)| (a.to_string(), *c)).ok_or_else(|| Error::NotFound {
                    kind: ObjectKind::Column,
                    name: format!("{n}\" of MATCH_ORDERS (bid_id, ask_id, quantity, price, bid_offset, ask_offset)"),
                })
            })
            .collect::<Result<_>>()?,
    };
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, c)| {
            let t = match c {
                TradeColumn::BidId => crate::types::arrow_type(bids.def.columns[bid_cols.id].ty),
                TradeColumn::AskId => crate::types::arrow_type(asks.def.columns[ask_cols.id].ty),
                TradeColumn::Price => price_type.clone(),
                _ => DataType::Int64,
            };
            Field::new(n, t, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let sink = Sink::new(db.store(), &spec.sink, &spec.sink_columns, &schema, def.sink_filled)?;
    let mut inputs = vec![bids, asks];
    let cancel_cols = cancels.map(|(s, side, id)| {
        inputs.push(s);
        (side, id)
    });
    let operator = MarketOperator::new(
        def.id,
        inputs.clone(),
        bid_cols,
        ask_cols,
        cancel_cols,
        rule,
        columns,
        schema,
        db.store(),
    )?;
    Ok(Planned { inputs, operator: Box::new(operator), sink })
}
