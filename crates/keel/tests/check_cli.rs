//! `keel check` as a process: exit codes 0 / 1 / 64, `--deny-warnings`, the JSON
//! schema, and `--probe` against a real backend on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A config with no finding at all.
const CLEAN: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"
[services.web]
identity = { header = "x-service", equals = "web" }
[pools.web]
service = "web"
backends = ["127.0.0.1:9101"]
health = { path = "/healthz" }
[[routes]]
name = "web"
service = "web"
pool = "web"
retries = 0
[[tests]]
request = "GET https://shop.example.com/"
expect = { route = "web" }
"#;

fn write(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("check_cli-{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("run keel")
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn a_clean_config_exits_0() {
    let path = write("clean", CLEAN);
    let out = keel(&["check", path.to_str().expect("utf-8")]);
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, no errors or warnings"));
}

#[test]
fn warnings_exit_0_unless_denied() {
    let path = write(
        "warning",
        &format!("{CLEAN}[pools.blind]\nservice = \"web\"\nbackends = [\"127.0.0.1:9102\"]\n"),
    );
    let file = path.to_str().expect("utf-8");
    let out = keel(&["check", file]);
    assert_eq!(code(&out), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning[K205]"));
    let out = keel(&["check", "--deny-warnings", file]);
    assert_eq!(code(&out), Some(1));
}

#[test]
fn errors_exit_1_with_positions_in_human_and_json_output() {
    let path = write(
        "error",
        &CLEAN.replace("pool = \"web\"\nretries", "pool = \"wbe\"\nretries"),
    );
    let file = path.to_str().expect("utf-8");
    let out = keel(&["check", file]);
    assert_eq!(code(&out), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[K101]"), "{text}");
    assert!(
        text.contains(":13:8"),
        "file:line:col of the pool reference: {text}"
    );
    assert!(text.contains("help:"), "{text}");

    let out = keel(&["check", "--format", "json", file]);
    assert_eq!(code(&out), Some(1));
    let report = json(&out);
    assert_eq!(report["version"], 1);
    assert_eq!(report["errors"], 1);
    let first = &report["diagnostics"][0];
    assert_eq!(first["code"], "K101");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["line"], 13);
    assert_eq!(first["column"], 8);
    assert!(
        first["help"]
            .as_str()
            .is_some_and(|h| h.contains("did you mean `web`"))
    );
}

#[test]
fn an_unreadable_file_exits_64() {
    let out = keel(&["check", "/nonexistent/keel.toml"]);
    assert_eq!(code(&out), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// A one-thread HTTP backend answering `x-service: <identity>` to up to `requests`
/// connections.
fn backend(identity: &'static str, requests: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nx-service: {identity}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    addr
}

fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

#[test]
fn probe_prints_a_table_and_reports_down_and_misidentified_backends() {
    let right = backend("web", 2);
    let closed = closed_port();
    let config = CLEAN.replace(
        "backends = [\"127.0.0.1:9101\"]",
        &format!("backends = [\"{right}\", \"{closed}\"]"),
    );
    let path = write("probe", &config);
    let file = path.to_str().expect("utf-8");

    let out = keel(&["check", "--probe", "--format", "json", file]);
    assert_eq!(code(&out), Some(0), "a down backend is a warning");
    let report = json(&out);
    let verdicts: Vec<&str> = report["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .filter_map(|p| p["verdict"].as_str())
        .collect();
    assert_eq!(verdicts, vec!["ok", "down"]);
    assert_eq!(report["diagnostics"][0]["code"], "K210");

    let out = keel(&["check", "--probe", file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pool  backend"), "{text}");
    assert!(text.contains(&right.to_string()), "{text}");

    let wrong = backend("checkout", 1);
    let path = write(
        "probe-wrong",
        &CLEAN.replace("127.0.0.1:9101", &wrong.to_string()),
    );
    let out = keel(&["check", "--probe", path.to_str().expect("utf-8")]);
    assert_eq!(code(&out), Some(1), "a misidentified backend is an error");
    assert!(String::from_utf8_lossy(&out.stdout).contains("error[K109]"));
}
