//! The apply gate judges certificates on live TLS traffic, through the real binary:
//! `keel serve` samples HTTPS requests for two names (curl, SNI each), and `keel apply`
//! of a config that drops the certificate of one of them is refused with the share of
//! sampled requests whose SNI name would get a certificate that does not cover it; and
//! `keel diff --traffic` of two files reads their certificates and judges the same way.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_testkit::{Backend, free_port};
use support::{Killed, keel_serve};
use tokio::time::Instant;

/// Longest any single wait may take (15 seconds).
const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "tls-gate-token";

/// Writes `certs/NAME.pem` and `certs/NAME.key` for `host` under `dir`.
fn write_certificate(dir: &Path, name: &str, host: &str) {
    let made = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("rcgen");
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
    std::fs::write(dir.join(format!("certs/{name}.pem")), made.cert.pem()).expect("cert");
    std::fs::write(
        dir.join(format!("certs/{name}.key")),
        made.signing_key.serialize_pem(),
    )
    .expect("key");
}

fn config(port: u16, admin: u16, backend: std::net::SocketAddr, certificates: &[&str]) -> String {
    let listed: Vec<String> = certificates.iter().map(|c| format!("\"{c}\"")).collect();
    let mut text = format!(
        "[listeners.https]\naddr = \"127.0.0.1:{port}\"\n\
         tls = {{ certificates = [{}], default = \"shop\" }}\n\
         [admin]\naddr = \"127.0.0.1:{admin}\"\n\n[server]\nworker_threads = 1\n",
        listed.join(", ")
    );
    for name in certificates {
        text.push_str(&format!(
            "[certificates.{name}]\ncert = \"certs/{name}.pem\"\nkey = \"certs/{name}.key\"\n"
        ));
    }
    text.push_str(&format!(
        "[services.web]\nallow_no_identity = true\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\
         [[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n"
    ));
    text
}

/// One HTTPS GET for `host` (sent as SNI), certificate not verified: only the
/// sample's SNI names matter here.
async fn curl(port: u16, host: &str) -> bool {
    tokio::process::Command::new("curl")
        .args(["-sSk", "--max-time", "5", "-o", "/dev/null", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/"))
        .status()
        .await
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn an_apply_that_leaves_a_sampled_sni_name_uncovered_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    write_certificate(dir.path(), "shop", "shop.example.com");
    write_certificate(dir.path(), "api", "api.example.com");
    let backend = Backend::new("web").start().await;
    let (port, admin) = (free_port(), free_port());
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, config(port, admin, backend, &["shop", "api"])).expect("config");
    // Not run beside the config: an applied config's certificate paths start at
    // the served config file's directory, not at the working directory.
    let _keel =
        Killed::spawn(keel_serve(&file, &dir.path().join("state")).env("KEEL_ADMIN_TOKEN", TOKEN));
    let deadline = Instant::now() + WAIT;
    while !curl(port, "shop.example.com").await {
        assert!(Instant::now() < deadline, "keel never answered over TLS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..7 {
        assert!(curl(port, "shop.example.com").await);
    }
    for _ in 0..2 {
        assert!(curl(port, "api.example.com").await);
    }

    std::fs::write(
        dir.path().join("new.toml"),
        config(port, admin, backend, &["shop"]),
    )
    .expect("new config");
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["apply", "new.toml"])
        .current_dir(dir.path())
        .env("KEEL_ADMIN", format!("http://127.0.0.1:{admin}"))
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("run keel apply");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let sample = Command::new("curl")
        .args(["-sS", "-H", &format!("authorization: Bearer {TOKEN}")])
        .arg(format!("http://127.0.0.1:{admin}/traffic/sample"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(!output.status.success(), "{text}\nsample:\n{sample}");
    assert!(
        text.contains(
            "20.0% of sampled requests (2 with SNI api.example.com, listener https) would get \
             a certificate that does not cover their host"
        ),
        "{text}"
    );
}

#[test]
fn keel_diff_of_files_reads_their_certificates_and_judges_a_traffic_file() {
    let dir = tempfile::tempdir().expect("dir");
    write_certificate(dir.path(), "shop", "shop.example.com");
    write_certificate(dir.path(), "api", "api.example.com");
    let backend: std::net::SocketAddr = "127.0.0.1:9001".parse().expect("addr");
    std::fs::write(
        dir.path().join("old.toml"),
        config(8443, 9901, backend, &["shop", "api"]),
    )
    .expect("old");
    std::fs::write(
        dir.path().join("new.toml"),
        config(8443, 9901, backend, &["shop"]),
    )
    .expect("new");
    let line = |sni: &str| {
        format!(
            "{{\"method\":\"GET\",\"host\":\"{sni}\",\"path\":\"/\",\"listener\":\"https\",\
             \"tls\":{{\"sni\":\"{sni}\",\"version\":\"1.3\"}}}}\n"
        )
    };
    std::fs::write(
        dir.path().join("traffic.jsonl"),
        [line("shop.example.com"), line("api.example.com")].concat(),
    )
    .expect("traffic");
    // Run from elsewhere: the certificates are read beside each config file.
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["diff", "--traffic"])
        .arg(dir.path().join("traffic.jsonl"))
        .arg(dir.path().join("old.toml"))
        .arg(dir.path().join("new.toml"))
        .output()
        .expect("run keel diff");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("- api: cert certs/api.pem, key certs/api.key: subject CN="),
        "{text}"
    );
    assert!(text.contains("SANs [api.example.com]"), "{text}");
    assert!(
        text.contains(
            "50.0% of sampled requests (1 with SNI api.example.com, listener https) would get \
             a certificate that does not cover their host (certificate `shop`)"
        ),
        "{text}"
    );
}
