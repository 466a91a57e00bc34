//! Scene 1: the March-15 edit (web, cart and checkout routes aimed at the legacy pool)
//! applied the normal way, as `keel apply` would: Keel refuses it and says why.

use std::time::Instant;

use keel_control::{ApplyRequest, ApplyStatus, Stage};
use keel_store::origin;

use super::{Act, Play, SceneResult, percent};
use crate::config::{MARCH_15_FILE_NAME, march_15_config};

/// Author recorded for the game day's applies.
pub const GAME_DAY_AUTHOR: &str = "game-day";
/// The edit's commit message, as its author would have written it.
pub const EDIT_MESSAGE: &str = "move storefront, cart and checkout to the legacy pool";
/// Refusal lines shown (the rest are counted).
const SHOWN_REFUSALS: usize = 8;

pub(super) async fn run(play: &mut Play<'_>) -> SceneResult {
    let mut result = SceneResult::new(Act::Refused);
    let narrator = play.narrator;
    narrator.say(
        "March 15, 10:00. An engineer edits keel.toml: the storefront, cart and checkout routes",
    );
    narrator.say("now point at the legacy-web pool. They apply it the normal way: `keel apply`.");
    let before = play.stand.serving();
    let started = Instant::now();
    let applied = play
        .stand
        .controller
        .apply(ApplyRequest {
            config_text: march_15_config(&play.stand.addrs),
            author: GAME_DAY_AUTHOR.to_owned(),
            message: EDIT_MESSAGE.to_owned(),
            origin: origin::CLI.to_owned(),
            file_name: MARCH_15_FILE_NAME.to_owned(),
            ..ApplyRequest::default()
        })
        .await;
    let outcome = match applied {
        Ok(outcome) => outcome,
        Err(error) => {
            result.expect(
                narrator,
                false,
                format!("Keel answers the apply (the control plane failed: {error})"),
            );
            return result;
        }
    };
    let refused = outcome.status == ApplyStatus::Refused;
    if refused {
        narrator.say(format!(
            "Keel refused it in {} ms, with {} findings; generation {} keeps serving:",
            started.elapsed().as_millis(),
            outcome.refusals.len(),
            before.map_or_else(|| "-".to_owned(), |g| g.to_string()),
        ));
    }
    for refusal in outcome.refusals.iter().take(SHOWN_REFUSALS) {
        let stage = match refusal.stage {
            Stage::Gate => "gate: blast radius".to_owned(),
            other => wire_name(&other),
        };
        let code = refusal.code.as_deref().unwrap_or("");
        narrator.detail(format!("[{stage} {code}] {}", refusal.message).replace(" ]", "]"));
    }
    if outcome.refusals.len() > SHOWN_REFUSALS {
        narrator.detail(format!(
            "… and {} more (`keel show {}` has them all)",
            outcome.refusals.len() - SHOWN_REFUSALS,
            outcome.generation.unwrap_or(0)
        ));
    }
    result.expect(
        narrator,
        refused,
        format!(
            "the apply is refused (status: {})",
            wire_name(&outcome.status)
        ),
    );
    let caught = |code: &str| {
        outcome
            .refusals
            .iter()
            .any(|r| r.code.as_deref() == Some(code))
    };
    let tests_and_intents = [
        keel_config::codes::TEST_FAILED,
        keel_config::codes::INTENT_VIOLATED,
    ];
    result.expect(
        narrator,
        tests_and_intents.iter().all(|code| caught(code)),
        "the route tests (K107) and the intents (K108) caught it".to_owned(),
    );
    let after = play.stand.serving();
    result.expect(
        narrator,
        after.is_some() && after == before,
        format!(
            "nothing changed: generation {} still serves",
            after.map_or_else(|| "-".to_owned(), |g| g.to_string())
        ),
    );
    tokio::time::sleep(play.pause).await;
    let (success, answers) =
        play.success_between(play.offset(started), play.offset(Instant::now()));
    result.expect(
        narrator,
        success.is_none_or(|s| s >= super::MIN_RECOVERED_SUCCESS),
        format!(
            "shoppers did not notice: {} ok over {answers} answers",
            success.map_or_else(|| "nothing".to_owned(), percent)
        ),
    );
    result
}

/// The name a stage or status has in the admin API's JSON (`check`, `refused`, …).
fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
