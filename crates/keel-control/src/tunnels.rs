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
use serde::{Deserialize, Serialize};

use crate::Controller;

/// What a rollback did to the open tunnels of the generations it left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelsLeft {
    /// Tunnels left open (`rolled_back_tunnels = "keep"`).
    pub kept: u64,
    /// Tunnels set to close after `tunnel_drain` (`"drain"`).
    pub drained: u64,
    /// The grace drained tunnels get, in milliseconds (0 when none drain).
    pub drain_ms: u64,
}

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
    /// than `restored`, and says how many open tunnels it kept or set to drain.
    pub(crate) fn settle_rolled_back_tunnels(
        &self,
        left: &[Arc<Generation>],
        restored: u64,
        safety: &Safety,
    ) -> TunnelsLeft {
        let leaving = left.iter().filter(|g| g.id != restored);
        match safety.rolled_back_tunnels {
            RolledBackTunnels::Keep => {
                let mut kept = 0;
                for generation in leaving {
                    let open = generation.tunnels.total().open();
                    kept += open;
                    if open > 0 {
                        tracing::warn!(
                            generation = generation.id,
                            open,
                            "rolled back: {open} tunnels of generation {} kept open (rolled_back_tunnels = \"keep\")",
                            generation.id
                        );
                    }
                }
                TunnelsLeft {
                    kept,
                    ..TunnelsLeft::default()
                }
            }
            RolledBackTunnels::Drain => {
                let drained: u64 = leaving
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
                    .sum();
                TunnelsLeft {
                    drained,
                    drain_ms: if drained > 0 {
                        u64::try_from(safety.tunnel_drain.as_millis()).unwrap_or(u64::MAX)
                    } else {
                        0
                    },
                    ..TunnelsLeft::default()
                }
            }
        }
    }
}
