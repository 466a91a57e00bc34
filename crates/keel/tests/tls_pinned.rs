//! Certificates versioned across restarts, on the real binary: generation 1 serves
//! certificate A, generation 2 certificate B (the files replaced at the same paths),
//! the files then hold a third certificate C; after a restart `keel serve` still serves
//! B (generation 2's pinned copy), and `keel rollback --to 1` brings back A, which
//! `openssl s_client` and curl (trusting A only) see, although no file holds A any
//! more. The copies are private, `keel show` lists the facts and no key, and a start
//! removes copies no generation pins.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use keel_testkit::{Backend, WAIT, eventually, free_port};
use support::{keel_cli, text};

const TOKEN: &str = "pinned-certificates-token";

/// Writes a new self-signed certificate for shop.example.com at `certs/shop.{pem,key}`
/// and returns its chain (PEM).
fn write_certificate(dir: &Path) -> String {
    let made =
        rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).expect("rcgen");
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
    std::fs::write(dir.join("certs/shop.pem"), made.cert.pem()).expect("cert");
    std::fs::write(dir.join("certs/shop.key"), made.signing_key.serialize_pem()).expect("key");
    made.cert.pem()
}

/// SHA-256 of the first certificate in `pem` (lower-case hex).
fn fingerprint(pem: &str) -> Option<String> {
    keel_proxy::tls::leaf_summary(pem.as_bytes())
        .ok()
        .map(|leaf| leaf.sha256)
}

fn config(port: u16, admin: u16, backend: std::net::SocketAddr) -> String {
    format!(
        "[listeners.https]\naddr = \"127.0.0.1:{port}\"\ntls = {{ certificates = [\"shop\"] }}\n\n\
         [certificates.shop]\ncert = \"certs/shop.pem\"\nkey = \"certs/shop.key\"\n\n\
         [admin]\naddr = \"127.0.0.1:{admin}\"\n\n[server]\nworker_threads = 1\n\n\
         [safety]\nknown_good_after = \"0s\"\nwatch = \"1s\"\n\n\
         [services.web]\nallow_no_identity = true\n\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nname = \"shop\"\nservice = \"web\"\npool = \"web\"\n"
    )
}

/// A `keel serve` child, killed (by its id) when dropped.
struct Keel(Child);

impl Keel {
    fn start(file: &Path, state: &Path, log: &Path) -> Keel {
        let log = std::fs::File::create(log).expect("log");
        Keel(
            Command::new(env!("CARGO_BIN_EXE_keel"))
                .args(["serve", "--config"])
                .arg(file)
                .arg("--state-dir")
                .arg(state)
                .env("KEEL_ADMIN_TOKEN", TOKEN)
                .env("KEEL_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start keel serve"),
        )
    }
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The leaf certificate the listener presents to a client asking for shop.example.com.
async fn presented(port: u16) -> Option<String> {
    let output = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "shop.example.com"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[begin..].find("-----END CERTIFICATE-----")? + begin;
    fingerprint(&format!("{}-----END CERTIFICATE-----\n", &text[begin..end]))
}

/// curl over TLS trusting only `ca`: true when the handshake verified and Keel answered.
async fn curl_trusting(port: u16, ca: &Path) -> bool {
    tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("shop.example.com:{port}:127.0.0.1"))
        .arg(format!("https://shop.example.com:{port}/"))
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

fn cli(admin: u16, args: &[&str], dir: &Path) -> Output {
    keel_cli(dir, Some(format!("http://127.0.0.1:{admin}")), TOKEN, args)
        .output()
        .expect("run keel")
}

/// Waits until `keel show N --json` says the generation is known-good.
async fn known_good(admin: u16, id: u64, dir: &Path) -> bool {
    let dir = dir.to_path_buf();
    eventually(WAIT, || {
        let dir = dir.clone();
        async move {
            let shown = tokio::task::spawn_blocking(move || {
                cli(admin, &["show", &id.to_string(), "--json"], &dir)
            })
            .await
            .ok()?;
            let json: serde_json::Value = serde_json::from_slice(&shown.stdout).ok()?;
            json["known_good"].as_bool().filter(|good| *good)
        }
    })
    .await
    .is_some()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_after_a_restart_serves_the_certificate_pinned_then() {
    let (dir, state) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("state"),
    );
    let (dir, state): (PathBuf, PathBuf) = (dir.path().into(), state.path().join("state"));
    let backend = Backend::new("web").anonymous().start().await;
    let (port, admin) = (free_port(), free_port());
    let file = dir.join("keel.toml");
    std::fs::write(&file, config(port, admin, backend)).expect("config");

    // Generation 1: certificate A.
    let a = write_certificate(&dir);
    let a_file = dir.join("a.pem");
    std::fs::write(&a_file, &a).expect("keep A for curl");
    let keel = Keel::start(&file, &state, &dir.join("serve-1.log"));
    let served = eventually(WAIT, || presented(port)).await;
    assert_eq!(
        served,
        fingerprint(&a),
        "{}",
        read(&dir.join("serve-1.log"))
    );
    assert!(
        known_good(admin, 1, &dir).await,
        "generation 1 never became known-good"
    );

    // Generation 2: certificate B at the same paths, applied.
    let b = write_certificate(&dir);
    let applied = cli(admin, &["apply", "keel.toml", "-m", "renew: B"], &dir);
    assert!(applied.status.success(), "{}", text(&applied));
    assert_eq!(presented(port).await, fingerprint(&b));

    // The files change again (C), never applied; Keel restarts.
    let c = write_certificate(&dir);
    drop(keel);
    let orphan = state
        .join("certificates")
        .join(format!("{}.key", "d".repeat(64)));
    std::fs::write(&orphan, "no generation pins this").expect("orphan copy");
    let _keel = Keel::start(&file, &state, &dir.join("serve-2.log"));
    let served = eventually(WAIT, || presented(port)).await;
    assert_eq!(
        served,
        fingerprint(&b),
        "the restored generation 2 serves its pinned B, not the file's C ({:?})\n{}",
        fingerprint(&c),
        read(&dir.join("serve-2.log"))
    );
    assert!(
        !orphan.exists(),
        "a start removes copies no generation pins"
    );

    // Rollback to generation 1 (kept for rollback across the restart): A again,
    // although no file holds A.
    let rolled = cli(admin, &["rollback", "--to", "1", "-m", "back to A"], &dir);
    assert!(rolled.status.success(), "{}", text(&rolled));
    assert_eq!(presented(port).await, fingerprint(&a));
    assert!(curl_trusting(port, &a_file).await, "curl trusting A only");
    assert_ne!(
        std::fs::read_to_string(dir.join("certs/shop.pem")).ok(),
        Some(a.clone())
    );

    // The copies: A and B, two files each, private.
    let copies = state.join("certificates");
    assert_eq!(mode(&copies), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&copies)
        .expect("copies")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 4, "{files:?}");
    for copy in &files {
        assert_eq!(mode(copy), 0o600, "{}", copy.display());
    }

    // `keel show` lists the facts and the pinned digest, never the key.
    let a_sha = fingerprint(&a).expect("A's fingerprint");
    for args in [&["show", "1"][..], &["show", "1", "--json"][..]] {
        let shown = cli(admin, args, &dir);
        let said = text(&shown);
        assert!(shown.status.success(), "{said}");
        assert!(
            said.contains(&a_sha) && said.contains("shop.example.com"),
            "{said}"
        );
        assert!(!said.contains("PRIVATE KEY"), "{said}");
    }
    let shown = text(&cli(admin, &["show", "1"], &dir));
    assert!(
        shown.contains("cert:      shop: subject") && shown.contains("pinned copy "),
        "{shown}"
    );
    // `keel diff 1 2` knows both generations' certificates from what they pinned.
    let diff = text(&cli(admin, &["diff", "1", "2"], &dir));
    assert!(diff.contains(&a_sha), "{diff}");

    // `keel timeline` and `keel playbook` list generation 2's certificate change (B
    // replacing A) with the leaf's subject, names, expiry and the pinned digest.
    let b_digest = {
        let json = text(&cli(admin, &["show", "2", "--json"], &dir));
        let value: serde_json::Value = serde_json::from_str(&json).expect("show --json");
        value["certificates"][0]["pinned"]
            .as_str()
            .expect("B pinned")
            .to_string()
    };
    let state_arg = state.to_string_lossy().into_owned();
    for args in [
        &["timeline", "--state-dir", &state_arg][..],
        &["playbook", "--offline", "--state-dir", &state_arg][..],
    ] {
        let report = cli(admin, args, &dir);
        let said = text(&report);
        assert!(report.status.success(), "{said}");
        let line = said
            .lines()
            .find(|l| l.contains("certificate") && l.contains("shop") && l.contains("replaced"))
            .unwrap_or_else(|| panic!("{args:?} lists no certificate change:\n{said}"));
        assert!(
            line.contains("DNS shop.example.com")
                && line.contains("not after")
                && line.contains(&b_digest[..16]),
            "{line}"
        );
        assert!(!said.contains("PRIVATE KEY"), "{said}");
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
