//! `keel timeline`: the store's events and generations merged into one ordered timeline, written
//! as a Markdown post-mortem draft (or JSON). Reads `<state-dir>/keel.db` directly, which is safe
//! while `keel serve` runs (WAL: readers never block the writer); with `--fleet NODE_FILE`, the
//! fleet's store in etcd that the node file's `[fleet]` table names, every line naming the node
//! that wrote it (docs/fleet.md). [`open_report_store`] is shared with `keel playbook`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use keel_report::{Timeline, parse_time};
use keel_store::{DATABASE_FILE_NAME, SqliteStore};

/// Where Keel keeps its state unless told otherwise.
pub(crate) const DEFAULT_STATE_DIR: &str = "./keel-state";

/// Arguments of `keel timeline`.
#[derive(Args, Debug)]
pub(crate) struct TimelineArgs {
    /// Directory holding Keel's state (`keel.db`).
    #[arg(long, env = "KEEL_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// Start of the window (inclusive): RFC 3339, a date (2024-03-15), or relative ("2h ago", "-30m").
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) since: Option<String>,
    /// End of the window (exclusive), in the same forms; default now.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) until: Option<String>,
    /// Output format: `markdown` (alias `human`) or `json`.
    #[arg(long, value_enum, default_value_t = TimelineFormat::Markdown)]
    pub(crate) format: TimelineFormat,
    /// The same as `--format json`.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// Read the fleet's history from etcd, as this node config's `[fleet]` table names it
    /// (fleet mode), instead of `<state-dir>/keel.db`.
    #[arg(long, value_name = "NODE_FILE")]
    pub(crate) fleet: Option<PathBuf>,
}

/// How the timeline is written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum TimelineFormat {
    /// A post-mortem draft (the human form).
    #[value(alias = "human")]
    Markdown,
    /// The timeline's JSON form (docs/timeline-and-playbook.md).
    Json,
}

pub(crate) fn run(args: TimelineArgs) -> anyhow::Result<ExitCode> {
    let now = keel_store::now_ms();
    let mut window = [None, None];
    for (slot, (flag, text)) in window
        .iter_mut()
        .zip([("--since", &args.since), ("--until", &args.until)])
    {
        if let Some(text) = text {
            match parse_time(text, now) {
                Ok(ms) => *slot = Some(ms),
                Err(error) => {
                    eprintln!("keel: {flag}: {error}");
                    return Ok(ExitCode::from(super::EXIT_USAGE));
                }
            }
        }
    }
    let Some(store) = open_report_store(&args.state_dir, args.fleet.as_deref())? else {
        return Ok(ExitCode::from(super::EXIT_INPUT));
    };
    // Changed certificates are shown from the copies the generations pinned.
    let pins = keel_control::pins::CertificatePins::in_state_dir(&args.state_dir);
    let timeline = match Timeline::build_with(store.get(), window[0], window[1], Some(&pins)) {
        Ok(timeline) => timeline,
        Err(keel_report::ReportError::EmptyRange { since, until }) => {
            eprintln!("keel: the window is empty: --since {since} is not before --until {until}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
        Err(error) => return Err(error).context("cannot build the timeline"),
    };
    let format = if args.json {
        TimelineFormat::Json
    } else {
        args.format
    };
    let text = match format {
        TimelineFormat::Markdown => timeline.render_markdown(),
        TimelineFormat::Json => format!("{}\n", serde_json::to_string_pretty(&timeline.to_json())?),
    };
    write_output(args.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

/// Opens `<state_dir>/keel.db`; prints why and returns `None` when there is no store there
/// (opening would otherwise create an empty one and report nothing happened).
pub(crate) fn open_store(state_dir: &Path) -> anyhow::Result<Option<SqliteStore>> {
    let file = state_dir.join(DATABASE_FILE_NAME);
    if !file.is_file() {
        eprintln!(
            "keel: no Keel store at {} (pass --state-dir with the directory `keel serve` uses)",
            file.display()
        );
        return Ok(None);
    }
    let store = SqliteStore::open(state_dir)
        .with_context(|| format!("cannot open the Keel store in {}", state_dir.display()))?;
    Ok(Some(store))
}

/// The store a report (`keel timeline`, `keel playbook`) reads: the node's own SQLite store
/// in `state_dir`, or with `fleet` (a node config with `[fleet] store = "etcd"`) the fleet's.
/// `None` when there is none (the reason is printed).
pub(crate) fn open_report_store(
    state_dir: &Path,
    fleet: Option<&Path>,
) -> anyhow::Result<Option<ReportStore>> {
    match fleet {
        None => Ok(open_store(state_dir)?.map(|store| ReportStore {
            store: std::sync::Arc::new(store),
            scratch: None,
        })),
        #[cfg(feature = "fleet")]
        Some(node_file) => {
            let Some(node) = keel_fleet::node_config(node_file) else {
                eprintln!(
                    "keel: {} has no `[fleet] store = \"etcd\"` table",
                    node_file.display()
                );
                return Ok(None);
            };
            // The fleet store keeps a local copy; a report must not write the node's own, so
            // it gets a scratch directory of its own, removed when the report is done.
            let scratch = std::env::temp_dir().join(format!("keel-report-{}", std::process::id()));
            let store =
                keel_fleet::open_store(&node, &scratch).context("cannot open the fleet's store")?;
            Ok(Some(ReportStore {
                store,
                scratch: Some(scratch),
            }))
        }
        #[cfg(not(feature = "fleet"))]
        Some(_) => {
            eprintln!(
                "keel: this keel was built without fleet mode: build it with `--features fleet` to read a fleet's history"
            );
            Ok(None)
        }
    }
}

/// A store opened for a report, and the scratch directory to remove after it.
pub(crate) struct ReportStore {
    store: std::sync::Arc<dyn keel_store::Store>,
    scratch: Option<PathBuf>,
}

impl ReportStore {
    pub(crate) fn get(&self) -> &dyn keel_store::Store {
        self.store.as_ref()
    }
}

impl Drop for ReportStore {
    fn drop(&mut self) {
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// Writes `text` to `output`, or to stdout.
pub(crate) fn write_output(output: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
            Ok(())
        }
    }
}
