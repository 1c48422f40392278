//! Key hashing: which partition a keyed record goes to.
//!
//! Brikk uses Kafka's default partitioner: 32-bit murmur2 (seed 0x9747b28c)
//! of the key bytes, sign bit cleared, modulo the partition count. A key's
//! bytes are its text form in UTF-8. So a record keyed `'t1'` lands in the
//! same partition number as a Kafka producer would put key `"t1"`, and
//! moving data between the two keeps per-key order.

/// Kafka-compatible murmur2 hash of `data`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a record with key bytes `key` in a stream of
/// `partitions` partitions.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors Kafka's own test suite checks its murmur2 against.
    #[test]
    fn matches_kafka_murmur2() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for n in 1..20u32 {
            for k in ["", "a", "task-17", "ünïcode"] {
                let p = partition_for_key(k.as_bytes(), n);
                assert!(p < n);
                assert_eq!(p, partition_for_key(k.as_bytes(), n));
            }
        }
    }
}
