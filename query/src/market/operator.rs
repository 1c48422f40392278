//! The market as a continuous-query operator, and `order_book(name)`.
//!
//! Events are the query's input records in its deterministic order (commit
//! time, then bids, asks, cancels, then partition and offset), so a new
//! market query replaying the same streams from offset 0 makes the same
//! trades. Each resting order is one state key, written when it rests or
//! is partly filled and deleted when it leaves the book; the arrival
//! counter is one more. They commit with the step's trades and offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use brikk_storage::{StateWrite, Store, StreamHandle, Value, WeakStore};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::scalar::ScalarValue;

use crate::continuous::def::{operator_prefix, QueryDef};
use crate::continuous::input::InputRecord;
use crate::continuous::operator::{Operator, StepOutput};
use crate::error::{Error, ObjectKind, Result};
use crate::market::book::{Book, Change, Order, Rule, Side};
use crate::market::expr::{num, RowExpr};

/// Where a side's conventional columns are.
#[derive(Debug, Clone, Copy)]
pub struct SideColumns {
    pub id: usize,
    pub price: usize,
    pub qty: Option<usize>,
    pub expires: Option<usize>,
}

/// `ON` and `PRICE`, compiled.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub on: RowExpr,
    pub price: RowExpr,
    pub cross: bool,
    /// (bid column, ask column) pairs of the `bids.x = asks.y` terms.
    pub buckets: Vec<(usize, usize)>,
}

impl Rule for CompiledRule {
    fn matches(&self, bid: &[Value], ask: &[Value]) -> Result<bool> {
        Ok(self.on.eval(bid, ask)? == Value::Boolean(true))
    }

    fn price(&self, bid: &[Value], ask: &[Value]) -> Result<Value> {
        self.price.eval(bid, ask)
    }

    fn requires_cross(&self) -> bool {
        self.cross
    }
}

/// An output column of MATCH_ORDERS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeColumn {
    BidId,
    AskId,
    Quantity,
    Price,
    BidOffset,
    AskOffset,
}

pub struct MarketOperator {
    id: u64,
    inputs: Vec<Arc<StreamHandle>>,
    bid: SideColumns,
    ask: SideColumns,
    /// (side column, id column) of the cancel stream, if any.
    cancel: Option<(usize, usize)>,
    rule: CompiledRule,
    columns: Vec<(String, TradeColumn)>,
    schema: SchemaRef,
    book: Book,
    seq: u64,
}

fn order_key(id: u64, side: Side, seq: u64) -> Vec<u8> {
    let mut k = operator_prefix(id, b'o');
    k.push(side as u8);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_key(id: u64) -> Vec<u8> {
    operator_prefix(id, b's')
}

fn corrupt(e: serde_json::Error) -> Error {
    Error::Storage(brikk_storage::Error::Corrupt(format!("market state: {e}")))
}

/// The resting orders and arrival counter of market query `id`. Blocking.
fn load(store: &Store, id: u64) -> Result<(Vec<Order>, u64)> {
    let orders = store
        .state_scan(&operator_prefix(id, b'o'))?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v).map_err(corrupt))
        .collect::<Result<Vec<Order>>>()?;
    let seq = match store.state_get(&seq_key(id))? {
        Some(v) => serde_json::from_slice(&v).map_err(corrupt)?,
        None => 0,
    };
    Ok((orders, seq))
}

/// A bucket's text: the values of the equality columns, comma-separated.
fn bucket_of(row: &[Value], cols: impl Iterator<Item = usize>) -> Vec<u8> {
    let parts: Vec<String> = cols
        .map(|c| match row.get(c) {
            Some(Value::Float(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            Some(v) => v.key_text().unwrap_or_else(|| "NULL".into()),
            None => "NULL".into(),
        })
        .collect();
    parts.join(",").into_bytes()
}

fn scalar(v: &Value, t: &DataType) -> Result<ScalarValue> {
    let s = match v {
        Value::Null => return Ok(ScalarValue::try_from(t)?),
        Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
        Value::Int(i) => ScalarValue::Int64(Some(*i)),
        Value::Float(f) => ScalarValue::Float64(Some(*f)),
        Value::Text(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Bytes(b) => ScalarValue::Binary(Some(b.clone())),
        Value::Timestamp(x) => ScalarValue::TimestampMicrosecond(Some(*x), None),
        Value::Date(d) => ScalarValue::Date32(Some(*d)),
        Value::Numeric { units, scale } => ScalarValue::Decimal128(Some(*units), 38, *scale as i8),
    };
    Ok(if s.data_type() == *t { s } else { s.cast_to(t)? })
}

impl MarketOperator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        inputs: Vec<Arc<StreamHandle>>,
        bid: SideColumns,
        ask: SideColumns,
        cancel: Option<(usize, usize)>,
        rule: CompiledRule,
        columns: Vec<(String, TradeColumn)>,
        schema: SchemaRef,
        store: &Store,
    ) -> Result<MarketOperator> {
        let (orders, seq) = load(store, id)?;
        let mut book = Book::default();
        orders.into_iter().for_each(|o| book.insert(o));
        Ok(MarketOperator { id, inputs, bid, ask, cancel, rule, columns, schema, book, seq })
    }

    fn order(&mut self, side: Side, r: &InputRecord) -> Result<Order> {
        let cols = if side == Side::Bid { self.bid } else { self.ask };
        let row = &r.record.values;
        let price = num(&row[cols.price]);
        if price.is_nan() {
            return Err(Error::InvalidParameter(format!(
                "{} at partition {} offset {} has no price",
                side.as_str(),
                r.partition,
                r.record.offset
            )));
        }
        let remaining = match cols.qty.map(|q| &row[q]) {
            None => 1,
            Some(Value::Int(q)) => *q,
            Some(_) => 0, // NULL quantity: nothing to trade
        };
        let expires_at = cols.expires.and_then(|e| match &row[e] {
            Value::Timestamp(t) => Some(*t),
            _ => None,
        });
        let bucket = match side {
            Side::Bid => bucket_of(row, self.rule.buckets.iter().map(|(b, _)| *b)),
            Side::Ask => bucket_of(row, self.rule.buckets.iter().map(|(_, a)| *a)),
        };
        self.seq += 1;
        Ok(Order {
            seq: self.seq,
            side,
            id: row[cols.id].clone(),
            price,
            remaining,
            expires_at,
            bucket,
            row: row.clone(),
            partition: r.partition,
            offset: r.record.offset,
        })
    }

    fn persist(&self, changes: Vec<Change>, out: &mut StepOutput) {
        // Only the last change of an order in a step matters.
        let mut last: BTreeMap<(Side, u64), Option<Order>> = BTreeMap::new();
        for c in changes {
            match c {
                Change::Put(o) => last.insert((o.side, o.seq), Some(o)),
                Change::Remove(side, seq) => last.insert((side, seq), None),
            };
        }
        for ((side, seq), o) in last {
            out.state.push(match o {
                Some(o) => {
                    StateWrite::Put(order_key(self.id, side, seq), serde_json::to_vec(&o).expect("order serializes"))
                }
                None => StateWrite::Delete(order_key(self.id, side, seq)),
            });
        }
        out.state.push(StateWrite::Put(seq_key(self.id), serde_json::to_vec(&self.seq).expect("seq serializes")));
    }
}

#[async_trait]
impl Operator for MarketOperator {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn inputs(&self) -> Vec<Arc<StreamHandle>> {
        self.inputs.clone()
    }

    async fn process(&mut self, records: Vec<InputRecord>, out: &mut StepOutput) -> Result<()> {
        let mut changes = Vec::new();
        for r in &records {
            let now = r.record.timestamp_micros;
            match r.input {
                0 | 1 => {
                    let side = if r.input == 0 { Side::Bid } else { Side::Ask };
                    let order = self.order(side, r)?;
                    for f in self.book.submit(order, now, &self.rule, &mut changes)? {
                        let mut row = Vec::with_capacity(self.columns.len());
                        for ((_, c), field) in self.columns.iter().zip(self.schema.fields()) {
                            let t = field.data_type();
                            row.push(match c {
                                TradeColumn::BidId => scalar(&f.bid.0, t)?,
                                TradeColumn::AskId => scalar(&f.ask.0, t)?,
                                TradeColumn::Quantity => ScalarValue::Int64(Some(f.quantity)),
                                TradeColumn::Price => scalar(&f.price, t)?,
                                TradeColumn::BidOffset => ScalarValue::Int64(Some(f.bid.2 as i64)),
                                TradeColumn::AskOffset => ScalarValue::Int64(Some(f.ask.2 as i64)),
                            });
                        }
                        out.rows.push(row);
                    }
                }
                _ => {
                    let Some((side_col, id_col)) = self.cancel else { continue };
                    self.book.expire(now, &mut changes);
                    let side = match &r.record.values[side_col] {
                        Value::Text(s) if s.eq_ignore_ascii_case("bid") => Side::Bid,
                        Value::Text(s) if s.eq_ignore_ascii_case("ask") => Side::Ask,
                        other => {
                            return Err(Error::InvalidParameter(format!(
                                "a cancel's side is 'bid' or 'ask', not {other:?} (offset {})",
                                r.record.offset
                            )))
                        }
                    };
                    self.book.cancel(side, &r.record.values[id_col], &mut changes);
                }
            }
        }
        self.persist(changes, out);
        Ok(())
    }
}

/// Name of the table function showing a market's open order book.
pub const ORDER_BOOK_FUNCTION: &str = "order_book";

/// `order_book('market')`: the resting orders of a market query, as depth
/// per price level: `side`, `book` (the values of its `bids.x = asks.y`
/// conditions), `price`, `quantity`, `orders`. Reads the committed state.
#[derive(Debug)]
pub struct OrderBookFunction {
    pub store: WeakStore,
}

impl TableFunctionImpl for OrderBookFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let ext = |e: Error| DataFusionError::External(Box::new(e));
        let store = self.store.upgrade().ok_or_else(|| ext(Error::ShuttingDown))?;
        let name = match args.exprs() {
            [datafusion::logical_expr::Expr::Literal(ScalarValue::Utf8(Some(s)), _)] => s.clone(),
            [datafusion::logical_expr::Expr::Column(c)] => c.name.clone(),
            _ => return Err(ext(Error::InvalidParameter("order_book() takes the name of a market query".into()))),
        };
        let def = QueryDef::load(&store, &name)
            .map_err(ext)?
            .ok_or_else(|| ext(Error::NotFound { kind: ObjectKind::Query, name: name.clone() }))?;
        let (orders, _) = load(&store, def.id).map_err(ext)?;
        let mut levels: BTreeMap<(Side, String, i64), (f64, i64, i64)> = BTreeMap::new();
        for o in orders {
            let price_key = if o.side == Side::Bid { -(o.price * 1e6) as i64 } else { (o.price * 1e6) as i64 };
            let e = levels
                .entry((o.side, String::from_utf8_lossy(&o.bucket).into_owned(), price_key))
                .or_insert((o.price, 0, 0));
            e.1 += o.remaining;
            e.2 += 1;
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("side", DataType::Utf8, false),
            Field::new("book", DataType::Utf8, false),
            Field::new("price", DataType::Float64, false),
            Field::new("quantity", DataType::Int64, false),
            Field::new("orders", DataType::Int64, false),
        ]));
        let rows: Vec<_> = levels.into_iter().collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|((s, _, _), _)| s.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|((_, b, _), _)| b.clone()))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, v)| v.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, v)| v.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, v)| v.2))),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
