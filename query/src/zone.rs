//! Queries in the session's `TimeZone`.
//!
//! Stored `timestamptz` columns are Arrow timestamps in UTC. Postgres reads
//! and computes a `timestamptz` in the session's zone: text without an
//! offset compared with one is a local time, and `extract`, `date_trunc`
//! and friends give local fields. [`SessionZone`], an analyzer rule that
//! runs before type coercion, gives every table scan of a query planned in
//! a zone other than UTC a projection above it that tags its `timestamptz`
//! columns with that zone. The instants do not change; what is computed
//! from them, and how text is coerced to them, follows the zone. The scans'
//! filter push-down sees through the casts (they keep order), so range
//! scans on `_timestamp` still narrow.
//!
//! [`zoned_schema`] and [`zoned_batch`] do the same to rows Brikk builds
//! itself: results shown to a session, and the rows a table's `UPDATE`,
//! `DELETE` or `ON CONFLICT` evaluates its expressions on.

use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Cast, Expr, LogicalPlan, Projection};
use datafusion::optimizer::AnalyzerRule;

use datafusion::execution::context::SessionState;

use crate::types::{is_utc, UTC};

/// Tags scanned `timestamptz` columns with the session's zone; see the
/// module docs. Does nothing in UTC.
#[derive(Debug, Default)]
pub struct SessionZone;

impl AnalyzerRule for SessionZone {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        match config.execution.time_zone.as_deref() {
            Some(zone) if !is_utc(zone) => {
                let zone: Arc<str> = zone.into();
                plan.transform_up_with_subqueries(|node| scan_in_zone(node, &zone)).data()
            }
            _ => Ok(plan),
        }
    }

    fn name(&self) -> &str {
        "brikk_session_zone"
    }
}

/// `node`, if it is a scan with `timestamptz` columns in another zone,
/// under a projection that casts them to `zone` and keeps their names.
fn scan_in_zone(node: LogicalPlan, zone: &Arc<str>) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::TableScan(scan) = &node else { return Ok(Transformed::no(node)) };
    if !scan.projected_schema.fields().iter().any(|f| retagged(f.data_type(), zone).is_some()) {
        return Ok(Transformed::no(node));
    }
    let exprs: Vec<Expr> = scan
        .projected_schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::from((qualifier, field)));
            match retagged(field.data_type(), zone) {
                Some(t) => Expr::Cast(Cast::new(Box::new(column), t)).alias_qualified(qualifier.cloned(), field.name()),
                None => column,
            }
        })
        .collect();
    Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(node))?)))
}

/// `state` planning and running in `zone` (Arrow's spelling of a session's
/// `TimeZone`).
pub fn state_in_zone(mut state: SessionState, zone: &str) -> SessionState {
    if !is_utc(zone) {
        state.config_mut().options_mut().execution.time_zone = Some(zone.to_string());
    }
    state
}

/// The zone `state` plans and assigns in: its `execution.time_zone`.
pub fn zone_of(state: &SessionState) -> &str {
    state.config().options().execution.time_zone.as_deref().unwrap_or(UTC)
}

/// `t` in `zone`, if `t` is a timestamp with another zone (`timestamptz`).
fn retagged(t: &DataType, zone: &str) -> Option<DataType> {
    match t {
        DataType::Timestamp(unit, Some(tz)) if tz.as_ref() != zone => {
            Some(DataType::Timestamp(*unit, Some(zone.into())))
        }
        _ => None,
    }
}

/// `schema` with its `timestamptz` fields in `zone`: the same `Arc` when
/// `zone` is UTC or nothing changes, so callers can tell by pointer.
pub fn zoned_schema(schema: &SchemaRef, zone: &str) -> SchemaRef {
    if is_utc(zone) || !schema.fields().iter().any(|f| retagged(f.data_type(), zone).is_some()) {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match retagged(f.data_type(), zone) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` as rows of `schema` (its [`zoned_schema`]): columns whose zone
/// differs are cast, which changes no instant and copies no values.
pub fn zoned_batch(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if Arc::ptr_eq(&batch.schema(), schema) {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}
