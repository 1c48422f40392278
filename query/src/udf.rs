//! The shape most of Brikk's own scalar functions share: one argument, a
//! text result, computed over whole arrays.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// `name(x)`: `f` of `x`'s values, as text. A scalar argument gives a
/// scalar result.
#[derive(Debug)]
pub(crate) struct TextOf {
    name: &'static str,
    signature: Signature,
    f: fn(&ArrayRef) -> Result<ArrayRef>,
}

// A function is known by its name (function pointers compare unreliably).
impl PartialEq for TextOf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.signature == other.signature
    }
}

impl Eq for TextOf {}

impl std::hash::Hash for TextOf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.signature.hash(state);
    }
}

impl TextOf {
    /// The function `name`, of one argument of any type (`variadic`: and
    /// more, which it ignores, as `pg_get_expr`'s `pretty`).
    pub(crate) fn udf(name: &'static str, variadic: bool, f: fn(&ArrayRef) -> Result<ArrayRef>) -> ScalarUDF {
        let signature = match variadic {
            true => Signature::variadic_any(Volatility::Stable),
            false => Signature::any(1, Volatility::Immutable),
        };
        ScalarUDF::new_from_impl(TextOf { name, signature, f })
    }
}

impl ScalarUDFImpl for TextOf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(match &args.args[0] {
            ColumnarValue::Array(a) => ColumnarValue::Array((self.f)(a)?),
            ColumnarValue::Scalar(v) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&(self.f)(&v.to_array()?)?, 0)?)
            }
        })
    }
}

/// A function's result `values` as the caller expects it: one value when
/// every argument was a scalar (`scalar`), else the array.
pub(crate) fn columnar(values: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(match scalar {
        true => ColumnarValue::Scalar(ScalarValue::try_from_array(&values, 0)?),
        false => ColumnarValue::Array(values),
    })
}
