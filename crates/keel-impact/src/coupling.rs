//! The movement math: how much of one request goes from each old destination to each
//! new one, given the two expected-share distributions.
//!
//! A request is one unit of traffic. Under a config it is spread over destinations by
//! expected share (a 90/10 split puts 0.9 on one pool and 0.1 on the other). Between old
//! `O` and new `N` the request's movement is the *smallest* change that turns `O` into
//! `N`, found in four passes, each pairing only what the previous passes left:
//!
//! 1. **Stays**: each destination `d` keeps `min(O(d), N(d))` (the overlap).
//! 2. **Same pool** (only the route changed): within each pool, `t = min(left_old,
//!    left_new)` moves, spread over old and new destinations in proportion to what each
//!    has left: `flow(a → b) = t · old(a)/left_old · new(b)/left_new`.
//! 3. **Same service** (another pool of the same service): the same, grouped by service.
//! 4. **Anything else**: the same, over all that is left.
//!
//! Example: `O = {A: 0.9, B: 0.1}`, `N = {A: 0.5, B: 0.5}` → stays A 0.5, B 0.1; moves
//! A → B 0.4. Passes 2 and 3 make the matrix honest about services: the mass it shows
//! crossing services equals the change of the request's service distribution
//! (`Σ max(0, O(s) − N(s))`), so renaming pools of one service never shows up as traffic
//! changing service. Failing destinations count as their own service ("nobody").

use crate::destination::DestId;

/// Shares below this are floating-point dust, not traffic.
const EPSILON: f64 = 1e-12;

/// Reusable scratch space for [`Coupler::couple`].
#[derive(Default)]
pub(crate) struct Coupler {
    old: Vec<(DestId, f64)>,
    new: Vec<(DestId, f64)>,
    keys: Vec<u32>,
}

impl Coupler {
    /// Fills `flows` with `(from, to, mass)`, stays (`from == to`) included; the masses
    /// sum to the old distribution's total.
    pub(crate) fn couple(
        &mut self,
        old: &[(DestId, f64)],
        new: &[(DestId, f64)],
        pool_key: &[u32],
        service_key: &[u32],
        flows: &mut Vec<(DestId, DestId, f64)>,
    ) {
        flows.clear();
        self.old.clear();
        self.old.extend_from_slice(old);
        self.new.clear();
        self.new.extend_from_slice(new);
        for (dest, left) in self.old.iter_mut() {
            if let Some((_, other)) = self.new.iter_mut().find(|(d, _)| d == dest) {
                let stay = left.min(*other);
                if stay > EPSILON {
                    flows.push((*dest, *dest, stay));
                }
                *left -= stay;
                *other -= stay;
            }
        }
        self.pass(|d| key_of(pool_key, d), flows);
        self.pass(|d| key_of(service_key, d), flows);
        self.pass(|_| 0, flows);
    }

    /// Pairs what is left within each group of destinations with equal `key`.
    fn pass(&mut self, key: impl Fn(DestId) -> u32, flows: &mut Vec<(DestId, DestId, f64)>) {
        self.keys.clear();
        self.keys.extend(
            self.old
                .iter()
                .filter(|(_, left)| *left > EPSILON)
                .map(|(d, _)| key(*d)),
        );
        self.keys.sort_unstable();
        self.keys.dedup();
        for group in 0..self.keys.len() {
            let group = self.keys[group];
            let in_group = |(d, left): &&(DestId, f64)| key(*d) == group && *left > EPSILON;
            let old_left: f64 = self.old.iter().filter(in_group).map(|(_, m)| m).sum();
            let new_left: f64 = self.new.iter().filter(in_group).map(|(_, m)| m).sum();
            let moved = old_left.min(new_left);
            if moved <= EPSILON {
                continue;
            }
            for (from, from_left) in self.old.iter().filter(in_group) {
                for (to, to_left) in self.new.iter().filter(in_group) {
                    let mass = moved * (from_left / old_left) * (to_left / new_left);
                    if mass > EPSILON {
                        flows.push((*from, *to, mass));
                    }
                }
            }
            let (old_keep, new_keep) = (1.0 - moved / old_left, 1.0 - moved / new_left);
            for (d, left) in self.old.iter_mut() {
                if key(*d) == group {
                    *left *= old_keep;
                }
            }
            for (d, left) in self.new.iter_mut() {
                if key(*d) == group {
                    *left *= new_keep;
                }
            }
        }
    }
}

fn key_of(keys: &[u32], dest: DestId) -> u32 {
    keys.get(dest as usize).copied().unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Destinations 0..4: pools 0,1 of service 0; pool 2 of service 1; pool 3 of service 1.
    const POOL: [u32; 4] = [0, 1, 2, 3];
    const SERVICE: [u32; 4] = [0, 0, 1, 1];

    fn couple(old: &[(DestId, f64)], new: &[(DestId, f64)]) -> Vec<(DestId, DestId, f64)> {
        let mut flows = Vec::new();
        Coupler::default().couple(old, new, &POOL, &SERVICE, &mut flows);
        flows
    }

    fn mass(flows: &[(DestId, DestId, f64)], from: DestId, to: DestId) -> f64 {
        flows
            .iter()
            .filter(|(f, t, _)| (*f, *t) == (from, to))
            .map(|(_, _, m)| m)
            .sum()
    }

    #[test]
    fn split_change_moves_the_difference_of_shares() {
        let flows = couple(&[(0, 0.9), (2, 0.1)], &[(0, 0.5), (2, 0.5)]);
        assert!((mass(&flows, 0, 0) - 0.5).abs() < 1e-12);
        assert!((mass(&flows, 2, 2) - 0.1).abs() < 1e-12);
        assert!((mass(&flows, 0, 2) - 0.4).abs() < 1e-12);
        assert_eq!(mass(&flows, 2, 0), 0.0);
    }

    #[test]
    fn identical_distributions_do_not_move() {
        let flows = couple(&[(0, 0.25), (3, 0.75)], &[(3, 0.75), (0, 0.25)]);
        assert!(flows.iter().all(|(f, t, _)| f == t), "{flows:?}");
    }

    #[test]
    fn pools_of_one_service_pair_before_services_cross() {
        // Old: half on pool 0 (svc 0), half on pool 2 (svc 1). New: pool 1 (svc 0) and
        // pool 3 (svc 1). Nothing changes service, although every pool changes.
        let flows = couple(&[(0, 0.5), (2, 0.5)], &[(1, 0.5), (3, 0.5)]);
        assert!((mass(&flows, 0, 1) - 0.5).abs() < 1e-12);
        assert!((mass(&flows, 2, 3) - 0.5).abs() < 1e-12);
        assert_eq!(mass(&flows, 0, 3) + mass(&flows, 2, 1), 0.0);
    }

    #[test]
    fn leftovers_spread_in_proportion() {
        // All of pool 0 goes to pools 2 and 3 (another service), 1:3.
        let flows = couple(&[(0, 1.0)], &[(2, 0.25), (3, 0.75)]);
        assert!((mass(&flows, 0, 2) - 0.25).abs() < 1e-12);
        assert!((mass(&flows, 0, 3) - 0.75).abs() < 1e-12);
        let total: f64 = flows.iter().map(|(_, _, m)| m).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }
}
