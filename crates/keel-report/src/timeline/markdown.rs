//! The timeline as a Markdown post-mortem draft, in the shape of the March-15 post-mortem:
//! issue summary, impact (compared with March 15), timeline, root-cause candidates, and the
//! corrective measures left for people to write.

use std::fmt::Write as _;

use keel_store::kind;

use super::incident::{
    MARCH_15_AFFECTED_SHARE, MARCH_15_RECOVERY_SECONDS, MARCH_15_SUSPECT_SECONDS,
};
use super::{Incident, Timeline, TimelineEntry};
use crate::text::{date_part, duration_ms, headline, md, md_code, percent, time_of_day};

/// Longest alert summary used in the title.
const TITLE_CHARS: usize = 160;

pub(super) fn render(timeline: &Timeline) -> String {
    let mut out = String::new();
    match &timeline.incident {
        Some(incident) => {
            let alert = &incident.first_signal.summary;
            let suspect = incident
                .suspect()
                .filter(|g| !alert.contains(&format!("generation {g}")))
                .map_or(String::new(), |g| format!(" (generation {g})"));
            let _ = writeln!(
                out,
                "# Post-mortem draft: {}{suspect}\n",
                md(&headline(alert, TITLE_CHARS))
            );
        }
        None => out.push_str("# Timeline: no alert in this window\n\n"),
    }
    let _ = writeln!(
        out,
        "_Drafted by `keel timeline` at {} from the Keel store ({}). Every line below comes from a \
         recorded event; causes are candidates, not conclusions: edit before sharing._\n",
        timeline.generated_at,
        window(timeline)
    );
    open_alerts(&mut out, timeline);
    summary(&mut out, timeline);
    if let Some(incident) = &timeline.incident {
        impact(&mut out, incident);
    }
    entries(&mut out, timeline);
    if let Some(incident) = &timeline.incident {
        root_causes(&mut out, incident);
    }
    out.push_str(
        "## Corrective and Preventative Measures\n\n\
         - _To be written by the team: what would have stopped this change, or caught it sooner?_\n",
    );
    out
}

/// Open alerts first: what is still wrong with the generation that serves now.
fn open_alerts(out: &mut String, timeline: &Timeline) {
    let Some(first) = timeline.open_alerts.first() else {
        return;
    };
    let _ = writeln!(
        out,
        "## Open alerts\n\nGeneration {} serves now and has {} since it became active, newest first:\n",
        first.generation,
        plural(timeline.open_alerts.len(), "alert", "alerts")
    );
    for alert in &timeline.open_alerts {
        let _ = writeln!(out, "- {}: {}", alert.time, md(&alert.summary));
    }
    out.push('\n');
}

fn window(timeline: &Timeline) -> String {
    match (&timeline.since, &timeline.until) {
        (None, None) => "all events".to_owned(),
        (Some(since), None) => format!("events since {since}"),
        (None, Some(until)) => format!("events before {until}"),
        (Some(since), Some(until)) => format!("events from {since} to {until}"),
    }
}

fn summary(out: &mut String, timeline: &Timeline) {
    out.push_str("## Issue Summary\n\n");
    let count = |k: &str| timeline.entries.iter().filter(|e| e.kind == k).count();
    let (Some(first), Some(last)) = (timeline.entries.first(), timeline.entries.last()) else {
        out.push_str("- No events were recorded in this window.\n\n");
        return;
    };
    let _ = writeln!(
        out,
        "- **Window**: {} – {} ({}: {}, {}, {}, {}, {}, {})",
        first.time,
        last.time,
        plural(timeline.entries.len(), "event", "events"),
        plural(count(kind::APPLY), "apply", "applies"),
        plural(count(kind::REJECT), "rejection", "rejections"),
        plural(count(kind::ROLLBACK), "rollback", "rollbacks"),
        plural(count(kind::ALERT), "alert", "alerts"),
        plural(count(kind::IDENTITY), "identity flip", "identity flips"),
        plural(count(kind::HEALTH), "health flip", "health flips")
    );
    let Some(incident) = &timeline.incident else {
        out.push_str("- **Impact**: no alert and no identity flip was recorded.\n\n");
        return;
    };
    let end = incident
        .rollback
        .as_ref()
        .map_or("still open at the end of the window".to_owned(), |r| {
            r.time.clone()
        });
    // How long the suspect served, from its change: the span users were exposed to, not
    // only the (often milliseconds) from the first alert to the revert.
    match (incident.root_causes.first(), incident.served_ms) {
        (Some(cause), Some(served)) => {
            let _ = writeln!(
                out,
                "- **Duration**: {} ({} – {end}); the first alert came {} after the change, at {}",
                duration_ms(served),
                cause.event.time,
                duration_ms(incident.detection_ms.unwrap_or(0)),
                incident.first_signal.time
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "- **Duration**: from the first alert ({}) – {end}",
                incident.first_signal.time
            );
        }
    }
    let _ = writeln!(
        out,
        "- **First alert**: {}",
        md(&incident.first_signal.summary)
    );
    match incident.root_causes.first() {
        Some(cause) => {
            let what = cause.change.as_ref().map_or(String::new(), |c| {
                format!(
                    " by {} ({}): {}",
                    md(&c.author),
                    md(&headline(&c.message, TITLE_CHARS)),
                    md(&c.diff.text)
                )
            });
            let _ = writeln!(
                out,
                "- **Root cause candidate**: {} at {}{what}",
                generation_word(cause.generation),
                cause.event.time
            );
        }
        None => out.push_str("- **Root cause candidate**: no change was recorded before the first alert in this window.\n"),
    }
    match &incident.rollback {
        Some(rollback) => {
            let _ = writeln!(out, "- **Resolution**: {}", md(&rollback.summary));
        }
        None => out.push_str("- **Resolution**: no rollback recorded in this window.\n"),
    }
    out.push('\n');
}

fn impact(out: &mut String, incident: &Incident) {
    out.push_str("## Impact\n\n");
    if let (Some(g), Some(served)) = (incident.suspect(), incident.served_ms) {
        let until = if incident.still_serving {
            "and was still serving at the end of the window"
        } else {
            "before it was rolled back"
        };
        let requests = incident
            .requests_served
            .map_or(String::new(), |n| format!(", {n} requests recorded,"));
        let _ = writeln!(
            out,
            "Generation {g} served traffic for {}{requests} {until}. From the first alert: {}, {}, \
             {}.\n",
            duration_ms(served),
            plural(incident.alerts, "alert", "alerts"),
            plural(incident.identity_flips, "identity flip", "identity flips"),
            plural(incident.health_flips, "health flip", "health flips")
        );
    }
    out.push_str("| | this incident | March 15, 2024 |\n|---|---|---|\n");
    let seconds = |ms: Option<i64>| {
        ms.map_or("–".to_owned(), |ms| {
            if ms < 60_000 {
                duration_ms(ms)
            } else {
                format!("{} ({} s)", duration_ms(ms), ms / 1000)
            }
        })
    };
    let _ = writeln!(
        out,
        "| change → first alert (detection) | {} | not recorded |",
        seconds(incident.detection_ms)
    );
    let named = if incident.first_signal.generation.is_some() {
        "at once: the alert names the generation"
    } else {
        "the alert names no generation: see the candidates below"
    };
    let _ = writeln!(
        out,
        "| first alert → cause named | {named} | {} (10:20, after chasing the database) |",
        duration_ms(MARCH_15_SUSPECT_SECONDS * 1000)
    );
    let _ = writeln!(
        out,
        "| change → rollback (recovery) | {} | {} (10:00–12:00; the rollback at 10:40 failed) |",
        seconds(incident.recovery_ms),
        duration_ms(MARCH_15_RECOVERY_SECONDS * 1000)
    );
    let affected = match (&incident.traffic, incident.largest_share) {
        (Some(counted), _) => format!(
            "{} of {} requests ({}) answered by the wrong application ({}) or failed (counted by \
             the generation)",
            counted.wrong_or_failed,
            counted.requests,
            percent(counted.share()),
            counted.misidentified
        ),
        (None, Some(share)) => format!("{} (the largest share an alert reported)", percent(share)),
        (None, None) => "not recorded".to_owned(),
    };
    let _ = writeln!(
        out,
        "| traffic affected | {affected} | {} of users |\n",
        percent(MARCH_15_AFFECTED_SHARE)
    );
}

fn entries(out: &mut String, timeline: &Timeline) {
    out.push_str("## Timeline\n\n");
    let first_signal = timeline.incident.as_ref().map(|i| i.first_signal.event_id);
    let mut day = "";
    for entry in &timeline.entries {
        let date = date_part(&entry.time);
        if date != day {
            let _ = writeln!(out, "### {date} (UTC)\n");
            day = date;
        }
        let mark = if Some(entry.event_id) == first_signal {
            " **(first alert)**"
        } else {
            ""
        };
        // In a fleet every line names the node that wrote it.
        let node = entry
            .node
            .as_ref()
            .map(|n| format!(" on node `{}`", n.replace('`', "")))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- **{}** `{}`{node}{mark}: {}",
            time_of_day(&entry.time),
            entry.kind,
            md(&entry.summary)
        );
        entry_details(out, entry);
    }
    out.push('\n');
}

fn entry_details(out: &mut String, entry: &TimelineEntry) {
    if let Some(change) = &entry.change {
        // The summary already quotes the message's first line; show the rest when there is more.
        if change.message.trim().lines().count() > 1 {
            let flat = change
                .message
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(out, "  - message: {}", md(&headline(&flat, 300)));
        }
        let _ = writeln!(out, "  - change: {}", md(&change.diff.text));
        let _ = writeln!(out, "  - {}; {}", md(&change.check), md(&change.impact));
        for certificate in &change.certificates {
            let _ = writeln!(out, "  - {}", md(&certificate.line()));
        }
        if let Some(state) = &change.state_now {
            let _ = writeln!(out, "  - state now: {state}");
        }
    }
    if let Some(rollback) = &entry.rollback {
        let _ = writeln!(
            out,
            "  - from {} to {} via {}",
            generation_word(rollback.from),
            generation_word(rollback.to),
            md(&rollback.origin)
        );
    }
}

fn root_causes(out: &mut String, incident: &Incident) {
    out.push_str("## Root-cause candidates\n\n");
    if incident.root_causes.is_empty() {
        out.push_str(
            "No change was recorded before the first alert in this window; widen `--since`.\n\n",
        );
        return;
    }
    for (rank, cause) in incident.root_causes.iter().enumerate() {
        let likely = if rank == 0 { " (most likely)" } else { "" };
        let _ = writeln!(
            out,
            "{}. **{}**{likely}: `{}` at {}, {} before the first alert: {}.",
            rank + 1,
            generation_word(cause.generation),
            cause.event.kind,
            cause.event.time,
            duration_ms(cause.before_signal_ms),
            cause.reason
        );
        if let Some(change) = &cause.change {
            let _ = writeln!(
                out,
                "   - applied by {} via {}{}: {}",
                md(&change.author),
                md(&change.origin),
                if change.forced {
                    " (forced past a failing check or gate)"
                } else {
                    ""
                },
                md(&headline(&change.message, 200))
            );
            let _ = writeln!(out, "   - change: {}", md(&change.diff.text));
            let _ = writeln!(out, "   - {}; {}", md(&change.check), md(&change.impact));
        }
        if let Some(g) = cause.generation {
            let inspect = match cause.change.as_ref().and_then(|c| c.previous_active) {
                Some(previous) => format!("keel diff {previous} {g}"),
                None => format!("keel show {g}"),
            };
            let _ = writeln!(out, "   - inspect: {}", md_code(&inspect));
        }
    }
    out.push('\n');
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn generation_word(generation: Option<u64>) -> String {
    generation.map_or("an unknown generation".to_owned(), |g| {
        format!("generation {g}")
    })
}
