//! `kill -9` at random instants of real applies: a child process (`keel-store-crash`) mutates a
//! store in a loop and is killed with SIGKILL after a random 5-80 ms, 20 times (more, up to 60,
//! if it committed little) over the same state directory. After every kill the store must reopen intact, hold exactly one active
//! generation that is either the last acknowledged one or the result of the operation in flight,
//! keep every acknowledged write, and contain no half-written generation.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_store::{
    EventQuery, GenerationId, GenerationRecord, GenerationState, SqliteStore, Store, content_hash,
    kind,
};

use common::ok;

const KILLS: usize = 20;
/// On a slow or loaded machine the child may commit little before each kill; keep killing (up to
/// this many times in all) until it has committed at least `KILLS` operations.
const MAX_KILLS: usize = 3 * KILLS;
const MIN_KILL_DELAY_MS: u64 = 5;
const MAX_KILL_DELAY_MS: u64 = 80;

/// What the child said before it died, from its complete stdout lines.
#[derive(Debug, Default)]
struct ChildLog {
    /// Generation ids whose apply or rejection committed.
    acknowledged: Vec<GenerationId>,
    /// Active generation after the last committed operation (or at startup).
    active: Option<Option<GenerationId>>,
    /// The operation started after the last acknowledgement, if the child died inside it.
    in_flight: Option<InFlight>,
    /// Number of committed operations.
    committed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Apply,
    Rollback(GenerationId),
    Other,
}

fn parse_active(word: &str) -> Option<Option<GenerationId>> {
    let value = word.strip_prefix("active=")?;
    if value == "none" {
        Some(None)
    } else {
        value.parse().ok().map(Some)
    }
}

fn parse_log(stdout: &str) -> ChildLog {
    let mut log = ChildLog::default();
    // A line without its newline was torn by the kill: it proves nothing.
    let complete = stdout.rsplit_once('\n').map_or("", |(lines, _torn)| lines);
    for line in complete.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["start", active] => log.active = parse_active(active),
            ["intent", "apply"] => log.in_flight = Some(InFlight::Apply),
            ["intent", "rollback", to] => {
                log.in_flight = to.parse().ok().map(InFlight::Rollback);
            }
            ["intent", _] => log.in_flight = Some(InFlight::Other),
            ["done", op, id, active] => {
                log.in_flight = None;
                log.committed += 1;
                log.active = parse_active(active);
                if matches!(*op, "apply" | "reject") {
                    log.acknowledged.extend(id.parse::<GenerationId>().ok());
                }
            }
            _ => panic!("unexpected line from child: {line:?}"),
        }
    }
    log
}

/// Checks one recovered generation row for internal consistency.
fn check_row(record: &GenerationRecord) {
    let id = record.id;
    assert_eq!(
        record.content_hash,
        content_hash(&record.config_text),
        "generation {id}: hash"
    );
    let (header, body) = record
        .config_text
        .split_once('\n')
        .unwrap_or_else(|| panic!("generation {id}: no header line"));
    let fields: Vec<&str> = header.split_whitespace().collect();
    let [_, _, step, body_bytes] = fields.as_slice() else {
        panic!("generation {id}: bad header {header:?}");
    };
    let step: u64 = step.trim_start_matches("step=").parse().unwrap_or(u64::MAX);
    let body_bytes: usize = body_bytes
        .trim_start_matches("body=")
        .parse()
        .unwrap_or(usize::MAX);
    assert_eq!(body.len(), body_bytes, "generation {id}: torn config text");
    assert_eq!(
        record.check_report["step"], step,
        "generation {id}: check report from another row"
    );
    assert_eq!(
        record.message,
        format!("step {step}"),
        "generation {id}: message from another row"
    );
    if let Some(impact) = &record.impact_report {
        assert_eq!(
            impact["step"], step,
            "generation {id}: impact report from another row"
        );
    }
    assert_eq!(
        record.impact_report.is_some(),
        step.is_multiple_of(2),
        "generation {id}: impact report"
    );
    match record.state {
        GenerationState::Rejected => assert_eq!(record.activated_at_ms, None),
        GenerationState::Active | GenerationState::Superseded => {
            assert!(
                record.activated_at_ms.is_some(),
                "generation {id}: active without time"
            );
        }
        GenerationState::RolledBack | GenerationState::Pending => {}
    }
    assert_eq!(
        record.known_good,
        record.known_good_at_ms.is_some(),
        "generation {id}"
    );
}

/// Opens the store after a kill and checks every invariant; returns the recovered active id.
fn verify(
    dir: &Path,
    log: &ChildLog,
    acked_active: Option<GenerationId>,
    max_acked: GenerationId,
) -> Option<GenerationId> {
    let store = ok(SqliteStore::open(dir));
    assert_eq!(
        ok(store.integrity_check()),
        Vec::<String>::new(),
        "PRAGMA integrity_check"
    );

    let generations = ok(store.generations(usize::MAX));
    let ids: Vec<GenerationId> = generations.iter().rev().map(|g| g.id).collect();
    let contiguous: Vec<GenerationId> = (1..=ids.len() as GenerationId).collect();
    assert_eq!(
        ids, contiguous,
        "generation ids are contiguous: nothing vanished"
    );
    generations.iter().for_each(check_row);
    for id in &log.acknowledged {
        assert!(ids.contains(id), "acknowledged generation {id} was lost");
    }

    let active: Vec<GenerationId> = generations
        .iter()
        .filter(|g| g.state == GenerationState::Active)
        .map(|g| g.id)
        .collect();
    let ever_activated = generations.iter().any(|g| g.activated_at_ms.is_some());
    assert_eq!(
        active.len(),
        usize::from(ever_activated),
        "active generations: {active:?}"
    );
    let recovered = active.first().copied();
    assert_eq!(ok(store.active()).map(|g| g.id), recovered);

    let allowed = match log.in_flight {
        None | Some(InFlight::Other) => recovered == acked_active,
        Some(InFlight::Rollback(to)) => recovered == acked_active || recovered == Some(to),
        Some(InFlight::Apply) => {
            recovered == acked_active || recovered.is_some_and(|id| id > max_acked)
        }
    };
    assert!(
        allowed,
        "recovered active {recovered:?}, acknowledged {acked_active:?}, in flight {:?}",
        log.in_flight
    );

    let events = ok(store.events(EventQuery::default()));
    let about = |wanted: &str| -> BTreeSet<GenerationId> {
        events
            .iter()
            .filter(|e| e.kind == wanted)
            .filter_map(|e| e.generation)
            .collect()
    };
    let applied: BTreeSet<GenerationId> = generations
        .iter()
        .filter(|g| g.state != GenerationState::Rejected)
        .map(|g| g.id)
        .collect();
    let rejected: BTreeSet<GenerationId> = generations
        .iter()
        .filter(|g| g.state == GenerationState::Rejected)
        .map(|g| g.id)
        .collect();
    assert_eq!(
        about(kind::APPLY),
        applied,
        "one apply event per applied generation"
    );
    assert_eq!(
        about(kind::REJECT),
        rejected,
        "one reject event per rejected generation"
    );
    let rolled_back = generations
        .iter()
        .filter(|g| g.state == GenerationState::RolledBack)
        .count();
    let rollbacks = events.iter().filter(|e| e.kind == kind::ROLLBACK).count();
    assert!(
        rollbacks >= rolled_back,
        "{rolled_back} rolled back, {rollbacks} rollback events"
    );
    recovered
}

#[test]
fn sigkill_at_random_instants_never_loses_or_tears_an_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = std::env::var("KEEL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash test seed {seed} (set KEEL_CRASH_SEED to replay the kill delays)");
    let mut rng = fastrand::Rng::with_seed(seed);

    let mut acked_active: Option<GenerationId> = None;
    let mut max_acked: GenerationId = 0;
    let mut committed = 0;
    let mut killed_in_flight = 0;
    let mut round = 0;
    while round < KILLS || (committed < KILLS && round < MAX_KILLS) {
        round += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel-store-crash"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keel-store-crash");
        let delay = rng.u64(MIN_KILL_DELAY_MS..=MAX_KILL_DELAY_MS);
        std::thread::sleep(Duration::from_millis(delay)); // the random kill instant is the point
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .map(|mut e| e.read_to_string(&mut stderr));
            panic!("round {round}: child exited by itself ({status}): {stderr}");
        }
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut stdout)
            .expect("read child stdout");
        let log = parse_log(&stdout);
        if let Some(active) = log.active {
            acked_active = active;
        }
        max_acked = log
            .acknowledged
            .iter()
            .copied()
            .fold(max_acked, GenerationId::max);
        committed += log.committed;
        killed_in_flight += usize::from(log.in_flight.is_some());

        let recovered = verify(dir.path(), &log, acked_active, max_acked);
        // The in-flight operation may have committed; the next round starts from what is stored.
        acked_active = recovered;
        if let Some(id) = recovered {
            max_acked = max_acked.max(id);
        }
    }
    eprintln!(
        "{round} kills, {committed} committed operations, {killed_in_flight} kills inside an operation"
    );
    assert!(
        committed >= KILLS,
        "the child barely ran ({committed} operations): the kills tested little"
    );
    assert!(killed_in_flight > 0, "no kill landed inside an operation");
}
