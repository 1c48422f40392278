//! Integer arithmetic that fails on overflow, as in Postgres.
//!
//! DataFusion's `+`, `-` and `*` wrap around on integers
//! (`9223372036854775807 + 1` is a large negative number); Postgres raises
//! `22003` ("bigint out of range"). [`CheckedArithmetic`], an analyzer rule
//! that runs after type coercion, replaces each integer `+`, `-` and `*` of
//! a plan with a call of [`Checked`], which computes it with Arrow's checked
//! kernels. Names of the rewritten expressions are kept, so plans above
//! still find their columns, and result columns keep their names.

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

/// Rewrites integer `+`, `-`, `*` to their checked forms; see the module docs.
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite_node).data()
    }

    fn name(&self) -> &str {
        "brikk_checked_arithmetic"
    }
}

/// The schema `node`'s expressions are evaluated over: its inputs' (a
/// scan's, its table's).
pub(crate) fn expression_schema(node: &LogicalPlan) -> Result<DFSchema> {
    let mut schema = DFSchema::empty();
    for input in node.inputs() {
        schema.merge(input.schema());
    }
    if let LogicalPlan::TableScan(scan) = node {
        schema.merge(&DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema())?);
    }
    Ok(schema)
}

fn rewrite_node(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let schema = expression_schema(&node)?;
    let names = NamePreserver::new(&node);
    node.map_expressions(|e| {
        let name = names.save(&e);
        let rewritten = e.transform_up(|e| rewrite_expr(e, &schema))?;
        Ok(if rewritten.transformed { rewritten.update_data(|e| name.restore(e)) } else { rewritten })
    })
}

/// `expr` (over `schema`) type-coerced, with its integer arithmetic
/// checked: for expressions compiled outside a plan (UPDATE's SET).
pub(crate) fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Expr> {
    let coerced = expr.rewrite(&mut TypeCoercionRewriter::new(schema)).data()?;
    coerced.transform_up(|e| rewrite_expr(e, schema)).data()
}

fn rewrite_expr(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
    let Some(checked) = Checked::for_operator(*op) else { return Ok(Transformed::no(e)) };
    let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else { return Ok(Transformed::no(e)) };
    if lt != rt || type_name(&lt).is_none() {
        return Ok(Transformed::no(e));
    }
    let args = vec![left.as_ref().clone(), right.as_ref().clone()];
    Ok(Transformed::yes(ScalarUDF::new_from_impl(checked).call(args)))
}

/// The Postgres name of an integer type this rewrite covers.
fn type_name(t: &DataType) -> Option<&'static str> {
    match t {
        DataType::Int16 => Some("smallint"),
        DataType::Int32 => Some("integer"),
        DataType::Int64 => Some("bigint"),
        _ => None,
    }
}

/// `a + b`, `a - b` or `a * b` on two integers of one type; an overflow
/// is an error (`22003`), not a wrapped result.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Checked {
    op: Operator,
    signature: Signature,
}

impl Checked {
    fn for_operator(op: Operator) -> Option<Checked> {
        matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
            .then(|| Checked { op, signature: Signature::any(2, Volatility::Immutable) })
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "checked_add",
            Operator::Minus => "checked_sub",
            _ => "checked_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalars = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let kernel = match self.op {
            Operator::Plus => numeric::add,
            Operator::Minus => numeric::sub,
            _ => numeric::mul,
        };
        let result = kernel(&arrays[0], &arrays[1]).map_err(|e| match e {
            datafusion::arrow::error::ArrowError::ArithmeticOverflow(_) => {
                let ty = type_name(arrays[0].data_type()).unwrap_or("integer");
                DataFusionError::External(Box::new(crate::error::Error::OutOfRange(format!("{ty} out of range"))))
            }
            other => other.into(),
        })?;
        Ok(if scalars {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?)
        } else {
            ColumnarValue::Array(result)
        })
    }
}
