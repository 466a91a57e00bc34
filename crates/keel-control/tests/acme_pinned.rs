//! ACME certificates are pinned per generation like file certificates (`pins.rs`): a
//! generation records the digest of the chain and key the ACME store held when it was
//! applied, with a 0600 copy in the state directory, so a rollback and a restart serve
//! the ACME certificate that served then, not the newest one the ACME store holds, and
//! `keel show`'s view lists it. No ACME server is needed here: the test writes "issued"
//! certificates into the ACME store as `run_acme` does after an order (`store_issued`);
//! the order itself is `crates/keel/tests/acme_pebble.rs`'s.

use std::path::Path;
use std::sync::Arc;

use keel_config::CertificateFiles;
use keel_control::acme::files::AcmeFiles;
use keel_control::boot::{self, BootError, BootReport};
use keel_control::pins::CertificatePins;
use keel_control::{ApplyRequest, ApplyStatus, Controller, RollbackRequest};
use keel_store::{SqliteStore, Store};

const CONFIG: &str = r#"
[listeners.https]
addr = "127.0.0.1:0"
tls = { certificates = ["shop"] }
[certificates.shop]
acme = { directory = "https://127.0.0.1:9/dir", contact = ["mailto:ops@example.com"], domains = ["shop.example.com"] }
[services.web]
allow_no_identity = true
[pools.web]
service = "web"
backends = ["127.0.0.1:9001"]
[[routes]]
name = "all"
service = "web"
pool = "web"
"#;

/// A certificate as an ACME server would issue it (self-signed here).
fn issued() -> CertificateFiles {
    let made =
        rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).expect("rcgen");
    CertificateFiles {
        chain_pem: made.cert.pem().into_bytes(),
        key_pem: made.signing_key.serialize_pem().into_bytes(),
    }
}

fn fingerprint(files: &CertificateFiles) -> String {
    keel_proxy::tls::leaf_summary(&files.chain_pem)
        .expect("leaf")
        .sha256
}

/// The fingerprint of the certificate the active generation serves.
fn served(controller: &Controller) -> String {
    let active = controller.plane().active().expect("active");
    active.primary.tls.certificates()[0].1.sha256.clone()
}

/// The ACME material a start installs is the process's (`keel_config::install_acme_material`,
/// one state directory per `keel serve`): the tests of this file, each with its own state
/// directory, take turns, or one would serve the other's certificate.
static ONE_PROCESS_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A start as `keel serve --config FILE --state-dir DIR` makes it (ACME material
/// installed, certificates pinned in the state directory).
async fn serve(file: &Path, state: &Path) -> Result<(Controller, BootReport), BootError> {
    keel_control::acme::install_material(state);
    let store = SqliteStore::open(state).expect("open");
    let prepared = boot::prepare_in(&store, Some(file), Some(state))?;
    Controller::start_guarded_at(Arc::new(store), prepared, state, Some(file)).await
}

#[tokio::test]
async fn rollback_and_restart_serve_the_acme_certificate_their_generation_pinned() {
    let _turn = ONE_PROCESS_AT_A_TIME.lock().await;
    let (dir, state) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("state"),
    );
    let acme = AcmeFiles::new(state.path());
    let a = issued();
    acme.store_issued("shop", &a).expect("store A");
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, CONFIG).expect("write");
    let (controller, _) = serve(&file, state.path()).await.expect("first start");
    assert_eq!(served(&controller), fingerprint(&a));

    // Generation 1 pinned A: a digest in its record, a private copy in the state dir.
    let pins = CertificatePins::in_state_dir(state.path());
    let record = |id| {
        SqliteStore::open(state.path())
            .expect("open")
            .generation(id)
            .expect("read")
            .expect("generation")
    };
    let digest_a = record(1)
        .certificates
        .get("shop")
        .cloned()
        .expect("A pinned");
    assert_eq!(
        pins.read(&digest_a).expect("readable").expect("copy of A"),
        a
    );
    for extension in ["pem", "key"] {
        use std::os::unix::fs::PermissionsExt;
        let copy = pins.dir().join(format!("{digest_a}.{extension}"));
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", copy.display());
    }

    // A renewal: B issued, installed as generation 2 the way `run_acme` installs it
    // (the active config text applied again).
    let b = issued();
    acme.store_issued("shop", &b).expect("store B");
    let outcome = controller
        .apply(ApplyRequest {
            config_text: CONFIG.to_string(),
            author: "acme".into(),
            message: "ACME: install the certificate `shop` (renew)".into(),
            origin: "acme".into(),
            file_name: file.display().to_string(),
            no_guard: true,
            ..ApplyRequest::default()
        })
        .await
        .expect("apply");
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    assert_eq!(outcome.generation, Some(2));
    assert_eq!(served(&controller), fingerprint(&b));
    let digest_b = record(2)
        .certificates
        .get("shop")
        .cloned()
        .expect("B pinned");
    assert_ne!(digest_a, digest_b);

    // `keel show 2` from the copies: B's facts and digest, never its key.
    let views = keel_control::pinned_load::certificate_views(&record(2), None, Some(&pins));
    assert_eq!(views[0].pinned.as_deref(), Some(digest_b.as_str()));
    assert_eq!(
        views[0].facts.as_ref().expect("facts").sha256,
        fingerprint(&b)
    );
    assert!(
        !serde_json::to_string(&views)
            .expect("json")
            .contains("PRIVATE KEY")
    );

    // Rolled back to generation 1: A serves again.
    controller
        .rollback(RollbackRequest {
            to: Some(1),
            author: "test".into(),
            force: true,
            ..RollbackRequest::default()
        })
        .await
        .expect("rollback");
    assert_eq!(served(&controller), fingerprint(&a));
    drop(controller);

    // The ACME store moved on again (C); a restart restores generation 1 with A, its
    // pinned copy, not with what the ACME store holds now.
    let c = issued();
    acme.store_issued("shop", &c).expect("store C");
    let (restored, report) = serve(&file, state.path()).await.expect("restore");
    assert_eq!(report.generation, 1);
    assert_eq!(served(&restored), fingerprint(&a));
    assert_ne!(served(&restored), fingerprint(&c));
}

#[tokio::test]
async fn a_lost_copy_of_an_acme_certificate_is_a_clear_error_once_the_store_moved_on() {
    let _turn = ONE_PROCESS_AT_A_TIME.lock().await;
    let (dir, state) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("state"),
    );
    let acme = AcmeFiles::new(state.path());
    acme.store_issued("shop", &issued()).expect("store A");
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, CONFIG).expect("write");
    drop(serve(&file, state.path()).await.expect("first start"));
    let pins = CertificatePins::in_state_dir(state.path());
    std::fs::remove_dir_all(pins.dir()).expect("lose the copies");
    acme.store_issued("shop", &issued()).expect("store B");
    let error = serve(&file, state.path())
        .await
        .expect_err("another certificate is not served silently")
        .to_string();
    assert!(
        error.contains("pinned certificate `shop`") && error.contains("other bytes"),
        "{error}"
    );
}
