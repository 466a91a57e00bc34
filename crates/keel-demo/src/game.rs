//! The game day, from start to exit code: the shop, Keel in front of it with the good
//! config in a temporary state directory, the shopper load, the live view, the scenes,
//! the summary, and (`--keep`) the running shop left for the person to explore.
//!
//! ```text
//! Shop::start ─▶ Stand::start (generation 1) ─▶ ShopperLoad (≈200 req/s) ─▶ LiveView
//!   ─▶ warm-up ─▶ scene 1 ─▶ scene 2 ─▶ scene 3 ─▶ view closed ─▶ summary ─▶ [--keep: wait for Ctrl-C]
//! ```
//!
//! Everything listens on 127.0.0.1 port 0; everything is bounded in time: the load by its
//! duration, each wait by a deadline, the whole run by the sum of them.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use keel_store::now_ms;

use crate::dashboard::Sampler;
use crate::error::DemoError;
use crate::load::{LoadConfig, LoadSnapshot, ShopperLoad};
use crate::narration::Narrator;
use crate::scenes::{
    ALERT_DEADLINE, Act, PUSH_DEADLINE, Play, READY_DEADLINE, REVERT_SLACK, SETTLE, SceneResult,
};
use crate::shop::{SHOP_HOST, ServiceKind, Shop, ShopConfig};
use crate::stand::Stand;
use crate::view::{LiveView, ViewMode};

/// Warm-up and observation time unless `--duration` says otherwise (30 seconds): a full
/// default run takes a little over a minute.
pub const DEFAULT_OBSERVE: Duration = Duration::from_secs(30);
/// Shortest accepted `--duration` (2 seconds): the detectors need a baseline.
pub const MIN_OBSERVE: Duration = Duration::from_secs(2);
/// Longest accepted `--duration` (5 minutes).
pub const MAX_OBSERVE: Duration = Duration::from_secs(300);
/// Longest pause after a scene for the screen to be read (4 seconds).
const MAX_PAUSE: Duration = Duration::from_secs(4);
/// Longest wait for the load's last answers (10 seconds; each is bounded by 5 s).
const FINISH_DEADLINE: Duration = Duration::from_secs(10);
/// Extra load time beyond every scene's deadlines (30 seconds): the load must outlast the scenes.
const LOAD_MARGIN: Duration = Duration::from_secs(30);

/// How to run the game day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameOptions {
    /// The scenes to run, in order (the warm-up always runs first).
    pub scenes: Vec<Act>,
    /// Warm-up and observation time.
    pub observe: Duration,
    /// The live screen or plain lines.
    pub mode: ViewMode,
    /// Leave the shop and Keel running after the scenes until Ctrl-C.
    pub keep: bool,
}

impl GameOptions {
    /// Every scene, the default duration, shown in `mode`.
    pub fn new(mode: ViewMode) -> GameOptions {
        GameOptions {
            scenes: Act::SCENES.to_vec(),
            observe: DEFAULT_OBSERVE,
            mode,
            keep: false,
        }
    }

    /// Checks the duration's bounds.
    pub fn validate(&self) -> Result<(), DemoError> {
        if !(MIN_OBSERVE..=MAX_OBSERVE).contains(&self.observe) {
            return Err(DemoError::Setup(format!(
                "--duration must be between {} s and {} s",
                MIN_OBSERVE.as_secs(),
                MAX_OBSERVE.as_secs()
            )));
        }
        Ok(())
    }

    /// How long the shopper load may run: every scene's deadlines plus a margin.
    fn load_budget(&self) -> Duration {
        let pause = pause(self.observe);
        READY_DEADLINE
            + self.observe
            + 2 * pause
            + PUSH_DEADLINE
            + crate::config::SAFETY_WATCH
            + REVERT_SLACK
            + ALERT_DEADLINE
            + SETTLE
            + self.observe
            + LOAD_MARGIN
    }
}

/// Pause after a scene: a quarter of the observation time, 1 to 4 seconds.
fn pause(observe: Duration) -> Duration {
    (observe / 4).clamp(Duration::from_secs(1), MAX_PAUSE)
}

/// How the game day went.
#[derive(Debug, Clone)]
pub struct GameReport {
    /// Every act run, warm-up first.
    pub results: Vec<SceneResult>,
    /// The load's final numbers.
    pub load: LoadSnapshot,
    /// How long the whole run took.
    pub took: Duration,
}

impl GameReport {
    /// True when every act behaved as expected.
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(SceneResult::passed)
    }

    /// The closing summary, one line per act, then the shoppers and the comparison.
    pub fn summary(&self) -> String {
        let mut out = String::from("\n== summary ==\n");
        for result in &self.results {
            let verdict = if result.passed() { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  {verdict}  {}", result.act.title());
            for failed in result.expectations.iter().filter(|e| !e.met) {
                let _ = writeln!(out, "          not met: {}", failed.what);
            }
        }
        let totals = &self.load.totals;
        let _ = writeln!(
            out,
            "shoppers: {} requests, {} ok, {} shoppers, {} affected at least once",
            totals.sent,
            totals
                .outcomes
                .success_rate()
                .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
            totals.shoppers_started,
            totals.shoppers_affected
        );
        if let Some(recovery) = self.results.iter().find_map(|r| r.recovery.as_ref()) {
            let _ = writeln!(
                out,
                "March 15, 2024: 2 hours, 70% of shoppers. Today: {}, {} of shoppers active during the window.",
                crate::scenes::seconds(recovery.push_to_recovery),
                recovery
                    .affected
                    .share()
                    .map_or_else(|| "-".to_owned(), crate::scenes::percent)
            );
        }
        let _ = writeln!(
            out,
            "{} in {:.0} s",
            if self.passed() {
                "every scene behaved as expected"
            } else {
                "SOME SCENES DID NOT BEHAVE AS EXPECTED"
            },
            self.took.as_secs_f64()
        );
        out
    }
}

/// Runs the game day; `Ok` whether or not the scenes behaved (see [`GameReport::passed`]).
pub async fn run(options: GameOptions) -> Result<GameReport, DemoError> {
    options.validate()?;
    let began = Instant::now();
    let started_ms = now_ms();
    let state_dir = tempfile::Builder::new()
        .prefix("keel-demo-")
        .tempdir()
        .map_err(|source| DemoError::Io {
            what: "cannot create a temporary state directory".into(),
            source,
        })?;
    let narrator = Narrator::new(options.mode == ViewMode::Plain);
    narrator.title("keel demo: March 15, 2024, replayed as a game day");
    let shop = Shop::start(ShopConfig::default()).await?;
    let stand = Stand::start(&shop, state_dir.path()).await?;
    introduce(&narrator, &shop, &stand);
    let load = ShopperLoad::start(LoadConfig {
        duration: options.load_budget(),
        ..LoadConfig::new(stand.addrs.listener)
    })?;
    let load_started_ms = now_ms();
    let sampler = Sampler::new(
        stand.controller.clone(),
        load.stats().clone(),
        load_started_ms,
        started_ms,
    );
    let view = LiveView::start(options.mode, sampler, narrator.clone());
    let mut play = Play {
        stand: &stand,
        stats: load.stats(),
        narrator: &narrator,
        view: &view,
        observe: options.observe,
        pause: pause(options.observe),
        started_ms,
        done: Vec::new(),
        forced_generation: None,
    };
    let acts: Vec<Act> = std::iter::once(Act::WarmUp)
        .chain(options.scenes.iter().copied())
        .collect();
    let played = tokio::select! {
        results = play_all(&mut play, &acts) => Ok(results),
        () = view.aborted() => Err(DemoError::Aborted),
    };
    load.stop();
    let finished = tokio::time::timeout(FINISH_DEADLINE, load.finish()).await;
    let view_mode = view.mode();
    view.close().await;
    if view_mode == ViewMode::Tui {
        narrator.start_echo();
    }
    let results = played?;
    let load = match finished {
        Ok(snapshot) => snapshot?,
        Err(_) => return Err(DemoError::Setup("the shopper load did not end".into())),
    };
    let report = GameReport {
        results,
        load,
        took: began.elapsed(),
    };
    print!("{}", report.summary());
    if options.keep {
        keep_running(&stand, state_dir.path().to_owned()).await;
    }
    stand.shutdown().await;
    shop.shutdown().await;
    Ok(report)
}

async fn play_all(play: &mut Play<'_>, acts: &[Act]) -> Vec<SceneResult> {
    let mut results = Vec::new();
    for act in acts {
        results.push(play.run(*act).await);
    }
    play.view.set_phase("done");
    results
}

fn introduce(narrator: &Narrator, shop: &Shop, stand: &Stand) {
    narrator.say("Everything runs in this process, on 127.0.0.1 only: a simulated shop, Keel in front of it,");
    narrator.say("and shoppers who browse, fill carts (cookie cart_id) and check out.");
    let fleets: Vec<String> = ServiceKind::ALL
        .into_iter()
        .map(|s| format!("{} {}", s.name(), shop.addrs(s).len()))
        .collect();
    narrator.detail(format!("shop backends: {}", fleets.join(", ")));
    narrator.detail(format!(
        "Keel: listener {} (Host: {SHOP_HOST}), admin API {}",
        stand.addrs.listener,
        stand.admin_url()
    ));
    narrator.detail(format!(
        "console: {}/ui/ in a browser, to watch the game day next to this view (sign in with the token in {})",
        stand.admin_url(),
        stand.token_file().display()
    ));
    narrator.detail(format!("state directory: {}", stand.state_dir.display()));
}

/// `--keep`: say how to explore the running shop, then wait for Ctrl-C.
async fn keep_running(stand: &Stand, state_dir: PathBuf) {
    let admin = stand.admin_url();
    let token = stand.token_file();
    println!("\nThe shop and Keel keep running until Ctrl-C. Try:");
    println!(
        "  the console: open {admin}/ui/ in a browser and sign in with the token in {}",
        token.display()
    );
    println!(
        "  curl -i -H 'Host: {SHOP_HOST}' http://{}/catalog",
        stand.addrs.listener
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $(cat {})\" {admin}/status",
        token.display()
    );
    println!(
        "  keel status --admin {admin} --state-dir {}",
        state_dir.display()
    );
    println!(
        "  keel history --admin {admin} --state-dir {}",
        state_dir.display()
    );
    println!("  keel timeline --state-dir {}", state_dir.display());
    println!(
        "  KEEL_ADMIN_TOKEN=$(cat {}) keel playbook --admin {admin} --state-dir {}",
        token.display(),
        state_dir.display()
    );
    println!(
        "  keel apply --admin {admin} --state-dir {} {}",
        state_dir.display(),
        state_dir.join(crate::config::CONFIG_FILE_NAME).display()
    );
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded_and_the_load_outlasts_the_scenes() {
        let mut options = GameOptions::new(ViewMode::Plain);
        assert!(options.validate().is_ok());
        options.observe = Duration::from_secs(1);
        assert!(options.validate().is_err());
        options.observe = MAX_OBSERVE + Duration::from_secs(1);
        assert!(options.validate().is_err());
        options.observe = Duration::from_secs(5);
        let budget = options.load_budget();
        assert!(budget > Duration::from_secs(5) * 2 + PUSH_DEADLINE + REVERT_SLACK);
        assert!(budget <= crate::load::MAX_DURATION);
        assert_eq!(pause(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(pause(Duration::from_secs(300)), MAX_PAUSE);
    }
}
