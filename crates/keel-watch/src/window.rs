//! Sliding windows over a generation's counters, built off the hot path.
//!
//! The data plane only bumps relaxed atomics in [`GenerationStats`]. A sampler (the
//! watcher's tick task) reads them every [`TICK`] into a flat vector, stores the
//! per-tick difference as a sparse delta in a ring, and keeps the running sum of the
//! ring: the window. A detector therefore reads "the last N seconds of generation 7"
//! in O(counters), and a tick costs one scan of the counters plus the non-zero deltas.
//! Each TLS listener's handshakes of the generation follow its request counters in
//! the same vector (`handshake_window.rs`), so they share the window.
//!
//! A generation that stops serving (superseded, or a canary that was ended) keeps its
//! series, frozen: it stops taking empty ticks, so its window stays "the last N seconds
//! it served" — the baseline a full swap is compared with.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use keel_proxy::Generation;
use keel_proxy::stats::{GenerationStats, Outcome};
use tokio::time::Instant;

use crate::handshake_window::{HandshakeLayout, Handshakes};
use crate::shape::Shape;

/// Time between two samples of the counters (250 ms): the detectors' resolution.
pub const TICK: Duration = Duration::from_millis(250);

/// Outcome classes per counter cell.
const OUTCOMES: usize = Outcome::ALL.len();
/// Latency buckets per route.
const BUCKETS: usize = keel_proxy::stats::LATENCY_BUCKETS_MICROS.len();

/// Where each counter of a generation sits in a flat vector.
#[derive(Debug)]
pub struct Layout {
    routes: Box<[RouteLayout]>,
    handshakes: HandshakeLayout,
    len: usize,
}

#[derive(Debug)]
struct RouteLayout {
    /// Offset of each arm's first backend; backend `b`, outcome `o` is at `start + b*7 + o`.
    arms: Box<[(usize, usize)]>,
    unassigned: usize,
    latency: usize,
    /// Requests the route's policies refused (403, 429): one cell.
    refused: usize,
}

impl Layout {
    /// The layout of a generation's counters.
    pub fn of(generation: &Generation) -> Self {
        let stats = &generation.stats;
        let mut offset = 0;
        let routes = stats
            .routes
            .iter()
            .map(|route| {
                let arms = route
                    .targets
                    .iter()
                    .map(|backends| {
                        let arm = (offset, backends.len());
                        offset += backends.len() * OUTCOMES;
                        arm
                    })
                    .collect();
                let unassigned = offset;
                offset += OUTCOMES;
                let latency = offset;
                offset += BUCKETS;
                let refused = offset;
                offset += 1;
                RouteLayout {
                    arms,
                    unassigned,
                    latency,
                    refused,
                }
            })
            .collect();
        let handshakes = HandshakeLayout::of(&generation.tls, offset);
        let len = offset + handshakes.len();
        Self {
            routes,
            handshakes,
            len,
        }
    }

    /// Reads every counter into `out` (which has `self.len` cells).
    fn read(&self, generation: &Generation, out: &mut [u64]) {
        self.read_requests(&generation.stats, out);
        self.handshakes.read(&generation.tls, out);
    }

    fn read_requests(&self, stats: &GenerationStats, out: &mut [u64]) {
        for (layout, route) in self.routes.iter().zip(stats.routes.iter()) {
            for ((start, _), backends) in layout.arms.iter().zip(route.targets.iter()) {
                for (b, counters) in backends.iter().enumerate() {
                    for (o, outcome) in Outcome::ALL.iter().enumerate() {
                        out[start + b * OUTCOMES + o] = counters.get(*outcome);
                    }
                }
            }
            for (o, outcome) in Outcome::ALL.iter().enumerate() {
                out[layout.unassigned + o] = route.unassigned.get(*outcome);
            }
            out[layout.latency..layout.latency + BUCKETS].copy_from_slice(&route.latency_buckets());
            out[layout.refused] = route
                .policy_refused
                .load(std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Counter sums over a window, read through the generation's layout.
#[derive(Clone, Copy, Debug)]
pub struct WindowView<'a> {
    layout: &'a Layout,
    values: &'a [u64],
}

impl WindowView<'_> {
    /// Number of routes.
    pub fn route_count(&self) -> usize {
        self.layout.routes.len()
    }

    /// Number of target arms of a route.
    pub fn arm_count(&self, route: usize) -> usize {
        self.layout.routes.get(route).map_or(0, |r| r.arms.len())
    }

    /// Outcomes of one backend of one arm.
    pub fn backend(&self, route: usize, arm: usize, backend: usize) -> [u64; OUTCOMES] {
        let Some((start, n)) = self.layout.routes.get(route).and_then(|r| r.arms.get(arm)) else {
            return [0; OUTCOMES];
        };
        if backend >= *n {
            return [0; OUTCOMES];
        }
        self.cell(start + backend * OUTCOMES)
    }

    /// Outcomes of one arm (all its backends).
    pub fn arm(&self, route: usize, arm: usize) -> [u64; OUTCOMES] {
        let backends = self
            .layout
            .routes
            .get(route)
            .and_then(|r| r.arms.get(arm))
            .map_or(0, |(_, n)| *n);
        let mut sum = [0; OUTCOMES];
        for b in 0..backends {
            add(&mut sum, &self.backend(route, arm, b));
        }
        sum
    }

    /// Outcomes of a route: every arm plus requests that reached no backend.
    pub fn route(&self, route: usize) -> [u64; OUTCOMES] {
        let Some(layout) = self.layout.routes.get(route) else {
            return [0; OUTCOMES];
        };
        let mut sum = self.cell(layout.unassigned);
        for arm in 0..layout.arms.len() {
            add(&mut sum, &self.arm(route, arm));
        }
        sum
    }

    /// Requests a route's traffic policies refused (`403` address rule, `429` rate
    /// limit); they are also in the route's client-error outcomes.
    pub fn refused(&self, route: usize) -> u64 {
        self.layout
            .routes
            .get(route)
            .and_then(|r| self.values.get(r.refused))
            .copied()
            .unwrap_or(0)
    }

    /// Non-cumulative latency bucket counts of a route.
    pub fn latency(&self, route: usize) -> [u64; BUCKETS] {
        let mut out = [0; BUCKETS];
        if let Some(layout) = self.layout.routes.get(route) {
            out.copy_from_slice(&self.values[layout.latency..layout.latency + BUCKETS]);
        }
        out
    }

    /// Handshakes per TLS listener of the generation, in its config order.
    pub fn handshakes(&self) -> Vec<Handshakes> {
        self.layout.handshakes.counts(self.values)
    }

    /// Outcomes of the whole generation (routed requests only).
    pub fn total(&self) -> [u64; OUTCOMES] {
        let mut sum = [0; OUTCOMES];
        for route in 0..self.route_count() {
            add(&mut sum, &self.route(route));
        }
        sum
    }

    fn cell(&self, start: usize) -> [u64; OUTCOMES] {
        let mut out = [0; OUTCOMES];
        out.copy_from_slice(&self.values[start..start + OUTCOMES]);
        out
    }
}

/// Adds outcome counts.
pub fn add(sum: &mut [u64; OUTCOMES], other: &[u64; OUTCOMES]) {
    for (s, o) in sum.iter_mut().zip(other) {
        *s += o;
    }
}

/// Requests in a set of outcome counts.
pub fn requests(counts: &[u64; OUTCOMES]) -> u64 {
    counts.iter().sum()
}

/// Failures (5xx, connect failure, misidentified) in a set of outcome counts.
pub fn failures(counts: &[u64; OUTCOMES]) -> u64 {
    Outcome::ALL
        .iter()
        .filter(|o| o.is_failure())
        .map(|o| counts[*o as usize])
        .sum()
}

/// One tick's non-zero counter increments: (cell, increment).
#[derive(Debug)]
struct Tick {
    delta: Vec<(u32, u64)>,
}

/// The sampled history of one generation.
#[derive(Debug)]
pub struct Series {
    /// The generation's id.
    pub id: u64,
    /// Names and destinations of its routes.
    pub shape: Arc<Shape>,
    generation: Weak<Generation>,
    layout: Layout,
    last: Vec<u64>,
    scratch: Vec<u64>,
    window: Vec<u64>,
    ring: VecDeque<Tick>,
    capacity: usize,
    /// When the series was started.
    pub first_seen: Instant,
    /// When it was last seen primary or canary.
    pub last_live: Instant,
}

impl Series {
    /// A series for a generation, with a window of `ticks` ticks. Counting starts from
    /// zero: requests served before the first sample land in the first tick.
    pub fn new(generation: &Arc<Generation>, ticks: usize, now: Instant) -> Self {
        let layout = Layout::of(generation);
        let len = layout.len;
        Self {
            id: generation.id,
            shape: Arc::new(Shape::of(generation)),
            generation: Arc::downgrade(generation),
            layout,
            last: vec![0; len],
            scratch: vec![0; len],
            window: vec![0; len],
            ring: VecDeque::with_capacity(ticks + 1),
            capacity: ticks.max(1),
            first_seen: now,
            last_live: now,
        }
    }

    /// True when this series samples that very generation.
    pub fn is_of(&self, generation: &Arc<Generation>) -> bool {
        std::ptr::eq(self.generation.as_ptr(), Arc::as_ptr(generation))
    }

    /// The generation, while it is alive.
    pub fn generation(&self) -> Option<Arc<Generation>> {
        self.generation.upgrade()
    }

    /// Takes one sample. A `live` series (primary or canary) records every tick, so its
    /// window slides with time; a frozen one records only ticks that saw traffic.
    pub fn sample(&mut self, live: bool, now: Instant) {
        if live {
            self.last_live = now;
        }
        let Some(generation) = self.generation.upgrade() else {
            return;
        };
        self.layout.read(&generation, &mut self.scratch);
        let mut delta = Vec::new();
        for (i, (current, last)) in self.scratch.iter().zip(self.last.iter()).enumerate() {
            if current > last {
                delta.push((i as u32, current - last));
            }
        }
        std::mem::swap(&mut self.last, &mut self.scratch);
        if delta.is_empty() && !live {
            return;
        }
        for (i, d) in &delta {
            self.window[*i as usize] += d;
        }
        self.ring.push_back(Tick { delta });
        while self.ring.len() > self.capacity {
            if let Some(old) = self.ring.pop_front() {
                for (i, d) in old.delta {
                    self.window[i as usize] -= d;
                }
            }
        }
    }

    /// The counters summed over the window.
    pub fn window(&self) -> WindowView<'_> {
        WindowView {
            layout: &self.layout,
            values: &self.window,
        }
    }

    /// Ticks currently in the window.
    pub fn ticks(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_proxy::{DataPlane, DataPlaneOptions};

    const CONFIG: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"

[services.web]

[pools.a]
service = "web"
backends = [{ addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002" }]

[pools.b]
service = "web"
backends = [{ addr = "127.0.0.1:9003" }]

[[routes]]
name = "split"
service = "web"
split = [{ pool = "a", weight = 1 }, { pool = "b", weight = 1 }]
"#;

    fn generation() -> Arc<Generation> {
        let parsed = keel_config::parse(CONFIG);
        assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
        let config = Arc::new(parsed.config);
        let plane = DataPlane::new(DataPlaneOptions::from_config(&config)).expect("plane");
        plane.compile(3, config).expect("compile")
    }

    #[test]
    fn a_live_window_slides_and_a_frozen_one_keeps_its_last_traffic() {
        let generation = generation();
        let route = &generation.stats.routes[0];
        let now = Instant::now();
        let mut series = Series::new(&generation, 4, now);
        assert!(series.is_of(&generation));
        for _ in 0..10 {
            route.targets[0][1].record(Outcome::Success);
        }
        route.targets[1][0].record(Outcome::ServerError);
        route.target_latency[1].observe(Duration::from_millis(3));
        series.sample(true, now);
        let view = series.window();
        assert_eq!(view.backend(0, 0, 1)[Outcome::Success as usize], 10);
        assert_eq!(view.arm(0, 1)[Outcome::ServerError as usize], 1);
        assert_eq!(requests(&view.route(0)), 11);
        assert_eq!(view.latency(0).iter().sum::<u64>(), 1);
        // Four quiet live ticks push the traffic out of a four-tick window.
        for _ in 0..4 {
            series.sample(true, now);
        }
        assert_eq!(requests(&series.window().total()), 0);
        // Frozen: quiet ticks are skipped, so the last traffic stays in the window.
        route.targets[0][0].record(Outcome::Success);
        series.sample(false, now);
        for _ in 0..10 {
            series.sample(false, now);
        }
        assert_eq!(requests(&series.window().total()), 1);
        assert_eq!(series.ticks(), 4);
    }

    #[test]
    fn outcome_helpers_count_failures() {
        let mut counts = [0u64; OUTCOMES];
        counts[Outcome::Success as usize] = 90;
        counts[Outcome::ServerError as usize] = 5;
        counts[Outcome::ConnectFailure as usize] = 3;
        counts[Outcome::Misidentified as usize] = 2;
        counts[Outcome::ClientError as usize] = 10;
        assert_eq!(requests(&counts), 110);
        assert_eq!(failures(&counts), 10);
    }
}
