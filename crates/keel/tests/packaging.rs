//! What a package installs beside the binary, from the real binary: `keel completions`
//! for each shell names every command, `keel man` writes one page per command, bad
//! shells are usage errors, and a `keel` built without the `demo` feature keeps the
//! command but says it cannot play.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Every command of the CLI: the completions and the man pages must cover each one.
const COMMANDS: &[&str] = &[
    "check",
    "serve",
    "apply",
    "rollback",
    "history",
    "show",
    "diff",
    "status",
    "timeline",
    "playbook",
    "demo",
    "completions",
    "man",
];

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("run keel")
}

#[test]
fn completions_name_every_command_in_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = keel(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).expect("utf-8 script");
        for command in COMMANDS {
            assert!(
                script.contains(command),
                "{shell} completions do not mention `{command}`"
            );
        }
        // A flag of a command, not only the command names.
        assert!(script.contains("adopt-config"), "{shell}: no serve flags");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = keel(&["completions", "powershell"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash, zsh, fish"));
}

#[test]
fn man_writes_a_page_for_keel_and_each_command() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packaging-man");
    let _ = std::fs::remove_dir_all(&dir);
    let out = keel(&["man", "--out-dir", dir.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let main_page = std::fs::read_to_string(dir.join("keel.1")).expect("keel.1");
    assert!(main_page.starts_with(".ie"), "not roff: {main_page:.80}");
    assert!(main_page.contains(".TH keel 1"), "no title line");
    for command in COMMANDS {
        let page = std::fs::read_to_string(dir.join(format!("keel-{command}.1")))
            .unwrap_or_else(|e| panic!("keel-{command}.1: {e}"));
        assert!(page.contains(&format!(".TH keel-{command} 1")), "{command}");
    }
    let serve = std::fs::read_to_string(dir.join("keel-serve.1")).expect("keel-serve.1");
    assert!(
        serve.contains("state\\-dir"),
        "serve's page lacks --state-dir"
    );
}

#[test]
fn man_into_an_unwritable_place_fails_with_the_path() {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packaging-not-a-dir");
    std::fs::write(&file, "a file, not a directory").expect("write");
    let out = keel(&["man", "--out-dir", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("packaging-not-a-dir"));
}

/// Run by .ci/run as `cargo test -p keel --no-default-features --test packaging`.
#[cfg(not(feature = "demo"))]
#[test]
fn without_the_demo_feature_demo_says_so() {
    let out = keel(&["demo", "--no-tui"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("built without the demo"), "{stderr}");
}
