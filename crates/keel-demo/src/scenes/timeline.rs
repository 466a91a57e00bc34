//! Scene 3: the post-mortem Keel wrote while it happened — `keel timeline` of the game
//! day, built by keel-report from the store, printed as Markdown.

use keel_report::Timeline;
use keel_store::kind;

use super::{Act, Play, SceneResult};

pub(super) async fn run(play: &mut Play<'_>) -> SceneResult {
    let mut result = SceneResult::new(Act::Timeline);
    let narrator = play.narrator;
    narrator.say(
        "The post-mortem: no one reconstructs it from memory and chat logs. Keel recorded every",
    );
    narrator.say(format!(
        "change, refusal, alert and rollback; `keel timeline --state-dir {}` prints it:",
        play.stand.state_dir.display()
    ));
    let store = play.stand.controller.store().clone();
    let since = play.started_ms;
    let built =
        tokio::task::spawn_blocking(move || Timeline::build(store.as_ref(), Some(since), None))
            .await;
    let timeline = match built {
        Ok(Ok(timeline)) => timeline,
        Ok(Err(error)) => {
            result.expect(narrator, false, format!("the timeline builds ({error})"));
            return result;
        }
        Err(error) => {
            result.expect(narrator, false, format!("the timeline builds ({error})"));
            return result;
        }
    };
    narrator.document(timeline.render_markdown());
    let has = |wanted: &str, forced: Option<bool>| {
        timeline.entries.iter().any(|entry| {
            entry.kind == wanted
                && forced.is_none_or(|f| entry.change.as_ref().is_some_and(|c| c.forced == f))
        })
    };
    result.expect(
        narrator,
        has(kind::APPLY, Some(false)),
        "the timeline has the first apply (generation 1)".to_owned(),
    );
    if play.done.contains(&Act::Refused) {
        result.expect(
            narrator,
            has(kind::REJECT, None),
            "it has scene 1's refusal, with its findings".to_owned(),
        );
    }
    if play.done.contains(&Act::Reverted) {
        result.expect(
            narrator,
            has(kind::APPLY, Some(true)),
            "it has scene 2's forced apply".to_owned(),
        );
        result.expect(
            narrator,
            has(kind::ROLLBACK, None),
            "it has the rollback that undid it".to_owned(),
        );
        if let Some(forced) = play.forced_generation {
            let suspect = timeline.incident.as_ref().and_then(|i| i.suspect());
            result.expect(
                narrator,
                suspect == Some(forced),
                format!(
                    "it names generation {forced} as the most likely cause of the first alert (named: {})",
                    suspect.map_or_else(|| "none".to_owned(), |g| g.to_string())
                ),
            );
        }
    }
    result
}
