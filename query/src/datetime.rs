//! Dates and times as Postgres reads and prints them, where Arrow's (and
//! pgwire's) defaults differ: [`input`] respells Postgres's date/time
//! text for Arrow's parser, [`output`] prints timestamps as Postgres does,
//! [`to_char`] formats them with Postgres's patterns.
//! [`PostgresDateTimes`] applies both to the expressions of every plan.

pub mod input;
pub mod output;
pub mod to_char;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

pub use input::{rewrite, Target};
pub use output::{iso_style, timestamps_as_text};

use crate::types::UTC;

/// An analyzer rule that runs after type coercion (which makes the casts of
/// comparisons, assignments and `||` explicit) and rewrites:
/// - every text literal cast to a timestamp or date into the value
///   Postgres reads from it ([`input::respell`]), once, at planning time;
/// - every cast of a timestamp to text into Postgres's text of it
///   ([`output::text_cast`]).
#[derive(Debug, Default)]
pub struct PostgresDateTimes;

impl AnalyzerRule for PostgresDateTimes {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let zone = config.execution.time_zone.as_deref().unwrap_or(UTC);
        plan.transform_up_with_subqueries(|node| {
            let schema = crate::checked::expression_schema(&node)?;
            // Names stay, so the plans above still find their columns.
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let name = names.save(&e);
                let rewritten = e.transform_up(|e| rewrite_expr(e, zone, &schema))?;
                Ok(if rewritten.transformed { rewritten.update_data(|e| name.restore(e)) } else { rewritten })
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "brikk_postgres_datetimes"
    }
}

/// `expr` (over `schema`) rewritten as [`PostgresDateTimes`] rewrites a
/// plan's: for expressions compiled outside a plan (UPDATE's SET), planned
/// in `zone`.
pub fn rewrite_datetimes(expr: Expr, zone: &str, schema: &DFSchema) -> Result<Expr> {
    expr.transform_up(|e| rewrite_expr(e, zone, schema)).data()
}

fn rewrite_expr(e: Expr, zone: &str, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let e = input::respell(e, zone)?;
    if e.transformed {
        return Ok(e);
    }
    output::text_cast(e.data, schema)
}
