//! `keel completions SHELL` and `keel man --out-dir DIR`: the files a package installs
//! beside the binary, generated from the command tree itself (clap_complete,
//! clap_mangen), so they cannot drift from the flags `keel` accepts. `dist/build.sh`
//! runs both after the dist build, and the Debian package ships what they wrote.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, ValueEnum};

use super::Cli;

/// The shells `keel completions` writes a script for.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Shell {
    /// Bash: install as `/usr/share/bash-completion/completions/keel`.
    Bash,
    /// Zsh: install as `_keel` in a directory of `$fpath`.
    Zsh,
    /// Fish: install as `keel.fish` in fish's `vendor_completions.d`.
    Fish,
}

/// Arguments of `keel completions`.
#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell to write the completion script for (on stdout).
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

/// Arguments of `keel man`.
#[derive(Args, Debug)]
pub(crate) struct ManArgs {
    /// Directory to write the pages into (created if missing): `keel.1`, and
    /// `keel-COMMAND.1` for each command.
    #[arg(long, value_name = "DIR")]
    pub(crate) out_dir: PathBuf,
}

pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "keel", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    // One page for `keel` and one per command (`keel-serve.1`, ...), as git and cargo do.
    clap_mangen::generate_to(Cli::command(), &args.out_dir)
        .with_context(|| format!("cannot write man pages into {}", args.out_dir.display()))?;
    println!("keel: man pages written to {}", args.out_dir.display());
    Ok(ExitCode::SUCCESS)
}
