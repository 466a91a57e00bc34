//! The live screen (ratatui on crossterm): the shoppers' side, who answered them, the
//! backends of the generation serving, the store's notable events, and the narration.
//!
//! ```text
//! ┌ keel demo ─ phase ─ generation ─ elapsed ───────────────────────────┐
//! ├ shoppers: req/s, ok %, affected, ok% sparkline ┬ who answered (bars) ┤
//! ├ backends: one row per pool, one dot per backend (green/grey/yellow/red) ┤
//! ├ changes and alerts ─────────────────────────┬ narration ──────────────┤
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};
use tokio::sync::{Notify, watch};

use super::{SAMPLE_EVERY, Shared, lock};
use crate::dashboard::Dashboard;
use crate::error::DemoError;
use crate::narration::{Line, Narrator, Tone};

/// Width of a share bar in the "who answered" pane (24 cells).
const BAR_CELLS: usize = 24;

/// Starts the render thread; returns once the terminal is set up (or could not be).
pub(super) fn spawn(
    shared: Arc<Mutex<Shared>>,
    narrator: Narrator,
    stopped: watch::Receiver<bool>,
    abort: Arc<Notify>,
) -> Result<std::thread::JoinHandle<()>, DemoError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
    let thread = std::thread::Builder::new()
        .name("keel-demo-view".into())
        .spawn(move || {
            let mut terminal = match ratatui::try_init() {
                Ok(terminal) => {
                    let _ = ready_tx.send(Ok(()));
                    terminal
                }
                Err(error) => {
                    ratatui::restore();
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            while !*stopped.borrow() {
                let dashboard = lock(&shared).dashboard.clone();
                let lines = narrator.recent(100);
                if let Err(error) = terminal.draw(|frame| draw(frame, &dashboard, &lines)) {
                    tracing::warn!(%error, "the live view cannot draw");
                    break;
                }
                if wants_to_quit(SAMPLE_EVERY) {
                    abort.notify_one();
                }
            }
            ratatui::restore();
        })
        .map_err(|source| DemoError::Io {
            what: "cannot start the live view".into(),
            source,
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(source)) => {
            let _ = thread.join();
            Err(DemoError::Io {
                what: "cannot set up the terminal for the live view".into(),
                source,
            })
        }
        Err(_) => {
            let _ = thread.join();
            Err(DemoError::Setup("the live view ended at start".into()))
        }
    }
}

/// Waits up to `timeout` for a key; true for `q`, Esc or Ctrl-C.
fn wants_to_quit(timeout: Duration) -> bool {
    if !event::poll(timeout).unwrap_or(false) {
        return false;
    }
    match event::read() {
        Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
            matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
                || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL))
        }
        _ => false,
    }
}

/// Draws one frame of the live screen.
pub fn draw(frame: &mut Frame<'_>, d: &Dashboard, narration: &[Line]) {
    let pools = d.pools.len().max(1) as u16;
    let [header, middle, backends, bottom] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(7),
        Constraint::Length(pools + 2),
        Constraint::Min(6),
    ])
    .areas(frame.area());
    draw_header(frame, header, d);
    let [shoppers, answered] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(middle);
    draw_shoppers(frame, shoppers, d);
    draw_answered(frame, answered, d);
    draw_backends(frame, backends, d);
    let [events, story] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    draw_events(frame, events, d);
    draw_narration(frame, story, narration);
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let generation = d
        .generation
        .map_or_else(|| "none".to_owned(), |id| id.to_string());
    let secs = d.elapsed.as_secs();
    let line = TextLine::from(vec![
        Span::raw(" serving: "),
        Span::styled(
            format!("generation {generation}"),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("   elapsed {:02}:{:02}   ", secs / 60, secs % 60)),
        Span::styled(d.phase.clone(), Style::default().fg(Color::Cyan)),
    ]);
    let block = Block::bordered()
        .title(" keel demo: the March 15 game day ")
        .title_bottom(" q: stop ");
    frame.render_widget(Paragraph::new(line).block(block), area);
}

fn draw_shoppers(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let block = Block::bordered().title(" shoppers (last second) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [text, spark] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(inner);
    let rate = d.success_rate.unwrap_or(1.0);
    let rate_style = Style::default().fg(if rate >= 0.99 {
        Color::Green
    } else if rate >= 0.9 {
        Color::Yellow
    } else {
        Color::Red
    });
    let lines = vec![
        TextLine::from(format!(" {} requests/s", d.requests_per_sec)),
        TextLine::from(vec![
            Span::raw(" success "),
            Span::styled(
                d.success_rate
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
                rate_style,
            ),
        ]),
        TextLine::from(format!(
            " affected (10 s): {} of {} shoppers",
            d.affected_recent.affected, d.affected_recent.shoppers
        )),
    ];
    frame.render_widget(Paragraph::new(lines), text);
    let sparkline = Sparkline::default()
        .data(&d.success_history)
        .max(100)
        .style(rate_style);
    frame.render_widget(sparkline, spark);
}

fn draw_answered(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let lines: Vec<TextLine<'_>> = d
        .answered
        .iter()
        .map(|(name, share)| {
            let cells = (share * BAR_CELLS as f64).round() as usize;
            let color = match name.as_str() {
                "web" | "catalog" | "cart" | "checkout" => Color::Green,
                _ => Color::Red,
            };
            TextLine::from(vec![
                Span::raw(format!(" {name:<15}")),
                Span::styled("█".repeat(cells.min(BAR_CELLS)), Style::default().fg(color)),
                Span::raw(format!(
                    "{} {:>3.0}%",
                    " ".repeat(BAR_CELLS - cells.min(BAR_CELLS)),
                    share * 100.0
                )),
            ])
        })
        .collect();
    let block = Block::bordered().title(" who answered (x-service, last second) ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_backends(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let lines: Vec<TextLine<'_>> = d
        .pools
        .iter()
        .map(|pool| {
            let mut spans = vec![Span::raw(format!(" {:<12}", pool.name))];
            for backend in &pool.backends {
                spans.push(Span::styled("● ", state_style(&backend.state)));
            }
            let serving = pool
                .backends
                .iter()
                .filter(|b| matches!(b.state.as_str(), "healthy" | "unknown"))
                .count();
            spans.push(Span::raw(format!(
                " {serving}/{} serving",
                pool.backends.len()
            )));
            TextLine::from(spans)
        })
        .collect();
    let (serving, total) = d.serving();
    let block = Block::bordered().title(format!(
        " backends of the generation serving: {serving}/{total} serving "
    ));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn state_style(state: &str) -> Style {
    Style::default().fg(match state {
        "healthy" => Color::Green,
        "unhealthy" | "ejected" => Color::Yellow,
        "misidentified" => Color::Red,
        _ => Color::DarkGray,
    })
}

fn draw_events(frame: &mut Frame<'_>, area: Rect, d: &Dashboard) {
    let room = area.height.saturating_sub(2) as usize;
    let lines: Vec<TextLine<'_>> = d.events[d.events.len().saturating_sub(room)..]
        .iter()
        .map(|event| {
            let style = match event.kind.as_str() {
                "alert" | "reject" | "rollback" | "identity" => Style::default().fg(Color::Red),
                "known-good" => Style::default().fg(Color::Green),
                _ => Style::default(),
            };
            TextLine::from(vec![
                Span::raw(format!(" {:>7} ", format!("+{:.1}s", event.at_secs))),
                Span::styled(format!("{:<10} ", event.kind), style),
                Span::raw(event.summary.clone()),
            ])
        })
        .collect();
    let block = Block::bordered().title(" changes and alerts (from the store) ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_narration(frame: &mut Frame<'_>, area: Rect, narration: &[Line]) {
    let room = area.height.saturating_sub(2) as usize;
    let lines: Vec<TextLine<'_>> = narration[narration.len().saturating_sub(room)..]
        .iter()
        .map(|line| match line.tone {
            Tone::Title => TextLine::styled(
                line.text.clone(),
                Style::default()
                    .fg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
            ),
            Tone::Say => TextLine::raw(line.text.clone()),
            Tone::Detail => TextLine::raw(format!("  {}", line.text)),
            Tone::Good => TextLine::styled(
                format!("  ok   {}", line.text),
                Style::default().fg(Color::Green),
            ),
            Tone::Bad => TextLine::styled(
                format!("  FAIL {}", line.text),
                Style::default().fg(Color::Red),
            ),
        })
        .collect();
    let block = Block::bordered().title(" game day ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::{BackendView, EventView, PoolView};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    #[test]
    fn the_screen_shows_generation_shares_backends_events_and_narration() {
        let backend = |state: &str| BackendView {
            addr: "127.0.0.1:1".into(),
            state: state.into(),
        };
        let dashboard = Dashboard {
            elapsed: Duration::from_secs(83),
            phase: "scene 2: forced".into(),
            requests_per_sec: 199,
            success_rate: Some(0.42),
            answered: vec![("catalog".into(), 0.42), ("keel (refused)".into(), 0.58)],
            generation: Some(3),
            pools: vec![PoolView {
                name: "legacy-web".into(),
                backends: vec![backend("healthy"), backend("misidentified")],
            }],
            events: vec![EventView {
                seq: 1,
                id: 9,
                at_secs: 25.5,
                kind: "rollback".into(),
                summary: "generation 3 rolled back to 1".into(),
            }],
            success_history: vec![100, 100, 42],
            ..Dashboard::default()
        };
        let narration = vec![Line {
            tone: Tone::Title,
            text: "Scene 2: forced past the gate".into(),
        }];
        let mut terminal = Terminal::new(TestBackend::new(120, 30)).expect("terminal");
        terminal
            .draw(|frame| draw(frame, &dashboard, &narration))
            .expect("draw");
        let screen = terminal.backend().to_string();
        for part in [
            "generation 3",
            "01:23",
            "199 requests/s",
            "42.0%",
            "keel (refused)",
            "58%",
            "legacy-web",
            "1/2 serving",
            "rollback",
            "generation 3 rolled back to 1",
            "Scene 2: forced past the gate",
        ] {
            assert!(screen.contains(part), "{part:?} not on screen:\n{screen}");
        }
    }
}
