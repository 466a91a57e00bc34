//! Settings a running Keel cannot change by swapping generations.
//!
//! Listener and admin addresses are bound once, at startup, from the active generation;
//! an apply that changes them is refused (rebinding on apply is a later feature).
//! Process-wide data-plane settings (`[server]`, `[traffic]`, `[access_log]`) are read
//! at startup too: an apply may change them, and is told they wait for a restart.

use keel_config::Config;

/// Why an apply that changes listener or admin addresses is refused: one line per change.
pub(crate) fn listener_changes(current: &Config, candidate: &Config) -> Vec<String> {
    const WHY: &str = "a running Keel does not rebind its listeners: keep `[listeners]` and `[admin]` as they are, or restart with `keel serve --config FILE --adopt-config`";
    let mut changes = Vec::new();
    for (name, listener) in &candidate.listeners {
        match current.listeners.get(name) {
            None => changes.push(format!(
                "listener `{name}` ({}) is new; {WHY}",
                listener.addr.value
            )),
            Some(old) if old.addr.value != listener.addr.value => changes.push(format!(
                "listener `{name}` moves from {} to {}; {WHY}",
                old.addr.value, listener.addr.value
            )),
            // Whether a listener speaks TLS is fixed when it is bound; which
            // certificates it serves may change with every apply.
            Some(old) if old.tls.is_some() != listener.tls.is_some() => changes.push(format!(
                "listener `{name}` {} TLS; {WHY}",
                if listener.tls.is_some() {
                    "starts"
                } else {
                    "stops"
                }
            )),
            Some(_) => {}
        }
    }
    for (name, listener) in &current.listeners {
        if !candidate.listeners.contains_key(name) {
            changes.push(format!(
                "listener `{name}` ({}) is removed; {WHY}",
                listener.addr.value
            ));
        }
    }
    if current.admin.addr.value != candidate.admin.addr.value {
        changes.push(format!(
            "the admin API moves from {} to {}; {WHY}",
            current.admin.addr.value, candidate.admin.addr.value
        ));
    }
    changes
}

/// Notes for settings that the new generation changes but that only a restart applies.
pub(crate) fn restart_only_changes(current: &Config, candidate: &Config) -> Vec<String> {
    let (a, b) = (&current.server, &candidate.server);
    let mut changed = Vec::new();
    if a.worker_threads != b.worker_threads {
        changed.push("[server] worker_threads");
    }
    if a.drain_timeout != b.drain_timeout {
        changed.push("[server] drain_timeout");
    }
    if a.max_header_bytes != b.max_header_bytes {
        changed.push("[server] max_header_bytes");
    }
    if a.max_headers != b.max_headers {
        changed.push("[server] max_headers");
    }
    if a.header_read_timeout != b.header_read_timeout {
        changed.push("[server] header_read_timeout");
    }
    if a.body_idle_timeout != b.body_idle_timeout {
        changed.push("[server] body_idle_timeout");
    }
    if a.idle_spin != b.idle_spin {
        changed.push("[server] idle_spin");
    }
    if a.generation_header != b.generation_header {
        changed.push("[server] generation_header");
    }
    if current.traffic.sample_size != candidate.traffic.sample_size {
        changed.push("[traffic] sample_size");
    }
    if current.traffic.window != candidate.traffic.window {
        changed.push("[traffic] window");
    }
    if current.access_log.path != candidate.access_log.path {
        changed.push("[access_log] path");
    }
    if current.admin.metrics_require_token != candidate.admin.metrics_require_token {
        changed.push("[admin] metrics_require_token");
    }
    let read_token =
        |admin: &keel_config::Admin| admin.read_token.as_ref().map(|t| t.value.clone());
    if read_token(&current.admin) != read_token(&candidate.admin) {
        changed.push("[admin] read_token");
    }
    let backlogs = candidate.listeners.iter().filter_map(|(name, listener)| {
        let old = current.listeners.get(name)?;
        (old.backlog != listener.backlog).then(|| format!("[listeners.{name}] backlog"))
    });
    changed
        .into_iter()
        .map(str::to_string)
        .chain(backlogs)
        .map(|setting| {
            format!(
                "{setting} changed: it is read at startup and takes effect when keel serve restarts"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listener: &str, admin: &str, extra: &str) -> Config {
        let text = format!(
            "[listeners.web]\naddr = \"{listener}\"\n[admin]\naddr = \"{admin}\"\n{extra}\n\
             [services.s]\nallow_no_identity = true\n[pools.p]\nservice = \"s\"\nbackends = [{{ addr = \"127.0.0.1:9\" }}]\n\
             [[routes]]\nname = \"r\"\nservice = \"s\"\npool = \"p\"\n"
        );
        keel_config::parse(&text).config
    }

    #[test]
    fn moved_added_removed_listeners_and_admin_are_each_named() {
        let a = config("127.0.0.1:8080", "127.0.0.1:9901", "");
        assert!(listener_changes(&a, &a).is_empty());
        let moved = config("127.0.0.1:8081", "127.0.0.1:9902", "");
        let changes = listener_changes(&a, &moved);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes[0].contains("moves from 127.0.0.1:8080 to 127.0.0.1:8081"));
        assert!(changes[1].contains("admin API moves"));
        let mut added = a.clone();
        added
            .listeners
            .insert("api".into(), a.listeners["web"].clone());
        assert!(listener_changes(&a, &added)[0].contains("`api`"));
        assert!(listener_changes(&added, &a)[0].contains("is removed"));
    }

    #[test]
    fn a_listener_turning_tls_on_or_off_is_a_listener_change() {
        let plain = config("127.0.0.1:8080", "127.0.0.1:9901", "");
        let text = "[listeners.web]\naddr = \"127.0.0.1:8080\"\ntls = { certificates = [\"c\"] }\n\
                    [certificates.c]\ncert = \"c.pem\"\nkey = \"c.key\"\n";
        let tls = keel_config::parse(text).config;
        assert!(listener_changes(&plain, &tls)[0].contains("starts TLS"));
        assert!(listener_changes(&tls, &plain)[0].contains("stops TLS"));
        assert!(listener_changes(&tls, &tls).is_empty());
    }

    #[test]
    fn restart_only_settings_are_noted() {
        let a = config("127.0.0.1:8080", "127.0.0.1:9901", "");
        let b = config(
            "127.0.0.1:8080",
            "127.0.0.1:9901",
            "[server]\nmax_headers = 50\n[traffic]\nsample_size = 5",
        );
        let notes = restart_only_changes(&a, &b);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("max_headers"));
        assert!(restart_only_changes(&a, &a).is_empty());
    }
}
