//! `keel serve --config FILE --state-dir DIR`: run the controller.
//!
//! On first start FILE becomes generation 1. On every later start Keel serves the
//! store's active generation, even if FILE has since been broken or deleted, and says
//! so. Binds the admin API and every listener of the active generation; SIGHUP re-reads
//! FILE and applies it through the same gate as `keel apply`; SIGTERM or Ctrl-C drains.
//!
//! The controller runs guarded (`Controller::start_guarded`): the blast-radius gate
//! on the live traffic sample, the detectors (`GET /metrics`, `GET /alerts`, alerts
//! persisted as events), a watch after every apply that reverts by itself on an alarm,
//! canary applies, and known-good marks only for generations without alerts.
//!
//! With `[fleet] store = "etcd"` in FILE the process is a fleet node (`keel_fleet`,
//! docs/fleet.md): generations come from the fleet's etcd (this node's listeners, admin
//! API and `[fleet]` stay its own), the local copy in DIR serves when etcd is unreachable,
//! and the node follows the fleet's active generation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use keel_control::admin::{self, AdminState, AdminToken};
use keel_control::boot::{self, BootError, Prepared};
use keel_control::{ApplyRequest, ApplyStatus, Controller};
use keel_proxy::{ListenerLimits, ServingThreads};
use keel_store::{NewEvent, SqliteStore, Store, kind, origin};
use tokio::sync::broadcast;

use super::{DEFAULT_STATE_DIR, EXIT_FAILED, EXIT_INPUT, STATE_DIR_ENV};

/// Author recorded for SIGHUP reloads.
const SIGHUP_AUTHOR: &str = "sighup";

/// Arguments of `keel serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The config file: generation 1 on a first start, re-read on SIGHUP.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Where the store (keel.db) and the admin token (admin.token) live.
    #[arg(long, env = STATE_DIR_ENV, default_value = DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// Apply --config at start when it differs from the stored active generation
    /// (through the full check), instead of serving the stored one. This is how
    /// listener addresses change: a running Keel does not rebind them.
    #[arg(long, requires = "config")]
    pub(crate) adopt_config: bool,
    /// With --adopt-config: adopt the file even without the evidence a start lacks (no
    /// traffic sample to judge a routing change by, or new backends that answer as
    /// another service); what was skipped is logged.
    #[arg(long, requires = "adopt_config")]
    pub(crate) force: bool,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Before anything opens a descriptor: every client, backend and admin connection
    // takes one, and a distribution's default soft limit is far below an edge's needs.
    match keel_control::descriptors::raise_descriptor_limit() {
        Ok(limit) => tracing::info!(limit, "file descriptor limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the file descriptor limit"),
    }
    // ACME certificates are read from the state directory by every load from here on.
    keel_control::acme::install_material(&args.state_dir);
    // DNS backends' names are resolved once here, then by the re-resolution task.
    let dns = keel_control::dns::DnsCache::install();
    // A `[fleet] store = "etcd"` table in the node's own file makes this process a fleet
    // node (keel-fleet, docs/fleet.md); otherwise the embedded SQLite store, as always.
    #[cfg(feature = "fleet")]
    let fleet_node = args.config.as_deref().and_then(keel_fleet::node_config);
    #[cfg(not(feature = "fleet"))]
    let fleet_node: Option<std::convert::Infallible> = {
        if args.config.as_deref().is_some_and(asks_for_a_fleet) {
            eprintln!(
                "keel: this keel was built without fleet mode; build it with `--features fleet` (needs protoc) to serve a `[fleet] store = \"etcd\"` config"
            );
            return Ok(ExitCode::from(EXIT_INPUT));
        }
        None
    };
    let (store, fleet, prepared): (Arc<dyn Store>, Option<Fleet>, _) = match &fleet_node {
        #[cfg(not(feature = "fleet"))]
        Some(never) => match *never {},
        #[cfg(feature = "fleet")]
        Some(node) => {
            let (Some(file), false) = (&args.config, args.adopt_config) else {
                eprintln!(
                    "keel: --adopt-config is not supported in fleet mode: apply the file to the fleet"
                );
                return Ok(ExitCode::from(EXIT_INPUT));
            };
            let store = match keel_fleet::open_store(node, &args.state_dir) {
                Ok(store) => store,
                Err(error) => {
                    eprintln!("keel: cannot open the fleet store: {error}");
                    return Ok(ExitCode::from(EXIT_FAILED));
                }
            };
            let prepared = keel_fleet::prepare(&store, file, node, &args.state_dir);
            let fleet = Fleet {
                store: store.clone(),
                node: node.clone(),
            };
            (store as Arc<dyn Store>, Some(fleet), prepared)
        }
        None => {
            let store = match SqliteStore::open(&args.state_dir) {
                Ok(store) => store,
                Err(error) => {
                    eprintln!(
                        "keel: cannot open the store in {}: {error}",
                        args.state_dir.display()
                    );
                    return Ok(ExitCode::from(EXIT_FAILED));
                }
            };
            let prepared = match (&args.config, args.adopt_config) {
                // A stored generation serves the certificates it pinned in the state dir.
                (Some(file), true) => boot::prepare_adopting_in(
                    &store,
                    file,
                    args.force,
                    Some(args.state_dir.as_path()),
                ),
                (file, _) => {
                    boot::prepare_in(&store, file.as_deref(), Some(args.state_dir.as_path()))
                }
            };
            (Arc::new(store) as Arc<dyn Store>, None, prepared)
        }
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return Ok(boot_failed(&error)),
    };
    let token = match AdminToken::load_or_create(&args.state_dir) {
        Ok(token) => token,
        Err(error) => {
            eprintln!("keel: {error}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    // Client connections run on `worker_threads` serving threads, one single-threaded
    // runtime each (see keel_proxy::ServingThreads); the control plane, the admin API,
    // health checks and accepting need little and share one more worker (with a single
    // serving thread, it accepts its connections itself).
    let server = &prepared.config().server;
    let threads = match server.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n as usize,
    };
    let serving = ServingThreads::start(threads, server.idle_spin)
        .context("cannot start the serving threads")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let serving = Arc::new(serving);
    let acme = keel_control::acme::AcmeSettings {
        state_dir: args.state_dir.clone(),
        config_file: args.config.clone(),
    };
    let exit = runtime.block_on(serve(
        (store, fleet),
        prepared,
        token,
        args.config,
        args.state_dir.clone(),
        serving.clone(),
        (acme, dns),
    ));
    drop(runtime);
    drop(serving);
    exit
}

fn boot_failed(error: &BootError) -> ExitCode {
    eprintln!("keel: {error}");
    match error {
        BootError::NoConfig
        | BootError::ReadConfig { .. }
        | BootError::FirstConfigRefused { .. }
        | BootError::StoredConfigUnusable { .. } => ExitCode::from(EXIT_INPUT),
        BootError::Store(_) | BootError::Control(_) => ExitCode::from(EXIT_FAILED),
    }
}

/// Whether `file` has a `[fleet] store = "etcd"` table (checked when fleet mode is not built in).
#[cfg(not(feature = "fleet"))]
fn asks_for_a_fleet(file: &std::path::Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|text| {
        keel_config::parse(&text)
            .config
            .fleet
            .as_ref()
            .is_some_and(keel_config::Fleet::is_shared)
    })
}

/// Without fleet mode built in, there is never a fleet to join.
#[cfg(not(feature = "fleet"))]
type Fleet = std::convert::Infallible;

/// A fleet node's store and own config.
#[cfg(feature = "fleet")]
struct Fleet {
    store: Arc<keel_fleet::FleetStore>,
    node: Arc<keel_config::Config>,
}

/// Serves until a shutdown signal: `store` (with `fleet` when this node is a fleet
/// node), the `prepared` generation, and the ACME and DNS tasks.
async fn serve(
    (store, fleet): (Arc<dyn Store>, Option<Fleet>),
    prepared: Prepared,
    token: AdminToken,
    config_file: Option<PathBuf>,
    state_dir: PathBuf,
    serving: Arc<ServingThreads>,
    (acme, dns): (
        keel_control::acme::AcmeSettings,
        Arc<keel_control::dns::DnsCache>,
    ),
) -> anyhow::Result<ExitCode> {
    // Relative paths start at the config file's directory; certificates are pinned in
    // the state directory.
    let (controller, report) =
        match Controller::start_guarded_at(store, prepared, &state_dir, config_file.as_deref())
            .await
        {
            Ok(started) => started,
            Err(error) => return Ok(boot_failed(&error)),
        };
    for note in &report.notes {
        if report.first_start {
            tracing::info!("{note}");
        } else {
            tracing::warn!("{note}");
        }
    }
    let Some(active) = controller.active() else {
        anyhow::bail!("no generation is active after startup");
    };
    let config = active.generation.config.clone();
    let (stop, _) = broadcast::channel::<()>(1);
    let stopped = |stop: &broadcast::Sender<()>| {
        let mut receiver = stop.subscribe();
        async move {
            let _ = receiver.recv().await;
        }
    };

    let admin_socket = tokio::net::TcpListener::bind(config.admin.addr.value)
        .await
        .with_context(|| format!("cannot bind the admin API on {}", config.admin.addr.value))?;
    tracing::info!(addr = %admin_socket.local_addr()?, "admin API listening");
    if !config.admin.addr.value.ip().is_loopback() {
        // The same finding as `keel check`'s K212.
        tracing::warn!(
            addr = %config.admin.addr.value,
            code = keel_config::codes::ADMIN_EXPOSED,
            "the admin API listens beyond loopback without TLS: its token and configs cross the network in clear text; bind [admin] addr to 127.0.0.1"
        );
    }
    let mut tasks = Vec::new();
    let state = AdminState {
        controller: controller.clone(),
        token,
    };
    tasks.push(tokio::spawn(admin::serve(
        admin_socket,
        state,
        stopped(&stop),
    )));

    let limits = ListenerLimits::from_server(&config.server);
    for (name, listener) in &config.listeners {
        let (socket, backlog) =
            keel_proxy::listen::bind_listener(listener.addr.value, listener.backlog).with_context(
                || format!("cannot bind listener `{name}` on {}", listener.addr.value),
            )?;
        tracing::info!(listener = %name, addr = %socket.local_addr()?, backlog, "listening");
        let plane = controller.plane().clone();
        let (limits, shutdown) = (limits.clone(), stopped(&stop));
        let serving = serving.clone();
        // A TLS listener takes the certificates of whichever generation is active
        // when a client connects (see keel_proxy::tls).
        let tls = listener.tls.as_ref().map(|_| plane.tls_listener(name));
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    plane
                        .serve_tls_on(socket, limits, tls, shutdown, &serving)
                        .await
                }
                None => {
                    plane
                        .serve_named_on(socket, limits, &name, shutdown, &serving)
                        .await
                }
            }
        }));
    }
    #[cfg(not(feature = "fleet"))]
    if let Some(never) = fleet {
        match never {}
    }
    #[cfg(feature = "fleet")]
    if let Some(fleet) = fleet {
        tasks.push(tokio::spawn({
            let task = keel_fleet::join(&controller, fleet.store, fleet.node, stopped(&stop));
            async move {
                let _ = task.await;
                Ok(())
            }
        }));
    }
    let background = [
        tokio::spawn(keel_control::record_proxy_events(
            controller.clone(),
            stopped(&stop),
        )),
        tokio::spawn(keel_control::run_known_good(
            controller.clone(),
            stopped(&stop),
        )),
        tokio::spawn(keel_control::run_sample_saver(
            controller.clone(),
            stopped(&stop),
        )),
        tokio::spawn(keel_control::dns::run_dns(
            controller.clone(),
            dns,
            acme.config_file.clone(),
            stopped(&stop),
        )),
        tokio::spawn(keel_control::acme::run_acme(
            controller.clone(),
            acme,
            stopped(&stop),
        )),
        tokio::spawn(reload_on_sighup(
            controller.clone(),
            config_file,
            stopped(&stop),
        )),
    ];

    super::shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop.send(());
    for task in tasks {
        if let Err(error) = task.await? {
            tracing::warn!(%error, "listener ended with an error");
        }
    }
    for task in background {
        task.await?;
    }
    let event = NewEvent::new(kind::SHUTDOWN, "keel stopped");
    if let Err(error) = controller.with_store(move |s| s.append_event(event)).await {
        tracing::warn!(%error, "cannot record the shutdown");
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-reads the config file on every SIGHUP and applies it through the full pipeline.
async fn reload_on_sighup(
    controller: Controller,
    config_file: Option<PathBuf>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP");
                return;
            }
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                received = hangups.recv() => if received.is_none() { return },
            }
            match &config_file {
                Some(path) => reload(&controller, path).await,
                None => tracing::warn!("SIGHUP: no --config file to re-read"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (controller, config_file);
        shutdown.await;
    }
}

async fn reload(controller: &Controller, path: &Path) {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            tracing::error!(%error, "SIGHUP: cannot read {file}; nothing changed");
            return;
        }
    };
    let request = ApplyRequest {
        config_text: text,
        author: SIGHUP_AUTHOR.to_string(),
        message: format!("SIGHUP: re-read {file}"),
        origin: origin::SIGHUP.to_string(),
        file_name: file.clone(),
        ..ApplyRequest::default()
    };
    match controller.apply(request).await {
        Ok(outcome) if outcome.status == ApplyStatus::Applied => {
            tracing::info!(generation = outcome.generation, "SIGHUP: {file} applied")
        }
        Ok(outcome) => tracing::error!(
            rejected = outcome.generation,
            "SIGHUP: {file} refused; the active generation is unchanged\n{}",
            outcome.report_text
        ),
        Err(error) => tracing::error!(%error, "SIGHUP: apply of {file} failed"),
    }
}
