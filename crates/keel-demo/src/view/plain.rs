//! The plain view: one status line per second and one line per notable event, for CI
//! logs, pipes and terminals that cannot show the live screen.
//!
//! ```text
//! [ 12s] gen 1 | 200 req/s | ok 100.0% | web 29% catalog 43% cart 21% checkout 7% | backends 13/13 serving | affected (10 s) 0 of 131
//! [ 25s] event reject: generation 2 refused by check: …
//! ```

use std::fmt::Write as _;

use crate::dashboard::{Dashboard, EventView};

/// Prints each second once and each event once.
#[derive(Debug, Default)]
pub(super) struct Printer {
    last_second: Option<u64>,
    last_seq: u64,
}

impl Printer {
    pub(super) fn print(&mut self, dashboard: &Dashboard) {
        let last_seq = self.last_seq;
        for event in dashboard.events.iter().filter(|e| e.seq > last_seq) {
            println!("{}", event_line(event));
            self.last_seq = event.seq;
        }
        let second = dashboard.elapsed.as_secs();
        if second > 0 && self.last_second.is_none_or(|last| second > last) {
            self.last_second = Some(second);
            println!("{}", status_line(dashboard));
        }
    }
}

/// One line of the plain view: the shoppers' side and Keel's side of the last second.
pub fn status_line(d: &Dashboard) -> String {
    let mut line = format!("[{:>3}s] ", d.elapsed.as_secs());
    match d.generation {
        Some(id) => {
            let _ = write!(line, "gen {id}");
        }
        None => line.push_str("gen -"),
    }
    let _ = write!(line, " | {} req/s", d.requests_per_sec);
    match d.success_rate {
        Some(rate) => {
            let _ = write!(line, " | ok {:.1}%", rate * 100.0);
        }
        None => line.push_str(" | ok -"),
    }
    line.push_str(" |");
    for (name, share) in &d.answered {
        let _ = write!(line, " {name} {:.0}%", share * 100.0);
    }
    let (serving, total) = d.serving();
    let _ = write!(line, " | backends {serving}/{total} serving");
    let _ = write!(
        line,
        " | affected (10 s) {} of {}",
        d.affected_recent.affected, d.affected_recent.shoppers
    );
    if !d.phase.is_empty() {
        let _ = write!(line, " | {}", d.phase);
    }
    line
}

fn event_line(event: &EventView) -> String {
    format!(
        "[{:>4.0}s] event {}: {}",
        event.at_secs, event.kind, event.summary
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::{BackendView, PoolView};
    use crate::load::AffectedShare;
    use std::time::Duration;

    #[test]
    fn the_status_line_names_generation_rate_shares_and_backends() {
        let backend = |state: &str| BackendView {
            addr: "127.0.0.1:1".into(),
            state: state.into(),
        };
        let dashboard = Dashboard {
            elapsed: Duration::from_millis(12_400),
            phase: "scene 2".into(),
            requests_per_sec: 200,
            success_rate: Some(0.431),
            answered: vec![("catalog".into(), 0.43), ("keel (refused)".into(), 0.57)],
            affected_recent: AffectedShare {
                affected: 80,
                shoppers: 120,
            },
            generation: Some(3),
            pools: vec![PoolView {
                name: "web".into(),
                backends: vec![backend("healthy"), backend("misidentified")],
            }],
            ..Dashboard::default()
        };
        let line = status_line(&dashboard);
        for part in [
            "[ 12s] gen 3",
            "200 req/s",
            "ok 43.1%",
            "keel (refused) 57%",
            "backends 1/2 serving",
            "affected (10 s) 80 of 120",
            "scene 2",
        ] {
            assert!(line.contains(part), "{part:?} not in {line:?}");
        }
    }
}
