//! Postgres' `pg_sleep(seconds)`: waits, then gives NULL (Postgres's
//! `void`). The wait is asynchronous (DataFusion's async functions): it
//! holds no thread, and a cancel request (or a dropped connection) ends it
//! at once. One wait per row, as Postgres; a negative or NULL time waits
//! not at all.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{new_null_array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// The longest one call waits: longer is surely a mistake in units.
const MAX_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgSleep {
    signature: Signature,
}

/// `pg_sleep`, ready to register.
pub fn pg_sleep_udf() -> ScalarUDF {
    let sleep = PgSleep { signature: Signature::exact(vec![DataType::Float64], Volatility::Volatile) };
    AsyncScalarUDF::new(Arc::new(sleep)).into_scalar_udf()
}

impl ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal("pg_sleep runs asynchronously".into()))
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // A constant is a scalar: one wait for each of the batch's rows.
        let seconds = args.args[0].to_array(args.number_rows)?;
        let seconds = seconds.as_primitive::<Float64Type>();
        for s in seconds.iter().flatten() {
            if s > 0.0 {
                tokio::time::sleep(Duration::try_from_secs_f64(s).unwrap_or(MAX_SLEEP).min(MAX_SLEEP)).await;
            }
        }
        Ok(ColumnarValue::Array(new_null_array(&DataType::Utf8, seconds.len())))
    }
}
