//! Certificates in a fleet (`docs/fleet.md`, "Certificates"): etcd carries only the
//! digests a generation pinned, never certificate bytes or keys. A follower serves a
//! fleet generation only with those exact bytes: from its own files when they hash to
//! the pinned digest (and it then keeps its own 0600 copies), or from a copy put in its
//! state directory; a node whose files hold another certificate refuses the generation
//! with an error naming the certificate and both digests, and keeps serving what it
//! served. Two in-process nodes on a real etcd (`keel_testkit::Etcd`).

mod support;

use std::path::Path;
use std::time::Duration;

use keel_control::pins::{CertificatePins, pin_digest};
use keel_testkit::{Backend, Etcd, free_addr};
use support::{TestNode, applied_generation, converged, node_keys, recorded, routing};

/// A fleet-owned certificate, read from `certs/` beside each node's own file.
const CERTIFICATE: &str =
    "\n[certificates.shop]\ncert = \"certs/shop.pem\"\nkey = \"certs/shop.key\"\n";

/// Writes a new self-signed certificate for shop.example into `node_dir/certs/`.
fn write_certificate(node_dir: &Path) {
    let made = rcgen::generate_simple_self_signed(vec!["shop.example".to_string()]).expect("rcgen");
    std::fs::create_dir_all(node_dir.join("certs")).expect("mkdir");
    std::fs::write(node_dir.join("certs/shop.pem"), made.cert.pem()).expect("cert");
    std::fs::write(
        node_dir.join("certs/shop.key"),
        made.signing_key.serialize_pem(),
    )
    .expect("key");
}

fn copy_certificate(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("certs")).expect("mkdir");
    for file in ["certs/shop.pem", "certs/shop.key"] {
        std::fs::copy(from.join(file), to.join(file)).expect("copy");
    }
}

/// The digest of the certificate `node` serves now.
fn served_digest(node: &TestNode) -> String {
    let active = node.controller.active().expect("active");
    let files = active.generation.config.certificates["shop"]
        .files
        .clone()
        .expect("bytes");
    pin_digest(&files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_serves_only_the_certificate_bytes_the_applying_node_pinned() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::new("web").start().await;
    let (one_dir, two_dir) = (dir.path().join("lb-1"), dir.path().join("lb-2"));
    write_certificate(&one_dir);
    copy_certificate(&one_dir, &two_dir);
    let text = |name: &str, marker: &str| {
        format!(
            "{}{}{CERTIFICATE}",
            node_keys(name, &etcd.endpoint(), free_addr(), free_addr()),
            routing(&[backend], marker)
        )
    };
    let one = TestNode::start_pinned("lb-1", &text("lb-1", "one"), one_dir.clone()).await;
    let two = TestNode::start_pinned("lb-2", &text("lb-2", "one"), two_dir.clone()).await;
    assert!(converged(&[&one, &two], 1).await, "both serve generation 1");

    // Same bytes on both nodes: lb-2 serves them and keeps its own private copies.
    let digest_a = recorded(&one, 1).await.certificates["shop"].clone();
    assert_eq!(served_digest(&two), digest_a);
    let pins_two = CertificatePins::in_state_dir(&two_dir);
    for extension in ["pem", "key"] {
        use std::os::unix::fs::PermissionsExt;
        let copy = pins_two.dir().join(format!("{digest_a}.{extension}"));
        let mode = std::fs::metadata(&copy)
            .expect("lb-2's copy")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", copy.display());
    }

    // lb-1's certificate changes and it applies; lb-2's files still hold A.
    write_certificate(&one_dir);
    let outcome = one
        .apply(format!(
            "{}{}{CERTIFICATE}",
            one.own_keys(),
            routing(&[backend], "two")
        ))
        .await
        .expect("apply");
    let generation = applied_generation(&outcome);
    let digest_b = recorded(&one, generation).await.certificates["shop"].clone();
    assert_ne!(digest_a, digest_b);
    assert_eq!(served_digest(&one), digest_b);

    // lb-2 does not serve generation 2 with the certificate its files hold: it keeps
    // serving generation 1 (its node loop retries every tick), and says why.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(two.serving(), Some(1));
    assert_eq!(served_digest(&two), digest_a);
    let error = two
        .controller
        .follow(recorded(&two, generation).await)
        .await
        .expect_err("other bytes are refused")
        .to_string();
    assert!(
        error.contains("pinned certificate `shop`")
            && error.contains(&digest_b)
            && error.contains(&digest_a)
            && error.contains("copy <digest>.pem"),
        "{error}"
    );

    // The applying node's copy, put in lb-2's state directory, is what it serves: its
    // files still hold A.
    std::fs::create_dir_all(pins_two.dir()).expect("mkdir");
    let pins_one = CertificatePins::in_state_dir(&one_dir);
    for extension in ["pem", "key"] {
        let name = format!("{digest_b}.{extension}");
        std::fs::copy(pins_one.dir().join(&name), pins_two.dir().join(&name)).expect("copy");
    }
    assert!(
        converged(&[&one, &two], generation).await,
        "lb-2 follows once it has the pinned bytes"
    );
    assert_eq!(served_digest(&two), digest_b);
    one.stop().await;
    two.stop().await;
}
