//! The load's live statistics: totals and one bucket per second, all relaxed atomics, plus
//! the shoppers seen and affected in each second.
//!
//! Counters are readable at any moment from any thread. Shopper ids are appended to a
//! second's lists at most once per shopper per second (the shopper remembers the last
//! second it was listed in), so the per-bucket locks are taken a few hundred times a
//! second, not once per response. "Share of shoppers affected" over a window is then an
//! exact union of those lists.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::RECENT_WINDOW;
use super::generations::{GENERATION_COUNTERS, GenerationSeen, GenerationTable};
use super::outcome::{ANSWERER_SLOTS, Answerer, Outcome};
use super::shopper::Marks;
use super::snapshot::{
    AffectedShare, AnswerCounts, GenerationCount, LoadSnapshot, OutcomeCounts, SecondStats, Totals,
};

/// One classified answer, as recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub(crate) outcome: Outcome,
    /// `None` for a transport error: nobody answered.
    pub(crate) answerer: Option<Answerer>,
    pub(crate) generation: GenerationSeen,
    pub(crate) latency: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    answered: [AtomicU64; ANSWERER_SLOTS],
    generation_responses: [AtomicU64; GENERATION_COUNTERS],
    generation_bad: [AtomicU64; GENERATION_COUNTERS],
    latency_sum_us: AtomicU64,
    latency_max_us: AtomicU64,
}

impl Counters {
    fn record(&self, answer: &Answer, generation: usize) {
        let add = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
        add(&self.outcomes[answer.outcome.index()]);
        if let Some(answerer) = answer.answerer {
            add(&self.answered[answerer.index()]);
        }
        add(&self.generation_responses[generation]);
        if answer.outcome.is_bad() {
            add(&self.generation_bad[generation]);
        }
        let micros = u64::try_from(answer.latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(micros, Ordering::Relaxed);
        self.latency_max_us.fetch_max(micros, Ordering::Relaxed);
    }

    fn outcomes(&self) -> OutcomeCounts {
        OutcomeCounts::from_counts(read(&self.outcomes))
    }

    fn answered(&self) -> AnswerCounts {
        AnswerCounts::from_counts(read(&self.answered))
    }

    fn generations(&self, table: &GenerationTable) -> Vec<GenerationCount> {
        let responses = read(&self.generation_responses);
        let bad = read(&self.generation_bad);
        (0..GENERATION_COUNTERS)
            .filter(|&position| responses[position] > 0)
            .filter_map(|position| {
                Some(GenerationCount {
                    generation: table.label(position)?,
                    responses: responses[position],
                    bad: bad[position],
                })
            })
            .collect()
    }
}

fn read<const N: usize>(counters: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| counters[i].load(Ordering::Relaxed))
}

#[derive(Debug, Default)]
struct Bucket {
    counters: Counters,
    /// Shoppers with at least one answer in this second.
    active: Mutex<Vec<u64>>,
    /// Shoppers with at least one bad answer in this second.
    affected: Mutex<Vec<u64>>,
}

/// Live statistics of one [`ShopperLoad`](super::ShopperLoad); see the module documentation.
#[derive(Debug)]
pub struct LoadStats {
    started: Instant,
    total: Counters,
    skipped: AtomicU64,
    shoppers_started: AtomicU64,
    shoppers_finished: AtomicU64,
    shoppers_affected: AtomicU64,
    finished: AtomicBool,
    /// Microseconds from the start to the end of the run; meaningful once `finished`.
    finished_after_us: AtomicU64,
    generations: GenerationTable,
    seconds: Box<[Bucket]>,
}

impl LoadStats {
    pub(crate) fn new(started: Instant, seconds: usize) -> LoadStats {
        LoadStats {
            started,
            total: Counters::default(),
            skipped: AtomicU64::new(0),
            shoppers_started: AtomicU64::new(0),
            shoppers_finished: AtomicU64::new(0),
            shoppers_affected: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            finished_after_us: AtomicU64::new(0),
            generations: GenerationTable::default(),
            seconds: (0..seconds.max(1)).map(|_| Bucket::default()).collect(),
        }
    }

    /// When the load started: second 0 begins here.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// The second of the run `at` falls in (clamped to the kept seconds).
    pub fn second_of(&self, at: Instant) -> u32 {
        let second = at.saturating_duration_since(self.started).as_secs();
        second.min(self.seconds.len() as u64 - 1) as u32
    }

    fn bucket(&self, at: Instant) -> &Bucket {
        &self.seconds[self.second_of(at) as usize]
    }

    pub(crate) fn record_sent(&self, at: Instant) {
        self.total.sent.fetch_add(1, Ordering::Relaxed);
        self.bucket(at)
            .counters
            .sent
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_skipped(&self, ticks: u64) {
        self.skipped.fetch_add(ticks, Ordering::Relaxed);
    }

    pub(crate) fn record_shopper_started(&self) {
        self.shoppers_started.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_shopper_finished(&self) {
        self.shoppers_finished.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn mark_finished(&self) {
        let run = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.finished_after_us.store(run, Ordering::Relaxed);
        self.finished.store(true, Ordering::Release);
    }

    /// Now, or the end of the run once it has finished: views of a finished load stay put.
    fn view_time(&self) -> Instant {
        if self.is_finished() {
            self.started + Duration::from_micros(self.finished_after_us.load(Ordering::Relaxed))
        } else {
            Instant::now()
        }
    }

    /// Record one answer to shopper `shopper`, completed at `at`.
    pub(crate) fn record_answer(
        &self,
        at: Instant,
        shopper: u64,
        marks: &mut Marks,
        answer: &Answer,
    ) {
        let second = self.second_of(at);
        let bucket = &self.seconds[second as usize];
        let generation = self.generations.position(answer.generation);
        self.total.record(answer, generation);
        bucket.counters.record(answer, generation);
        if marks.last_active_second != Some(second) {
            marks.last_active_second = Some(second);
            push(&bucket.active, shopper);
        }
        if answer.outcome.is_bad() {
            if marks.last_affected_second != Some(second) {
                marks.last_affected_second = Some(second);
                push(&bucket.affected, shopper);
            }
            if !marks.ever_affected {
                marks.ever_affected = true;
                self.shoppers_affected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Shoppers affected among shoppers active, over the whole seconds overlapping
    /// `from..to` (offsets since the start): a shopper counts once however many of their
    /// answers were bad.
    pub fn affected_between(&self, from: Duration, to: Duration) -> AffectedShare {
        let last = self.seconds.len() as u64;
        let first = from.as_secs().min(last) as usize;
        let end = (to.as_secs() + u64::from(to.subsec_nanos() > 0)).min(last) as usize;
        let mut active = HashSet::new();
        let mut affected = HashSet::new();
        for bucket in self.seconds.get(first..end).unwrap_or_default() {
            active.extend(lock(&bucket.active).iter().copied());
            affected.extend(lock(&bucket.affected).iter().copied());
        }
        AffectedShare {
            affected: affected.len() as u64,
            shoppers: active.len() as u64,
        }
    }

    /// [`affected_between`](Self::affected_between) for two instants.
    pub fn affected_between_instants(&self, from: Instant, to: Instant) -> AffectedShare {
        self.affected_between(
            from.saturating_duration_since(self.started),
            to.saturating_duration_since(self.started),
        )
    }

    /// Statistics of second `second`, if the run keeps it.
    pub fn second(&self, second: u32) -> Option<SecondStats> {
        let bucket = self.seconds.get(second as usize)?;
        let outcomes = bucket.counters.outcomes();
        let answers = outcomes.total();
        let sum = bucket.counters.latency_sum_us.load(Ordering::Relaxed);
        Some(SecondStats {
            second,
            sent: bucket.counters.sent.load(Ordering::Relaxed),
            outcomes,
            answered: bucket.counters.answered(),
            generations: bucket.counters.generations(&self.generations),
            mean_latency: (answers > 0).then(|| Duration::from_micros(sum / answers)),
            max_latency: Duration::from_micros(
                bucket.counters.latency_max_us.load(Ordering::Relaxed),
            ),
        })
    }

    /// Every second from the start up to the current one (or the last one of a finished
    /// run), in order.
    pub fn seconds(&self) -> Vec<SecondStats> {
        (0..=self.second_of(self.view_time()))
            .filter_map(|s| self.second(s))
            .collect()
    }

    /// Counts since the start.
    pub fn totals(&self) -> Totals {
        Totals {
            sent: self.total.sent.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            outcomes: self.total.outcomes(),
            answered: self.total.answered(),
            shoppers_started: self.shoppers_started.load(Ordering::Relaxed),
            shoppers_finished: self.shoppers_finished.load(Ordering::Relaxed),
            shoppers_affected: self.shoppers_affected.load(Ordering::Relaxed),
        }
    }

    /// Responses and bad responses per generation since the start.
    pub fn generations(&self) -> Vec<GenerationCount> {
        self.total.generations(&self.generations)
    }

    /// Whether the load has stopped and collected its last answers.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Everything a live view needs, now (for a finished run: as it ended).
    pub fn snapshot(&self) -> LoadSnapshot {
        let now = self.view_time();
        let elapsed = now.saturating_duration_since(self.started);
        let current = self.second_of(now);
        let last_second = self
            .second(current.saturating_sub(1))
            .unwrap_or_else(|| empty_second(current));
        let totals = self.totals();
        LoadSnapshot {
            elapsed,
            finished: self.is_finished(),
            requests_per_sec: last_second.sent,
            success_rate: last_second.outcomes.success_rate(),
            last_second,
            generations: self.generations(),
            affected_recent: self.affected_between(elapsed.saturating_sub(RECENT_WINDOW), elapsed),
            affected_total: AffectedShare {
                affected: totals.shoppers_affected,
                shoppers: totals.shoppers_started,
            },
            totals,
        }
    }
}

fn empty_second(second: u32) -> SecondStats {
    SecondStats {
        second,
        sent: 0,
        outcomes: OutcomeCounts::default(),
        answered: AnswerCounts::default(),
        generations: Vec::new(),
        mean_latency: None,
        max_latency: Duration::ZERO,
    }
}

fn lock(list: &Mutex<Vec<u64>>) -> std::sync::MutexGuard<'_, Vec<u64>> {
    list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn push(list: &Mutex<Vec<u64>>, shopper: u64) {
    lock(list).push(shopper);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(outcome: Outcome, generation: u64) -> Answer {
        Answer {
            outcome,
            answerer: Some(Answerer::Service(crate::shop::ServiceKind::Cart)),
            generation: GenerationSeen::Id(generation),
            latency: Duration::from_millis(4),
        }
    }

    #[test]
    fn affected_share_counts_each_shopper_once_per_window() {
        let start = Instant::now();
        let stats = LoadStats::new(start, 10);
        let at = |secs: f64| start + Duration::from_secs_f64(secs);
        let mut marks = [Marks::default(); 4];
        // Second 0: shoppers 0..4 all fine.
        for (id, m) in marks.iter_mut().enumerate() {
            stats.record_answer(at(0.2), id as u64, m, &answer(Outcome::Ok, 1));
        }
        // Seconds 1 and 2: shopper 1 fails twice, shopper 2 once, shopper 0 is fine.
        stats.record_answer(
            at(1.1),
            1,
            &mut marks[1],
            &answer(Outcome::WrongApplication, 2),
        );
        stats.record_answer(
            at(1.5),
            1,
            &mut marks[1],
            &answer(Outcome::WrongApplication, 2),
        );
        stats.record_answer(at(2.5), 2, &mut marks[2], &answer(Outcome::LostCart, 2));
        stats.record_answer(at(2.6), 0, &mut marks[0], &answer(Outcome::Ok, 2));

        let none = stats.affected_between(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(
            none,
            AffectedShare {
                affected: 0,
                shoppers: 4
            }
        );
        let bad = stats.affected_between(Duration::from_secs(1), Duration::from_millis(2_700));
        assert_eq!(
            bad,
            AffectedShare {
                affected: 2,
                shoppers: 3
            }
        );
        assert_eq!(stats.totals().shoppers_affected, 2);

        let generations = stats.generations();
        let of = |id| {
            generations
                .iter()
                .find(|g| g.generation == super::super::GenerationLabel::Id(id))
        };
        assert_eq!(of(1).map(|g| (g.responses, g.bad)), Some((4, 0)));
        assert_eq!(of(2).map(|g| (g.responses, g.bad)), Some((4, 3)));

        let second_one = stats.second(1).expect("kept second");
        assert_eq!(second_one.outcomes.get(Outcome::WrongApplication), 2);
        assert_eq!(second_one.mean_latency, Some(Duration::from_millis(4)));
    }

    #[test]
    fn instants_past_the_kept_seconds_land_in_the_last_one() {
        let start = Instant::now();
        let stats = LoadStats::new(start, 3);
        assert_eq!(stats.second_of(start + Duration::from_secs(60)), 2);
        stats.record_sent(start + Duration::from_secs(60));
        assert_eq!(stats.second(2).map(|s| s.sent), Some(1));
        assert!(stats.second(3).is_none());
    }
}
