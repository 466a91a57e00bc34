//! Scene 1: the March-15 edit (web, cart and checkout routes aimed at the legacy pool)
//! applied the normal way, as `keel apply` would: Keel refuses it and says why.

use std::time::Instant;

use keel_control::{ApplyRequest, ApplyStatus, Refusal, Stage};
use keel_store::origin;

use super::{Act, Play, SceneResult, percent};
use crate::config::{MARCH_15_FILE_NAME, march_15_config};

/// Author recorded for the game day's applies.
pub const GAME_DAY_AUTHOR: &str = "game-day";
/// The edit's commit message, as its author would have written it.
pub const EDIT_MESSAGE: &str = "move storefront, cart and checkout to the legacy pool";

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
    show_findings(narrator, &outcome.refusals);
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
    gate_verdict(play, &mut result).await;
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

/// One line per kind of finding (stage and lint id): its first message and how many more.
fn show_findings(narrator: &crate::narration::Narrator, refusals: &[Refusal]) {
    let mut kinds: Vec<(String, &str, usize)> = Vec::new();
    for refusal in refusals {
        let stage = wire_name(&refusal.stage);
        let label = match &refusal.code {
            Some(code) => format!("{stage} {code}"),
            None => stage,
        };
        match kinds.iter_mut().find(|(l, _, _)| *l == label) {
            Some((_, _, count)) => *count += 1,
            None => kinds.push((label, &refusal.message, 1)),
        }
    }
    for (label, first, count) in kinds {
        let more = match count {
            1 => String::new(),
            n => format!(" (and {} more like it)", n - 1),
        };
        narrator.detail(format!("[{label}] {first}{more}"));
    }
}

/// What the blast-radius gate says about the edit: `keel apply --dry-run --force` asks
/// it without recording or changing anything (check refused first, so the gate never ran).
async fn gate_verdict(play: &Play<'_>, result: &mut SceneResult) {
    let narrator = play.narrator;
    let asked = play
        .stand
        .controller
        .apply(ApplyRequest {
            config_text: march_15_config(&play.stand.addrs),
            author: GAME_DAY_AUTHOR.to_owned(),
            message: format!("{EDIT_MESSAGE} (dry run)"),
            origin: origin::CLI.to_owned(),
            file_name: MARCH_15_FILE_NAME.to_owned(),
            force: true,
            dry_run: true,
            ..ApplyRequest::default()
        })
        .await;
    let gate: Vec<&Refusal> = match &asked {
        Ok(outcome) => outcome
            .overridden
            .iter()
            .chain(&outcome.refusals)
            .filter(|r| r.stage == Stage::Gate)
            .collect(),
        Err(_) => Vec::new(),
    };
    narrator
        .say("And the blast radius on the live traffic sample (`keel apply --dry-run --force`):");
    for reason in &gate {
        narrator.detail(format!("[gate] {}", reason.message));
    }
    result.expect(
        narrator,
        !gate.is_empty(),
        match &asked {
            Ok(_) => "the blast-radius gate refuses it too".to_owned(),
            Err(error) => format!("the blast-radius gate answers ({error})"),
        },
    );
}

/// The name a stage or status has in the admin API's JSON (`check`, `refused`, …).
fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
