//! What a rollback does to the tunnels (upgraded connections, such as WebSockets) of
//! the generations it swaps away from: `[safety] rolled_back_tunnels`.
//!
//! A swap changes where new requests go, but a tunnel stays on the backend the
//! generation that routed it chose. After a rollback or a guard's revert that is
//! exactly the traffic the rollback meant to move, so with `"drain"` (the default) the
//! tunnels open in the generations left are closed after `tunnel_drain`, and their
//! clients reconnect through the restored generation; with `"keep"` they stay, and
//! `/status` shows them on the generation they belong to. The policy applied is the
//! restored generation's: it is the config in force once the rollback is done. A plain
//! apply never drains: a newer config is not a verdict on the older one's tunnels.

use std::sync::Arc;

use keel_config::{RolledBackTunnels, Safety};
use keel_proxy::Generation;

use crate::Controller;

impl Controller {
    /// The generations serving now (primary, and canary if any): call before a
    /// rollback's swap, and hand the result to [`Controller::settle_rolled_back_tunnels`].
    pub(crate) fn serving_generations(&self) -> Vec<Arc<Generation>> {
        self.inner
            .plane
            .active()
            .map(|active| {
                std::iter::once(active.primary.clone())
                    .chain(active.canary.as_ref().map(|c| c.generation.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Applies `safety`'s policy to the tunnels of every generation in `left` other
    /// than `restored`; returns how many open tunnels were set to drain (0 with
    /// `"keep"`).
    pub(crate) fn settle_rolled_back_tunnels(
        &self,
        left: &[Arc<Generation>],
        restored: u64,
        safety: &Safety,
    ) -> u64 {
        let leaving = left.iter().filter(|g| g.id != restored);
        match safety.rolled_back_tunnels {
            RolledBackTunnels::Keep => {
                for generation in leaving {
                    let open = generation.tunnels.total().open();
                    if open > 0 {
                        tracing::warn!(
                            generation = generation.id,
                            open,
                            "rolled back: {open} tunnels of generation {} kept open (rolled_back_tunnels = \"keep\")",
                            generation.id
                        );
                    }
                }
                0
            }
            RolledBackTunnels::Drain => leaving
                .map(|generation| {
                    let open = generation.tunnels.drain(safety.tunnel_drain);
                    if open > 0 {
                        tracing::warn!(
                            generation = generation.id,
                            open,
                            grace = ?safety.tunnel_drain,
                            "rolled back: {open} tunnels of generation {} drain",
                            generation.id
                        );
                    }
                    open
                })
                .sum(),
        }
    }
}
