//! Running consumer-group and work-queue statements in a session.
//!
//! A session joins a group with `SUBSCRIBE` and holds a [`Membership`] until
//! `UNSUBSCRIBE` or until the session ends (its drop leaves the group at
//! once). Offset commits, ACKs and NACKs join the session's transaction,
//! so they land in the same write as the transaction's appends; `CLAIM`
//! and group creation are durable at once, like sequence calls in
//! Postgres.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brikk_storage::codec::{encode_row, Record, Value};
use brikk_storage::groups::{Claim, DEFAULT_MAX_DELIVERIES, DEFAULT_SESSION_TIMEOUT_MICROS};
use brikk_storage::{
    now_micros, Append, ChunkHint, ColumnDef, ColumnType, Group, GroupDef, GroupMode, GroupWrite, MemberId, StartAt,
    Store, StreamDef, StreamHandle, StreamId, WriteSet,
};
use datafusion::arrow::array::{ArrayRef, Int32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;

use crate::catalog::scan::to_batch;
use crate::catalog::stream_columns::StreamColumns;
use crate::catalog::stream_table::stream_schema;
use crate::error::{Error, ObjectKind, Result};
use crate::session::exec::{command, Session};
use crate::session::output::Output;
use crate::sql::groups::{Arg, GroupOptions, GroupStatement, ResetTo};

/// A session's seat in a consumer group; leaving is automatic on drop.
pub(crate) struct Membership {
    pub(crate) group: Arc<Group>,
    pub(crate) member: MemberId,
    name: Option<String>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.group.leave(self.member);
    }
}

/// What a session knows about groups: its memberships, its consumer name in
/// each work queue, and where its next FETCH starts looking.
#[derive(Default)]
pub(crate) struct SessionGroups {
    memberships: HashMap<(StreamId, String), Membership>,
    claimants: HashMap<(StreamId, String), String>,
    rotation: usize,
    anonymous: String,
    /// Where this session's FETCHes stopped in each partition, so the next
    /// one starts there without looking for its chunk.
    hints: HashMap<(StreamId, u32), ChunkHint>,
}

static NEXT_CONSUMER: AtomicU64 = AtomicU64::new(1);

impl SessionGroups {
    pub(crate) fn new() -> SessionGroups {
        let n = NEXT_CONSUMER.fetch_add(1, Ordering::Relaxed);
        SessionGroups { anonymous: format!("consumer-{}-{n}", std::process::id()), ..Default::default() }
    }
}

/// Columns of every dead-letter stream.
pub fn dead_letter_columns() -> Vec<ColumnDef> {
    let col = |name: &str, ty| ColumnDef {
        name: name.into(),
        ty,
        nullable: true,
        default: None,
        identity: None,
        missing: None,
    };
    vec![
        col("group_name", ColumnType::Text),
        col("source_partition", ColumnType::Integer),
        col("source_offset", ColumnType::BigInt),
        col("deliveries", ColumnType::Integer),
        col("reason", ColumnType::Text),
        col("record", ColumnType::Text),
    ]
}

/// The rows `CLAIM` returns: the stream's columns with `_deliveries` after
/// the system columns.
pub fn claim_schema(stream: &StreamHandle) -> SchemaRef {
    let base = stream_schema(stream);
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.insert(4, Field::new("_deliveries", DataType::Int32, false));
    Arc::new(Schema::new(fields))
}

/// The result schema of a group statement, for Describe.
pub(crate) fn result_schema(store: &Store, stmt: &GroupStatement) -> Result<Option<SchemaRef>> {
    Ok(match stmt {
        GroupStatement::Fetch { stream, .. } => Some(stream_schema(find_stream(store, stream)?.as_ref())),
        GroupStatement::Claim { stream, .. } => Some(claim_schema(find_stream(store, stream)?.as_ref())),
        _ => None,
    })
}

/// The stream a group statement names; a table's name stands for its
/// changelog, so agents can consume a table's changes as a group.
fn find_stream(store: &Store, name: &str) -> Result<Arc<StreamHandle>> {
    store
        .stream(name)
        .or_else(|| store.table(name).map(|t| t.changelog.clone()))
        .ok_or_else(|| Error::NotFound { kind: ObjectKind::Relation, name: name.to_string() })
}

fn group_not_found(group: &str, stream: &str) -> Error {
    Error::NotFound { kind: ObjectKind::Group, name: format!("{group}\" on \"{stream}") }
}

fn int_params(params: &[ScalarValue]) -> Vec<Option<i64>> {
    params
        .iter()
        .map(|p| match p.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(v)) => v,
            _ => None,
        })
        .collect()
}

fn count(arg: Arg, params: &[Option<i64>], what: &str) -> Result<usize> {
    let n = arg.value(params)?;
    usize::try_from(n).map_err(|_| Error::InvalidParameter(format!("{what} count must not be negative, got {n}")))
}

fn rows(schema: SchemaRef, batches: Vec<RecordBatch>) -> Output {
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    Output::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}

/// Marks a member as waiting while alive; a cancelled wait still unmarks.
struct Waiting<'a>(&'a Group, MemberId);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set_waiting(self.1, false, now_micros());
    }
}

impl Session {
    pub(crate) async fn run_group(&mut self, stmt: GroupStatement, params: &[ScalarValue]) -> Result<Output> {
        let params = int_params(params);
        let store = self.db.shared().store.clone();
        match stmt {
            GroupStatement::Create { group, stream, if_not_exists, options } => {
                let s = find_stream(&store, &stream)?;
                if store.groups().get(s.def.id, &group).is_some() {
                    if if_not_exists {
                        return Ok(command("CREATE GROUP", None));
                    }
                    return Err(Error::AlreadyExists { kind: ObjectKind::Group, name: group });
                }
                let mode = options.mode.unwrap_or(GroupMode::Subscribe);
                ensure_group(&store, &s, &group, mode, &options).await?;
                Ok(command("CREATE GROUP", None))
            }
            GroupStatement::Drop { group, stream, if_exists } => {
                let found = find_stream(&store, &stream).ok().and_then(|s| store.groups().get(s.def.id, &group));
                let Some(g) = found else {
                    if if_exists {
                        return Ok(command("DROP GROUP", None));
                    }
                    return Err(group_not_found(&group, &stream));
                };
                store.commit(WriteSet { groups: vec![GroupWrite::Drop(g)], ..Default::default() }).await?;
                Ok(command("DROP GROUP", None))
            }
            GroupStatement::Subscribe { stream, group, member, options } => {
                let s = find_stream(&store, &stream)?;
                let key = (s.def.id, group.clone());
                if let Some(m) = self.groups.memberships.get(&key) {
                    if m.name == member && Arc::ptr_eq(&m.group, &live_group(&store, &m.group)?) {
                        return Ok(command("SUBSCRIBE", None));
                    }
                }
                self.groups.memberships.remove(&key);
                let g = ensure_group(&store, &s, &group, GroupMode::Subscribe, &options).await?;
                let id = g.join(member.clone(), now_micros())?;
                self.groups.memberships.insert(key, Membership { group: g, member: id, name: member });
                Ok(command("SUBSCRIBE", None))
            }
            GroupStatement::Unsubscribe { stream, group } => {
                let s = find_stream(&store, &stream)?;
                match self.groups.memberships.remove(&(s.def.id, group.clone())) {
                    Some(_) => Ok(command("UNSUBSCRIBE", None)),
                    None => Err(not_subscribed(&stream, &group)),
                }
            }
            GroupStatement::Fetch { count: n, stream, group, wait_micros } => {
                let n = count(n, &params, "FETCH")?;
                self.fetch(&store, &stream, &group, n, wait_micros).await
            }
            GroupStatement::CommitOffsets { stream, group, offsets } => {
                let s = find_stream(&store, &stream)?;
                let m = self.membership(&store, &s, &group)?;
                let (g, member) = (m.group.clone(), m.member);
                let commits = if offsets.is_empty() {
                    g.positions(member)?
                } else {
                    let mut out = Vec::with_capacity(offsets.len());
                    for (p, o) in offsets {
                        let (p, o) = (p.value(&params)?, o.value(&params)?);
                        let p = partition_of(&s, p)?;
                        if o < 0 || o as u64 >= s.head(p) {
                            return Err(Error::InvalidParameter(format!(
                                "offset {o} is not a record of partition {p} of \"{}\" (end offset {})",
                                s.def.name,
                                s.head(p)
                            )));
                        }
                        if let Some(c) = g.committed(p).filter(|c| (o as u64) + 1 < *c) {
                            return Err(Error::InvalidParameter(format!(
                                "offset {o} of partition {p} is behind the committed offset {c}; \
                                 use ALTER GROUP {} ON {} RESET to rewind",
                                g.def.name, s.def.name
                            )));
                        }
                        let epoch = g.owned_epoch(member, p).ok_or_else(|| {
                            Error::Conflict(format!(
                                "partition {p} of \"{}\" is not owned by this member of group \"{}\"",
                                s.def.name, g.def.name
                            ))
                        })?;
                        out.push((p, o as u64 + 1, epoch));
                    }
                    out
                };
                let n = commits.len();
                let write = GroupWrite::Offsets { group: g.clone(), member, offsets: commits };
                self.write_group(write).await.inspect_err(|_| g.rewind(member))?;
                Ok(command("COMMIT OFFSETS", Some(n)))
            }
            GroupStatement::Reset { group, stream, to } => {
                let s = find_stream(&store, &stream)?;
                let g = store.groups().get(s.def.id, &group).ok_or_else(|| group_not_found(&group, &stream))?;
                let mut offsets = Vec::with_capacity(s.def.partitions as usize);
                for p in 0..s.def.partitions {
                    let (low, head) = (s.low(p), s.head(p));
                    offsets.push(match to {
                        ResetTo::Earliest => low,
                        ResetTo::Latest => head,
                        ResetTo::Offset(o) => (o as u64).clamp(low, head),
                        ResetTo::Timestamp(ts) => store.offset_for_timestamp(&s, p, ts)?.max(low),
                    });
                }
                self.write_group(GroupWrite::Reset { group: g, offsets }).await?;
                Ok(command("ALTER GROUP", None))
            }
            GroupStatement::Claim { count: n, stream, group, lease_micros, member } => {
                let n = count(n, &params, "CLAIM")?;
                self.claim(&store, &stream, &group, n, lease_micros, member).await
            }
            GroupStatement::Ack { stream, group, records, member, nack } => {
                let s = find_stream(&store, &stream)?;
                let g = store.groups().get(s.def.id, &group).ok_or_else(|| group_not_found(&group, &stream))?;
                if g.def.mode != GroupMode::Queue {
                    return Err(Error::WrongState(format!(
                        "group \"{group}\" on \"{stream}\" is a consumer group; ACK and NACK are for work queues \
                         (use COMMIT OFFSETS)"
                    )));
                }
                let claimant = member.unwrap_or_else(|| self.claimant(&s, &group));
                let mut recs = Vec::with_capacity(records.len());
                for (p, o) in records {
                    let (p, o) = (p.value(&params)?, o.value(&params)?);
                    let p = partition_of(&s, p)?;
                    let o = u64::try_from(o)
                        .map_err(|_| Error::InvalidParameter(format!("offset must not be negative, got {o}")))?;
                    recs.push((p, o));
                }
                let n = recs.len();
                let tag = if nack.is_some() { "NACK" } else { "ACK" };
                let writes = match nack {
                    None => WriteSet {
                        groups: vec![GroupWrite::Ack { group: g, claimant, records: recs }],
                        ..Default::default()
                    },
                    Some(reason) => nack_writes(&store, &g, claimant, recs, reason)?,
                };
                self.write(writes).await?;
                Ok(command(tag, Some(n)))
            }
        }
    }

    fn claimant(&mut self, s: &StreamHandle, group: &str) -> String {
        self.groups
            .claimants
            .get(&(s.def.id, group.to_string()))
            .cloned()
            .unwrap_or_else(|| self.groups.anonymous.clone())
    }

    fn membership(&self, store: &Store, s: &StreamHandle, group: &str) -> Result<&Membership> {
        let Some(m) = self.groups.memberships.get(&(s.def.id, group.to_string())) else {
            return Err(match store.groups().get(s.def.id, group) {
                Some(g) if g.def.mode == GroupMode::Queue => Error::WrongState(format!(
                    "group \"{group}\" on \"{}\" is a work queue; use CLAIM, ACK and NACK",
                    s.def.name
                )),
                _ => not_subscribed(&s.def.name, group),
            });
        };
        live_group(store, &m.group)?;
        Ok(m)
    }

    async fn fetch(
        &mut self,
        store: &Store,
        stream: &str,
        group: &str,
        n: usize,
        wait_micros: Option<i64>,
    ) -> Result<Output> {
        let s = find_stream(store, stream)?;
        let key = (s.def.id, group.to_string());
        let (g, mut member) = {
            let m = self.membership(store, &s, group)?;
            (m.group.clone(), m.member)
        };
        let schema = stream_schema(&s);
        let deadline = wait_micros.map(|w| tokio::time::Instant::now() + Duration::from_micros(w.max(0) as u64));
        loop {
            let appended = s.appended().notified();
            let changed = g.changed().notified();
            tokio::pin!(appended, changed);
            appended.as_mut().enable();
            changed.as_mut().enable();
            if g.touch(member, now_micros()).is_err() {
                // Timed out while silent: join again. Records fetched and not
                // committed before are delivered again.
                let name = self.groups.memberships.get(&key).and_then(|m| m.name.clone());
                member = g.join(name.clone(), now_micros())?;
                self.groups.memberships.insert(key.clone(), Membership { group: g.clone(), member, name });
            }
            if s.is_dropped() || !Arc::ptr_eq(&g, &live_group(store, &g)?) {
                return Err(group_not_found(group, stream));
            }
            let batches = self.fetch_once(store, &s, &g, member, n, &schema)?;
            let got: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let now = tokio::time::Instant::now();
            match deadline {
                Some(d) if got == 0 && n > 0 && now < d => {
                    g.set_waiting(member, true, now_micros());
                    let _waiting = Waiting(&g, member);
                    tokio::select! {
                        _ = appended => {}
                        _ = changed => {}
                        _ = tokio::time::sleep_until(d) => {}
                    }
                }
                _ => return Ok(rows(schema, batches)),
            }
        }
    }

    /// Reads up to `n` records from the member's partitions, starting at a
    /// rotating partition so none starves, and advances its positions.
    fn fetch_once(
        &mut self,
        store: &Store,
        s: &Arc<StreamHandle>,
        g: &Group,
        member: MemberId,
        n: usize,
        schema: &SchemaRef,
    ) -> Result<Vec<RecordBatch>> {
        let mut plan = g.fetch_plan(member)?;
        if plan.is_empty() || n == 0 {
            return Ok(vec![]);
        }
        let start = self.groups.rotation % plan.len();
        plan.rotate_left(start);
        self.groups.rotation = self.groups.rotation.wrapping_add(1);
        let projection: Vec<usize> = (0..schema.fields().len()).collect();
        let mut batches = Vec::new();
        let mut left = n;
        for (p, from, epoch) in plan {
            if left == 0 {
                break;
            }
            let hint = self.groups.hints.entry((s.def.id, p)).or_default();
            let capacity = left.min(s.head(p).saturating_sub(from) as usize);
            let mut columns = StreamColumns::new(schema, &projection, p, s, capacity);
            let Some(last) = store.read_into(s, p, from, u64::MAX, left, hint, &mut columns)? else { continue };
            if !g.advance(member, p, epoch, last + 1) {
                continue; // reassigned meanwhile: not ours to deliver
            }
            let batch = columns.finish()?;
            left -= batch.num_rows();
            batches.push(batch);
        }
        Ok(batches)
    }

    async fn claim(
        &mut self,
        store: &Store,
        stream: &str,
        group: &str,
        n: usize,
        lease_micros: i64,
        member: Option<String>,
    ) -> Result<Output> {
        let s = find_stream(store, stream)?;
        let g = ensure_group(store, &s, group, GroupMode::Queue, &GroupOptions::default()).await?;
        let claimant = match member {
            Some(m) => {
                self.groups.claimants.insert((s.def.id, group.to_string()), m.clone());
                m
            }
            None => self.claimant(&s, group),
        };
        let schema = claim_schema(&s);
        if n == 0 {
            return Ok(rows(schema, vec![]));
        }
        let batch = g.claim(&claimant, n, lease_micros, now_micros())?;
        let mut appends = Vec::new();
        let dead_stream = store.stream(&g.def.dead_letter);
        for (p, o, c) in &batch.dead {
            let record = read_one(store, &s, *p, *o)?;
            let reason = c.reason.clone().unwrap_or_else(|| {
                if record.is_none() {
                    "deleted by retention before it was acknowledged".into()
                } else {
                    format!("lease expired after {} deliveries", c.deliveries)
                }
            });
            if let (Some(record), Some(dl)) = (record, &dead_stream) {
                appends.push(dead_letter(&g, dl, &s, *p, *o, c, &reason, &record)?);
            }
        }
        let delivered: Vec<(u32, u64, Claim)> = batch.delivered.clone();
        let write = GroupWrite::Claimed {
            group: g.clone(),
            claims: batch.delivered,
            cursors: batch.cursors,
            dead: batch.dead.iter().map(|(p, o, _)| (*p, *o)).collect(),
        };
        store.commit(WriteSet { appends, groups: vec![write], ..Default::default() }).await?;
        // Read the claimed records, per partition, in offset order.
        let mut by_partition: BTreeMap<u32, Vec<(u64, u32)>> = BTreeMap::new();
        for (p, o, c) in &delivered {
            by_partition.entry(*p).or_default().push((*o, c.deliveries));
        }
        let base = stream_schema(&s);
        let projection: Vec<usize> = (0..base.fields().len()).collect();
        let mut batches = Vec::new();
        for (p, wanted) in by_partition {
            let (lo, hi) = (wanted[0].0, wanted[wanted.len() - 1].0 + 1);
            let want: HashMap<u64, u32> = wanted.iter().copied().collect();
            let records: Vec<Record> = if hi - lo <= 4 * wanted.len() as u64 + 64 {
                store.read(&s, p, lo, hi, usize::MAX)?.into_iter().filter(|r| want.contains_key(&r.offset)).collect()
            } else {
                let mut out = Vec::with_capacity(wanted.len());
                for (o, _) in &wanted {
                    out.extend(read_one(store, &s, p, *o)?);
                }
                out
            };
            let deliveries: Vec<i32> = records.iter().map(|r| want[&r.offset] as i32).collect();
            let b = to_batch(&base, &projection, p, &s, records)?;
            let mut columns: Vec<ArrayRef> = b.columns().to_vec();
            columns.insert(4, Arc::new(Int32Array::from(deliveries)));
            batches.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Internal(e.to_string()))?);
        }
        Ok(rows(schema, batches))
    }

    /// Adds a group change to the open transaction, or commits it now.
    async fn write_group(&mut self, write: GroupWrite) -> Result<()> {
        self.write(WriteSet { groups: vec![write], ..Default::default() }).await.map(drop)
    }
}

fn not_subscribed(stream: &str, group: &str) -> Error {
    Error::WrongState(format!(
        "this session is not a member of group \"{group}\" on \"{stream}\"; run SUBSCRIBE {stream} GROUP {group} first"
    ))
}

/// The registered group `g` is, if it was not dropped.
fn live_group(store: &Store, g: &Arc<Group>) -> Result<Arc<Group>> {
    store
        .groups()
        .get(g.def.stream, &g.def.name)
        .filter(|live| Arc::ptr_eq(live, g))
        .ok_or_else(|| group_not_found(&g.def.name, &g.stream.def.name))
}

fn partition_of(s: &StreamHandle, p: i64) -> Result<u32> {
    u32::try_from(p).ok().filter(|p| *p < s.def.partitions).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "partition {p} does not exist in \"{}\" (partitions 0 to {})",
            s.def.name,
            s.def.partitions - 1
        ))
    })
}

fn read_one(store: &Store, s: &StreamHandle, p: u32, o: u64) -> Result<Option<Record>> {
    Ok(store.read(s, p, o, o + 1, 1)?.pop())
}

/// The group, created with `options` (and its dead-letter stream, for a
/// queue) if it does not exist yet.
async fn ensure_group(
    store: &Store,
    s: &Arc<StreamHandle>,
    name: &str,
    mode: GroupMode,
    options: &GroupOptions,
) -> Result<Arc<Group>> {
    if let Some(g) = store.groups().get(s.def.id, name) {
        return Ok(g);
    }
    let def = GroupDef {
        stream: s.def.id,
        name: name.to_string(),
        mode,
        start: options.start.unwrap_or(StartAt::Earliest),
        session_timeout_micros: options.session_timeout_micros.unwrap_or(DEFAULT_SESSION_TIMEOUT_MICROS),
        max_deliveries: options.max_deliveries.unwrap_or(DEFAULT_MAX_DELIVERIES),
        dead_letter: options.dead_letter.clone().unwrap_or_else(|| format!("{}_dead_letters", s.def.name)),
        created_at_micros: now_micros(),
    };
    def.validate()?;
    if mode == GroupMode::Queue {
        ensure_dead_letter_stream(store, &def.dead_letter).await?;
    }
    let g = Arc::new(Group::new(def, s.clone()));
    store.commit(WriteSet { groups: vec![GroupWrite::Create(g)], ..Default::default() }).await?;
    store.groups().get(s.def.id, name).ok_or_else(|| group_not_found(name, &s.def.name))
}

async fn ensure_dead_letter_stream(store: &Store, name: &str) -> Result<()> {
    let columns = dead_letter_columns();
    if let Some(existing) = store.stream(name) {
        let same = existing.def.columns.len() == columns.len()
            && existing.def.columns.iter().zip(&columns).all(|(a, b)| a.name == b.name && a.ty == b.ty);
        if !same {
            return Err(Error::InvalidParameter(format!(
                "dead-letter stream \"{name}\" exists with other columns; choose another with dead_letter = '...'"
            )));
        }
        return Ok(());
    }
    let def = StreamDef {
        id: StreamId(0),
        name: name.to_string(),
        columns,
        partitions: 1,
        key_column: None,
        retention_micros: None,
        created_at_micros: now_micros(),
        retention_bytes: None,
        archive: None,
        changelog_of: None,
        original_columns: None,
    };
    store.create_stream(def, true).await?;
    Ok(())
}

/// A dead-letter record for (p, o) of `s`: where it came from, why, and the
/// row as JSON.
#[allow(clippy::too_many_arguments)]
fn dead_letter(
    g: &Group,
    dl: &StreamHandle,
    s: &StreamHandle,
    p: u32,
    o: u64,
    c: &Claim,
    reason: &str,
    record: &Record,
) -> Result<Append> {
    let values = vec![
        Value::Text(g.def.name.clone()),
        Value::Int(p as i64),
        Value::Int(o as i64),
        Value::Int(c.deliveries as i64),
        Value::Text(reason.to_string()),
        Value::Text(row_json(&s.def, record).to_string()),
    ];
    let encoded = encode_row(dl.types(), record.key.as_deref(), &values)?;
    Ok(Append { stream: dl.def.id, partition: 0, record: encoded })
}

/// A record's row as a JSON object, column name to value.
pub(crate) fn row_json(def: &StreamDef, record: &Record) -> serde_json::Value {
    let mut row = serde_json::Map::new();
    for (col, v) in def.columns.iter().zip(&record.values) {
        let value = match (col.ty, v) {
            // JSON columns nest as JSON, not as a string of JSON.
            (ColumnType::Json | ColumnType::Jsonb, Value::Text(t)) => {
                serde_json::from_str(t).unwrap_or_else(|_| json_value(v))
            }
            _ => json_value(v),
        };
        row.insert(col.name.clone(), value);
    }
    serde_json::Value::Object(row)
}

fn json_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
        Value::Text(t) => J::String(t.clone()),
        Value::Bytes(b) => J::String(format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())),
        Value::Timestamp(us) => J::from(*us),
        Value::Date(d) => J::from(*d),
        Value::Numeric { .. } => {
            let text = v.key_text().unwrap_or_default();
            serde_json::from_str(&text).unwrap_or(J::String(text))
        }
    }
}

/// NACK writes: records past `max_deliveries` go to the dead-letter stream
/// now; the others become claimable again.
fn nack_writes(
    store: &Store,
    g: &Arc<Group>,
    claimant: String,
    records: Vec<(u32, u64)>,
    reason: Option<String>,
) -> Result<WriteSet> {
    let mut writes = WriteSet::default();
    let (mut retry, mut dead) = (Vec::new(), Vec::new());
    let dl = store.stream(&g.def.dead_letter);
    for (p, o) in records {
        match g.claim_of(p, o) {
            Some(c) if c.claimant == claimant && c.deliveries >= g.def.max_deliveries && dl.is_some() => {
                let why = reason.clone().unwrap_or_else(|| format!("rejected after {} deliveries", c.deliveries));
                if let Some(record) = read_one(store, &g.stream, p, o)? {
                    let dl = dl.as_ref().expect("checked");
                    writes.appends.push(dead_letter(g, dl, &g.stream, p, o, &c, &why, &record)?);
                }
                dead.push((p, o));
            }
            _ => retry.push((p, o)),
        }
    }
    if !dead.is_empty() {
        writes.groups.push(GroupWrite::Ack { group: g.clone(), claimant: claimant.clone(), records: dead });
    }
    if !retry.is_empty() {
        writes.groups.push(GroupWrite::Nack { group: g.clone(), claimant, records: retry, reason });
    }
    Ok(writes)
}
