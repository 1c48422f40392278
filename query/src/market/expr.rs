//! Matching conditions and trade prices, evaluated on two rows at a time.
//!
//! The market evaluates `ON` and `PRICE` for pairs of orders, one pair at
//! a time, thousands of times per incoming order in the worst case; a
//! DataFusion batch per pair would cost microseconds each. DataFusion
//! plans the expressions (names, types, coercion); this module turns the
//! planned expression into a small tree evaluated directly on the two
//! orders' values, with SQL's three-valued logic.

use brikk_storage::{numeric, Value};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::error::{Error, Result};

/// An expression over a bid row and an ask row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowExpr {
    /// Column `i` of the bid (`false`) or ask (`true`) row.
    Column(bool, usize),
    Literal(Value),
    Binary(Box<RowExpr>, BinOp, Box<RowExpr>),
    Not(Box<RowExpr>),
    Negate(Box<RowExpr>),
    IsNull(Box<RowExpr>, bool),
    /// A cast to a numeric type (`true`: float) or to text.
    ToFloat(Box<RowExpr>),
    ToInt(Box<RowExpr>),
    ToText(Box<RowExpr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Plus,
    Minus,
    Multiply,
    Divide,
}

fn unsupported(e: &Expr) -> Error {
    Error::Unsupported(format!(
        "{e} in MATCH_ORDERS (conditions and prices use columns, literals, comparisons, arithmetic, AND/OR/NOT, IS NULL and casts)"
    ))
}

impl RowExpr {
    /// Compiles `e`, planned against `schema` whose first `bid_width`
    /// fields are the bid row and the rest the ask row.
    pub fn compile(e: &Expr, schema: &DFSchema, bid_width: usize) -> Result<RowExpr> {
        Ok(match e {
            Expr::Alias(a) => RowExpr::compile(&a.expr, schema, bid_width)?,
            Expr::Column(c) => {
                let i = schema.index_of_column(c)?;
                if i < bid_width {
                    RowExpr::Column(false, i)
                } else {
                    RowExpr::Column(true, i - bid_width)
                }
            }
            Expr::Literal(v, _) => RowExpr::Literal(crate::types::value_of_scalar(v).ok_or_else(|| unsupported(e))?),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let op = match op {
                    Operator::Eq => BinOp::Eq,
                    Operator::NotEq => BinOp::NotEq,
                    Operator::Lt => BinOp::Lt,
                    Operator::LtEq => BinOp::LtEq,
                    Operator::Gt => BinOp::Gt,
                    Operator::GtEq => BinOp::GtEq,
                    Operator::And => BinOp::And,
                    Operator::Or => BinOp::Or,
                    Operator::Plus => BinOp::Plus,
                    Operator::Minus => BinOp::Minus,
                    Operator::Multiply => BinOp::Multiply,
                    Operator::Divide => BinOp::Divide,
                    _ => return Err(unsupported(e)),
                };
                RowExpr::Binary(
                    Box::new(RowExpr::compile(left, schema, bid_width)?),
                    op,
                    Box::new(RowExpr::compile(right, schema, bid_width)?),
                )
            }
            Expr::Not(inner) => RowExpr::Not(Box::new(RowExpr::compile(inner, schema, bid_width)?)),
            Expr::Negative(inner) => RowExpr::Negate(Box::new(RowExpr::compile(inner, schema, bid_width)?)),
            Expr::IsNull(inner) => RowExpr::IsNull(Box::new(RowExpr::compile(inner, schema, bid_width)?), false),
            Expr::IsNotNull(inner) => RowExpr::IsNull(Box::new(RowExpr::compile(inner, schema, bid_width)?), true),
            Expr::Cast(c) => {
                let inner = Box::new(RowExpr::compile(&c.expr, schema, bid_width)?);
                use datafusion::arrow::datatypes::DataType as D;
                match c.field.data_type() {
                    D::Float32 | D::Float64 => RowExpr::ToFloat(inner),
                    D::Int8 | D::Int16 | D::Int32 | D::Int64 => RowExpr::ToInt(inner),
                    D::Utf8 | D::LargeUtf8 | D::Utf8View => RowExpr::ToText(inner),
                    // Timestamp and date casts keep the value (microseconds, days).
                    D::Timestamp(..) | D::Date32 => *inner,
                    _ => return Err(unsupported(e)),
                }
            }
            _ => return Err(unsupported(e)),
        })
    }

    /// Evaluates on a bid row and an ask row.
    pub fn eval(&self, bid: &[Value], ask: &[Value]) -> Result<Value> {
        Ok(match self {
            RowExpr::Column(false, i) => bid.get(*i).cloned().unwrap_or(Value::Null),
            RowExpr::Column(true, i) => ask.get(*i).cloned().unwrap_or(Value::Null),
            RowExpr::Literal(v) => v.clone(),
            RowExpr::Not(e) => match e.eval(bid, ask)? {
                Value::Boolean(b) => Value::Boolean(!b),
                _ => Value::Null,
            },
            RowExpr::Negate(e) => match e.eval(bid, ask)? {
                Value::Int(i) => Value::Int(i.checked_neg().ok_or_else(overflow)?),
                Value::Float(f) => Value::Float(-f),
                Value::Numeric { units, scale } => {
                    Value::Numeric { units: units.checked_neg().ok_or_else(overflow)?, scale }
                }
                _ => Value::Null,
            },
            RowExpr::IsNull(e, negated) => Value::Boolean((e.eval(bid, ask)? == Value::Null) != *negated),
            RowExpr::ToFloat(e) => match e.eval(bid, ask)? {
                Value::Int(i) => Value::Float(i as f64),
                Value::Float(f) => Value::Float(f),
                v @ Value::Numeric { .. } => Value::Float(num(&v)),
                Value::Text(t) => Value::Float(t.trim().parse().map_err(|_| bad_text(&t, "double precision"))?),
                _ => Value::Null,
            },
            RowExpr::ToInt(e) => match e.eval(bid, ask)? {
                Value::Int(i) => Value::Int(i),
                Value::Float(f) => Value::Int(f.round_ties_even() as i64),
                Value::Numeric { units, scale } => Value::Int(
                    numeric::rescale(units, scale, 0).and_then(|i| i64::try_from(i).ok()).ok_or_else(overflow)?,
                ),
                Value::Text(t) => Value::Int(t.trim().parse().map_err(|_| bad_text(&t, "bigint"))?),
                _ => Value::Null,
            },
            RowExpr::ToText(e) => match e.eval(bid, ask)? {
                Value::Null => Value::Null,
                v => Value::Text(v.key_text().unwrap_or_default()),
            },
            RowExpr::Binary(l, op, r) => {
                let a = l.eval(bid, ask)?;
                match op {
                    BinOp::And => match a {
                        Value::Boolean(false) => Value::Boolean(false),
                        a => match (a, r.eval(bid, ask)?) {
                            (_, Value::Boolean(false)) => Value::Boolean(false),
                            (Value::Boolean(true), Value::Boolean(true)) => Value::Boolean(true),
                            _ => Value::Null,
                        },
                    },
                    BinOp::Or => match a {
                        Value::Boolean(true) => Value::Boolean(true),
                        a => match (a, r.eval(bid, ask)?) {
                            (_, Value::Boolean(true)) => Value::Boolean(true),
                            (Value::Boolean(false), Value::Boolean(false)) => Value::Boolean(false),
                            _ => Value::Null,
                        },
                    },
                    _ => binary(a, *op, r.eval(bid, ask)?)?,
                }
            }
        })
    }
}

fn overflow() -> Error {
    Error::OutOfRange("bigint out of range".into())
}

fn bad_text(t: &str, ty: &str) -> Error {
    Error::InvalidText(format!("invalid input syntax for type {ty}: \"{t}\""))
}

/// Orders two non-NULL values of comparable kinds.
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Numeric { units: x, scale: s }, Value::Numeric { units: y, scale: t }) => {
            let at = (*s).max(*t);
            match (numeric::rescale(*x, *s, at), numeric::rescale(*y, *t, at)) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => num(a).partial_cmp(&num(b)),
            }
        }
        (Value::Numeric { .. }, Value::Int(_) | Value::Float(_))
        | (Value::Int(_) | Value::Float(_), Value::Numeric { .. }) => num(a).partial_cmp(&num(b)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Boolean(x), Value::Boolean(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn binary(a: Value, op: BinOp, b: Value) -> Result<Value> {
    use std::cmp::Ordering as O;
    if a == Value::Null || b == Value::Null {
        return Ok(Value::Null);
    }
    let cmp = |want: &dyn Fn(O) -> bool| -> Result<Value> {
        compare(&a, &b)
            .map(|o| Value::Boolean(want(o)))
            .ok_or_else(|| Error::TypeMismatch(format!("cannot compare {a:?} with {b:?}")))
    };
    Ok(match op {
        BinOp::Eq => cmp(&|o| o == O::Equal)?,
        BinOp::NotEq => cmp(&|o| o != O::Equal)?,
        BinOp::Lt => cmp(&|o| o == O::Less)?,
        BinOp::LtEq => cmp(&|o| o != O::Greater)?,
        BinOp::Gt => cmp(&|o| o == O::Greater)?,
        BinOp::GtEq => cmp(&|o| o != O::Less)?,
        BinOp::Plus | BinOp::Minus | BinOp::Multiply | BinOp::Divide => match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => Value::Int(
                match op {
                    BinOp::Plus => x.checked_add(*y),
                    BinOp::Minus => x.checked_sub(*y),
                    BinOp::Multiply => x.checked_mul(*y),
                    _ if *y == 0 => return Err(Error::DivisionByZero),
                    _ => x.checked_div(*y),
                }
                .ok_or_else(overflow)?,
            ),
            (
                Value::Int(_) | Value::Float(_) | Value::Numeric { .. },
                Value::Int(_) | Value::Float(_) | Value::Numeric { .. },
            ) => {
                let (x, y) = (num(&a), num(&b));
                Value::Float(match op {
                    BinOp::Plus => x + y,
                    BinOp::Minus => x - y,
                    BinOp::Multiply => x * y,
                    _ if y == 0.0 => return Err(Error::DivisionByZero),
                    _ => x / y,
                })
            }
            (Value::Timestamp(t), Value::Int(d)) if matches!(op, BinOp::Plus | BinOp::Minus) => {
                Value::Timestamp(if op == BinOp::Plus { t + d } else { t - d })
            }
            _ => return Err(Error::TypeMismatch(format!("cannot apply arithmetic to {a:?} and {b:?}"))),
        },
        BinOp::And | BinOp::Or => unreachable!("handled with short-circuit"),
    })
}

/// A numeric value as f64 (NULL and non-numbers as NaN).
pub fn num(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Numeric { units, scale } => *units as f64 / 10f64.powi(*scale as i32),
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ask: bool, i: usize) -> Box<RowExpr> {
        Box::new(RowExpr::Column(ask, i))
    }

    #[test]
    fn three_valued_logic_and_numbers() {
        let ge = RowExpr::Binary(col(false, 0), BinOp::GtEq, col(true, 0));
        assert_eq!(ge.eval(&[Value::Int(10)], &[Value::Float(9.5)]).unwrap(), Value::Boolean(true));
        assert_eq!(ge.eval(&[Value::Null], &[Value::Int(1)]).unwrap(), Value::Null);
        let and = RowExpr::Binary(Box::new(ge.clone()), BinOp::And, Box::new(RowExpr::Literal(Value::Boolean(false))));
        assert_eq!(and.eval(&[Value::Null], &[Value::Int(1)]).unwrap(), Value::Boolean(false));
        let avg = RowExpr::Binary(
            Box::new(RowExpr::Binary(col(false, 0), BinOp::Plus, col(true, 0))),
            BinOp::Divide,
            Box::new(RowExpr::Literal(Value::Int(2))),
        );
        assert_eq!(avg.eval(&[Value::Int(10)], &[Value::Int(7)]).unwrap(), Value::Int(8));
        assert!(matches!(
            RowExpr::Binary(col(false, 0), BinOp::Divide, col(true, 0)).eval(&[Value::Int(1)], &[Value::Int(0)]),
            Err(Error::DivisionByZero)
        ));
    }
}
