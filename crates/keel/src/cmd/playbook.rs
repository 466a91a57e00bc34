//! `keel playbook`: the rollback runbook generated from the live state. Reads the store and the
//! admin token (unless `KEEL_ADMIN_TOKEN` is set) from `--state-dir`, like every other command,
//! and the backend states and open alerts from the admin API's `GET /status` (reported as unknown,
//! with the reason, when the admin API does not answer: a playbook is most needed exactly when
//! the daemon is in trouble).
//!
//! `--format markdown` with `--output FILE.md` also writes the rendered topology next to it as
//! `FILE.svg` and links it; `--format html` is one self-contained page; `--format svg` is the
//! topology alone.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_control::admin::AdminToken;
use keel_report::{LiveStates, LiveView, Playbook};

use super::timeline::{DEFAULT_STATE_DIR, open_report_store, write_output};

/// The admin API address unless `--admin` or `KEEL_ADMIN` says otherwise.
const DEFAULT_ADMIN: &str = "http://127.0.0.1:9901";
/// How long `GET /status` may take before the states are reported unknown (2 seconds).
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `/status` answer read (4 MiB).
const MAX_STATUS_BYTES: usize = 4 * 1024 * 1024;

/// Arguments of `keel playbook`.
#[derive(Args, Debug)]
pub(crate) struct PlaybookArgs {
    /// Directory holding Keel's state (`keel.db`).
    #[arg(long, env = "KEEL_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// The admin API: used in the rollback commands and asked for live backend states.
    #[arg(long, env = "KEEL_ADMIN", default_value = DEFAULT_ADMIN)]
    pub(crate) admin: String,
    /// Do not contact the admin API: backend states are shown as unknown.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlaybookFormat::Markdown)]
    pub(crate) format: PlaybookFormat,
    /// The same as `--format json`.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write to this file instead of stdout (Markdown: the SVG goes next to it).
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// Read the fleet's history from etcd, as this node config's `[fleet]` table names it
    /// (fleet mode), instead of `<state-dir>/keel.db`.
    #[arg(long, value_name = "NODE_FILE")]
    pub(crate) fleet: Option<PathBuf>,
}

/// How the playbook is written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum PlaybookFormat {
    /// Markdown with a Mermaid diagram (and an SVG file next to `--output`): the human form.
    #[value(alias = "human")]
    Markdown,
    /// One self-contained HTML page with the SVG inline.
    Html,
    /// The topology diagram alone.
    Svg,
    /// The playbook's data (targets, commands, live states, open alerts) as JSON.
    Json,
}

pub(crate) fn run(args: PlaybookArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_report_store(&args.state_dir, args.fleet.as_deref())? else {
        return Ok(ExitCode::from(super::EXIT_INPUT));
    };
    let live = if args.offline {
        LiveView::Unknown {
            reason: "not asked (--offline)".to_owned(),
        }
    } else {
        // The token as every other command reads it: KEEL_ADMIN_TOKEN, else
        // `<state-dir>/admin.token`. Without one, /status answers 401 and says so.
        let token = AdminToken::read(&args.state_dir).ok();
        fetch_live(&args.admin, token.as_ref().map(AdminToken::expose))
    };
    // Changed certificates are shown from the copies the generations pinned.
    let pins = keel_control::pins::CertificatePins::in_state_dir(&args.state_dir);
    let playbook = Playbook::from_store_with(store.get(), live, &args.admin, Some(&pins))
        .context("cannot build the playbook")?;
    let format = if args.json {
        PlaybookFormat::Json
    } else {
        args.format
    };
    match format {
        PlaybookFormat::Json => write_output(
            args.output.as_deref(),
            &format!("{}\n", serde_json::to_string_pretty(&playbook)?),
        )?,
        PlaybookFormat::Markdown => {
            let svg_path = args.output.as_ref().map(|o| o.with_extension("svg"));
            let mut link = None;
            if let (Some(path), Some(svg)) = (&svg_path, playbook.topology_svg()?) {
                std::fs::write(path, svg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                link = path.file_name().map(|n| n.to_string_lossy().into_owned());
            }
            write_output(
                args.output.as_deref(),
                &playbook.render_markdown(link.as_deref()),
            )?;
        }
        PlaybookFormat::Html => write_output(args.output.as_deref(), &playbook.render_html()?)?,
        PlaybookFormat::Svg => match playbook.topology_svg()? {
            Some(svg) => write_output(args.output.as_deref(), &svg)?,
            None => {
                eprintln!("keel: nothing is active yet: there is no topology to draw");
                return Ok(ExitCode::from(1));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
/// `GET <admin>/status`, read as live backend states; any failure becomes `LiveView::Unknown`
/// with the reason, because a playbook is most needed exactly when the daemon is in trouble.
fn fetch_live(admin: &str, token: Option<&str>) -> LiveView {
    let url = format!("{}/status", admin.trim_end_matches('/'));
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                tokio::time::timeout(STATUS_TIMEOUT, get_json(&url, token))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("no answer within {}s", STATUS_TIMEOUT.as_secs())
                    })?
            })
        });
    match fetched.and_then(|json| {
        LiveStates::from_status_json(format!("GET {url}"), &json).map_err(anyhow::Error::from)
    }) {
        Ok(states) => LiveView::Known(states),
        Err(error) => LiveView::Unknown {
            reason: format!("GET {url} failed: {error:#}"),
        },
    }
}

async fn get_json(url: &str, token: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let uri: http::Uri = url.parse().context("not a valid URL")?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("only http:// admin URLs are supported");
    }
    let mut request = http::Request::get(uri);
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<bytes::Bytes>::new())
        .context("cannot build the request")?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.context("request failed")?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_STATUS_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        anyhow::bail!("HTTP {status}");
    }
    serde_json::from_slice(&body).context("the answer is not JSON")
}
