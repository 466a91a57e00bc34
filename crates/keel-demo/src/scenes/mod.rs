//! The game day's scenes. Each one narrates in a line or two, acts on the running Keel the
//! way an operator would, checks what it expected, and returns a [`SceneResult`] with the
//! numbers it measured.
//!
//! | act | what happens | expected |
//! |---|---|---|
//! | warm-up | shoppers browse through Keel with the good config | ≥ 98 % ok, every backend serving |
//! | 1 | the March-15 edit is applied the normal way | refused by `check` (and the gate); nothing changes |
//! | 2 | the same edit is forced past the gate | it serves, the detectors fire, Keel reverts by itself |
//! | 3 | `keel timeline` of the game day | the refusal, the forced apply and the revert are in it |

mod refused;
mod reverted;
mod timeline;
mod warm_up;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{AffectedShare, LoadStats};
use crate::narration::Narrator;
use crate::stand::Stand;
use crate::view::LiveView;

pub use refused::{EDIT_MESSAGE, GAME_DAY_AUTHOR};
pub use reverted::{ALERT_DEADLINE, PUSH_DEADLINE, REVERT_SLACK, SETTLE};
pub use warm_up::{MIN_WARM_UP_SUCCESS, READY_DEADLINE};

/// Least share of ok answers expected once Keel has reverted (0.98).
pub const MIN_RECOVERED_SUCCESS: f64 = 0.98;

/// A part of the game day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Act {
    /// Shoppers through Keel with the good config (always runs first).
    WarmUp,
    /// Scene 1: the misconfiguration applied the normal way, refused.
    Refused,
    /// Scene 2: the misconfiguration forced, detected and reverted by Keel.
    Reverted,
    /// Scene 3: the timeline of the game day.
    Timeline,
}

impl Act {
    /// The three scenes, in order.
    pub const SCENES: [Act; 3] = [Act::Refused, Act::Reverted, Act::Timeline];

    /// The scene of number `n` (1 to 3).
    pub fn scene(n: u8) -> Option<Act> {
        Act::SCENES.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// Its number (0 for the warm-up).
    pub fn number(self) -> u8 {
        match self {
            Act::WarmUp => 0,
            Act::Refused => 1,
            Act::Reverted => 2,
            Act::Timeline => 3,
        }
    }

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Act::WarmUp => "warm-up: the shop on a normal morning",
            Act::Refused => "scene 1: the edit, applied the normal way",
            Act::Reverted => "scene 2: the edit, forced past the gate",
            Act::Timeline => "scene 3: the post-mortem timeline",
        }
    }
}

/// One thing a scene expected, and whether it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// What was expected, with what was measured.
    pub what: String,
    /// Whether it held.
    pub met: bool,
}

/// What scene 2 measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The generation that was forced in.
    pub bad_generation: Option<u64>,
    /// From the apply call (the push) to the data plane serving the good generation again.
    pub push_to_recovery: Duration,
    /// Shoppers affected among shoppers active, over the whole seconds from the push to
    /// one second after the recovery.
    pub affected: AffectedShare,
    /// That window, in seconds since the load started.
    pub window: (Duration, Duration),
    /// The alerts the store recorded between the push and the recovery.
    pub alerts: Vec<String>,
}

/// How one act went.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneResult {
    /// The act.
    pub act: Act,
    /// Everything it expected.
    pub expectations: Vec<Expectation>,
    /// Scene 2's numbers.
    pub recovery: Option<Recovery>,
}

impl SceneResult {
    fn new(act: Act) -> SceneResult {
        SceneResult {
            act,
            expectations: Vec::new(),
            recovery: None,
        }
    }

    /// True when every expectation held (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.expectations.is_empty() && self.expectations.iter().all(|e| e.met)
    }

    /// Records an expectation and says its verdict.
    fn expect(&mut self, narrator: &Narrator, met: bool, what: String) {
        narrator.verdict(met, what.clone());
        self.expectations.push(Expectation { what, met });
    }
}

/// What every scene works with.
#[derive(Debug)]
pub struct Play<'a> {
    /// Keel, in front of the shop.
    pub stand: &'a Stand,
    /// The shoppers' statistics.
    pub stats: &'a Arc<LoadStats>,
    /// The game day's voice.
    pub narrator: &'a Narrator,
    /// The live view (for the phase shown).
    pub view: &'a LiveView,
    /// How long the warm-up and the observation after the revert last.
    pub observe: Duration,
    /// Pause after a scene so the screen can be read.
    pub pause: Duration,
    /// When the game day began, in ms since the Unix epoch (the timeline starts there).
    pub started_ms: i64,
    /// The acts run so far.
    pub done: Vec<Act>,
    /// The generation scene 2 forced in, once it has.
    pub forced_generation: Option<u64>,
}

impl Play<'_> {
    /// Runs one act.
    pub async fn run(&mut self, act: Act) -> SceneResult {
        self.view.set_phase(act.title());
        self.narrator.title(act.title());
        let result = match act {
            Act::WarmUp => warm_up::run(self).await,
            Act::Refused => refused::run(self).await,
            Act::Reverted => reverted::run(self).await,
            Act::Timeline => timeline::run(self).await,
        };
        self.done.push(act);
        result
    }

    /// Seconds since the load started, of an instant.
    fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.stats.started_at())
    }

    /// Share of ok answers over the whole seconds `from..to` (offsets since the load
    /// started), and how many answers that was.
    fn success_between(&self, from: Duration, to: Duration) -> (Option<f64>, u64) {
        let (mut ok, mut all) = (0, 0);
        let first = from.as_secs() as u32;
        let last = to.as_secs() as u32;
        for second in first..last {
            if let Some(stats) = self.stats.second(second) {
                ok += stats.outcomes.get(crate::load::Outcome::Ok);
                all += stats.outcomes.total();
            }
        }
        ((all > 0).then(|| ok as f64 / all as f64), all)
    }
}

/// A duration for people: `0.08 s` under ten seconds, `12.3 s` above.
pub fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2} s")
    } else {
        format!("{secs:.1} s")
    }
}

/// `0.834` → `83.4%`.
pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Waits until `ready` holds, checking every `every`, for at most `deadline`.
async fn eventually(deadline: Duration, every: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_numbered_from_one() {
        assert_eq!(Act::scene(0), None);
        assert_eq!(Act::scene(1), Some(Act::Refused));
        assert_eq!(Act::scene(3), Some(Act::Timeline));
        assert_eq!(Act::scene(4), None);
        for act in Act::SCENES {
            assert_eq!(Act::scene(act.number()), Some(act));
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(seconds(Duration::from_millis(84)), "0.08 s");
        assert_eq!(seconds(Duration::from_millis(12_345)), "12.3 s");
        assert_eq!(percent(0.0404), "4.0%");
    }

    #[test]
    fn a_result_passes_only_when_every_expectation_held() {
        let narrator = Narrator::new(false);
        let mut result = SceneResult::new(Act::Refused);
        assert!(!result.passed(), "no expectation at all is not a pass");
        result.expect(&narrator, true, "refused".into());
        assert!(result.passed());
        result.expect(&narrator, false, "nothing changed".into());
        assert!(!result.passed());
    }
}
