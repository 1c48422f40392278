//! The Postgres size functions, on Brikk's storage (psql's `\dt+`, `\l+`):
//!
//! - `pg_table_size(rel)`, `pg_relation_size(rel [, fork])`,
//!   `pg_total_relation_size(rel)`: bytes of a table or stream (see
//!   `Store::relation_size`: RocksDB's estimate of its key ranges, on disk
//!   and in memtables, plus a stream's archived Parquet files). `rel` is an oid
//!   from `pg_class` (or `'name'::regclass`) or a name. A primary key's
//!   index is the table itself, so it, the catalog's own tables and the
//!   forks `fsm`, `vm` and `init` take 0 bytes; an oid nothing has is NULL,
//!   a name nothing has `42P01` (another fork name `22023`).
//! - `pg_database_size('brikk')`: every file under the data directory
//!   (another name is `3D000`).
//! - `pg_size_pretty(bytes)`: Postgres' own rendering (`8192 bytes`,
//!   `12 kB`, `1234 MB`, … up to `PB`), rounding halves away from zero.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use super::Handles;
use crate::db::DATABASE;
use crate::error::{Error, ObjectKind};

/// Which size function a [`Size`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum SizeOf {
    /// `pg_table_size`
    Table,
    /// `pg_relation_size`, whose second argument names a fork.
    Relation,
    /// `pg_total_relation_size`
    TotalRelation,
    /// `pg_database_size`
    Database,
}

impl SizeOf {
    pub(super) const ALL: [SizeOf; 4] = [SizeOf::Table, SizeOf::Relation, SizeOf::TotalRelation, SizeOf::Database];

    fn name(self) -> &'static str {
        match self {
            SizeOf::Table => "pg_table_size",
            SizeOf::Relation => "pg_relation_size",
            SizeOf::TotalRelation => "pg_total_relation_size",
            SizeOf::Database => "pg_database_size",
        }
    }
}

/// A size function: bytes (BIGINT) of the relation or database named by
/// its first argument.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Size {
    of: SizeOf,
    signature: Signature,
    handles: Handles,
}

impl Size {
    pub(super) fn new(of: SizeOf, handles: Handles) -> Size {
        let arities = match of {
            SizeOf::Relation => vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            _ => vec![TypeSignature::Any(1)],
        };
        Size { of, signature: Signature::one_of(arities, Volatility::Volatile), handles }
    }

    /// The size of `name`. `by_name`: the caller wrote the name (not an
    /// oid), so one that names nothing is an error, as in Postgres.
    fn size(&self, name: &str, by_name: bool) -> Result<Option<i64>> {
        let Some(store) = self.handles.store.upgrade() else { return Ok(None) };
        let missing = |kind| DataFusionError::External(Box::new(Error::NotFound { kind, name: name.to_string() }));
        let bytes = match self.of {
            SizeOf::Database if name == DATABASE => store.database_size(),
            SizeOf::Database => return Err(missing(ObjectKind::Database)),
            _ => match store.relation_size(name).map_err(|e| DataFusionError::External(Box::new(Error::Storage(e))))? {
                Some(bytes) => bytes,
                // A relation that is neither a table nor a stream (a view,
                // an index, a catalog table) takes no space of its own.
                None if !by_name || self.handles.is_relation(&store, name) => 0,
                None => return Err(missing(ObjectKind::Relation)),
            },
        };
        Ok(Some(i64::try_from(bytes).unwrap_or(i64::MAX)))
    }
}

impl ScalarUDFImpl for Size {
    fn name(&self) -> &str {
        self.of.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let by_name = matches!(args.args[0].data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let names = self.handles.relation_names(&args.args[0].to_array(args.number_rows)?)?;
        let forks: Vec<Option<String>> = match args.args.get(1) {
            Some(fork) => {
                let fork = cast(&fork.to_array(args.number_rows)?, &DataType::Utf8)?;
                let fork = fork.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
                fork.iter().map(|f| f.map(str::to_string)).collect()
            }
            None => vec![Some("main".to_string()); names.len()],
        };
        let sizes: Int64Array = names
            .iter()
            .zip(&forks)
            .map(|(name, fork)| match (name, fork.as_deref()) {
                (None, _) | (_, None) => Ok(None),
                (Some(name), Some("main")) => self.size(name, by_name),
                (Some(name), Some("fsm" | "vm" | "init")) => self.size(name, by_name).map(|s| s.map(|_| 0)),
                (_, Some(fork)) => Err(DataFusionError::External(Box::new(Error::InvalidParameter(format!(
                    "invalid fork name \"{fork}\": the fork names are main, fsm, vm and init"
                ))))),
            })
            .collect::<Result<_>>()?;
        crate::udf::columnar(Arc::new(sizes), scalar)
    }
}

/// `pg_size_pretty(bytes)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct SizePretty {
    signature: Signature,
}

impl SizePretty {
    pub(super) fn new() -> SizePretty {
        SizePretty { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for SizePretty {
    fn name(&self) -> &str {
        "pg_size_pretty"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            t if t.is_integer() || t.is_null() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) => {
                Ok(DataType::Utf8)
            }
            t => Err(DataFusionError::External(Box::new(Error::NotFound {
                kind: ObjectKind::Function,
                name: format!("pg_size_pretty({})", crate::types::pg_name_of(t)),
            }))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let bytes = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Int64)?;
        let bytes = bytes.as_any().downcast_ref::<Int64Array>().expect("cast to Int64");
        let text: StringArray = bytes.iter().map(|b| b.map(size_pretty)).collect();
        crate::udf::columnar(Arc::new(text), scalar)
    }
}

/// `pg_size_bytes(text)`: the bytes a size in `pg_size_pretty`'s units
/// stands for.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct SizeBytes {
    signature: Signature,
}

impl SizeBytes {
    pub(super) fn new() -> SizeBytes {
        SizeBytes { signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for SizeBytes {
    fn name(&self) -> &str {
        "pg_size_bytes"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let text = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let text = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let bytes = text
            .iter()
            .map(|t| t.map(size_bytes).transpose())
            .collect::<std::result::Result<Int64Array, Error>>()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        crate::udf::columnar(Arc::new(bytes), scalar)
    }
}

/// Postgres' `pg_size_bytes(text)`: a number (sign, digits, a fraction, an
/// exponent) and a unit (`bytes`, `kB`, `MB`, `GB`, `TB`, `PB`, any case,
/// powers of 1024; none is bytes), rounded half away from zero. Text that
/// does not start with a number, or names another unit, is `22023`; a
/// size beyond a bigint `22003`.
pub(super) fn size_bytes(text: &str) -> std::result::Result<i64, Error> {
    let invalid = |detail: Option<&str>| {
        let detail = detail.map_or(String::new(), |unit| {
            format!(
                " (invalid size unit: \"{unit}\"; valid units are \"bytes\", \"kB\", \"MB\", \"GB\", \"TB\", and \"PB\")"
            )
        });
        Error::InvalidParameter(format!("invalid size: \"{text}\"{detail}"))
    };
    let s = text.trim_start();
    let b = s.as_bytes();
    let at = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let whole_end = digits(at);
    let mut end = whole_end;
    if b.get(end) == Some(&b'.') {
        end = digits(end + 1);
    }
    // At least one digit, before or after the point.
    if end - at - usize::from(end > whole_end) == 0 {
        return Err(invalid(None));
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let exp_end = digits(end + 1 + sign);
        if exp_end > end + 1 + sign {
            end = exp_end;
        }
    }
    let (number, unit) = s.split_at(end);
    let unit = unit.trim();
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "bytes" => 0,
        "kb" => 10,
        "mb" => 20,
        "gb" => 30,
        "tb" => 40,
        "pb" => 50,
        _ => return Err(invalid(Some(unit))),
    };
    // Exactly, as Postgres' numeric does: digits × 10^exponent × 2^shift.
    let (mantissa, exponent) = match number.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().map_err(|_| invalid(None))?),
        None => (number, 0),
    };
    let negative = mantissa.starts_with('-');
    let mantissa = mantissa.trim_start_matches(['+', '-']);
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let out_of_range = || Error::OutOfRange("bigint out of range".into());
    let digits = format!("{whole}{fraction}");
    let scale = fraction.len() as i32 - exponent;
    let mut value: i128 = 0;
    for d in digits.trim_start_matches('0').bytes() {
        value = value.checked_mul(10).and_then(|v| v.checked_add(i128::from(d - b'0'))).ok_or_else(out_of_range)?;
    }
    value = value.checked_mul(1i128 << shift).ok_or_else(out_of_range)?;
    let value = match scale {
        s if s <= 0 => value.checked_mul(10i128.checked_pow(s.unsigned_abs()).ok_or_else(out_of_range)?),
        s => {
            let divisor = 10i128.checked_pow(s as u32);
            Some(divisor.map_or(0, |d| (value + d / 2) / d))
        }
    }
    .ok_or_else(out_of_range)?;
    let value = if negative { -value } else { value };
    i64::try_from(value).map_err(|_| out_of_range())
}

/// Postgres' `pg_size_pretty(bigint)`: bytes below 10240 as `n bytes`;
/// otherwise the largest unit (kB, MB, GB, TB, PB, powers of 1024) in which
/// the value stays below 20480, rounded half away from zero.
pub(super) fn size_pretty(bytes: i64) -> String {
    /// Each unit: name, limit below which it is used, whether it rounds,
    /// and its power of two (Postgres' `size_pretty_units`).
    const UNITS: [(&str, i64, bool, u32); 6] = [
        ("bytes", 10 * 1024, false, 0),
        ("kB", 20 * 1024 - 1, true, 10),
        ("MB", 20 * 1024 - 1, true, 20),
        ("GB", 20 * 1024 - 1, true, 30),
        ("TB", 20 * 1024 - 1, true, 40),
        ("PB", 20 * 1024 - 1, true, 50),
    ];
    let mut size = bytes;
    for (i, &(name, limit, round, bits)) in UNITS.iter().enumerate() {
        let Some(&(_, _, next_round, next_bits)) = UNITS.get(i + 1) else {
            return format!("{} {name}", half_rounded(size));
        };
        if size.unsigned_abs() < limit as u64 {
            let size = if round { half_rounded(size) } else { size };
            return format!("{size} {name}");
        }
        // Divide rather than shift, so negative sizes round like positive
        // ones; keep one more bit when the next unit rounds by halves.
        let shift = next_bits - bits - u32::from(next_round) + u32::from(round);
        size /= 1i64 << shift;
    }
    unreachable!("the last unit returns")
}

/// Halves `x`, rounding away from zero (Postgres' `half_rounded`).
fn half_rounded(x: i64) -> i64 {
    (x + if x < 0 { -1 } else { 1 }) / 2
}

#[cfg(test)]
mod tests {
    use super::{size_bytes, size_pretty};

    /// Expected values from PostgreSQL 15's `pg_size_bytes(text)`.
    #[test]
    fn sizes_read_as_postgres_reads_them() {
        let cases: &[(&str, i64)] = &[
            ("1", 1),
            ("100 bytes", 100),
            ("10kB", 10240),
            (" 10 kb ", 10240),
            ("1.5 KB", 1536),
            ("0.1 kB", 102),
            ("-1.5 MB", -1_572_864),
            ("+3 MB", 3_145_728),
            ("1e3", 1000),
            ("2.5e1 kB", 25600),
            (".5 kB", 512),
            ("5. kB", 5120),
            ("0.0005 kB", 1),
            ("0.00049 kB", 1),
            ("1 TB", 1_099_511_627_776),
            ("1 PB", 1_125_899_906_842_624),
            ("8191 PB", 9_222_246_136_947_933_184),
        ];
        for &(text, bytes) in cases {
            assert_eq!(size_bytes(text).ok(), Some(bytes), "{text}");
        }
        for text in ["abc", "", "- 1 kB", "10 XB", "1e3 B", "1 b", "1 kB x", "1e", "."] {
            assert!(matches!(size_bytes(text), Err(crate::Error::InvalidParameter(_))), "{text}");
        }
        assert!(matches!(size_bytes("8193 PB"), Err(crate::Error::OutOfRange(_))));
        assert!(size_bytes("10 XB").unwrap_err().to_string().contains("invalid size unit: \"XB\""));
    }

    /// Expected values from PostgreSQL 15's `pg_size_pretty(bigint)`.
    #[test]
    fn sizes_print_as_postgres_prints_them() {
        let cases: &[(i64, &str)] = &[
            (0, "0 bytes"),
            (1, "1 bytes"),
            (10239, "10239 bytes"),
            (10240, "10 kB"),
            (-10239, "-10239 bytes"),
            (-10240, "-10 kB"),
            (10751, "10 kB"),
            (10752, "11 kB"),
            (10_485_247, "10239 kB"),
            (10_485_248, "10 MB"),
            (-10_485_248, "-10 MB"),
            (20_971_008, "20 MB"),
            (1_000_000, "977 kB"),
            (1_500_000_000, "1431 MB"),
            (1 << 40, "1024 GB"),
            (20 << 40, "20 TB"),
            (20 << 50, "20 PB"),
            (i64::MAX, "8192 PB"),
            (i64::MIN, "-8192 PB"),
        ];
        for &(bytes, want) in cases {
            assert_eq!(size_pretty(bytes), want, "pg_size_pretty({bytes})");
        }
    }
}
