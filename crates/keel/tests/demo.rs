//! `keel demo`, the real binary: the whole game day with plain output and a short
//! duration passes (exit 0) and says what it measured; one scene runs alone; bad flags
//! are usage errors. Each run is bounded by the demo's own deadlines (well under a minute
//! with `--duration 3s`); the test kills a run that outlives [`RUN_DEADLINE`].

#![cfg(feature = "demo")]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a `--duration 3s` run may take before the test gives up on it (120 seconds:
/// a loaded 2-core CI machine, a debug build).
const RUN_DEADLINE: Duration = Duration::from_secs(120);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn demo(args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("demo")
        .args(args)
        .env_remove("KEEL_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keel demo");
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        took: started.elapsed(),
    }
}

fn explain(run: &Run) -> String {
    format!(
        "exit {:?} after {:.1} s\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.code,
        run.took.as_secs_f64(),
        run.stdout,
        run.stderr
    )
}

#[test]
fn the_whole_game_day_passes_and_reports_what_it_measured() {
    let run = demo(&["--no-tui", "--duration", "3s"]);
    assert_eq!(run.code, Some(0), "{}", explain(&run));
    for expected in [
        "== scene 1: the edit, applied the normal way ==",
        "ok    the apply is refused",
        "[check K107] route test failed",
        "== scene 2: the edit, forced past the gate ==",
        "ok    Keel reverted by itself: generation 1 serves again",
        "March 15, 2024: 2 hours, 70% of shoppers",
        "today:",
        "of shoppers active during the window",
        "== scene 3: the post-mortem timeline ==",
        "ok    it has the rollback that undid it",
        "every scene behaved as expected",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} missing\n{}",
            explain(&run)
        );
    }
    // One status line per second of plain output: the live numbers are there.
    assert!(run.stdout.contains("req/s | ok "), "{}", explain(&run));
    assert!(!run.stdout.contains("FAIL"), "{}", explain(&run));
}

#[test]
fn one_scene_runs_alone() {
    let run = demo(&["--no-tui", "--duration", "2s", "--scene", "1"]);
    assert_eq!(run.code, Some(0), "{}", explain(&run));
    assert!(run.stdout.contains("== scene 1:"), "{}", explain(&run));
    // Trainees can watch the game day in the console next to this view.
    assert!(
        run.stdout.contains("console: http://127.0.0.1:")
            && run.stdout.contains("/ui/ in a browser"),
        "{}",
        explain(&run)
    );
    assert!(!run.stdout.contains("== scene 2:"), "{}", explain(&run));
    assert!(!run.stdout.contains("== scene 3:"), "{}", explain(&run));
}

#[test]
fn bad_flags_are_usage_errors_and_start_nothing() {
    // Usage errors exit 2, as clap's own do (docs/cli.md).
    let run = demo(&["--scene", "4"]);
    assert_eq!(run.code, Some(2), "{}", explain(&run));
    let run = demo(&["--duration", "1s"]);
    assert_eq!(run.code, Some(2), "{}", explain(&run));
    assert!(run.stderr.contains("--duration"), "{}", explain(&run));
    let run = demo(&["--duration", "soon"]);
    assert_eq!(run.code, Some(2), "{}", explain(&run));
}
