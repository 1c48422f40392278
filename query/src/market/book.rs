//! The order book: a continuous double auction with price–time priority.
//!
//! Resting orders wait in one book per **bucket** (the values of the
//! equality conditions of `ON`, e.g. the skill), bids sorted by price
//! descending, asks ascending, then by arrival. An incoming order walks
//! the other side's book of its bucket in that order, trades with every
//! resting order the rule accepts (partial fills: the smaller remaining
//! quantity trades) until it is filled, and rests with what is left.
//! Cancels remove a resting order by id; an order whose `expires_at` has
//! passed (by the time of the event being processed) leaves the book.
//!
//! Everything here is a pure function of the events and their order, so
//! replaying the same events gives the same fills.

use std::collections::{BTreeMap, HashMap};

use brikk_storage::Value;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Which side of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Side {
    Bid,
    Ask,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Bid => "bid",
            Side::Ask => "ask",
        }
    }
}

/// An order, incoming or resting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Arrival sequence: earlier is better at the same price.
    pub seq: u64,
    pub side: Side,
    pub id: Value,
    /// The price as a double, which orders the book: `numeric` prices of up
    /// to 15 significant digits keep their exact order.
    pub price: f64,
    pub remaining: i64,
    pub expires_at: Option<i64>,
    /// The order's values of the equality conditions, encoded.
    pub bucket: Vec<u8>,
    /// The order's row, for the rule.
    pub row: Vec<Value>,
    pub partition: u32,
    pub offset: u64,
}

/// One trade.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    pub bid: (Value, u32, u64),
    pub ask: (Value, u32, u64),
    pub quantity: i64,
    pub price: Value,
}

/// What decides whether two orders trade, and at what price.
pub trait Rule {
    fn matches(&self, bid: &[Value], ask: &[Value]) -> Result<bool>;
    fn price(&self, bid: &[Value], ask: &[Value]) -> Result<Value>;
    /// Whether the rule requires `bid.price >= ask.price`: the walk stops at
    /// the first resting order whose price no longer crosses.
    fn requires_cross(&self) -> bool;
}

/// A change to the resting orders, to persist.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(Order),
    Remove(Side, u64),
}

/// Book key: price (ordered so that better comes first), then arrival.
type Key = (u64, u64);
type Level = BTreeMap<Key, Order>;

fn price_key(side: Side, price: f64) -> u64 {
    let bits = price.to_bits();
    let ordered = if bits >> 63 == 0 { bits ^ (1 << 63) } else { !bits };
    match side {
        Side::Ask => ordered,
        Side::Bid => !ordered,
    }
}

/// The resting orders of a market.
#[derive(Debug, Default)]
pub struct Book {
    books: HashMap<(Side, Vec<u8>), Level>,
    /// Resting order by (side, id text): its bucket and key.
    ids: HashMap<(Side, String), (Vec<u8>, Key)>,
    /// Resting orders by expiry time.
    expiry: BTreeMap<(i64, Side, u64), (Vec<u8>, Key)>,
}

fn id_text(v: &Value) -> String {
    v.key_text().unwrap_or_default()
}

impl Book {
    /// Adds a resting order (when loading state).
    pub fn insert(&mut self, o: Order) {
        let key = (price_key(o.side, o.price), o.seq);
        self.ids.insert((o.side, id_text(&o.id)), (o.bucket.clone(), key));
        if let Some(t) = o.expires_at {
            self.expiry.insert((t, o.side, o.seq), (o.bucket.clone(), key));
        }
        self.books.entry((o.side, o.bucket.clone())).or_default().insert(key, o);
    }

    fn remove(&mut self, side: Side, bucket: &[u8], key: Key, changes: &mut Vec<Change>) -> Option<Order> {
        let level = self.books.get_mut(&(side, bucket.to_vec()))?;
        let o = level.remove(&key)?;
        if level.is_empty() {
            self.books.remove(&(side, bucket.to_vec()));
        }
        let id = (side, id_text(&o.id));
        if self.ids.get(&id).is_some_and(|(_, k)| *k == key) {
            self.ids.remove(&id);
        }
        if let Some(t) = o.expires_at {
            self.expiry.remove(&(t, side, o.seq));
        }
        changes.push(Change::Remove(side, o.seq));
        Some(o)
    }

    /// Removes every resting order that has expired by `now`.
    pub fn expire(&mut self, now: i64, changes: &mut Vec<Change>) {
        while let Some((&(t, side, _), (bucket, key))) = self.expiry.iter().next() {
            if t > now {
                break;
            }
            let (bucket, key) = (bucket.clone(), *key);
            if self.remove(side, &bucket, key, changes).is_none() {
                // Defensive: an index entry without its order.
                self.expiry.remove(&(t, side, key.1));
            }
        }
    }

    /// Cancels the resting order `id` of `side`; false if there is none.
    pub fn cancel(&mut self, side: Side, id: &Value, changes: &mut Vec<Change>) -> bool {
        let Some((bucket, key)) = self.ids.get(&(side, id_text(id))).cloned() else { return false };
        self.remove(side, &bucket, key, changes).is_some()
    }

    /// Matches an incoming order at time `now`; what is left of it rests.
    pub fn submit(&mut self, mut o: Order, now: i64, rule: &dyn Rule, changes: &mut Vec<Change>) -> Result<Vec<Fill>> {
        self.expire(now, changes);
        if o.expires_at.is_some_and(|t| t <= now) || o.remaining <= 0 {
            return Ok(Vec::new());
        }
        let other = match o.side {
            Side::Bid => Side::Ask,
            Side::Ask => Side::Bid,
        };
        let mut fills = Vec::new();
        let mut touched: Vec<(Key, i64)> = Vec::new();
        if let Some(level) = self.books.get(&(other, o.bucket.clone())) {
            for (key, resting) in level {
                if o.remaining == 0 {
                    break;
                }
                let (bid, ask) = match o.side {
                    Side::Bid => (&o, resting),
                    Side::Ask => (resting, &o),
                };
                if rule.requires_cross() && bid.price < ask.price {
                    break; // no better-priced order follows
                }
                if !rule.matches(&bid.row, &ask.row)? {
                    continue;
                }
                let quantity = o.remaining.min(resting.remaining);
                let price = rule.price(&bid.row, &ask.row)?;
                fills.push(Fill {
                    bid: (bid.id.clone(), bid.partition, bid.offset),
                    ask: (ask.id.clone(), ask.partition, ask.offset),
                    quantity,
                    price,
                });
                o.remaining -= quantity;
                touched.push((*key, resting.remaining - quantity));
            }
        }
        for (key, left) in touched {
            if left == 0 {
                self.remove(other, &o.bucket, key, changes);
            } else if let Some(r) = self.books.get_mut(&(other, o.bucket.clone())).and_then(|l| l.get_mut(&key)) {
                r.remaining = left;
                changes.push(Change::Put(r.clone()));
            }
        }
        if o.remaining > 0 {
            changes.push(Change::Put(o.clone()));
            self.insert(o);
        }
        Ok(fills)
    }

    /// Every resting order.
    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.books.values().flat_map(|l| l.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Orders carry [skill, price]; they trade on equal skills when the bid
    /// price is at least the ask price, at the ask's price.
    struct SkillRule;

    impl Rule for SkillRule {
        fn matches(&self, bid: &[Value], ask: &[Value]) -> Result<bool> {
            Ok(bid[0] == ask[0] && crate::market::expr::num(&bid[1]) >= crate::market::expr::num(&ask[1]))
        }
        fn price(&self, _bid: &[Value], ask: &[Value]) -> Result<Value> {
            Ok(ask[1].clone())
        }
        fn requires_cross(&self) -> bool {
            true
        }
    }

    #[derive(Debug, Clone)]
    enum Event {
        Order(Order),
        Cancel(Side, Value),
    }

    /// The reference: no buckets, no early stop, a scan of every resting
    /// order for the best acceptable one, again and again.
    fn reference(events: &[(i64, Event)]) -> Vec<(u64, u64, i64, Value)> {
        let mut resting: Vec<Order> = Vec::new();
        let mut out = Vec::new();
        for (now, e) in events {
            resting.retain(|o| o.expires_at.is_none_or(|t| t > *now));
            match e {
                Event::Cancel(side, id) => {
                    if let Some(i) = resting.iter().rposition(|o| o.side == *side && o.id == *id) {
                        resting.remove(i);
                    }
                }
                Event::Order(o) => {
                    let mut o = o.clone();
                    if o.expires_at.is_some_and(|t| t <= *now) {
                        continue;
                    }
                    loop {
                        let best = resting
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| r.side != o.side)
                            .filter(|(_, r)| {
                                let (b, a) = if o.side == Side::Bid { (&o, *r) } else { (*r, &o) };
                                SkillRule.matches(&b.row, &a.row).unwrap()
                            })
                            .min_by(|(_, x), (_, y)| {
                                let px = if o.side == Side::Bid { x.price } else { -x.price };
                                let py = if o.side == Side::Bid { y.price } else { -y.price };
                                px.partial_cmp(&py).unwrap().then(x.seq.cmp(&y.seq))
                            })
                            .map(|(i, _)| i);
                        let Some(i) = best else { break };
                        let q = o.remaining.min(resting[i].remaining);
                        let (b, a) = if o.side == Side::Bid { (&o, &resting[i]) } else { (&resting[i], &o) };
                        out.push((b.seq, a.seq, q, SkillRule.price(&b.row, &a.row).unwrap()));
                        o.remaining -= q;
                        resting[i].remaining -= q;
                        if resting[i].remaining == 0 {
                            resting.remove(i);
                        }
                        if o.remaining == 0 {
                            break;
                        }
                    }
                    if o.remaining > 0 {
                        resting.push(o);
                    }
                }
            }
        }
        out
    }

    /// A small deterministic generator (no dependency needed).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn random_events(rng: &mut Rng, n: usize) -> Vec<(i64, Event)> {
        let mut events = Vec::new();
        let mut now = 0i64;
        for seq in 0..n as u64 {
            now += rng.next(3) as i64;
            if rng.next(10) == 0 && seq > 0 {
                let side = if rng.next(2) == 0 { Side::Bid } else { Side::Ask };
                events.push((now, Event::Cancel(side, Value::Int(rng.next(seq) as i64))));
                continue;
            }
            let side = if rng.next(2) == 0 { Side::Bid } else { Side::Ask };
            let skill = Value::Text(["code", "write", "plan"][rng.next(3) as usize].to_string());
            let price = 10 + rng.next(10) as i64;
            let expires_at = (rng.next(4) == 0).then(|| now + rng.next(20) as i64);
            events.push((
                now,
                Event::Order(Order {
                    seq,
                    side,
                    id: Value::Int(seq as i64),
                    price: price as f64,
                    remaining: 1 + rng.next(5) as i64,
                    expires_at,
                    bucket: match &skill {
                        Value::Text(s) => s.as_bytes().to_vec(),
                        _ => vec![],
                    },
                    row: vec![skill, Value::Int(price)],
                    partition: 0,
                    offset: seq,
                }),
            ));
        }
        events
    }

    fn run_book(events: &[(i64, Event)]) -> Vec<(u64, u64, i64, Value)> {
        let mut book = Book::default();
        let mut changes = Vec::new();
        let mut out = Vec::new();
        for (now, e) in events {
            match e {
                Event::Cancel(side, id) => {
                    book.expire(*now, &mut changes);
                    book.cancel(*side, id, &mut changes);
                }
                Event::Order(o) => {
                    for f in book.submit(o.clone(), *now, &SkillRule, &mut changes).unwrap() {
                        out.push((f.bid.2, f.ask.2, f.quantity, f.price));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_brute_force_reference_on_random_sequences() {
        let mut rng = Rng(42);
        for round in 0..3000 {
            let events = random_events(&mut rng, 5 + (round % 60));
            assert_eq!(run_book(&events), reference(&events), "round {round}: {events:?}");
        }
    }

    #[test]
    fn reloading_resting_orders_changes_nothing() {
        let mut rng = Rng(7);
        let events = random_events(&mut rng, 400);
        let (first, second) = events.split_at(200);
        let mut book = Book::default();
        let mut changes = Vec::new();
        let mut fills = Vec::new();
        for (now, e) in first {
            match e {
                Event::Cancel(s, id) => {
                    book.expire(*now, &mut changes);
                    book.cancel(*s, id, &mut changes);
                }
                Event::Order(o) => fills.extend(book.submit(o.clone(), *now, &SkillRule, &mut changes).unwrap()),
            }
        }
        // Rebuild from the persisted changes alone, as after a restart.
        let mut stored: BTreeMap<(Side, u64), Order> = BTreeMap::new();
        for c in changes.drain(..) {
            match c {
                Change::Put(o) => {
                    stored.insert((o.side, o.seq), o);
                }
                Change::Remove(s, seq) => {
                    stored.remove(&(s, seq));
                }
            }
        }
        let mut reloaded = Book::default();
        stored.into_values().for_each(|o| reloaded.insert(o));
        for (now, e) in second {
            let (a, b) = match e {
                Event::Cancel(s, id) => {
                    book.expire(*now, &mut changes);
                    reloaded.expire(*now, &mut changes);
                    assert_eq!(book.cancel(*s, id, &mut changes), reloaded.cancel(*s, id, &mut changes));
                    continue;
                }
                Event::Order(o) => (
                    book.submit(o.clone(), *now, &SkillRule, &mut changes).unwrap(),
                    reloaded.submit(o.clone(), *now, &SkillRule, &mut changes).unwrap(),
                ),
            };
            assert_eq!(a, b);
        }
    }
}
