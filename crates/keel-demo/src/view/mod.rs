//! The live view while the game day runs: a ratatui terminal screen, or one plain line
//! per second for CI and pipes.
//!
//! ```text
//! driver task (tokio): every 250 ms Sampler::sample ─▶ shared Dashboard   (every second: store events)
//!   plain: prints one status line per second and each new event
//!   tui:   render thread (std): draws Dashboard + narration, reads keys (q / Esc / Ctrl-C → abort)
//! ```
//!
//! The view never blocks the game: the render thread only reads a copy of the last
//! dashboard, and a slow terminal delays frames, not scenes.

mod plain;
mod tui;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::dashboard::{Dashboard, Sampler};
use crate::narration::Narrator;

pub use plain::status_line;
pub use tui::draw;

/// Time between two dashboard samples (250 milliseconds).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Time between two reads of the store's events (1 second).
const EVENTS_EVERY: Duration = Duration::from_secs(1);

/// How the game day is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewMode {
    /// The ratatui screen (needs a terminal).
    Tui,
    /// One line per second on stdout.
    Plain,
}

#[derive(Debug, Default)]
struct Shared {
    dashboard: Dashboard,
    phase: String,
}

/// A running live view. Dropping it stops the view and restores the terminal.
#[derive(Debug)]
pub struct LiveView {
    shared: Arc<Mutex<Shared>>,
    stop: watch::Sender<bool>,
    abort: Arc<Notify>,
    driver: Option<JoinHandle<()>>,
    render: Option<std::thread::JoinHandle<()>>,
    mode: ViewMode,
}

impl LiveView {
    /// Starts the view. When the terminal cannot be set up for the live screen, says so
    /// on stderr and shows plain lines instead (see [`LiveView::mode`]).
    pub fn start(mode: ViewMode, sampler: Sampler, narrator: Narrator) -> LiveView {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, stopped) = watch::channel(false);
        let abort = Arc::new(Notify::new());
        let (render, mode) = match mode {
            ViewMode::Tui => match tui::spawn(
                Arc::clone(&shared),
                narrator.clone(),
                stopped.clone(),
                Arc::clone(&abort),
            ) {
                Ok(render) => (Some(render), ViewMode::Tui),
                Err(error) => {
                    eprintln!("keel demo: {error}; showing plain output instead");
                    narrator.start_echo();
                    (None, ViewMode::Plain)
                }
            },
            ViewMode::Plain => (None, ViewMode::Plain),
        };
        let driver = tokio::spawn(drive(sampler, Arc::clone(&shared), mode, stopped));
        LiveView {
            shared,
            stop,
            abort,
            driver: Some(driver),
            render,
            mode,
        }
    }

    /// How the view shows the game day.
    pub fn mode(&self) -> ViewMode {
        self.mode
    }

    /// Says what the game day is doing now (shown in the header and the status lines).
    pub fn set_phase(&self, phase: &str) {
        lock(&self.shared).phase = phase.to_owned();
    }

    /// Resolves when the person watching asks to stop: Ctrl-C, or `q` / Esc on the screen.
    pub async fn aborted(&self) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = self.abort.notified() => {}
        }
    }

    /// Stops the view and gives the terminal back (the screen is left, the shell's
    /// scrollback is as it was).
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
        if let Some(render) = self.render.take() {
            // The render thread wakes at least every SAMPLE_EVERY to look at `stop`.
            let _ = tokio::task::spawn_blocking(move || render.join()).await;
        }
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
        if let Some(render) = self.render.take() {
            // Restoring the terminal must happen before anything else is printed.
            let _ = render.join();
        }
    }
}

async fn drive(
    mut sampler: Sampler,
    shared: Arc<Mutex<Shared>>,
    mode: ViewMode,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_events = tokio::time::Instant::now();
    let mut printer = plain::Printer::default();
    sampler.refresh_events().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        if last_events.elapsed() >= EVENTS_EVERY {
            sampler.refresh_events().await;
            last_events = tokio::time::Instant::now();
        }
        let phase = lock(&shared).phase.clone();
        let dashboard = sampler.sample(&phase);
        if mode == ViewMode::Plain {
            printer.print(&dashboard);
        }
        lock(&shared).dashboard = dashboard;
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}
