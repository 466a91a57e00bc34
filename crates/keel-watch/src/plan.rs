//! The plan of a guarded apply: which canary slice and promotion steps, each watched how
//! long. The detectors only return verdicts ([`crate::Watcher::watch_apply`], one stage
//! at a time); `keel-control`'s guard walks [`GuardPlan::stages`], does every swap and
//! every revert, and records them. There is no second guard here that swaps the data
//! plane by itself: what CI and `bench/detect.sh` exercise is the product's path
//! (`keel-control`'s `Controller`).
//!
//! ```text
//! --canary P:  (P, watch) ─▶ (each larger promote step, step_watch) … ─▶ (full swap, step_watch)
//! no canary:   (full swap, watch)
//! ```

use std::time::Duration;

use keel_config::Safety;

/// Shortest watch of one promotion step (1 second).
pub const MIN_STEP_WATCH: Duration = Duration::from_secs(1);

/// How an apply is guarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardPlan {
    /// The first canary slice in thousandths; `None` swaps fully at once.
    pub canary_permille: Option<u32>,
    /// Watch time of the first canary slice, or of the full swap.
    pub watch: Duration,
    /// Promotion steps in percent after the canary (ending at 100).
    pub promote_steps: Vec<u32>,
    /// Watch time of each promotion step.
    pub step_watch: Duration,
}

impl GuardPlan {
    /// The plan for `keel apply [--canary P%] [--watch D]` under a config's `[safety]`:
    /// each promotion step is watched `watch / steps` (at least [`MIN_STEP_WATCH`]).
    pub fn new(safety: &Safety, canary_percent: Option<f64>, watch: Option<Duration>) -> Self {
        let watch = watch.unwrap_or(safety.watch);
        let steps = safety.promote_steps.len().max(1) as u32;
        Self {
            canary_permille: canary_percent.map(|p| (p.clamp(0.0, 100.0) * 10.0).round() as u32),
            watch,
            promote_steps: safety.promote_steps.clone(),
            step_watch: (watch / steps).max(MIN_STEP_WATCH),
        }
    }

    /// The stages of the plan, in order: the share each serves the candidate to (in
    /// thousandths; `None` is the full swap) and how long it is watched. A plan without a
    /// canary (or with a canary of 100%) is one full-swap stage; a canary plan walks its
    /// slice, then every larger promotion step, and always ends with the full swap.
    pub fn stages(&self) -> Vec<(Option<u32>, Duration)> {
        let mut stages: Vec<(Option<u32>, Duration)> = Vec::new();
        match self.canary_permille {
            Some(permille) if permille < 1000 => {
                stages.push((Some(permille), self.watch));
                for step in &self.promote_steps {
                    let step = step.saturating_mul(10);
                    if step <= permille {
                        continue;
                    }
                    stages.push(((step < 1000).then_some(step), self.step_watch));
                }
                if stages.last().is_some_and(|(p, _)| p.is_some()) {
                    stages.push((None, self.step_watch));
                }
            }
            _ => stages.push((None, self.watch)),
        }
        stages
    }

    /// The longest a guarded apply under this plan can take: every stage watched to its end.
    pub fn total_watch(&self) -> Duration {
        self.stages().iter().map(|(_, watch)| *watch).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safety() -> Safety {
        Safety {
            max_shift: 0.25,
            watch: Duration::from_secs(30),
            known_good_after: Duration::from_secs(30),
            keep_generations: 10,
            promote_steps: vec![25, 50, 100],
            drift_window: Duration::from_secs(3600),
            rolled_back_tunnels: keel_config::RolledBackTunnels::Drain,
            tunnel_drain: Duration::from_secs(30),
            cert_expiry_warning: Duration::from_secs(21 * 24 * 3600),
        }
    }

    #[test]
    fn plans_follow_the_flags_and_the_safety_section() {
        let plan = GuardPlan::new(&safety(), Some(10.0), None);
        assert_eq!(plan.canary_permille, Some(100));
        assert_eq!(plan.watch, Duration::from_secs(30));
        assert_eq!(plan.step_watch, Duration::from_secs(10));
        let plan = GuardPlan::new(&safety(), None, Some(Duration::from_secs(2)));
        assert_eq!(plan.canary_permille, None);
        assert_eq!(plan.step_watch, MIN_STEP_WATCH);
        assert_eq!(plan.stages(), vec![(None, Duration::from_secs(2))]);
    }

    #[test]
    fn canary_stages_walk_the_promotion_steps_and_end_with_the_full_swap() {
        let plan = GuardPlan::new(&safety(), Some(10.0), Some(Duration::from_secs(30)));
        let step = Duration::from_secs(10);
        assert_eq!(
            plan.stages(),
            vec![
                (Some(100), Duration::from_secs(30)),
                (Some(250), step),
                (Some(500), step),
                (None, step)
            ]
        );
        assert_eq!(plan.total_watch(), Duration::from_secs(60));
        let mut partial = safety();
        partial.promote_steps = vec![5, 50];
        let plan = GuardPlan::new(&partial, Some(10.0), Some(Duration::from_secs(4)));
        assert_eq!(
            plan.stages().iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![Some(100), Some(500), None]
        );
    }
}
