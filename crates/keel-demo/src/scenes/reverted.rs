//! Scene 2: the same edit forced past the gate (`keel apply --force`). It serves; the
//! detectors see shoppers answered by the wrong application; Keel reverts by itself.
//!
//! The demo does not help: it only watches the data plane (which generation serves,
//! every [`POLL`]) and the shoppers. If no revert comes within `[safety] watch` plus
//! [`REVERT_SLACK`], the scene fails and the demo rolls back itself so the game day can
//! end on a working shop.

use std::time::{Duration, Instant};

use keel_control::{ApplyOutcome, ApplyRequest, ControlError, RollbackRequest};
use keel_store::{EventQuery, kind, now_ms, origin};

use super::refused::{EDIT_MESSAGE, GAME_DAY_AUTHOR};
use super::{Act, MIN_RECOVERED_SUCCESS, Play, Recovery, SceneResult, percent};
use crate::config::{MARCH_15_FILE_NAME, SAFETY_WATCH, march_15_config};
use keel_report::{MARCH_15_AFFECTED_SHARE, MARCH_15_RECOVERY_SECONDS};

/// Longest wait for the forced apply to go live (15 seconds: check and compile on a busy machine).
pub const PUSH_DEADLINE: Duration = Duration::from_secs(15);
/// Wait for the revert beyond `[safety] watch` (15 seconds).
pub const REVERT_SLACK: Duration = Duration::from_secs(15);
/// How often the demo looks at which generation serves (10 milliseconds).
const POLL: Duration = Duration::from_millis(10);
/// Seconds after the recovery not judged, while in-flight answers of the bad generation land.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Longest wait for the alert's event to reach the store after the revert (5 seconds).
pub const ALERT_DEADLINE: Duration = Duration::from_secs(5);

pub(super) async fn run(play: &mut Play<'_>) -> SceneResult {
    let mut result = SceneResult::new(Act::Reverted);
    let narrator = play.narrator;
    narrator.say("10:00 again, but under pressure: the same edit is forced past check and gate,");
    narrator
        .say("`keel apply --force`. Keel lets it through, watches it, and must undo it by itself.");
    let Some(good) = play.stand.serving() else {
        result.expect(
            narrator,
            false,
            "a generation serves before the push".into(),
        );
        return result;
    };
    let controller = play.stand.controller.clone();
    let request = ApplyRequest {
        config_text: march_15_config(&play.stand.addrs),
        author: GAME_DAY_AUTHOR.to_owned(),
        message: format!("{EDIT_MESSAGE} (forced)"),
        force: true,
        origin: origin::CLI.to_owned(),
        file_name: MARCH_15_FILE_NAME.to_owned(),
        ..ApplyRequest::default()
    };
    let pushed_ms = now_ms();
    let push = Instant::now();
    // The apply may return at once or only after its guard's watch: run it aside.
    let mut apply = tokio::spawn(async move { controller.apply(request).await });
    let mut outcome: Option<Result<ApplyOutcome, ControlError>> = None;
    let mut bad: Option<u64> = None;
    let mut recovered: Option<Instant> = None;
    let deadline = push + PUSH_DEADLINE + SAFETY_WATCH + REVERT_SLACK;
    while Instant::now() < deadline {
        if outcome.is_none() && apply.is_finished() {
            outcome = Some((&mut apply).await.unwrap_or_else(|e| Err(e.into())));
            if let Some(Ok(applied)) = &outcome {
                bad = bad.or(applied.generation.filter(|_| applied.is_success()));
            }
        }
        let serving = play.stand.serving();
        if serving.is_some_and(|g| g != good) {
            bad = bad.or(serving);
        } else if bad.is_some() && serving == Some(good) {
            recovered = Some(Instant::now());
            break;
        }
        if let Some(Err(_))
        | Some(Ok(ApplyOutcome {
            generation: None, ..
        })) = &outcome
        {
            break;
        }
        if let Some(Ok(applied)) = &outcome
            && !applied.is_success()
        {
            break;
        }
        if bad.is_none() && push.elapsed() > PUSH_DEADLINE {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    match &outcome {
        Some(Err(error)) => narrator.detail(format!("the apply failed: {error}")),
        Some(Ok(applied)) if !applied.is_success() => {
            for refusal in &applied.refusals {
                narrator.detail(format!("refused: {}", refusal.message));
            }
        }
        _ => {}
    }
    result.expect(
        narrator,
        bad.is_some(),
        match bad {
            Some(id) => format!("the forced edit went live as generation {id}"),
            None => "the forced edit went live".to_owned(),
        },
    );
    let Some(bad_generation) = bad else {
        apply.abort();
        return result;
    };
    let Some(recovered) = recovered else {
        result.expect(
            narrator,
            false,
            format!(
                "Keel reverts by itself within {} s: no revert came (is the guard wired into this build?)",
                (PUSH_DEADLINE + SAFETY_WATCH + REVERT_SLACK).as_secs()
            ),
        );
        restore(play, good, bad_generation).await;
        return result;
    };
    let push_to_recovery = recovered - push;
    play.forced_generation = Some(bad_generation);
    result.expect(
        narrator,
        true,
        format!(
            "Keel reverted by itself: generation {good} serves again, {} after the push",
            super::seconds(push_to_recovery)
        ),
    );
    // The alert reaches the store a moment after the revert: give it a bounded while.
    let mut alerts = Vec::new();
    let until = Instant::now() + ALERT_DEADLINE;
    while alerts.is_empty() && Instant::now() < until {
        tokio::time::sleep(POLL).await;
        alerts = alerts_since(play, pushed_ms).await;
    }
    for alert in &alerts {
        narrator.detail(format!("detector: {alert}"));
    }
    result.expect(
        narrator,
        !alerts.is_empty(),
        format!("a detector raised an alert about generation {bad_generation}"),
    );
    // Answers are counted when they complete: wait until the window's last ones are in,
    // then watch the shoppers for the observation time.
    tokio::time::sleep(SETTLE + play.observe).await;
    let window = (
        play.offset(push),
        play.offset(recovered) + Duration::from_secs(1),
    );
    let affected = play.stats.affected_between(window.0, window.1);
    narrator.say(format!(
        "Measured: {} of the {} shoppers with an answer between the push and 1 s after the recovery",
        affected.affected, affected.shoppers
    ));
    narrator.say(format!(
        "(whole seconds {}..{} of the load) got at least one answer that was not ok.",
        window.0.as_secs(),
        window.1.as_secs_f64().ceil() as u64
    ));
    narrator.detail(format!(
        "March 15, 2024: {} hours, {:.0}% of shoppers",
        MARCH_15_RECOVERY_SECONDS / 3600,
        MARCH_15_AFFECTED_SHARE * 100.0
    ));
    narrator.detail(format!(
        "today:          {}, {} of shoppers active during the window",
        super::seconds(push_to_recovery),
        percent(affected.share().unwrap_or(0.0))
    ));
    result.recovery = Some(Recovery {
        bad_generation: Some(bad_generation),
        push_to_recovery,
        affected,
        window,
        alerts,
    });
    let (success, answers) =
        play.success_between(play.offset(recovered) + SETTLE, play.offset(Instant::now()));
    result.expect(
        narrator,
        success.is_some_and(|s| s >= MIN_RECOVERED_SUCCESS),
        format!(
            "after the revert shoppers are served again: {} ok over {answers} answers",
            success.map_or_else(|| "nothing".to_owned(), percent)
        ),
    );
    // The apply's own task ends with its watch; the outcome is not needed any more.
    apply.abort();
    result
}

/// The alerts and rollbacks the store recorded since the push, one line each.
async fn alerts_since(play: &Play<'_>, since_ms: i64) -> Vec<String> {
    let query = EventQuery {
        since_ms: Some(since_ms),
        kinds: vec![kind::ALERT.to_owned()],
        ..EventQuery::default()
    };
    match play
        .stand
        .controller
        .with_store(move |s| s.events(query))
        .await
    {
        Ok(events) => events.into_iter().map(|e| e.summary).collect(),
        Err(error) => vec![format!("(the store could not be read: {error})")],
    }
}

/// The revert did not come: roll back by hand so the game day ends on a working shop.
async fn restore(play: &Play<'_>, good: u64, bad: u64) {
    let narrator = play.narrator;
    if play.stand.serving() != Some(bad) {
        return;
    }
    narrator.say(format!(
        "The demo rolls back by hand (`keel rollback --to {good} --force`) so the shop works again."
    ));
    let rolled_back = play
        .stand
        .controller
        .rollback(RollbackRequest {
            to: Some(good),
            author: GAME_DAY_AUTHOR.to_owned(),
            reason: "keel demo: no automatic revert came".to_owned(),
            origin: origin::CLI.to_owned(),
            // The game day must end on a working shop, known-good yet or not.
            force: true,
            ..RollbackRequest::default()
        })
        .await;
    match rolled_back {
        Ok(outcome) => narrator.detail(format!(
            "rolled back: generation {} serves (swap {} µs)",
            outcome.to, outcome.swap_us
        )),
        Err(error) => narrator.detail(format!("the rollback failed: {error}")),
    }
}
