//! Test helper for `tests/crash.rs`: opens the store in the given state directory and mutates it
//! in a loop (applies of 1-65 KiB configs, rejections, rollbacks, known-good marks, events) until
//! it is killed. It announces each operation on stdout before starting it (`intent ...`) and
//! after its transaction committed (`done ...`), so the killing test knows which states the
//! store may recover to. Not part of Keel's product; it only drives the real `SqliteStore`.
//!
//! Usage: `keel-store-crash <state-dir>`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use keel_store::{
    GenerationId, GenerationState, NewEvent, NewGeneration, SqliteStore, Store, StoreError, kind,
    origin,
};
use serde_json::json;

/// Config bodies cycle through sizes up to this many bytes, so applies span many pages.
const MAX_BODY_BYTES: u64 = 64 * 1024;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: keel-store-crash <state-dir>");
        return ExitCode::from(2);
    };
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-store-crash: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &std::path::Path) -> Result<(), StoreError> {
    let store = SqliteStore::open(dir)?;
    let mut active = store.active()?.map(|g| g.id);
    let mut step = store.generations(1)?.first().map_or(0, |g| g.id);
    say(&format!("start active={}", show(active)));
    loop {
        step += 1;
        match step % 10 {
            3 => {
                say("intent reject");
                let id = store.record_rejection(generation(step))?;
                say(&format!("done reject {id} active={}", show(active)));
            }
            5 => {
                let Some(to) = rollback_target(&store, active)? else {
                    continue;
                };
                let Some(from) = active else { continue };
                say(&format!("intent rollback {to}"));
                store.record_rollback(from, to, origin::ROLLBACK, "crash test")?;
                active = Some(to);
                say(&format!("done rollback {to} active={to}"));
            }
            7 => {
                let Some(id) = active else { continue };
                say("intent known-good");
                store.mark_known_good(id)?;
                say(&format!("done known-good {id} active={id}"));
            }
            9 => {
                say("intent event");
                let event = NewEvent::new(kind::HEALTH, format!("step {step}"))
                    .details(json!({ "step": step }));
                let id = store.append_event(event)?;
                say(&format!("done event {id} active={}", show(active)));
            }
            _ => {
                say("intent apply");
                let id = store.record_apply(generation(step), true)?;
                active = Some(id);
                say(&format!("done apply {id} active={id}"));
            }
        }
    }
}

/// The newest generation, other than the active one, that served traffic before.
fn rollback_target(
    store: &SqliteStore,
    active: Option<GenerationId>,
) -> Result<Option<GenerationId>, StoreError> {
    let recent = store.generations(20)?;
    Ok(recent
        .into_iter()
        .find(|g| {
            Some(g.id) != active
                && matches!(
                    g.state,
                    GenerationState::Superseded | GenerationState::RolledBack
                )
                && g.activated_at_ms.is_some()
        })
        .map(|g| g.id))
}

/// A self-describing config: its header states the body's length and the step that wrote it,
/// and the check report repeats the step, so a reader can tell a torn or mixed-up row.
fn generation(step: u64) -> NewGeneration {
    let body_bytes = 1024 + step.wrapping_mul(7919) % MAX_BODY_BYTES;
    let line = format!("# filler for step {step} ................................\n");
    let mut body = line.repeat(usize::try_from(body_bytes).unwrap_or(1024) / line.len() + 1);
    body.truncate(usize::try_from(body_bytes).unwrap_or(body.len()));
    NewGeneration {
        config_text: format!("# keel-crash step={step} body={body_bytes}\n{body}"),
        author: "crash-test".to_owned(),
        message: format!("step {step}"),
        origin: origin::CLI.to_owned(),
        forced: step.is_multiple_of(4),
        check_report: json!({ "step": step, "errors": 0 }),
        impact_report: step
            .is_multiple_of(2)
            .then(|| json!({ "step": step, "moved_permille": step % 1000 })),
        certificates: Default::default(),
    }
}

fn show(id: Option<GenerationId>) -> String {
    id.map_or_else(|| "none".to_owned(), |id| id.to_string())
}

/// One complete line; a kill can tear only the line being written, which the reader discards.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // stdout is the test's pipe; if it is gone there is no one left to tell.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
