//! `keel serve --config FILE`: load the config through the checker, compile it into
//! generation 1, bind every listener and serve until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use keel_config::{Report, parse};
use keel_proxy::{DataPlane, DataPlaneOptions, ListenerLimits};

/// Arguments of `keel serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The config file.
    #[arg(long, short)]
    pub(crate) config: PathBuf,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = args.config.display().to_string();
    let source =
        std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {file}"))?;
    let parsed = parse(&source);
    if parsed.has_errors() {
        let mut report = Report::new(file, source);
        report.extend(parsed.diagnostics);
        eprint!("{}", report.render_human());
        return Ok(ExitCode::from(super::EXIT_USAGE));
    }
    let config = Arc::new(parsed.config);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        runtime.worker_threads(config.server.worker_threads as usize);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Arc<keel_config::Config>) -> anyhow::Result<ExitCode> {
    let plane = DataPlane::new(DataPlaneOptions::from_config(&config))
        .context("cannot open the access log")?;
    let generation = plane
        .compile(1, config.clone())
        .context("cannot compile the config")?;
    plane.activate(generation);
    let limits = ListenerLimits::from_server(&config.server);
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for (name, listener) in &config.listeners {
        let socket = tokio::net::TcpListener::bind(listener.addr.value)
            .await
            .with_context(|| format!("cannot bind listener `{name}` on {}", listener.addr.value))?;
        tracing::info!(listener = %name, addr = %socket.local_addr()?, "listening");
        let plane = plane.clone();
        let limits = limits.clone();
        let mut stopped = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            plane
                .serve(socket, limits, async move {
                    let _ = stopped.recv().await;
                })
                .await
        }));
    }
    super::shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop.send(());
    for task in tasks {
        task.await??;
    }
    Ok(ExitCode::SUCCESS)
}
