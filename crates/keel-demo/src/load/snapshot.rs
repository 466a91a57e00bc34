//! Plain-value views of a load's statistics, for the live view, the scenes and tests.
//!
//! Everything here is a copy taken at one moment: reading it never blocks the load.

use std::time::Duration;

use super::generations::GenerationLabel;
use super::outcome::{ANSWERER_SLOTS, Answerer, Outcome};

/// Responses per [`Outcome`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    counts: [u64; Outcome::ALL.len()],
}

impl OutcomeCounts {
    pub(crate) fn from_counts(counts: [u64; Outcome::ALL.len()]) -> OutcomeCounts {
        OutcomeCounts { counts }
    }

    /// Responses classified as `outcome`.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.counts[outcome.index()]
    }

    /// All responses (every outcome, transport errors included).
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Responses that were not [`Outcome::Ok`].
    pub fn bad(&self) -> u64 {
        self.total() - self.get(Outcome::Ok)
    }

    /// Share of ok responses, 0 to 1; `None` when there were none at all.
    pub fn success_rate(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.get(Outcome::Ok) as f64 / total as f64)
    }
}

/// Responses per answering application (`x-service`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerCounts {
    counts: [u64; ANSWERER_SLOTS],
}

impl AnswerCounts {
    pub(crate) fn from_counts(counts: [u64; ANSWERER_SLOTS]) -> AnswerCounts {
        AnswerCounts { counts }
    }

    /// Responses `answerer` gave.
    pub fn get(&self, answerer: Answerer) -> u64 {
        self.counts[answerer.index()]
    }

    /// All responses with a status (transport errors have no answerer).
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Share of responses `answerer` gave, 0 to 1 (0 when there were none).
    pub fn share(&self, answerer: Answerer) -> f64 {
        match self.total() {
            0 => 0.0,
            total => self.get(answerer) as f64 / total as f64,
        }
    }

    /// Every answerer with at least one response, with its count, in counter order.
    pub fn nonzero(&self) -> impl Iterator<Item = (Answerer, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, count)| (Answerer::from_index(index), *count))
    }
}

/// Responses routed by one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationCount {
    /// The generation, from `x-keel-generation`.
    pub generation: GenerationLabel,
    /// Responses (transport errors carry no header: they count under `Missing`).
    pub responses: u64,
    /// Of those, the ones that were not [`Outcome::Ok`].
    pub bad: u64,
}

/// One second of a run: what was sent in it and what was answered in it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondStats {
    /// Seconds since the load started (0 is the first second).
    pub second: u32,
    /// Requests sent in this second (the request rate).
    pub sent: u64,
    /// Answers completed in this second, by outcome.
    pub outcomes: OutcomeCounts,
    /// Answers completed in this second, by answering application.
    pub answered: AnswerCounts,
    /// Answers completed in this second, by generation (only generations seen).
    pub generations: Vec<GenerationCount>,
    /// Mean time from sending to the last body byte, over this second's answers.
    pub mean_latency: Option<Duration>,
    /// Longest such time in this second.
    pub max_latency: Duration,
}

/// Shoppers with at least one bad response, among those active, over some window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AffectedShare {
    /// Shoppers with at least one response that was not [`Outcome::Ok`] in the window.
    pub affected: u64,
    /// Shoppers with at least one response in the window.
    pub shoppers: u64,
}

impl AffectedShare {
    /// `affected / shoppers`, 0 to 1; `None` when no shopper was active.
    pub fn share(&self) -> Option<f64> {
        (self.shoppers > 0).then(|| self.affected as f64 / self.shoppers as f64)
    }
}

/// Counts since the load started.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Requests sent.
    pub sent: u64,
    /// Ticks of the rate clock that sent nothing: in-flight or shopper cap reached, or the
    /// clock's task ran late (a busy machine). When non-zero, the load ran below its rate.
    pub skipped: u64,
    /// Answers by outcome.
    pub outcomes: OutcomeCounts,
    /// Answers by answering application.
    pub answered: AnswerCounts,
    /// Shoppers who began a journey.
    pub shoppers_started: u64,
    /// Shoppers who completed every step of their journey.
    pub shoppers_finished: u64,
    /// Shoppers with at least one bad response.
    pub shoppers_affected: u64,
}

/// Everything a live view shows, taken at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSnapshot {
    /// Time since the load started (for a finished load: how long it ran).
    pub elapsed: Duration,
    /// Whether the load has stopped sending and collected its last answers.
    pub finished: bool,
    /// Counts since the start.
    pub totals: Totals,
    /// The last complete second (the current one during the first second). Once the
    /// load has finished, the second before the one it ended in.
    pub last_second: SecondStats,
    /// Requests sent in `last_second`.
    pub requests_per_sec: u64,
    /// Share of ok answers in `last_second`; `None` if it had none.
    pub success_rate: Option<f64>,
    /// Responses and bad responses per generation since the start.
    pub generations: Vec<GenerationCount>,
    /// Affected shoppers over the last [`RECENT_WINDOW`](super::RECENT_WINDOW).
    pub affected_recent: AffectedShare,
    /// Affected shoppers since the start, among every shopper who started.
    pub affected_total: AffectedShare,
}
