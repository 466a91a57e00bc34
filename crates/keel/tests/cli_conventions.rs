//! The output convention of docs/cli.md, for every subcommand of the real binary: exit 2
//! for usage errors (clap's), 64 for unreadable input, `--format json` and `--json`
//! accepted wherever data is printed, human output without Rust `Debug` forms, and
//! Keel's own log in JSON with `--log-format json` (never colour into a file).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// An admin URL nothing listens on: commands fail (1) after parsing their flags.
const NOWHERE: &str = "http://127.0.0.1:9";

fn keel(args: &[&str], state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("KEEL_STATE_DIR", state)
        .env("KEEL_ADMIN", NOWHERE)
        .env_remove("KEEL_ADMIN_TOKEN")
        .env("KEEL_LOG", "warn")
        .output()
        .expect("run keel")
}

fn explain(args: &[&str], output: &Output) -> String {
    format!(
        "keel {}: exit {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        output
            .status
            .code()
            .map_or("by a signal".to_string(), |c| c.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every subcommand with the arguments it needs to get past the parser.
const SUBCOMMANDS: &[&[&str]] = &[
    &["check", "keel.toml"],
    &["serve", "--config", "keel.toml"],
    &["apply", "keel.toml"],
    &["rollback"],
    &["mark-bad", "3"],
    &["history"],
    &["show", "3"],
    &["diff", "1", "2"],
    &["status"],
    &["timeline"],
    &["playbook"],
    &["console"],
    &["demo"],
];

/// Subcommands that print data, with `--format json` / `--json`.
const DATA: &[&[&str]] = &[
    &["rollback"],
    &["mark-bad", "3"],
    &["history"],
    &["show", "3"],
    &["diff", "1", "2"],
    &["status"],
    &["apply", "keel.toml"],
];

#[test]
fn usage_errors_exit_2_for_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &[][..],
        &["nope"],
        &["apply"],
        &["show"],
        &["mark-bad"],
        &["diff", "1"],
        &["check"],
    ] {
        let output = keel(args, dir.path());
        assert_eq!(output.status.code(), Some(2), "{}", explain(args, &output));
    }
    for command in SUBCOMMANDS {
        let mut args = command.to_vec();
        args.push("--no-such-flag");
        let output = keel(&args, dir.path());
        assert_eq!(output.status.code(), Some(2), "{}", explain(&args, &output));
        let help = keel(&[command[0], "--help"], dir.path());
        assert_eq!(help.status.code(), Some(0), "{}", explain(command, &help));
    }
    for args in [
        &["demo", "--scene", "9"][..],
        &["timeline", "--since", "last tuesday"],
        &["apply", "keel.toml", "--canary", "150%"],
    ] {
        let output = keel(args, dir.path());
        assert_eq!(output.status.code(), Some(2), "{}", explain(args, &output));
    }
}

#[test]
fn unreadable_input_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path();
    for args in [
        &["check", "/nonexistent/keel.toml"][..],
        &["apply", "/nonexistent/keel.toml"],
        &["diff", "/nonexistent/a.toml", "/nonexistent/b.toml"],
        &["timeline"],
        &["playbook"],
        // No admin token in the state directory, none in the environment.
        &["status"],
        &["history"],
        &["rollback"],
    ] {
        let output = keel(args, empty);
        assert_eq!(output.status.code(), Some(64), "{}", explain(args, &output));
    }
}

#[test]
fn every_data_command_takes_format_json_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("admin.token"), "a".repeat(64)).expect("token");
    let config = dir.path().join("keel.toml");
    std::fs::write(&config, "not = [valid").expect("config");
    for command in DATA {
        let command: Vec<&str> = command
            .iter()
            .map(|a| {
                if *a == "keel.toml" {
                    config.to_str().unwrap_or(a)
                } else {
                    a
                }
            })
            .collect();
        for flags in [
            &["--format", "json"][..],
            &["--json"],
            &["--format", "human"],
        ] {
            let mut args = command.clone();
            args.extend_from_slice(flags);
            let output = keel(&args, dir.path());
            // Parsed: the admin API is unreachable, which is a failure (1), not a usage error.
            assert_eq!(output.status.code(), Some(1), "{}", explain(&args, &output));
        }
    }
    let check = keel(
        &["check", config.to_str().unwrap_or(""), "--json"],
        dir.path(),
    );
    assert_eq!(
        check.status.code(),
        Some(1),
        "{}",
        explain(&["check"], &check)
    );
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).expect("check --json");
    assert!(json["errors"].as_u64() >= Some(1), "{json}");
}

#[test]
fn human_output_has_no_debug_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = "[listeners.web]\naddr = \"127.0.0.1:18080\"\n[services.web]\nallow_no_identity = true\n[pools.web]\nservice = \"web\"\n\
                backends = [{ addr = \"127.0.0.1:9101\" }]\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n";
    let changed = base.replace(
        "service = \"web\"\nbackends",
        "service = \"web\"\nbalance = \"consistent_hash\"\nhash_key = \"cookie:cart_id\"\n\
         health = { path = \"/healthz\" }\nbackends",
    );
    std::fs::write(dir.path().join("a.toml"), base).expect("a");
    std::fs::write(dir.path().join("b.toml"), changed).expect("b");
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    let (a, b) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));
    for args in [&["diff", a, b][..], &["check", b]] {
        let output = keel(args, dir.path());
        let text = explain(args, &output);
        for leak in [
            "Some(",
            "None",
            "Cookie(",
            "ConsistentHash",
            "[Check",
            "-0.0%",
            " 1 warnings",
            " 1 errors",
        ] {
            assert!(!text.contains(leak), "{leak:?}: {text}");
        }
    }
}

#[test]
fn serve_logs_json_with_log_format_json_and_no_colour_into_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (proxy, admin) = (keel_testkit::free_addr(), keel_testkit::free_addr());
    let config = dir.path().join("keel.toml");
    std::fs::write(
        &config,
        format!(
            "[listeners.web]\naddr = \"{proxy}\"\n[admin]\naddr = \"{admin}\"\n[services.app]\nallow_no_identity = true\n\
             [pools.app]\nservice = \"app\"\nbackends = [{{ addr = \"127.0.0.1:9\" }}]\n\
             [[routes]]\nname = \"all\"\nservice = \"app\"\npool = \"app\"\n"
        ),
    )
    .expect("config");
    for (format, json) in [("json", true), ("text", false)] {
        let log = dir.path().join(format!("serve-{format}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["serve", "--log-format", format, "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join(format!("state-{format}")))
            .env("KEEL_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn keel serve");
        let mut text = String::new();
        for _ in 0..500 {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("generation 1") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(text.contains("generation 1"), "{text}");
        assert!(!text.contains('\u{1b}'), "colour escapes in a file: {text}");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let parsed = serde_json::from_str::<serde_json::Value>(line);
            assert_eq!(parsed.is_ok(), json, "{format}: {line}");
        }
    }
}
