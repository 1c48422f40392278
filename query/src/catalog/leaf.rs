//! The parts of `ExecutionPlan` Brikk's plan nodes write alike.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;

/// `apply_expressions` of a node that evaluates no expressions.
macro_rules! no_expressions {
    () => {
        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
        ) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }
    };
}

/// The deprecated `with_new_children`, as `replace_children` recomputing
/// the node's properties.
macro_rules! with_new_children_recomputed {
    () => {
        fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
            self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
        }
    };
}

/// Implements `name`, `properties` (from a `properties` field), and the
/// child handling of a plan node without children.
macro_rules! leaf_exec {
    ($name:literal) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn properties(&self) -> &Arc<PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            vec![]
        }

        $crate::catalog::leaf::no_expressions!();

        fn replace_children(
            self: Arc<Self>,
            children: Vec<Arc<dyn ExecutionPlan>>,
            _: ReplaceChildrenOptions,
        ) -> Result<Arc<dyn ExecutionPlan>> {
            if !children.is_empty() {
                return Err(DataFusionError::Internal(concat!($name, " has no children").into()));
            }
            Ok(self)
        }

        $crate::catalog::leaf::with_new_children_recomputed!();
    };
}

/// The one child of a node `name` that has exactly one.
pub(crate) fn only_child(mut children: Vec<Arc<dyn ExecutionPlan>>, name: &str) -> Result<Arc<dyn ExecutionPlan>> {
    match (children.pop(), children.is_empty()) {
        (Some(child), true) => Ok(child),
        _ => Err(DataFusionError::Internal(format!("{name} has exactly one child"))),
    }
}

pub(crate) use {leaf_exec, no_expressions, with_new_children_recomputed};
