//! ACME end to end against a real pebble (Let's Encrypt's test server, Debian package
//! `pebble`): `keel serve` with `[certificates.shop] acme = { ... }` obtains a
//! certificate, answering pebble's HTTP-01 challenge on its own plain listener, serves
//! it over TLS (curl verifies it against the root pebble publishes on its management
//! port), keeps account and key in the state directory with mode 0600, and renews the
//! short-lived certificate pebble issues, each time as a new generation; once pebble is
//! gone, the renewals that keep failing raise a `certificate` alert. A second test
//! obtains a certificate by TLS-ALPN-01 (RFC 8737) with no plain listener at all: pebble's
//! `tlsPort` is Keel's TLS listener, which answers the `acme-tls/1` handshake itself.
//!
//! pebble resolves names through `pebble-challtestsrv`'s DNS (same package), which
//! answers 127.0.0.1 for every name; its other challenge servers are off. Both run on
//! loopback ports this test chose, with configs it wrote. Skipped (with a message) when
//! pebble is not installed; CI installs it (`.ci/run`).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_testkit::{Backend, free_port, wait_until_every};
use support::{Killed, keel_serve};

/// Longest the first certificate may take (60 seconds: an order is a few round trips).
const ISSUE_WAIT: Duration = Duration::from_secs(60);
/// Lifetime of pebble's certificates here (30 seconds): renewal is due after 20.
const VALIDITY_SECONDS: u64 = 30;
/// Longest the renewal may take to serve (90 seconds: due after 20, plus the order).
const RENEW_WAIT: Duration = Duration::from_secs(90);
const DOMAIN: &str = "shop.keel.test";

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A CA and a certificate for 127.0.0.1 signed by it: pebble's own HTTPS (the
/// Debian package ships none). Returns nothing; writes `ca.pem`, `pebble.pem`, `pebble.key`.
fn write_pebble_tls(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "keel test CA for pebble");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pebble");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).expect("cert");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("ca");
    std::fs::write(dir.join("pebble.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.join("pebble.key"), key.serialize_pem()).expect("key");
}

struct Ports {
    http: u16,
    https: u16,
    admin: u16,
    acme: u16,
    management: u16,
    dns: u16,
    dns_management: u16,
}

/// Starts pebble and its DNS; pebble validates TLS-ALPN-01 on `tls_port` (HTTP-01 on
/// `ports.http`).
fn start_pebble(dir: &Path, ports: &Ports, tls_port: u16) -> (Killed, Killed) {
    let dns = Killed(
        Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{}", ports.dns)])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args([
                "-management",
                &format!("127.0.0.1:{}", ports.dns_management),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv"),
    );
    let config = format!(
        r#"{{"pebble": {{"listenAddress": "127.0.0.1:{}", "managementListenAddress": "127.0.0.1:{}",
        "certificate": "pebble.pem", "privateKey": "pebble.key", "httpPort": {}, "tlsPort": {},
        "ocspResponderURL": "", "externalAccountBindingRequired": false,
        "certificateValidityPeriod": {VALIDITY_SECONDS}}}}}"#,
        ports.acme, ports.management, ports.http, tls_port
    );
    std::fs::write(dir.join("pebble.json"), config).expect("pebble config");
    let pebble = Killed(
        Command::new("pebble")
            .current_dir(dir)
            .args(["-config", "pebble.json", "-dnsserver"])
            .arg(format!("127.0.0.1:{}", ports.dns))
            // Challenges really validated, quickly, and no nonce refused at random.
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble"),
    );
    (dns, pebble)
}

/// Keel's config: with `challenge` (`None`: the default, HTTP-01, and a plain listener
/// for it; `Some`: that challenge and no plain listener).
fn keel_config(ports: &Ports, backend: std::net::SocketAddr, challenge: Option<&str>) -> String {
    let (plain, challenge) = match challenge {
        None => (
            format!("[listeners.http]\naddr = \"127.0.0.1:{}\"\n\n", ports.http),
            String::new(),
        ),
        Some(kind) => (String::new(), format!(", challenge = \"{kind}\"")),
    };
    format!(
        "{plain}[listeners.https]\naddr = \"127.0.0.1:{https}\"\ntls = {{ certificates = [\"shop\"] }}\n\n\
         [certificates.shop]\nacme = {{ directory = \"https://127.0.0.1:{acme}/dir\", contact = [\"mailto:ops@example.com\"], domains = [\"{DOMAIN}\"], directory_ca = \"ca.pem\"{challenge} }}\n\n\
         [admin]\naddr = \"127.0.0.1:{admin}\"\n\n[safety]\nwatch = \"1s\"\n\n\
         [services.web]\nallow_no_identity = true\n\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nname = \"shop\"\nhost = \"{DOMAIN}\"\nservice = \"web\"\npool = \"web\"\n",
        https = ports.https,
        acme = ports.acme,
        admin = ports.admin,
    )
}

/// GETs `url` with curl (`extra` arguments first); the output on success. The command
/// is built at once, so the future borrows nothing.
fn curl(extra: &[&str], url: &str) -> impl std::future::Future<Output = Option<String>> + use<> {
    let mut command = tokio::process::Command::new("curl");
    command
        .args(["-sS", "--max-time", "5"])
        .args(extra)
        .arg(url);
    async move {
        let output = command.output().await.ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// What Keel answers for [`DOMAIN`] over TLS, verified against `root` by curl; `None`
/// while no certificate that verifies serves.
struct Served {
    body: String,
    /// `x-keel-generation`: the generation that served.
    generation: u64,
    /// The leaf certificate, PEM.
    leaf: String,
}

async fn served(https: u16, root: &Path) -> Option<Served> {
    let resolve = format!("{DOMAIN}:{https}:127.0.0.1");
    let out = curl(
        &[
            "--cacert",
            &root.to_string_lossy(),
            "--resolve",
            &resolve,
            "-w",
            "\n--generation--\n%header{x-keel-generation}\n--certs--\n%{certs}",
        ],
        &format!("https://{DOMAIN}:{https}/"),
    )
    .await?;
    let (body, rest) = out.split_once("\n--generation--\n")?;
    let (generation, certs) = rest.split_once("\n--certs--\n")?;
    let begin = certs.find("-----BEGIN CERTIFICATE-----")?;
    let end = certs[begin..].find("-----END CERTIFICATE-----")? + begin;
    Some(Served {
        body: body.to_string(),
        generation: generation.trim().parse().ok()?,
        leaf: certs[begin..end].to_string(),
    })
}

/// How often a wait looks again (200 ms: each look runs curl).
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// pebble's issuing root, from its management port (trusting the CA made by
/// [`write_pebble_tls`]), written to `dir/pebble-root.pem`.
async fn pebble_root(dir: &Path, ports: &Ports) -> std::path::PathBuf {
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    let root_pem = wait_until_every(ISSUE_WAIT, LOOK_EVERY, "pebble publishes its root", || {
        curl(
            &["--cacert", &ca],
            &format!("https://127.0.0.1:{}/roots/0", ports.management),
        )
    })
    .await;
    let root = dir.join("pebble-root.pem");
    std::fs::write(&root, root_pem).expect("root");
    root
}

/// `keel serve` on `config`, its state in `state`.
fn spawn_keel(config: &Path, state: &Path) -> Killed {
    Killed::spawn(keel_serve(config, state).current_dir(state))
}

fn ports() -> Ports {
    Ports {
        http: free_port(),
        https: free_port(),
        admin: free_port(),
        acme: free_port(),
        management: free_port(),
        dns: free_port(),
        dns_management: free_port(),
    }
}

#[tokio::test]
async fn keel_obtains_serves_and_renews_a_certificate_from_pebble() {
    if !installed("pebble") || !installed("pebble-challtestsrv") {
        eprintln!("skipped: pebble is not installed (apt-get install pebble)");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    write_pebble_tls(dir.path());
    let ports = ports();
    let pebble = start_pebble(dir.path(), &ports, free_port());
    let root = pebble_root(dir.path(), &ports).await;

    let backend = Backend::new("web").body("hello\n").start().await;
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, keel_config(&ports, backend, None)).expect("config");
    let state = tempfile::tempdir().expect("state");
    let _keel = spawn_keel(&file, state.path());

    // Issued: the placeholder Keel starts with is self-signed, so only pebble's
    // certificate verifies against pebble's root.
    let first = wait_until_every(
        ISSUE_WAIT,
        LOOK_EVERY,
        "a certificate from pebble serves",
        || served(ports.https, &root),
    )
    .await;
    assert_eq!(first.body, "hello\n");
    // Generation 1 served the placeholder; pebble's certificate came with a new one.
    assert!(first.generation >= 2, "generation {}", first.generation);

    // Account and key are private to Keel.
    let acme_dir = state.path().join("acme");
    let mut private = vec![
        acme_dir.join("shop/key.pem"),
        acme_dir.join("shop/cert.pem"),
    ];
    private.extend(
        std::fs::read_dir(&acme_dir)
            .expect("acme dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json")),
    );
    assert_eq!(private.len(), 3, "key, chain and one account: {private:?}");
    for path in &private {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }

    // Renewed: another certificate from pebble serves, installed as a generation of its
    // own by the apply path.
    let renewed = wait_until_every(
        RENEW_WAIT,
        LOOK_EVERY,
        "the renewed certificate serves",
        || {
            let first_leaf = first.leaf.clone();
            let answer = served(ports.https, &root);
            async move { answer.await.filter(|now| now.leaf != first_leaf) }
        },
    )
    .await;
    assert!(
        renewed.generation > first.generation,
        "renewed on generation {}, first on {}",
        renewed.generation,
        first.generation
    );

    // With pebble gone, every renewal fails; the third failure in a row raises a
    // `certificate` alert (the retries of a 30-second certificate are seconds apart),
    // long before the certificate expires.
    drop(pebble);
    let token = std::fs::read_to_string(state.path().join("admin.token")).expect("token");
    let bearer = format!("authorization: Bearer {}", token.trim());
    let alerts_url = format!("http://127.0.0.1:{}/alerts", ports.admin);
    let alert = wait_until_every(RENEW_WAIT, LOOK_EVERY, "a certificate alert", || {
        let alerts = curl(&["-H", &bearer], &alerts_url);
        async move {
            alerts
                .await
                .filter(|a| a.contains("\"detector\":\"certificate\""))
        }
    })
    .await;
    assert!(alert.contains("not renewed"), "{alert}");
}

#[tokio::test]
async fn keel_proves_a_domain_by_tls_alpn_01_on_its_tls_listener_without_port_80() {
    if !installed("pebble") || !installed("pebble-challtestsrv") {
        eprintln!("skipped: pebble is not installed (apt-get install pebble)");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    write_pebble_tls(dir.path());
    let ports = ports();
    // pebble validates TLS-ALPN-01 on Keel's TLS listener; nothing listens on its
    // HTTP-01 port, so an HTTP-01 answer could not be what proves the domain.
    let _pebble = start_pebble(dir.path(), &ports, ports.https);
    let root = pebble_root(dir.path(), &ports).await;

    let backend = Backend::new("web").body("hello\n").start().await;
    let file = dir.path().join("keel.toml");
    let config = keel_config(&ports, backend, Some("tls-alpn-01"));
    assert!(!config.contains("[listeners.http]"), "{config}");
    std::fs::write(&file, config).expect("config");
    let state = tempfile::tempdir().expect("state");
    let _keel = spawn_keel(&file, state.path());

    let issued = wait_until_every(
        ISSUE_WAIT,
        LOOK_EVERY,
        "a certificate from pebble serves",
        || served(ports.https, &root),
    )
    .await;
    assert_eq!(issued.body, "hello\n");
    assert!(issued.generation >= 2, "generation {}", issued.generation);

    // Ordinary clients never get the validation certificate: a client offering only
    // `acme-tls/1` once the order is done finds no protocol in common.
    let offered = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", ports.https))
        .args(["-servername", DOMAIN, "-alpn", "acme-tls/1"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("openssl");
    let said = String::from_utf8_lossy(&offered.stdout);
    assert!(!said.contains("ALPN protocol: acme-tls/1"), "{said}");
}
