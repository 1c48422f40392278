//! Primary keys as bytes whose order is the values' order
//! (memcomparable), so a row key range scan is a primary key range scan.
//!
//! ```text
//!  boolean            0x00 | 0x01
//!  integers, times    i64 with the sign bit flipped, big-endian (8 bytes)
//!  numeric            i128 units with the sign bit flipped, big-endian
//!                     (16 bytes; one column's values share its scale)
//!  real, double       f64 bits, sign-flipped for positives and all bits
//!                     flipped for negatives, big-endian (8 bytes)
//!  text, bytea, json  bytes with 0x00 escaped as 0x00 0xFF, then 0x00 0x01
//! ```
//! Columns of a composite key are concatenated; each encoding is
//! self-delimiting, so `("a", "bc")` and `("ab", "c")` differ.

use crate::catalog::ColumnType;
use crate::codec::Value;
use crate::error::{Error, Result};

/// Encodes the primary key values of a row. NULL is not a key value.
pub fn encode(types: &[ColumnType], values: &[&Value]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    for (ty, v) in types.iter().zip(values) {
        match (ty, v) {
            (_, Value::Null) => return Err(Error::InvalidInput("a primary key value cannot be NULL".into())),
            (_, Value::Boolean(b)) => out.push(*b as u8),
            (_, Value::Int(i)) | (_, Value::Timestamp(i)) => out.extend_from_slice(&flip(*i)),
            (_, Value::Date(d)) => out.extend_from_slice(&flip(*d as i64)),
            (_, Value::Numeric { units, .. }) => out.extend_from_slice(&((*units as u128) ^ (1 << 127)).to_be_bytes()),
            (_, Value::Float(f)) => {
                let bits = f.to_bits();
                let ordered = if bits >> 63 == 0 { bits ^ (1 << 63) } else { !bits };
                out.extend_from_slice(&ordered.to_be_bytes());
            }
            (_, Value::Text(s)) => escaped(&mut out, s.as_bytes()),
            (_, Value::Bytes(b)) => escaped(&mut out, b),
        }
    }
    Ok(out)
}

fn flip(i: i64) -> [u8; 8] {
    ((i as u64) ^ (1 << 63)).to_be_bytes()
}

fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ty: ColumnType, v: Value) -> Vec<u8> {
        encode(&[ty], &[&v]).unwrap()
    }

    #[test]
    fn order_is_value_order() {
        let ints = [i64::MIN, -5, -1, 0, 1, 255, 256, i64::MAX];
        for w in ints.windows(2) {
            assert!(enc(ColumnType::BigInt, Value::Int(w[0])) < enc(ColumnType::BigInt, Value::Int(w[1])));
        }
        let floats = [f64::NEG_INFINITY, -2.5, -0.5, 0.0, 0.5, 3.0, f64::INFINITY];
        for w in floats.windows(2) {
            assert!(enc(ColumnType::Double, Value::Float(w[0])) < enc(ColumnType::Double, Value::Float(w[1])));
        }
        let numeric = ColumnType::Numeric { precision: 28, scale: 2 };
        let units = [i128::MIN, -10_000, -1, 0, 1, 99, 10_000, i128::MAX];
        for w in units.windows(2) {
            let (a, b) = (Value::Numeric { units: w[0], scale: 2 }, Value::Numeric { units: w[1], scale: 2 });
            assert!(enc(numeric, a) < enc(numeric, b), "{} < {}", w[0], w[1]);
        }
        let texts = ["", "\0", "\0\0", "a", "a\0", "ab", "b"];
        for w in texts.windows(2) {
            let (a, b) =
                (enc(ColumnType::Text, Value::Text(w[0].into())), enc(ColumnType::Text, Value::Text(w[1].into())));
            assert!(a < b, "{:?} < {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn composite_keys_are_unambiguous() {
        let t = [ColumnType::Text, ColumnType::Text];
        let a = encode(&t, &[&Value::Text("a".into()), &Value::Text("bc".into())]).unwrap();
        let b = encode(&t, &[&Value::Text("ab".into()), &Value::Text("c".into())]).unwrap();
        assert_ne!(a, b);
        assert!(a < b);
    }

    #[test]
    fn null_is_refused() {
        assert!(encode(&[ColumnType::Text], &[&Value::Null]).is_err());
    }
}
