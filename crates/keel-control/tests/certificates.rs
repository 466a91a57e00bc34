//! Certificates across a restart: a stored generation whose certificate paths are
//! relative to the config file is restored by `keel serve --config FILE` from any
//! working directory, and serves the certificate it was applied with: the copy it
//! pinned in the state directory, even when the files changed since (`pins.rs`,
//! `pinned_load.rs`); a missing copy falls back to unchanged files only.

use std::sync::Arc;

use keel_control::boot::{self, Prepared};
use keel_control::{Controller, Hooks};
use keel_store::SqliteStore;

use std::path::Path;

use keel_control::pins::CertificatePins;
use keel_store::Store;

fn write_certificate(dir: &std::path::Path) -> String {
    let made =
        rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).expect("rcgen");
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
    std::fs::write(dir.join("certs/shop.pem"), made.cert.pem()).expect("cert");
    std::fs::write(dir.join("certs/shop.key"), made.signing_key.serialize_pem()).expect("key");
    made.cert.pem()
}

const CONFIG: &str = r#"
[listeners.https]
addr = "127.0.0.1:0"
tls = { certificates = ["shop"] }
[certificates.shop]
cert = "certs/shop.pem"
key = "certs/shop.key"
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

#[tokio::test]
async fn a_restart_restores_a_tls_generation_with_paths_relative_to_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificate(dir.path());
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, CONFIG).expect("write");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        let prepared = boot::prepare(&store, Some(&file)).expect("first start");
        assert!(matches!(prepared, Prepared::FirstStart { .. }));
        Controller::start(Arc::new(store), prepared, Hooks::default())
            .await
            .expect("start");
    }
    // The test's working directory is the crate's, not the config's: the stored
    // config's `certs/shop.pem` must still be found beside keel.toml.
    let store = SqliteStore::open(dir.path()).expect("open");
    let prepared = boot::prepare(&store, Some(&file)).expect("restore");
    assert!(matches!(prepared, Prepared::Restore { .. }));
    let (controller, report) = Controller::start(Arc::new(store), prepared, Hooks::default())
        .await
        .expect("start");
    assert_eq!(report.generation, 1);
    let active = controller.plane().active().expect("active");
    let certificates = active.primary.tls.certificates();
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0].1.dns_names, ["shop.example.com"]);
    assert!(active.primary.tls.listener("https").is_some());
}

/// The SHA-256 fingerprint of the leaf in `pem`.
fn fingerprint(pem: &str) -> String {
    keel_proxy::tls::leaf_summary(pem.as_bytes())
        .expect("leaf")
        .sha256
}

/// A start as `keel serve --config FILE --state-dir DIR` makes it.
async fn serve(
    file: &Path,
    state: &Path,
) -> Result<(Controller, boot::BootReport), boot::BootError> {
    let store = SqliteStore::open(state).expect("open");
    let prepared = boot::prepare_in(&store, Some(file), Some(state))?;
    Controller::start_guarded_at(Arc::new(store), prepared, state, Some(file)).await
}

/// The fingerprint of the certificate the active generation serves.
fn served(controller: &Controller) -> String {
    let active = controller.plane().active().expect("active");
    active.primary.tls.certificates()[0].1.sha256.clone()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn a_restart_serves_the_pinned_certificate_although_the_files_changed() {
    let (dir, state) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("state"),
    );
    let a = write_certificate(dir.path());
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, CONFIG).expect("write");
    let (first, _) = serve(&file, state.path()).await.expect("first start");
    assert_eq!(served(&first), fingerprint(&a));
    drop(first);

    let pins = CertificatePins::in_state_dir(state.path());
    let copies: Vec<_> = std::fs::read_dir(pins.dir())
        .expect("the copies' folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!(mode(pins.dir()), 0o700);
    for copy in &copies {
        assert_eq!(mode(copy), 0o600, "{}", copy.display());
    }
    let record = SqliteStore::open(state.path())
        .expect("open")
        .generation(1)
        .expect("read")
        .expect("generation 1");
    let digest = record.certificates.get("shop").expect("pinned").clone();
    assert!(copies.iter().any(|c| c.ends_with(format!("{digest}.key"))));

    // Another certificate at the same paths: the restored generation still serves A.
    let b = write_certificate(dir.path());
    assert_ne!(fingerprint(&a), fingerprint(&b));
    let (restored, report) = serve(&file, state.path()).await.expect("restore");
    assert_eq!(report.generation, 1);
    assert_eq!(served(&restored), fingerprint(&a));

    // `keel show`'s view of it, from the compiled generation and from the copy alike:
    // facts and the digest, never the key.
    let in_memory = restored.active().expect("active");
    for compiled in [Some(in_memory.generation.config.as_ref()), None] {
        let views = keel_control::pinned_load::certificate_views(&record, compiled, Some(&pins));
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].pinned.as_deref(), Some(digest.as_str()));
        let facts = views[0].facts.as_ref().expect("facts");
        assert_eq!(facts.sha256, fingerprint(&a));
        assert_eq!(facts.dns_names, ["shop.example.com"]);
        let json = serde_json::to_string(&views).expect("json");
        assert!(!json.contains("PRIVATE KEY"), "{json}");
    }
}

#[tokio::test]
async fn a_missing_copy_falls_back_to_unchanged_files_only() {
    let (dir, state) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("state"),
    );
    let a = write_certificate(dir.path());
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, CONFIG).expect("write");
    drop(serve(&file, state.path()).await.expect("first start"));
    let pins = CertificatePins::in_state_dir(state.path());
    std::fs::remove_dir_all(pins.dir()).expect("lose the copies");

    // The files still hold the pinned bytes: they serve, with a warning.
    let (restored, report) = serve(&file, state.path()).await.expect("restore");
    assert_eq!(served(&restored), fingerprint(&a));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("pinned copy") && n.contains("missing")),
        "{:?}",
        report.notes
    );
    drop(restored);
    // The restore wrote the missing copy again from the matching files.
    assert!(
        std::fs::read_dir(pins.dir()).is_ok_and(|mut d| d.next().is_some()),
        "the copy is written back"
    );
    std::fs::remove_dir_all(pins.dir()).expect("lose the copies again");

    // They do not: the generation is not served from them, and the error says why.
    write_certificate(dir.path());
    let error = serve(&file, state.path())
        .await
        .expect_err("a changed file is refused")
        .to_string();
    assert!(
        error.contains("pinned certificate `shop`") && error.contains("now hold other bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn a_start_sweeps_copies_no_generation_pins() {
    let (dir, state) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("state"),
    );
    write_certificate(dir.path());
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, CONFIG).expect("write");
    drop(serve(&file, state.path()).await.expect("first start"));
    let pins = CertificatePins::in_state_dir(state.path());
    let orphan = pins.dir().join(format!("{}.pem", "c".repeat(64)));
    let unrelated = pins.dir().join("README");
    std::fs::write(&orphan, "left by a refused apply").expect("orphan");
    std::fs::write(&unrelated, "not a copy").expect("unrelated");
    let (_restored, report) = serve(&file, state.path()).await.expect("restore");
    assert!(!orphan.exists(), "{:?}", report.notes);
    assert!(unrelated.exists());
    assert_eq!(std::fs::read_dir(pins.dir()).expect("dir").count(), 3);
}
