//! `keel timeline`: the store's events and generations merged into one ordered timeline, written
//! as a Markdown post-mortem draft (or JSON). Reads `<state-dir>/keel.db` directly, which is safe
//! while `keel serve` runs (WAL: readers never block the writer).

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
    let Some(store) = open_store(&args.state_dir)? else {
        return Ok(ExitCode::from(super::EXIT_INPUT));
    };
    // Changed certificates are shown from the copies the generations pinned.
    let pins = keel_control::pins::CertificatePins::in_state_dir(&args.state_dir);
    let timeline = match Timeline::build_with(&store, window[0], window[1], Some(&pins)) {
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
