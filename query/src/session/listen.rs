//! `LISTEN`, `UNLISTEN` and `NOTIFY`, and the push of stream records.
//!
//! Every session may take a receiver of [`Notification`]s
//! ([`Session::notifications`]); the server writes what arrives there to the
//! client as NotificationResponse messages, also while the connection is
//! idle. `LISTEN name` starts one task per channel that forwards:
//!
//! - `NOTIFY name, 'payload'` from any session, as in Postgres (a NOTIFY
//!   inside a transaction is sent at COMMIT and dropped at ROLLBACK);
//! - if `name` is a stream, every record appended to it after the LISTEN,
//!   as a JSON payload, in offset order per partition.
//!
//! Stream records are read from the log, not buffered by writers: a slow
//! or stalled listener only falls behind (its channel to the connection is
//! bounded) and catches up from the log by offset when it reads again;
//! writers and other listeners never wait for it. A listener that falls
//! behind retention gets one `{"skipped_to": offset}` notification per
//! partition where records were deleted before it read them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use brikk_storage::codec::Record;
use brikk_storage::{Store, StreamHandle};
use datafusion::sql::sqlparser::ast;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::session::groups::row_json;

/// Largest payload sent whole; Postgres limits NOTIFY payloads to 8000 bytes.
pub const MAX_PAYLOAD: usize = 8000;
/// Notifications queued per session before its forwarders wait.
const SESSION_QUEUE: usize = 1024;
/// NOTIFY messages a channel keeps for slow listeners.
const CHANNEL_QUEUE: usize = 4096;
/// Records read from the log per partition and step.
const READ_BATCH: usize = 256;

/// One notification for a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The session that sent it (its `pg_backend_pid()`, the process id
    /// its client got at start-up); for a stream's records, the server's
    /// own process id.
    pub pid: i32,
    pub channel: String,
    pub payload: String,
}

/// The NOTIFY channels of a database.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Notification>>>,
}

impl Hub {
    fn subscribe(&self, channel: &str) -> broadcast::Receiver<Notification> {
        let mut map = self.channels.lock().expect("hub lock");
        map.entry(channel.to_string()).or_insert_with(|| broadcast::channel(CHANNEL_QUEUE).0).subscribe()
    }

    /// Sends `payload` on `channel` from the session with process id `pid`.
    pub(crate) fn notify(&self, channel: &str, payload: &str, pid: i32) {
        let mut map = self.channels.lock().expect("hub lock");
        if let Some(tx) = map.get(channel) {
            let n = Notification { pid, channel: channel.into(), payload: payload.into() };
            if tx.send(n).is_err() {
                map.remove(channel); // nobody listens any more
            }
        }
    }
}

/// A session's listening state.
#[derive(Default)]
pub(crate) struct Listening {
    tx: Option<mpsc::Sender<Notification>>,
    tasks: HashMap<String, JoinHandle<()>>,
    /// NOTIFYs of the open transaction, sent at COMMIT.
    pub(crate) pending: Vec<(String, String)>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.tasks.values().for_each(JoinHandle::abort);
    }
}

impl Listening {
    /// A new receiver; notifications for an earlier one stop.
    pub(crate) fn receiver(&mut self) -> mpsc::Receiver<Notification> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.tx = Some(tx);
        rx
    }

    /// Starts forwarding `channel` (and the stream of that name, or the
    /// changes of the table of that name, if any).
    pub(crate) fn listen(&mut self, hub: &Hub, store: &Store, channel: &str) {
        if self.tasks.contains_key(channel) {
            return;
        }
        let Some(tx) = self.tx.clone() else {
            // Nobody takes notifications from this session (an embedded
            // session that never asked): LISTEN is accepted and does nothing.
            return;
        };
        let notices = hub.subscribe(channel);
        // A table's channel carries its changes: its changelog's records.
        let stream = store.stream(channel).or_else(|| store.table(channel).map(|t| t.changelog.clone()));
        // Records from now on: the heads are taken before LISTEN returns.
        let next = stream.as_ref().map(|s| s.heads()).unwrap_or_default();
        let task = tokio::spawn(forward(store.clone(), stream, next, channel.to_string(), notices, tx));
        self.tasks.insert(channel.to_string(), task);
    }

    pub(crate) fn unlisten(&mut self, channel: Option<&str>) {
        match channel {
            Some(c) => {
                if let Some(t) = self.tasks.remove(c) {
                    t.abort();
                }
            }
            None => self.tasks.drain().for_each(|(_, t)| t.abort()),
        }
    }
}

/// Forwards NOTIFYs of `channel` and records appended to `stream` until the
/// session goes away.
async fn forward(
    store: Store,
    stream: Option<Arc<StreamHandle>>,
    mut next: Vec<u64>,
    channel: String,
    mut notices: broadcast::Receiver<Notification>,
    tx: mpsc::Sender<Notification>,
) {
    loop {
        let Some(s) = stream.as_ref().filter(|s| !s.is_dropped()) else {
            // A plain channel: NOTIFYs only.
            match notices.recv().await {
                Ok(n) => {
                    if tx.send(n).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
            continue;
        };
        let appended = s.appended().notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        if !catch_up(&store, s, &channel, &mut next, &tx).await {
            return;
        }
        tokio::select! {
            _ = &mut appended => {}
            n = notices.recv() => match n {
                Ok(n) => if tx.send(n).await.is_err() { return },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Sends every record from `next` to the head of each partition; false
/// once the session is gone.
async fn catch_up(
    store: &Store,
    s: &StreamHandle,
    channel: &str,
    next: &mut [u64],
    tx: &mpsc::Sender<Notification>,
) -> bool {
    let pid = std::process::id() as i32;
    for p in 0..s.def.partitions {
        loop {
            let from = next[p as usize];
            if from >= s.head(p) {
                break;
            }
            if from < s.low(p) {
                next[p as usize] = s.low(p);
                let payload = format!("{{\"partition\":{p},\"skipped_to\":{}}}", s.low(p));
                if tx.send(Notification { pid, channel: channel.into(), payload }).await.is_err() {
                    return false;
                }
                continue;
            }
            let records = match store.read(s, p, from, u64::MAX, READ_BATCH) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(stream = %s.def.name, error = %e, "LISTEN could not read the log");
                    return false;
                }
            };
            if records.is_empty() {
                break;
            }
            for r in &records {
                let payload = payload(s, p, r);
                if tx.send(Notification { pid, channel: channel.into(), payload }).await.is_err() {
                    return false;
                }
                next[p as usize] = r.offset + 1;
            }
        }
    }
    true
}

/// The JSON payload of a record: `{"partition", "offset", "timestamp" (µs
/// since the epoch), "key", "row"}`; a row too large for a notification is
/// left out and `"truncated": true` says so (read it by its offset).
pub fn payload(s: &StreamHandle, partition: u32, r: &Record) -> String {
    let key = match &r.key {
        Some(k) => serde_json::Value::String(String::from_utf8_lossy(k).into_owned()),
        None => serde_json::Value::Null,
    };
    let mut head = serde_json::Map::new();
    head.insert("partition".into(), partition.into());
    head.insert("offset".into(), r.offset.into());
    head.insert("timestamp".into(), r.timestamp_micros.into());
    head.insert("key".into(), key);
    let mut full = head.clone();
    full.insert("row".into(), row_json(&s.def, r));
    let text = serde_json::Value::Object(full).to_string();
    if text.len() <= MAX_PAYLOAD {
        return text;
    }
    head.insert("truncated".into(), true.into());
    serde_json::Value::Object(head).to_string()
}

/// The (channel, payload) arguments if `q` is `SELECT pg_notify(channel,
/// payload) [FROM … WHERE …]` and nothing else. Postgres's `pg_notify` is a
/// function with a side effect; Brikk runs it as a statement of its own,
/// which is how drivers use it (`NOTIFY` takes no parameters,
/// `pg_notify($1, $2)` does).
pub(crate) fn pg_notify_call(q: &ast::Query) -> Option<(&ast::Expr, &ast::Expr)> {
    let ast::SetExpr::Select(select) = q.body.as_ref() else { return None };
    let [item] = select.projection.as_slice() else { return None };
    let (ast::SelectItem::UnnamedExpr(ast::Expr::Function(f))
    | ast::SelectItem::ExprWithAlias { expr: ast::Expr::Function(f), .. }) = item
    else {
        return None;
    };
    let named = matches!(f.name.0.as_slice(), [ast::ObjectNamePart::Identifier(i)] if i.value.eq_ignore_ascii_case("pg_notify"));
    let ast::FunctionArguments::List(list) = &f.args else { return None };
    let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(channel)), ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(payload))] =
        list.args.as_slice()
    else {
        return None;
    };
    (named && f.over.is_none() && f.filter.is_none()).then_some((channel, payload))
}

/// For a [`pg_notify_call`]: the query that computes its (channel, payload)
/// pairs, one per row.
pub(crate) fn pg_notify_arguments(q: &ast::Query) -> Option<ast::Query> {
    let (channel, payload) = pg_notify_call(q)?;
    let projection = vec![
        ast::SelectItem::ExprWithAlias { expr: channel.clone(), alias: ast::Ident::new("channel") },
        ast::SelectItem::ExprWithAlias { expr: payload.clone(), alias: ast::Ident::new("payload") },
    ];
    let mut args = q.clone();
    let ast::SetExpr::Select(select) = args.body.as_mut() else { return None };
    select.projection = projection;
    Some(args)
}

/// The one column `pg_notify` returns (Postgres's `void`: always null).
pub(crate) fn pg_notify_schema() -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    Arc::new(Schema::new(vec![Field::new("pg_notify", DataType::Utf8, true)]))
}
