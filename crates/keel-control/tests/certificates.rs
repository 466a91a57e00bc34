//! Certificates across a restart: a stored generation whose certificate paths are
//! relative to the config file is restored by `keel serve --config FILE` from any
//! working directory, and serves the certificate it was applied with.

use std::sync::Arc;

use keel_control::boot::{self, Prepared};
use keel_control::{Controller, Hooks};
use keel_store::SqliteStore;

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
