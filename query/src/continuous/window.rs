//! Windowed aggregation: `FROM TUMBLE(s, t, size)` and
//! `FROM HOP(s, t, slide, size)` with `GROUP BY window_start, …`.
//!
//! Each step, a pre-projection planned by DataFusion over the step's
//! records yields the time, the group keys and the aggregate arguments; the
//! operator folds them into one accumulator set per open (window, key) and
//! emits a window's rows when it **closes**:
//!
//! - over `_timestamp` (commit time), when a commit at or after the
//!   window's end has been made — commit times only grow, so no record is
//!   ever late; an idle query makes that commit itself when a window's end
//!   has passed;
//! - over an event-time column, when the largest event time seen, minus
//!   the query's `lateness`, reaches the window's end. A record whose every
//!   window has closed is **late**: it is dropped and counted
//!   (`brikk_queries.records_late`).
//!
//! Open windows are operator state: each changed (window, key) is written
//! with the step, so a restarted query continues them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use brikk_storage::StateWrite;
use datafusion::arrow::array::{Array, ArrayRef, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::continuous::def::operator_prefix;
use crate::continuous::input::InputRecord;
use crate::continuous::operator::{MapOperator, Operator, StepOutput};
use crate::error::{Error, Result};
use crate::types::UTC;

/// An aggregate function a window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

impl AggKind {
    pub fn by_name(name: &str, star: bool) -> Option<AggKind> {
        Some(match (name, star) {
            ("count", true) => AggKind::CountStar,
            ("count", false) => AggKind::Count,
            ("sum", false) => AggKind::Sum,
            ("min", false) => AggKind::Min,
            ("max", false) => AggKind::Max,
            ("avg", false) => AggKind::Avg,
            _ => return None,
        })
    }

    fn output_type(self, arg: &DataType) -> DataType {
        match self {
            AggKind::CountStar | AggKind::Count => DataType::Int64,
            AggKind::Avg => DataType::Float64,
            AggKind::Sum if arg.is_integer() => DataType::Int64,
            AggKind::Sum => DataType::Float64,
            AggKind::Min | AggKind::Max => arg.clone(),
        }
    }
}

/// What each output column is.
#[derive(Debug, Clone)]
pub enum OutputColumn {
    WindowStart,
    WindowEnd,
    /// The i-th group key.
    Key(usize),
    /// The i-th aggregate.
    Agg(usize),
}

/// The window's shape: `size` long, starting every `slide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub size: i64,
    pub slide: i64,
    /// Over `_timestamp` (closes by commit time) or an event-time column.
    pub commit_time: bool,
    pub lateness: i64,
}

impl WindowSpec {
    /// Starts of the windows that contain time `t`, oldest first.
    fn starts(&self, t: i64) -> Vec<i64> {
        let last = t.div_euclid(self.slide) * self.slide;
        let mut out = Vec::new();
        let mut s = last;
        while s > t - self.size {
            out.push(s);
            s -= self.slide;
        }
        out.reverse();
        out
    }
}

/// A small serializable value for keys and accumulators, totally ordered
/// (floats by `total_cmp`) so it can key a map.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum V {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl V {
    fn rank(&self) -> u8 {
        match self {
            V::Null => 0,
            V::Bool(_) => 1,
            V::Int(_) | V::Float(_) => 2,
            V::Text(_) => 3,
        }
    }
}

impl Ord for V {
    fn cmp(&self, other: &V) -> std::cmp::Ordering {
        match (self, other) {
            (V::Bool(a), V::Bool(b)) => a.cmp(b),
            (V::Int(a), V::Int(b)) => a.cmp(b),
            (V::Text(a), V::Text(b)) => a.cmp(b),
            (a, b) if a.rank() == 2 && b.rank() == 2 => a.num().unwrap_or(0.0).total_cmp(&b.num().unwrap_or(0.0)),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl PartialOrd for V {
    fn partial_cmp(&self, other: &V) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for V {
    fn eq(&self, other: &V) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for V {}

impl V {
    fn of(s: &ScalarValue) -> Result<V> {
        use brikk_storage::Value;
        Ok(match crate::types::value_of_scalar(s) {
            Some(Value::Null) => V::Null,
            Some(Value::Boolean(b)) => V::Bool(b),
            Some(Value::Int(i)) | Some(Value::Timestamp(i)) => V::Int(i),
            Some(Value::Date(d)) => V::Int(d as i64),
            Some(Value::Float(f)) => V::Float(f),
            Some(v @ Value::Numeric { .. }) => V::Float(crate::market::expr::num(&v)),
            Some(Value::Text(t)) => V::Text(t),
            Some(Value::Bytes(_)) | None => {
                return Err(Error::Unsupported(format!(
                    "values of type {} in a windowed aggregation",
                    crate::types::pg_name_of(&s.data_type())
                )))
            }
        })
    }

    fn to_scalar(&self, t: &DataType) -> Result<ScalarValue> {
        let s = match self {
            V::Null => return Ok(ScalarValue::try_from(t)?),
            V::Bool(b) => ScalarValue::Boolean(Some(*b)),
            V::Int(i) => ScalarValue::Int64(Some(*i)),
            V::Float(f) => ScalarValue::Float64(Some(*f)),
            V::Text(s) => ScalarValue::Utf8(Some(s.clone())),
        };
        Ok(match (self, t) {
            (V::Int(i), DataType::Timestamp(TimeUnit::Microsecond, tz)) => {
                ScalarValue::TimestampMicrosecond(Some(*i), tz.clone())
            }
            (V::Int(i), DataType::Date32) => ScalarValue::Date32(Some(*i as i32)),
            _ if s.data_type() == *t => s,
            _ => s.cast_to(t)?,
        })
    }

    fn num(&self) -> Option<f64> {
        match self {
            V::Int(i) => Some(*i as f64),
            V::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// One accumulator's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Acc {
    Count(i64),
    SumInt(Option<i64>),
    SumFloat(Option<f64>),
    Min(V),
    Max(V),
    Avg(f64, i64),
}

impl Acc {
    fn new(kind: AggKind, arg: &DataType) -> Acc {
        match kind {
            AggKind::CountStar | AggKind::Count => Acc::Count(0),
            AggKind::Sum if arg.is_integer() => Acc::SumInt(None),
            AggKind::Sum => Acc::SumFloat(None),
            AggKind::Min => Acc::Min(V::Null),
            AggKind::Max => Acc::Max(V::Null),
            AggKind::Avg => Acc::Avg(0.0, 0),
        }
    }

    fn add(&mut self, kind: AggKind, v: &V) -> Result<()> {
        if *v == V::Null && kind != AggKind::CountStar {
            return Ok(());
        }
        match self {
            Acc::Count(n) => *n += 1,
            Acc::SumInt(s) => {
                let V::Int(x) = v else { return Err(Error::Internal("sum of a non-integer".into())) };
                *s = Some(
                    s.unwrap_or(0).checked_add(*x).ok_or_else(|| Error::OutOfRange("bigint out of range".into()))?,
                );
            }
            Acc::SumFloat(s) => *s = Some(s.unwrap_or(0.0) + v.num().unwrap_or(0.0)),
            Acc::Min(m) => {
                if *m == V::Null || v.partial_cmp(m) == Some(std::cmp::Ordering::Less) {
                    *m = v.clone();
                }
            }
            Acc::Max(m) => {
                if *m == V::Null || v.partial_cmp(m) == Some(std::cmp::Ordering::Greater) {
                    *m = v.clone();
                }
            }
            Acc::Avg(s, n) => {
                *s += v.num().unwrap_or(0.0);
                *n += 1;
            }
        }
        Ok(())
    }

    fn result(&self) -> V {
        match self {
            Acc::Count(n) => V::Int(*n),
            Acc::SumInt(s) => s.map(V::Int).unwrap_or(V::Null),
            Acc::SumFloat(s) => s.map(V::Float).unwrap_or(V::Null),
            Acc::Min(v) | Acc::Max(v) => v.clone(),
            Acc::Avg(_, 0) => V::Null,
            Acc::Avg(s, n) => V::Float(s / *n as f64),
        }
    }
}

/// Open windows: (window start, key values) → accumulators.
type Groups = BTreeMap<(i64, Vec<V>), Vec<Acc>>;

/// The state of a window operator besides its groups.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    /// Everything ending at or before this has been emitted.
    closed_until: i64,
    /// The largest event time seen.
    max_time: Option<i64>,
}

pub struct WindowOperator {
    id: u64,
    spec: WindowSpec,
    /// The pre-projection: time, keys, aggregate arguments.
    pre: MapOperator,
    aggs: Vec<AggKind>,
    columns: Vec<OutputColumn>,
    key_types: Vec<DataType>,
    arg_types: Vec<DataType>,
    schema: SchemaRef,
    groups: Groups,
    meta: Meta,
}

fn group_key(id: u64, start: i64, key: &[V]) -> Vec<u8> {
    let mut k = operator_prefix(id, b'w');
    k.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&serde_json::to_vec(key).expect("key serializes"));
    k
}

fn meta_key(id: u64) -> Vec<u8> {
    operator_prefix(id, b'm')
}

impl WindowOperator {
    /// `pre` yields the time column, then the keys, then one argument per
    /// aggregate (a constant for `count(*)`); `names` are the output names.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        spec: WindowSpec,
        pre: MapOperator,
        keys: usize,
        aggs: Vec<AggKind>,
        columns: Vec<OutputColumn>,
        names: Vec<String>,
        store: &brikk_storage::Store,
    ) -> Result<WindowOperator> {
        let pre_schema = pre.output_schema();
        let time_type = pre_schema.field(0).data_type().clone();
        let tz = match &time_type {
            DataType::Timestamp(_, tz) => tz.clone(),
            other => {
                return Err(Error::TypeMismatch(format!(
                    "the time column of a window must be a timestamp, not {}",
                    crate::types::pg_name_of(other)
                )))
            }
        };
        let key_types: Vec<DataType> = (0..keys).map(|i| pre_schema.field(1 + i).data_type().clone()).collect();
        let arg_types: Vec<DataType> =
            (0..aggs.len()).map(|i| pre_schema.field(1 + keys + i).data_type().clone()).collect();
        let window_type =
            DataType::Timestamp(TimeUnit::Microsecond, tz.or_else(|| spec.commit_time.then(|| UTC.into())));
        let fields: Vec<Field> = columns
            .iter()
            .zip(&names)
            .map(|(c, n)| match c {
                OutputColumn::WindowStart | OutputColumn::WindowEnd => Field::new(n, window_type.clone(), false),
                OutputColumn::Key(i) => Field::new(n, key_types[*i].clone(), true),
                OutputColumn::Agg(i) => Field::new(n, aggs[*i].output_type(&arg_types[*i]), true),
            })
            .collect();
        let mut op = WindowOperator {
            id,
            spec,
            pre,
            aggs,
            columns,
            key_types,
            arg_types,
            schema: Arc::new(Schema::new(fields)),
            groups: BTreeMap::new(),
            meta: Meta { closed_until: i64::MIN, max_time: None },
        };
        op.load(store)?;
        Ok(op)
    }

    fn load(&mut self, store: &brikk_storage::Store) -> Result<()> {
        let corrupt =
            |e: serde_json::Error| Error::Storage(brikk_storage::Error::Corrupt(format!("window state: {e}")));
        if let Some(m) = store.state_get(&meta_key(self.id))? {
            self.meta = serde_json::from_slice(&m).map_err(corrupt)?;
        }
        let prefix = operator_prefix(self.id, b'w');
        for (k, v) in store.state_scan(&prefix)? {
            let rest = &k[prefix.len()..];
            let start = (u64::from_be_bytes(rest[..8].try_into().map_err(|_| Error::Internal("window key".into()))?)
                ^ (1 << 63)) as i64;
            let key: Vec<V> = serde_json::from_slice(&rest[8..]).map_err(corrupt)?;
            let accs: Vec<Acc> = serde_json::from_slice(&v).map_err(corrupt)?;
            self.groups.insert((start, key), accs);
        }
        Ok(())
    }

    /// Emits every window ending at or before `until`, oldest first.
    fn close(&mut self, until: i64, out: &mut StepOutput) -> Result<()> {
        if until <= self.meta.closed_until {
            return Ok(());
        }
        let closing: Vec<(i64, Vec<V>)> =
            self.groups.keys().filter(|(start, _)| start + self.spec.size <= until).cloned().collect();
        for (start, key) in closing {
            let accs = self.groups.remove(&(start, key.clone())).expect("group exists");
            let mut row = Vec::with_capacity(self.columns.len());
            for (c, f) in self.columns.iter().zip(self.schema.fields()) {
                row.push(match c {
                    OutputColumn::WindowStart => V::Int(start).to_scalar(f.data_type())?,
                    OutputColumn::WindowEnd => V::Int(start + self.spec.size).to_scalar(f.data_type())?,
                    OutputColumn::Key(i) => key[*i].to_scalar(&self.key_types[*i])?,
                    OutputColumn::Agg(i) => accs[*i].result().to_scalar(f.data_type())?,
                });
            }
            out.rows.push(row);
            out.state.push(StateWrite::Delete(group_key(self.id, start, &key)));
        }
        self.meta.closed_until = until;
        out.state.push(StateWrite::Put(meta_key(self.id), serde_json::to_vec(&self.meta).expect("meta serializes")));
        Ok(())
    }
}

fn times(a: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let t = datafusion::arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    let t = t
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| Error::Internal("window time column".into()))?;
    Ok((0..t.len()).map(|i| t.is_valid(i).then(|| t.value(i))).collect())
}

#[async_trait]
impl Operator for WindowOperator {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn inputs(&self) -> Vec<Arc<brikk_storage::StreamHandle>> {
        self.pre.inputs()
    }

    async fn process(&mut self, records: Vec<InputRecord>, out: &mut StepOutput) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let batches = self.pre.run(&records).await?;
        let nkeys = self.key_types.len();
        let mut dirty: BTreeSet<(i64, Vec<V>)> = BTreeSet::new();
        for b in &batches {
            let t = times(b.column(0))?;
            for (row, time) in t.into_iter().enumerate() {
                // A row without a time belongs to no window.
                let Some(time) = time else { continue };
                let key: Vec<V> = (0..nkeys)
                    .map(|k| V::of(&ScalarValue::try_from_array(b.column(1 + k), row)?))
                    .collect::<Result<_>>()?;
                let args: Vec<V> = (0..self.aggs.len())
                    .map(|a| V::of(&ScalarValue::try_from_array(b.column(1 + nkeys + a), row)?))
                    .collect::<Result<_>>()?;
                let mut placed = false;
                for start in self.spec.starts(time) {
                    if start + self.spec.size <= self.meta.closed_until {
                        continue; // this window has been emitted
                    }
                    placed = true;
                    let accs = self.groups.entry((start, key.clone())).or_insert_with(|| {
                        self.aggs.iter().zip(&self.arg_types).map(|(k, t)| Acc::new(*k, t)).collect()
                    });
                    for ((acc, kind), v) in accs.iter_mut().zip(&self.aggs).zip(&args) {
                        acc.add(*kind, v)?;
                    }
                    dirty.insert((start, key.clone()));
                }
                if !placed {
                    out.late += 1;
                }
                self.meta.max_time = Some(self.meta.max_time.map_or(time, |m| m.max(time)));
            }
        }
        for (start, key) in &dirty {
            if let Some(accs) = self.groups.get(&(*start, key.clone())) {
                out.state.push(StateWrite::Put(
                    group_key(self.id, *start, key),
                    serde_json::to_vec(accs).expect("accumulators serialize"),
                ));
            }
        }
        // Event time closes windows as it advances; commit time closes them
        // through `on_time` as well, since every later record is newer.
        if let Some(max) = self.meta.max_time {
            let until = if self.spec.commit_time { max } else { max - self.spec.lateness };
            self.close(until, out)?;
        }
        out.state.push(StateWrite::Put(meta_key(self.id), serde_json::to_vec(&self.meta).expect("meta serializes")));
        Ok(())
    }

    fn on_time(&mut self, watermark: i64, out: &mut StepOutput) -> Result<()> {
        if self.spec.commit_time {
            self.close(watermark, out)?;
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<i64> {
        if !self.spec.commit_time {
            return None;
        }
        self.groups.keys().map(|(start, _)| start + self.spec.size).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_containing_a_time() {
        let tumble = WindowSpec { size: 10, slide: 10, commit_time: false, lateness: 0 };
        assert_eq!(tumble.starts(0), vec![0]);
        assert_eq!(tumble.starts(19), vec![10]);
        assert_eq!(tumble.starts(-1), vec![-10]);
        let hop = WindowSpec { size: 10, slide: 5, commit_time: false, lateness: 0 };
        assert_eq!(hop.starts(12), vec![5, 10]);
        assert_eq!(hop.starts(10), vec![5, 10]);
    }
}
