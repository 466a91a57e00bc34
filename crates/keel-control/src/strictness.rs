//! A change never chooses its own judge: the `[safety]` settings that judge an apply are,
//! setting by setting, the stricter of the config that serves and the one applied (as
//! `keel_watch::Thresholds::stricter` does for `[detectors]` and the gate for `max_shift`).
//! A forced edit that shortens `watch` or `known_good_after`, drops promotion steps or
//! narrows `drift_window` is still watched as the config it replaces asked.

use keel_config::Safety;

/// The stricter of two configs' `[safety]`, setting by setting: the smaller `max_shift`;
/// the longer `watch`, `known_good_after` and `drift_window`; every promotion step either
/// config stops at (more stops, each watched); the longer `cert_expiry_warning` and the
/// larger `keep_generations`. Tunnel handling after a rollback is not a judgement, so it
/// is the new config's.
pub(crate) fn stricter_safety(old: &Safety, new: &Safety) -> Safety {
    let mut steps: Vec<u32> = old
        .promote_steps
        .iter()
        .chain(&new.promote_steps)
        .copied()
        .collect();
    steps.sort_unstable();
    steps.dedup();
    Safety {
        max_shift: old.max_shift.min(new.max_shift),
        watch: old.watch.max(new.watch),
        known_good_after: old.known_good_after.max(new.known_good_after),
        keep_generations: old.keep_generations.max(new.keep_generations),
        promote_steps: steps,
        drift_window: old.drift_window.max(new.drift_window),
        rolled_back_tunnels: new.rolled_back_tunnels,
        tunnel_drain: new.tunnel_drain,
        cert_expiry_warning: old.cert_expiry_warning.max(new.cert_expiry_warning),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn safety(watch: u64, known_good_after: u64, steps: &[u32], max_shift: f64) -> Safety {
        let mut safety = keel_config::parse("").config.safety;
        safety.watch = Duration::from_secs(watch);
        safety.known_good_after = Duration::from_secs(known_good_after);
        safety.promote_steps = steps.to_vec();
        safety.max_shift = max_shift;
        safety
    }

    #[test]
    fn each_setting_is_the_stricter_of_the_two() {
        let old = safety(30, 300, &[25, 50, 100], 0.25);
        let new = safety(1, 0, &[100], 0.9);
        let judged = stricter_safety(&old, &new);
        assert_eq!(judged.watch, Duration::from_secs(30));
        assert_eq!(judged.known_good_after, Duration::from_secs(300));
        assert_eq!(judged.promote_steps, vec![25, 50, 100]);
        assert!((judged.max_shift - 0.25).abs() < 1e-12);
        // The same the other way round: stricter is symmetric.
        let judged = stricter_safety(&new, &old);
        assert_eq!(judged.known_good_after, Duration::from_secs(300));
        assert_eq!(judged.promote_steps, vec![25, 50, 100]);
    }
}
