//! Repeated aggregations computed once.
//!
//! DataFusion plans every reference to a CTE (and every copy of the same
//! subquery) on its own, so
//!
//! ```text
//!  WITH counts AS (SELECT auction, ws, count(*) AS num FROM … GROUP BY auction, ws),
//!       maxes AS (SELECT ws, max(num) AS maxn FROM counts GROUP BY ws)
//!  SELECT … FROM counts c JOIN maxes m ON …
//! ```
//!
//! would read and aggregate the stream twice. [`ShareRepeatedAggregates`],
//! the last physical optimizer rule, finds aggregations that occur more
//! than once in a plan with the same input, and puts one [`SharedExec`] in
//! each place: the first reference to run a partition computes it, keeps
//! its batches until every reference has taken them, and the others read
//! them. Only (final) aggregations are shared: their result is usually far
//! smaller than their input, and they produce nothing before their input
//! ends, so keeping the result costs no streaming. A subplan with a
//! volatile function (`random()`) or a dynamic filter is never shared.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Volatility;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    displayable, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::{StreamExt, TryStreamExt};

/// The rule; see the module documentation.
#[derive(Debug, Default)]
pub struct ShareRepeatedAggregates;

/// A text that is equal for two subplans exactly when they compute the same
/// rows: the whole subtree as EXPLAIN VERBOSE shows it, and the schema.
fn fingerprint(plan: &Arc<dyn ExecutionPlan>) -> String {
    format!("{}{:?}", displayable(plan.as_ref()).indent(true), plan.schema())
}

fn is_final_aggregate(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<AggregateExec>().is_some_and(|a| {
        matches!(
            a.mode(),
            AggregateMode::Final
                | AggregateMode::FinalPartitioned
                | AggregateMode::Single
                | AggregateMode::SinglePartitioned
        )
    })
}

/// Whether running `plan` (whose [`fingerprint`] is `key`) twice surely
/// gives the same rows: no volatile function and no dynamic filter in it.
fn deterministic(plan: &Arc<dyn ExecutionPlan>, key: &str) -> bool {
    let mut ok = !key.contains("DynamicFilter");
    let _ = plan.apply(|node| {
        let _ = node.apply_expressions(&mut |root: &Arc<dyn PhysicalExpr>| {
            let _ = root.apply(|e| {
                if let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() {
                    if f.fun().signature().volatility == Volatility::Volatile {
                        ok = false;
                    }
                }
                Ok(if ok { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
            });
            Ok(if ok { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
        });
        Ok(if ok { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    ok
}

/// Counts the final aggregations of `plan` by fingerprint.
fn count(plan: &Arc<dyn ExecutionPlan>, seen: &mut HashMap<String, usize>) {
    if is_final_aggregate(plan) {
        *seen.entry(fingerprint(plan)).or_default() += 1;
    }
    for child in plan.children() {
        count(child, seen);
    }
}

/// Replaces, top down, each aggregation that occurs more than once by the
/// one [`SharedExec`] of its fingerprint; a shared subplan is not searched
/// further (it runs once anyway).
fn share(
    plan: Arc<dyn ExecutionPlan>,
    seen: &HashMap<String, usize>,
    shared: &mut HashMap<String, Arc<SharedExec>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if is_final_aggregate(&plan) {
        let key = fingerprint(&plan);
        if seen.get(&key).is_some_and(|&n| n > 1) && deterministic(&plan, &key) {
            let node = shared.entry(key).or_insert_with(|| Arc::new(SharedExec::new(plan.clone())));
            node.state.consumers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(node.clone());
        }
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok(plan);
    }
    let mut changed = false;
    let mut new_children = Vec::with_capacity(children.len());
    for child in children {
        let new = share(child.clone(), seen, shared)?;
        changed |= !Arc::ptr_eq(&new, &child);
        new_children.push(new);
    }
    if !changed {
        return Ok(plan);
    }
    plan.replace_children(new_children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep))
}

impl PhysicalOptimizerRule for ShareRepeatedAggregates {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let mut seen = HashMap::new();
        count(&plan, &mut seen);
        if !seen.values().any(|&n| n > 1) {
            return Ok(plan);
        }
        share(plan, &seen, &mut HashMap::new())
    }

    fn name(&self) -> &str {
        "share_repeated_aggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// One partition's result, kept until every consumer has taken it.
#[derive(Default)]
struct Slot {
    batches: Option<Arc<Vec<RecordBatch>>>,
    taken: usize,
}

struct SharedState {
    /// How many places of the plan read this node.
    consumers: std::sync::atomic::AtomicUsize,
    partitions: Vec<tokio::sync::Mutex<Slot>>,
}

/// A subplan read from several places of one plan and run once.
pub struct SharedExec {
    inner: Arc<dyn ExecutionPlan>,
    state: Arc<SharedState>,
}

impl fmt::Debug for SharedExec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("SharedExec").field("inner", &self.inner).finish()
    }
}

impl SharedExec {
    fn new(inner: Arc<dyn ExecutionPlan>) -> SharedExec {
        let partitions = (0..inner.properties().partitioning.partition_count()).map(|_| Default::default()).collect();
        SharedExec { inner, state: Arc::new(SharedState { consumers: Default::default(), partitions }) }
    }

    fn consumers(&self) -> usize {
        self.state.consumers.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl DisplayAs for SharedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SharedExec: consumers={}", self.consumers())
    }
}

impl ExecutionPlan for SharedExec {
    fn name(&self) -> &'static str {
        "SharedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    crate::catalog::leaf::no_expressions!();

    /// A new child makes a new, unshared node: what it computes may differ.
    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = crate::catalog::leaf::only_child(children, "SharedExec")?;
        if Arc::ptr_eq(&inner, &self.inner) {
            return Ok(self);
        }
        let node = SharedExec::new(inner);
        node.state.consumers.store(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Arc::new(node))
    }

    crate::catalog::leaf::with_new_children_recomputed!();

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition >= self.state.partitions.len() {
            return Err(DataFusionError::Internal(format!("SharedExec has no partition {partition}")));
        }
        let (inner, state, consumers) = (self.inner.clone(), self.state.clone(), self.consumers());
        let batches = async move {
            let mut slot = state.partitions[partition].lock().await;
            let batches = match &slot.batches {
                Some(b) => b.clone(),
                None => {
                    let computed: Vec<RecordBatch> = inner.execute(partition, context)?.try_collect().await?;
                    Arc::new(computed)
                }
            };
            slot.taken += 1;
            // The last consumer's copy is the only one left.
            slot.batches = (slot.taken < consumers).then(|| batches.clone());
            Ok::<_, DataFusionError>(futures::stream::iter((0..batches.len()).map(move |i| Ok(batches[i].clone()))))
        };
        let stream = futures::stream::once(batches).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), stream.boxed())))
    }
}
