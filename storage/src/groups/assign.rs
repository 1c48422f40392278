//! The sticky, balanced partition assignor.
//!
//! Given the partitions of a stream, the members of a group (in join order)
//! and who owns what now, it computes the next owner of every partition:
//!
//! 1. **Balanced**: every member gets `⌊N/M⌋` or `⌈N/M⌉` partitions. The
//!    `N mod M` larger shares go to the members that own the most now (ties:
//!    earlier joiners first), so as few partitions as possible move.
//! 2. **Sticky**: a member keeps the partitions it owns, up to its share
//!    (lowest-numbered first; a partition some other member remembers is given
//!    up first, see 3). Only partitions whose owner left and the surplus of
//!    members above their share move: no other assignment moves fewer.
//! 3. **Remembered**: a member that rejoins under the same name takes back,
//!    from the partitions that must move anyway, the ones it owned before it
//!    left; the rest are handed out in partition order to members below their
//!    share, earliest joiner first.
//!
//! The function is pure and deterministic; [`super::Group`] calls it under
//! its lock on every join, leave and expiry.

use std::collections::{BTreeSet, HashMap};

/// One member as the assignor sees it.
#[derive(Debug, Clone)]
pub struct Seat<M> {
    pub member: M,
    /// Partitions this member owned before it last left (named members).
    pub remembered: Vec<u32>,
}

/// The next owner of each of `partitions` partitions (`None` only when
/// there are no members). `owners[p]` is the current owner of `p`; members
/// not in `seats` are treated as gone.
pub fn assign<M: Copy + Eq + std::hash::Hash>(
    partitions: u32,
    seats: &[Seat<M>],
    owners: &[Option<M>],
) -> Vec<Option<M>> {
    let n = partitions as usize;
    if seats.is_empty() {
        return vec![None; n];
    }
    let present: HashMap<M, usize> = seats.iter().enumerate().map(|(i, s)| (s.member, i)).collect();
    let mut owned: Vec<Vec<u32>> = vec![Vec::new(); seats.len()];
    for (p, o) in owners.iter().enumerate().take(n) {
        if let Some(i) = o.and_then(|m| present.get(&m)) {
            owned[*i].push(p as u32);
        }
    }
    // Shares: the larger ones to the members owning most now.
    let (base, extra) = (n / seats.len(), n % seats.len());
    let mut order: Vec<usize> = (0..seats.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(owned[i].len()), i));
    let mut share = vec![base; seats.len()];
    for &i in order.iter().take(extra) {
        share[i] += 1;
    }
    // Partitions a member below its share would like back.
    let wanted: BTreeSet<u32> = seats
        .iter()
        .enumerate()
        .filter(|(i, _)| owned[*i].len() < share[*i])
        .flat_map(|(_, s)| s.remembered.iter().copied())
        .collect();
    let mut next: Vec<Option<M>> = vec![None; n];
    let mut pool: BTreeSet<u32> = (0..partitions).collect();
    for (i, parts) in owned.iter().enumerate() {
        // Keep unwanted partitions first, then wanted ones, lowest first.
        let mut keep: Vec<u32> = parts.clone();
        keep.sort_by_key(|p| (wanted.contains(p), *p));
        for &p in keep.iter().take(share[i]) {
            next[p as usize] = Some(seats[i].member);
            pool.remove(&p);
        }
    }
    let mut count: Vec<usize> = owned.iter().zip(&share).map(|(o, s)| o.len().min(*s)).collect();
    // Remembered partitions go back to their member first.
    for (i, seat) in seats.iter().enumerate() {
        for p in &seat.remembered {
            if count[i] < share[i] && pool.remove(p) {
                next[*p as usize] = Some(seat.member);
                count[i] += 1;
            }
        }
    }
    for (i, seat) in seats.iter().enumerate() {
        while count[i] < share[i] {
            let Some(p) = pool.pop_first() else { break };
            next[p as usize] = Some(seat.member);
            count[i] += 1;
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator, so the test needs no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The reference: the fewest partitions any balanced assignment must
    /// move from `before` given the members now present.
    fn minimal_moves(partitions: usize, members: &[u32], before: &[Option<u32>]) -> usize {
        let m = members.len();
        let mut owned: Vec<usize> = members.iter().map(|x| before.iter().filter(|o| **o == Some(*x)).count()).collect();
        owned.sort_unstable_by(|a, b| b.cmp(a));
        let (base, extra) = (partitions / m, partitions % m);
        let kept: usize = owned.iter().enumerate().map(|(i, o)| (*o).min(base + usize::from(i < extra))).sum();
        let had_owner = before.iter().filter(|o| o.is_some()).count();
        partitions - kept - (partitions - had_owner)
    }

    #[test]
    fn model_random_joins_and_leaves() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let partitions = 1 + rng.below(24) as u32;
            let mut members: Vec<u32> = Vec::new();
            let mut next_id = 0u32;
            let mut owners: Vec<Option<u32>> = vec![None; partitions as usize];
            for _ in 0..60 {
                if members.is_empty() || rng.below(3) > 0 && members.len() < 12 {
                    members.push(next_id);
                    next_id += 1;
                } else {
                    let i = rng.below(members.len() as u64) as usize;
                    members.remove(i);
                }
                let seats: Vec<Seat<u32>> = members.iter().map(|&m| Seat { member: m, remembered: vec![] }).collect();
                let next = assign(partitions, &seats, &owners);
                if members.is_empty() {
                    assert!(next.iter().all(Option::is_none));
                    owners = next;
                    continue;
                }
                // Every partition has exactly one present owner.
                assert!(next.iter().all(|o| o.is_some_and(|m| members.contains(&m))), "seed {seed}");
                // Balanced.
                let counts: Vec<usize> =
                    members.iter().map(|m| next.iter().filter(|o| **o == Some(*m)).count()).collect();
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                assert!(hi - lo <= 1, "seed {seed}: unbalanced {counts:?}");
                // Sticky: moves exactly what must move.
                let moved =
                    owners.iter().zip(&next).filter(|(before, after)| before.is_some() && before != after).count();
                let must = minimal_moves(partitions as usize, &members, &owners);
                assert_eq!(moved, must, "seed {seed}: moved {moved}, minimum {must}");
                owners = next;
            }
        }
    }

    #[test]
    fn a_rejoining_member_gets_its_partitions_back() {
        let seats = |ms: &[(u32, Vec<u32>)]| -> Vec<Seat<u32>> {
            ms.iter().map(|(m, r)| Seat { member: *m, remembered: r.clone() }).collect()
        };
        let two = assign(4, &seats(&[(1, vec![]), (2, vec![])]), &[None; 4]);
        assert_eq!(two, vec![Some(1), Some(1), Some(2), Some(2)]);
        // Member 2 leaves: member 1 takes everything.
        let one = assign(4, &seats(&[(1, vec![])]), &two);
        assert_eq!(one, vec![Some(1); 4]);
        // Member 2 comes back as 3 under the same name, remembering 2 and 3.
        let back = assign(4, &seats(&[(1, vec![]), (3, vec![2, 3])]), &one);
        assert_eq!(back, vec![Some(1), Some(1), Some(3), Some(3)]);
    }

    #[test]
    fn more_members_than_partitions() {
        let seats: Vec<Seat<u32>> = (0..5).map(|m| Seat { member: m, remembered: vec![] }).collect();
        let next = assign(3, &seats, &[None; 3]);
        assert_eq!(next, vec![Some(0), Some(1), Some(2)]);
    }
}
