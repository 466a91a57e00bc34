//! The controller without sockets: every stage of the apply pipeline, force, the hooks,
//! rollback from memory, known-good promotion, store failures, restarts and events.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use keel_control::boot::{self, Prepared};
use keel_control::{
    Activated, Alarm, AlarmSource, ApplyRequest, ApplyStatus, ControlError, Controller, Gate,
    GateInput, GateVerdict, Hooks, MarkBadRequest, RollbackRequest, Stage, Watch,
};
use keel_proxy::Generation;
use keel_store::{GenerationState, MemoryStore, SqliteStore, Store, kind};
use support::{FlakyStore, config, controller};

fn backend(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn request(text: String) -> ApplyRequest {
    ApplyRequest {
        config_text: text,
        author: "alice".into(),
        message: "test".into(),
        ..ApplyRequest::default()
    }
}

/// A route aimed at a pool of another service: K102, a policy error.
fn policy_error_config() -> String {
    config(backend(9001), "").replace(
        "[services.app]\nallow_no_identity = true",
        "[services.app]\nallow_no_identity = true\n[services.other]\nallow_no_identity = true\n[pools.other]\nservice = \"other\"\nbackends = [{ addr = \"127.0.0.1:9009\" }]",
    )
    .replace("pool = \"app\"\nretries", "pool = \"other\"\nretries")
}

#[tokio::test]
async fn apply_checks_compiles_persists_and_swaps() {
    let store = Arc::new(MemoryStore::new());
    let controller = controller(store.clone(), Hooks::default());
    let outcome = controller
        .apply(request(config(backend(9001), "")))
        .await
        .expect("apply");
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    assert_eq!(outcome.generation, Some(1));
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
    let active = store.active().expect("store").expect("active");
    assert_eq!((active.id, active.author.as_str()), (1, "alice"));

    let second = controller
        .apply(request(config(backend(9002), "")))
        .await
        .expect("apply");
    assert_eq!((second.generation, second.previous), (Some(2), Some(1)));
    assert_eq!(
        store.generation(1).expect("store").map(|g| g.state),
        Some(GenerationState::Superseded)
    );
    assert_eq!(
        controller.kept().iter().map(|c| c.id()).collect::<Vec<_>>(),
        vec![1]
    );
    assert!(second.timings.check_us > 0);
}

#[tokio::test]
async fn hard_errors_are_refused_recorded_and_not_forceable() {
    let store = Arc::new(MemoryStore::new());
    let controller = controller(store.clone(), Hooks::default());
    controller
        .apply(request(config(backend(9001), "")))
        .await
        .expect("apply");
    let broken =
        config(backend(9002), "").replace("pool = \"app\"\nretries", "pool = \"nope\"\nretries");
    for force in [false, true] {
        let outcome = controller
            .apply(ApplyRequest {
                force,
                ..request(broken.clone())
            })
            .await
            .expect("apply");
        assert_eq!(outcome.status, ApplyStatus::Refused);
        assert!(
            outcome
                .refusals
                .iter()
                .any(|r| r.code.as_deref() == Some("K101")),
            "{:?}",
            outcome.refusals
        );
        let id = outcome.generation.expect("recorded");
        let record = store.generation(id).expect("store").expect("record");
        assert_eq!(record.state, GenerationState::Rejected);
        assert!(
            record.check_report["refusals"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        );
    }
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
}

#[tokio::test]
async fn policy_errors_need_force_and_forced_applies_are_recorded() {
    let store = Arc::new(MemoryStore::new());
    let controller = controller(store.clone(), Hooks::default());
    controller
        .apply(request(config(backend(9001), "")))
        .await
        .expect("apply");
    let refused = controller
        .apply(request(policy_error_config()))
        .await
        .expect("apply");
    assert_eq!(refused.status, ApplyStatus::Refused);
    assert_eq!(refused.refusals[0].code.as_deref(), Some("K102"));
    let forced = controller
        .apply(ApplyRequest {
            force: true,
            ..request(policy_error_config())
        })
        .await
        .expect("apply");
    assert_eq!(forced.status, ApplyStatus::Applied);
    assert!(forced.forced);
    assert_eq!(forced.overridden[0].code.as_deref(), Some("K102"));
    let record = store
        .generation(forced.generation.expect("id"))
        .expect("store")
        .expect("record");
    assert!(record.forced);
    assert_eq!(record.state, GenerationState::Active);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let controller = controller(store.clone(), Hooks::default());
    controller
        .apply(request(config(backend(9001), "")))
        .await
        .expect("apply");
    for text in [config(backend(9002), ""), policy_error_config()] {
        let outcome = controller
            .apply(ApplyRequest {
                dry_run: true,
                ..request(text)
            })
            .await
            .expect("apply");
        assert_ne!(outcome.status, ApplyStatus::Applied);
        assert_eq!(outcome.generation, None);
    }
    assert_eq!(store.generations(10).expect("store").len(), 1);
}

#[tokio::test]
async fn listener_changes_are_refused_with_a_reason() {
    let controller = controller(Arc::new(MemoryStore::new()), Hooks::default());
    controller
        .apply(request(config(backend(9001), "")))
        .await
        .expect("apply");
    let moved = config(backend(9001), "").replace("18080", "18081");
    let outcome = controller
        .apply(ApplyRequest {
            force: true,
            ..request(moved)
        })
        .await
        .expect("apply");
    assert_eq!(outcome.status, ApplyStatus::Refused);
    assert_eq!(outcome.refusals[0].stage, Stage::Listeners);
    assert!(
        outcome.refusals[0].message.contains("does not rebind"),
        "{:?}",
        outcome.refusals
    );
}

struct RefuseGate;
impl Gate for RefuseGate {
    fn evaluate(&self, input: &GateInput<'_>) -> GateVerdict {
        if input.current.is_none() {
            return GateVerdict::allow();
        }
        GateVerdict {
            allow: false,
            reasons: vec!["70% of shop.example.com moves to legacy".into()],
            report: Some(serde_json::json!({ "moved": 0.7 })),
            notes: Vec::new(),
        }
    }
}

#[derive(Default)]
struct RecordingWatch(Mutex<Vec<(u64, Option<u64>)>>);
impl Watch for RecordingWatch {
    fn activated(&self, activated: Activated, _controller: &Controller) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push((activated.generation.id, activated.previous.map(|p| p.id)));
        }
    }
}

#[tokio::test]
async fn the_gate_refuses_unless_forced_and_the_watch_sees_every_swap() {
    let store = Arc::new(MemoryStore::new());
    let watch = Arc::new(RecordingWatch::default());
    let hooks = Hooks {
        gate: Arc::new(RefuseGate),
        watch: watch.clone(),
        ..Hooks::default()
    };
    let controller = controller(store.clone(), hooks);
    controller
        .apply(request(config(backend(9001), "")))
        .await
        .expect("apply");
    let refused = controller
        .apply(request(config(backend(9002), "")))
        .await
        .expect("apply");
    assert_eq!(refused.status, ApplyStatus::Refused);
    assert_eq!(refused.refusals[0].stage, Stage::Gate);
    let record = store
        .generation(refused.generation.expect("id"))
        .expect("store")
        .expect("record");
    assert_eq!(
        record.impact_report,
        Some(serde_json::json!({ "moved": 0.7 }))
    );
    let forced = controller
        .apply(ApplyRequest {
            force: true,
            ..request(config(backend(9002), ""))
        })
        .await
        .expect("apply");
    assert_eq!(forced.status, ApplyStatus::Applied);
    assert_eq!(forced.overridden[0].stage, Stage::Gate);
    let seen = watch.0.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(seen, vec![(1, None), (3, Some(1))]);
}

struct Alarmed(AtomicUsize);
impl AlarmSource for Alarmed {
    fn alarms(&self, _generation: &Generation, _since: SystemTime) -> Vec<Alarm> {
        self.0.fetch_add(1, Ordering::SeqCst);
        vec![Alarm {
            source: "share-shift".into(),
            summary: "70% moved".into(),
        }]
    }
}

#[tokio::test]
async fn known_good_needs_time_and_no_alarms() {
    let instant = "[safety]\nknown_good_after = \"0s\"";
    let alarms = Arc::new(Alarmed(AtomicUsize::new(0)));
    let alarmed = controller(
        Arc::new(MemoryStore::new()),
        Hooks {
            alarms: alarms.clone(),
            ..Hooks::default()
        },
    );
    alarmed
        .apply(request(config(backend(9001), instant)))
        .await
        .expect("apply");
    assert_eq!(alarmed.promote_known_good().await.expect("promote"), None);
    assert_eq!(alarms.0.load(Ordering::SeqCst), 1);

    let store = Arc::new(MemoryStore::new());
    let quiet = controller(store.clone(), Hooks::default());
    quiet
        .apply(request(config(
            backend(9001),
            "[safety]\nknown_good_after = \"1h\"",
        )))
        .await
        .expect("apply");
    assert_eq!(
        quiet.promote_known_good().await.expect("promote"),
        None,
        "too early"
    );
    // A change never chooses its own judge: generation 2 says "0s", but it replaced a
    // config that asks for an hour, so it too must serve an hour.
    quiet
        .apply(request(config(backend(9002), instant)))
        .await
        .expect("apply");
    assert_eq!(
        quiet.promote_known_good().await.expect("promote"),
        None,
        "known_good_after shortened by the change it judges"
    );
    quiet
        .apply(request(config(backend(9003), instant)))
        .await
        .expect("apply");
    assert_eq!(quiet.promote_known_good().await.expect("promote"), Some(3));
    assert!(
        store
            .generation(3)
            .expect("store")
            .is_some_and(|g| g.known_good)
    );
    assert!(quiet.status().active.is_some_and(|a| a.known_good));
}

#[tokio::test]
async fn rollback_goes_to_the_newest_known_good_generation_in_memory() {
    let instant = "[safety]\nknown_good_after = \"0s\"";
    let store = Arc::new(MemoryStore::new());
    let controller = controller(store.clone(), Hooks::default());
    controller
        .apply(request(config(backend(9001), instant)))
        .await
        .expect("apply");
    let none = controller.rollback(RollbackRequest::default()).await;
    assert!(
        matches!(none, Err(ControlError::NoRollbackTarget { .. })),
        "{none:?}"
    );
    controller.promote_known_good().await.expect("promote");
    controller
        .apply(request(config(backend(9002), instant)))
        .await
        .expect("apply");
    controller
        .apply(request(config(backend(9003), instant)))
        .await
        .expect("apply");

    let outcome = controller
        .rollback(RollbackRequest::default())
        .await
        .expect("rollback");
    assert_eq!((outcome.from, outcome.to, outcome.persisted), (3, 1, true));
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
    assert_eq!(store.active().expect("store").map(|g| g.id), Some(1));
    assert_eq!(
        store.generation(3).expect("store").map(|g| g.state),
        Some(GenerationState::RolledBack)
    );

    // An explicit target that is not known-good needs --force and says why, then one
    // that is not in memory.
    let distrusted = controller
        .rollback(RollbackRequest {
            to: Some(2),
            ..RollbackRequest::default()
        })
        .await;
    let Err(ControlError::DistrustedTarget { id: 2, reasons }) = &distrusted else {
        panic!("expected a distrusted target, got {distrusted:?}");
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("never became known-good")),
        "{reasons:?}"
    );
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
    let to_two = controller
        .rollback(RollbackRequest {
            to: Some(2),
            force: true,
            ..RollbackRequest::default()
        })
        .await
        .expect("rollback");
    assert_eq!((to_two.to, to_two.forced), (2, true));
    assert_eq!(to_two.distrust, reasons.clone());
    let missing = controller
        .rollback(RollbackRequest {
            to: Some(42),
            ..RollbackRequest::default()
        })
        .await;
    let Err(ControlError::NoRollbackTarget { message, hint }) = missing else {
        panic!("expected no target, got {missing:?}");
    };
    assert!(
        message.contains("42") && hint.contains("keel show 42"),
        "{message} / {hint}"
    );
    let active = controller
        .rollback(RollbackRequest {
            to: Some(2),
            ..RollbackRequest::default()
        })
        .await;
    assert!(matches!(active, Err(ControlError::AlreadyActive(2))));
}

/// Issue 27 (3): trying an older generation and going forward again must not leave
/// both good generations distrusted: only an alarm or `mark-bad` takes known-good away.
#[tokio::test]
async fn a_manual_rollback_keeps_known_good_and_only_mark_bad_takes_it() {
    let instant = "[safety]\nknown_good_after = \"0s\"";
    let store = Arc::new(MemoryStore::new());
    let controller = controller(store.clone(), Hooks::default());
    for port in [9001, 9002, 9003] {
        controller
            .apply(request(config(backend(port), instant)))
            .await
            .expect("apply");
        assert!(
            controller
                .promote_known_good()
                .await
                .expect("promote")
                .is_some()
        );
    }
    let back = controller
        .rollback(RollbackRequest {
            to: Some(1),
            ..RollbackRequest::default()
        })
        .await
        .expect("rollback to 1");
    assert_eq!((back.from, back.to, back.forced), (3, 1, false));
    let forward = controller
        .rollback(RollbackRequest {
            to: Some(3),
            ..RollbackRequest::default()
        })
        .await
        .expect("3 is still known-good: no --force needed");
    assert_eq!((forward.to, forward.forced), (3, false));
    let good: Vec<u64> = store
        .known_good(10)
        .expect("store")
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(good, vec![3, 2, 1]);
    // Plain `keel rollback` has a target: the newest known-good one that is not active.
    let plain = controller
        .rollback(RollbackRequest::default())
        .await
        .expect("plain rollback");
    assert_eq!((plain.from, plain.to), (3, 2));

    // An operator's judgement takes it away, for good: the timer does not promote it again.
    let marked = controller
        .mark_bad(MarkBadRequest {
            id: 2,
            author: "ana".into(),
            reason: "stale prices".into(),
        })
        .await
        .expect("mark-bad");
    assert_eq!(
        (marked.id, marked.withdrew_known_good, marked.active),
        (2, true, true)
    );
    assert_eq!(
        controller.promote_known_good().await.expect("promote"),
        None
    );
    assert!(
        !store
            .generation(2)
            .expect("store")
            .expect("gen 2")
            .known_good
    );
    controller
        .rollback(RollbackRequest::default())
        .await
        .expect("back to 3");
    let refused = controller
        .rollback(RollbackRequest {
            to: Some(2),
            ..RollbackRequest::default()
        })
        .await;
    let Err(ControlError::DistrustedTarget { reasons, .. }) = &refused else {
        panic!("expected a distrusted target, got {refused:?}");
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("marked bad via cli: stale prices (by ana)")),
        "{reasons:?}"
    );
    let unknown = controller
        .mark_bad(MarkBadRequest {
            id: 42,
            ..MarkBadRequest::default()
        })
        .await;
    assert!(unknown.is_err(), "{unknown:?}");
}

#[tokio::test]
async fn rollback_swaps_even_when_the_store_cannot_write() {
    let instant = "[safety]\nknown_good_after = \"0s\"";
    let store = Arc::new(FlakyStore::default());
    let controller = controller(store.clone(), Hooks::default());
    controller
        .apply(request(config(backend(9001), instant)))
        .await
        .expect("apply");
    controller.promote_known_good().await.expect("promote");
    controller
        .apply(request(config(backend(9002), instant)))
        .await
        .expect("apply");

    store.failing.store(true, Ordering::SeqCst);
    // Apply persists first: a failing store refuses it and the old generation serves on.
    let failed = controller
        .apply(request(config(backend(9003), instant)))
        .await;
    assert!(
        matches!(failed, Err(ControlError::Persist(_))),
        "{failed:?}"
    );
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(2));

    // Rollback swaps first, from memory: it works and says the store is behind.
    let outcome = controller
        .rollback(RollbackRequest::default())
        .await
        .expect("rollback");
    assert_eq!(outcome.to, 1);
    assert!(!outcome.persisted);
    assert!(
        outcome
            .persist_error
            .as_deref()
            .is_some_and(|e| e.contains("not recorded"))
    );
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
    let status = controller.status();
    assert!(!status.store_in_sync && status.store_error.is_some());
}

#[tokio::test]
async fn the_cache_keeps_known_good_generations_longest() {
    let settings = "[safety]\nknown_good_after = \"0s\"\nkeep_generations = 2";
    let controller = controller(Arc::new(MemoryStore::new()), Hooks::default());
    controller
        .apply(request(config(backend(9001), settings)))
        .await
        .expect("apply");
    controller.promote_known_good().await.expect("promote");
    for port in 9002..9007 {
        controller
            .apply(request(config(backend(port), settings)))
            .await
            .expect("apply");
    }
    let kept: Vec<(u64, bool)> = controller
        .kept()
        .iter()
        .map(|c| (c.id(), c.known_good))
        .collect();
    assert_eq!(kept, vec![(5, false), (1, true)]);
}

#[tokio::test]
async fn restart_serves_the_store_even_when_the_file_is_gone_or_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keel.toml");
    let settings = "[safety]\nknown_good_after = \"0s\"";
    std::fs::write(&file, config(backend(9001), settings)).expect("write");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        let prepared = boot::prepare(&store, Some(&file)).expect("prepare");
        assert!(matches!(prepared, Prepared::FirstStart { .. }));
        let (controller, report) = Controller::start(Arc::new(store), prepared, Hooks::default())
            .await
            .expect("start");
        assert!(report.first_start);
        assert_eq!(report.generation, 1);
        controller.promote_known_good().await.expect("promote");
        controller
            .apply(request(config(backend(9002), settings)))
            .await
            .expect("apply");
    }
    for (content, expected) in [
        (Some("this is [not toml"), "is broken"),
        (None, "does not exist"),
        (
            Some(config(backend(9002), settings).as_str()),
            "is the same",
        ),
    ] {
        match content {
            Some(text) => std::fs::write(&file, text).expect("write"),
            None => std::fs::remove_file(&file).expect("remove"),
        }
        let store = SqliteStore::open(dir.path()).expect("open");
        let prepared = boot::prepare(&store, Some(&file)).expect("prepare");
        let (controller, report) = Controller::start(Arc::new(store), prepared, Hooks::default())
            .await
            .expect("start");
        assert_eq!(report.generation, 2);
        assert!(
            report.notes.iter().any(|n| n.contains(expected)),
            "{:?}",
            report.notes
        );
        assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(2));
        // The known-good generation 1 was recompiled: rollback works without any file.
        assert_eq!(
            controller
                .kept()
                .iter()
                .map(|c| (c.id(), c.known_good))
                .collect::<Vec<_>>(),
            vec![(1, true)]
        );
    }
}

#[tokio::test]
async fn adopt_config_applies_a_changed_listener_at_start_and_refuses_a_broken_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, config(backend(9001), "")).expect("write");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        let prepared = boot::prepare(&store, Some(&file)).expect("prepare");
        Controller::start(Arc::new(store), prepared, Hooks::default())
            .await
            .expect("start");
    }
    // A running Keel refuses a listener move; a restart with --adopt-config takes it.
    let moved = config(backend(9001), "").replace("127.0.0.1:18080", "127.0.0.1:18081");
    std::fs::write(&file, &moved).expect("write");
    let store = SqliteStore::open(dir.path()).expect("open");
    let prepared = boot::prepare_adopting(&store, &file).expect("prepare");
    let (controller, report) = Controller::start(Arc::new(store), prepared, Hooks::default())
        .await
        .expect("start");
    assert_eq!(report.generation, 2);
    let active = controller.plane().active().expect("active");
    assert_eq!(
        active.primary.config.listeners["web"].addr.value.port(),
        18081
    );
    drop(controller);

    // A broken file is recorded as rejected and the stored generation keeps serving.
    std::fs::write(&file, "[listeners.web]\naddr = 5\n").expect("write");
    let store = SqliteStore::open(dir.path()).expect("open");
    let prepared = boot::prepare_adopting(&store, &file).expect("prepare");
    assert!(matches!(prepared, Prepared::Restore { .. }));
    assert_eq!(
        store.generation(3).expect("store").map(|g| g.state),
        Some(GenerationState::Rejected)
    );
    let (_, report) = Controller::start(Arc::new(store), prepared, Hooks::default())
        .await
        .expect("start");
    assert_eq!(report.generation, 2);
    assert!(
        report.notes.iter().any(|n| n.contains("was refused")),
        "{:?}",
        report.notes
    );
}

/// Issue 29: `--adopt-config` ran neither the gate nor the probes ("first start"). A
/// restart has no traffic sample: a file that changes where requests go is refused
/// without `--force`, saying what it could not judge; with it, adopted and said so.
#[tokio::test]
async fn adopt_config_without_a_sample_refuses_a_routing_change_unless_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, config(backend(9001), "")).expect("write");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        let prepared = boot::prepare(&store, Some(&file)).expect("prepare");
        Controller::start(Arc::new(store), prepared, Hooks::default())
            .await
            .expect("start");
    }
    // The pool now points at another server: the route `all` changes where it goes.
    std::fs::write(&file, config(backend(9002), "")).expect("write");
    let store = SqliteStore::open(dir.path()).expect("open");
    let prepared = boot::prepare_adopting(&store, &file).expect("prepare");
    let (controller, report) = Controller::start(Arc::new(store), prepared, Hooks::default())
        .await
        .expect("start");
    assert_eq!(report.generation, 1, "{:?}", report.notes);
    assert!(
        report.notes.iter().any(
            |n| n.contains("was refused (recorded as rejected generation 2)")
                && n.contains("no traffic sample after a restart for any host (route all changes)")
        ),
        "{:?}",
        report.notes
    );
    drop(controller);
    let store = SqliteStore::open(dir.path()).expect("open");
    assert_eq!(
        store.generation(2).expect("store").map(|g| g.state),
        Some(GenerationState::Rejected)
    );
    let prepared = boot::prepare_adopting_forced(&store, &file, true).expect("prepare");
    let (_, report) = Controller::start(Arc::new(store), prepared, Hooks::default())
        .await
        .expect("start");
    assert_eq!(report.generation, 3, "{:?}", report.notes);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("--adopt-config --force: adopted without")),
        "{:?}",
        report.notes
    );
}

#[tokio::test]
async fn a_broken_first_config_is_recorded_and_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, "[listeners.web]\naddr = 5\n").expect("write");
    let store = SqliteStore::open(dir.path()).expect("open");
    let error = boot::prepare(&store, Some(&file)).expect_err("refused");
    assert!(
        error.to_string().contains("rejected generation 1"),
        "{error}"
    );
    assert_eq!(
        store.generation(1).expect("store").map(|g| g.state),
        Some(GenerationState::Rejected)
    );
    assert!(matches!(
        boot::prepare(&store, None),
        Err(boot::BootError::NoConfig)
    ));
}

#[tokio::test]
async fn health_flips_become_store_events() {
    // A pool whose only backend refuses connections: the health check flips it.
    let closed = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let store = Arc::new(MemoryStore::new());
    let controller = controller(store.clone(), Hooks::default());
    let text = config(closed, "").replace(
        "backends = [",
        "health = { path = \"/healthz\", interval = \"50ms\", timeout = \"50ms\", unhealthy_after = 1 }\nbackends = [",
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let recorder = tokio::spawn(keel_control::record_proxy_events(
        controller.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    controller.apply(request(text)).await.expect("apply");
    let event = support::eventually(Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let events = store.events(keel_store::EventQuery::default()).ok()?;
            events.into_iter().find(|e| e.kind == kind::HEALTH)
        }
    })
    .await
    .expect("a health event is recorded");
    // The first probe may fail while generation 1 is still compiling (nothing active yet).
    assert!(matches!(event.generation, None | Some(1)), "{event:?}");
    assert_eq!(event.details["to"], "unhealthy");
    assert_eq!(event.details["kind"], "backend_state");
    let _ = stop.send(());
    recorder.await.expect("recorder");
}
