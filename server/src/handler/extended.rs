//! The extended query protocol: Parse plans once, Execute binds.

use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use arrow_pg::datatypes::into_pg_type;
use async_trait::async_trait;
use brikk_query::types::is_utc;
use brikk_query::{Prepared, Session};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::compute::kernels::cast_utils::string_to_datetime;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{send_describe_response, ExtendedQueryHandler};
use pgwire::api::results::{DescribePortalResponse, FieldInfo, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::ParameterDescription;
use pgwire::messages::extendedquery::{Bind, Describe, TARGET_TYPE_BYTE_STATEMENT};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use super::encode::{report_changes, response, to_pg_error, Interrupts};
use super::Connection;

/// Plans statements at Parse time, in the connection's session (its
/// zone, its cursors; a failed Parse aborts its transaction).
pub struct StatementParser {
    session: Arc<tokio::sync::Mutex<Session>>,
}

impl StatementParser {
    pub fn new(session: Arc<tokio::sync::Mutex<Session>>) -> StatementParser {
        StatementParser { session }
    }
}

/// The Arrow type a client's declared parameter type asks for, if Brikk
/// knows it; unknown types are left for the planner to infer.
fn declared_type(t: &Type) -> Option<DataType> {
    Some(match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::DATE => DataType::Date32,
        Type::BOOL_ARRAY => list_of(DataType::Boolean),
        Type::INT2_ARRAY => list_of(DataType::Int16),
        Type::INT4_ARRAY => list_of(DataType::Int32),
        Type::INT8_ARRAY => list_of(DataType::Int64),
        Type::FLOAT4_ARRAY => list_of(DataType::Float32),
        Type::FLOAT8_ARRAY => list_of(DataType::Float64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => list_of(DataType::Utf8),
        _ => return None,
    })
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new_list_field(item, true)))
}

/// A prepared statement with its parameter types in wire form, computed
/// once at Parse rather than at every Bind.
pub struct WireStatement {
    prepared: Prepared,
    param_types: Vec<Type>,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Arc<WireStatement>;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let declared: Vec<Option<DataType>> = types.iter().map(|t| t.as_ref().and_then(declared_type)).collect();
        // In the session's zone; a FETCH from its cursor describes its rows.
        let mut session = self.session.lock().await;
        let prepared = match session.prepare(sql, &declared).await {
            Ok(p) => p,
            Err(e) => {
                session.fail();
                return Err(to_pg_error(&e));
            }
        };
        drop(session);
        if prepared.is_empty() {
            return Ok(None);
        }
        let mut param_types: Vec<Type> =
            prepared.param_types().iter().map(into_pg_type).collect::<PgWireResult<_>>()?;
        // Text to Brikk, `uuid` to the client unless it declared a type.
        for &i in prepared.uuid_params() {
            if types.get(i).is_none_or(Option::is_none) {
                param_types[i] = Type::UUID;
            }
        }
        // `$1::oid[]`: an `oid[]` to the client (see `Prepared::oid_params`).
        for &(i, array) in prepared.oid_params() {
            if i < param_types.len() && types.get(i).is_none_or(Option::is_none) {
                param_types[i] = if array { Type::OID_ARRAY } else { Type::OID };
            }
        }
        Ok(Some(Arc::new(WireStatement { prepared, param_types })))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(&self, stmt: &Self::Statement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        match stmt.prepared.result_schema() {
            Some(schema) => super::encode::pg_fields(&schema, format.unwrap_or(&Format::UnifiedBinary), None),
            None => Ok(Vec::new()),
        }
    }
}

/// Decodes the portal's parameters with the types the statement described.
/// `zone` is the session's `TimeZone` ([`params_in_zone`]). Parameters
/// arrow-pg cannot decode as sent are rewritten first ([`normalized`]).
fn bind(portal: &Portal<Arc<WireStatement>>, zone: &str) -> PgWireResult<Vec<ScalarValue>> {
    if let Some(normalized) = normalized(portal, zone)? {
        return bind(&normalized, zone);
    }
    let stmt = &portal.statement.statement;
    let inferred: Vec<Option<&DataType>> = stmt.prepared.param_types().iter().map(Some).collect();
    let server_refs: Vec<Option<&Type>> = stmt.param_types.iter().map(Some).collect();
    let mut values: Vec<ScalarValue> = match deserialize_parameters_with_server_types(portal, &inferred, &server_refs)?
    {
        ParamValues::List(values) => values.into_iter().map(|v| v.value).collect(),
        ParamValues::Map(_) => return Err(to_pg_error(&brikk_query::Error::Unsupported("named parameters".into()))),
    };
    if !is_utc(zone) {
        params_in_zone(portal, &mut values, zone);
    }
    Ok(values)
}

/// `portal` with the parameters arrow-pg cannot decode as sent rewritten,
/// if any (the rare case; usually nothing is copied):
/// - date/time text Postgres reads but pgwire does not, respelled as
///   pgwire reads it ([`brikk_query::datetime::input`]);
/// - a `uuid` the client declared, or sent for a parameter the server
///   described as `uuid` (as text or as its 16 bytes), and a `numeric` it
///   declared for a text parameter, passed on as text, which Brikk assigns
///   to the column as Postgres's assignment casts would (psycopg sends a
///   Python `UUID` or `Decimal` so, asyncpg a `UUID`).
fn normalized(portal: &Portal<Arc<WireStatement>>, zone: &str) -> PgWireResult<Option<Portal<Arc<WireStatement>>>> {
    use brikk_query::datetime::{rewrite, Target};
    let stmt = &portal.statement;
    let server = &stmt.statement.param_types;
    let declared = &stmt.parameter_types;
    // A uuid declared by the client, or described by the server to a
    // client that declared nothing.
    let uuid = |i: usize| match declared.get(i) {
        Some(Some(t)) => *t == Type::UUID,
        _ => server.get(i) == Some(&Type::UUID),
    };
    // An `oid[]`, which arrow-pg does not decode: passed on as the text
    // of the integer array it is.
    let oids = |i: usize| match declared.get(i) {
        Some(Some(t)) => *t == Type::OID_ARRAY,
        _ => server.get(i) == Some(&Type::OID_ARRAY),
    };
    let as_text = |i: usize| {
        uuid(i) || oids(i) || (declared.get(i) == Some(&Some(Type::NUMERIC)) && server.get(i) == Some(&Type::TEXT))
    };
    // The date/time parameters, as the plan typed them.
    let types = stmt.statement.prepared.param_types();
    let dated = types.iter().any(|t| Target::of(t).is_some());
    // Usually nothing to do: checked without a walk over every parameter.
    let described_uuid = stmt.statement.prepared.uuid_params();
    let described_oids = stmt.statement.prepared.oid_params();
    if !dated
        && !(0..declared.len()).any(as_text)
        && !described_uuid.iter().any(|&i| as_text(i))
        && !described_oids.iter().any(|&(i, _)| as_text(i))
    {
        return Ok(None);
    }
    let mut parameters = portal.parameters.clone();
    let mut binary: Vec<bool> = (0..parameters.len()).map(|i| !portal.parameter_format.is_text(i)).collect();
    let mut hints = declared.clone();
    hints.resize(hints.len().max(portal.parameters.len()), None);
    let mut changed = false;
    for (i, p) in parameters.iter_mut().enumerate() {
        if as_text(i) {
            if uuid(i) {
                // Read as Postgres reads a uuid: 16 bytes, or text in any
                // of its spellings; passed on in canonical form.
                if let Some(v) = p.as_deref() {
                    *p = Some(bytes::Bytes::from(uuid_param_text(v, binary[i]).map_err(|e| to_pg_error(&e))?));
                }
                binary[i] = false;
            } else if oids(i) {
                if let Some(v) = p.as_deref().filter(|_| binary[i]) {
                    *p = Some(bytes::Bytes::from(oid_array_text(v).map_err(|e| to_pg_error(&e))?));
                }
                binary[i] = false;
                hints[i] = Some(Type::INT4_ARRAY);
                changed = true;
                continue;
            } else if binary[i] {
                continue;
            }
            hints[i] = Some(Type::TEXT);
            changed = true;
            continue;
        }
        let Some(target) = types.get(i).and_then(Target::of) else { continue };
        let Some(text) = p.as_deref().filter(|_| !binary[i]) else { continue };
        let Some(mut text) = std::str::from_utf8(text).ok().and_then(|t| rewrite(t, target, zone)) else { continue };
        // pgwire reads timestamps with a time of day and a numeric offset.
        if target != Target::Date && text.len() == 10 {
            text.push_str(" 00:00:00");
        }
        if let Some(utc) = text.strip_suffix('Z') {
            text = format!("{utc}+00:00");
        }
        *p = Some(bytes::Bytes::from(text));
        changed = true;
    }
    if !changed {
        return Ok(None);
    }
    let result_codes = match &portal.result_column_format {
        Format::UnifiedText => vec![],
        Format::UnifiedBinary => vec![1],
        Format::Individual(codes) => codes.clone(),
    };
    let bind = Bind::new(
        Some(portal.name.clone()),
        Some(stmt.id.clone()),
        binary.iter().map(|b| i16::from(*b)).collect(),
        parameters,
        result_codes,
    );
    let statement = match hints == *declared {
        true => stmt.clone(),
        false => Arc::new(StoredStatement::new(stmt.id.clone(), stmt.statement.clone(), hints)),
    };
    Portal::try_new(&bind, statement).map(Some)
}

/// The text (`{1,2,NULL}`) of a one-dimensional `oid[]` sent in binary:
/// dimensions, a NULL flag, the element type, each dimension's length and
/// lower bound, then each element as a length (-1: NULL) and 4 bytes.
fn oid_array_text(value: &[u8]) -> brikk_query::Result<String> {
    let bad = || brikk_query::Error::InvalidText("malformed binary oid[] parameter".into());
    let word = |at: usize| value.get(at..at + 4).map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")));
    let dims = word(0).ok_or_else(bad)?;
    if dims == 0 {
        return Ok("{}".into());
    }
    if dims != 1 {
        return Err(brikk_query::Error::Unsupported("multi-dimensional oid[] parameters".into()));
    }
    let len = word(12).filter(|n| *n >= 0).ok_or_else(bad)? as usize;
    let mut at = 20;
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        match word(at).ok_or_else(bad)? {
            -1 => {
                items.push("NULL".to_string());
                at += 4;
            }
            4 => {
                items.push(word(at + 4).map(|v| (v as u32).to_string()).ok_or_else(bad)?);
                at += 8;
            }
            _ => return Err(bad()),
        }
    }
    Ok(format!("{{{}}}", items.join(",")))
}

/// The canonical text of a `uuid` parameter sent as its 16 bytes
/// (`binary`) or as text.
fn uuid_param_text(value: &[u8], binary: bool) -> brikk_query::Result<String> {
    use brikk_query::types::{uuid_of_bytes, uuid_text};
    use brikk_query::Error::InvalidText;
    match binary {
        true => {
            uuid_of_bytes(value).ok_or_else(|| InvalidText(format!("a binary uuid has 16 bytes, not {}", value.len())))
        }
        false => uuid_text(
            std::str::from_utf8(value).map_err(|_| InvalidText("invalid byte sequence in a uuid parameter".into()))?,
        ),
    }
}

/// Reads `timestamptz` parameters sent as text without an offset as local
/// times of `zone`, as Postgres does (arrow-pg reads them as UTC). Text
/// with an offset, binary values, and text Arrow cannot read are left as
/// decoded.
fn params_in_zone(portal: &Portal<Arc<WireStatement>>, values: &mut [ScalarValue], zone: &str) {
    let Ok(tz) = zone.parse::<Tz>() else { return };
    for (i, v) in values.iter_mut().enumerate() {
        let timestamptz = portal.statement.statement.param_types.get(i) == Some(&Type::TIMESTAMPTZ);
        let Some(Some(bytes)) = portal.parameters.get(i).filter(|_| timestamptz && portal.parameter_format.is_text(i))
        else {
            continue;
        };
        let Some(t) = std::str::from_utf8(bytes).ok().and_then(|s| string_to_datetime(&tz, s.trim()).ok()) else {
            continue;
        };
        *v = match v {
            ScalarValue::TimestampSecond(_, z) => ScalarValue::TimestampSecond(Some(t.timestamp()), z.clone()),
            ScalarValue::TimestampMillisecond(_, z) => {
                ScalarValue::TimestampMillisecond(Some(t.timestamp_millis()), z.clone())
            }
            ScalarValue::TimestampMicrosecond(_, z) => {
                ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), z.clone())
            }
            ScalarValue::TimestampNanosecond(_, z) => match t.timestamp_nanos_opt() {
                Some(n) => ScalarValue::TimestampNanosecond(Some(n), z.clone()),
                None => continue,
            },
            _ => continue,
        };
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Arc<WireStatement>;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// As pgwire's, except that a statement returning no rows is described
    /// with NoData even when it has parameters (pgwire sends an empty
    /// RowDescription then, which makes pgjdbc expect rows from an INSERT).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or("");
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT {
            if let Some(Entry::Value(stmt)) = client.portal_store().get_statement(name) {
                let described = self.do_describe_statement(client, &stmt).await?;
                let oids = described.parameters.iter().map(|t| t.oid()).collect();
                client.send(PgWireBackendMessage::ParameterDescription(ParameterDescription::new(oids))).await?;
                // A portal response carries no parameters and is NoData
                // exactly when there are no fields.
                send_describe_response(client, &DescribePortalResponse::new(described.fields)).await?;
                return Ok(());
            }
        }
        self._on_describe(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let mut session = self.session.lock().await;
        let params = bind(portal, session.vars().zone())?;
        let interrupts = Interrupts::of(client, &mut session);
        let prepared = &portal.statement.statement.prepared;
        let output = interrupts.run(session.execute_prepared(prepared, params)).await.unwrap_or_else(|timeout| {
            session.fail();
            Err(timeout)
        });
        let output = output.map_err(|e| {
            tracing::debug!(peer = %client.socket_addr(), error = %e, sql = %prepared.sql, "statement failed");
            to_pg_error(&e)
        })?;
        report_changes(client, &mut session).await?;
        drop(session);
        if let brikk_query::Output::Subscription(sub) = output {
            // Boxed: a subscription's long-lived future would otherwise
            // enlarge every Execute's future, allocated and copied per call.
            return Err(Box::pin(super::subscribe::stream(client, sub)).await);
        }
        response(output, &portal.result_column_format, options, interrupts, &self.copy)
    }
}

#[cfg(test)]
mod tests {
    use super::oid_array_text;

    /// A binary `oid[]` (as asyncpg sends one) reads as the integer array's text.
    #[test]
    fn binary_oid_arrays_read_as_text() {
        let mut v = Vec::new();
        for w in [1i32, 1, 26, 3, 1] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for item in [Some(1016u32), None, Some(4_000_000_000)] {
            match item {
                Some(oid) => {
                    v.extend_from_slice(&4i32.to_be_bytes());
                    v.extend_from_slice(&oid.to_be_bytes());
                }
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(oid_array_text(&v).unwrap(), "{1016,NULL,4000000000}");
        assert_eq!(oid_array_text(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 26]).unwrap(), "{}");
        assert!(oid_array_text(&v[..v.len() - 2]).is_err());
    }
}
