//! `keel`: parses the command line, sets up logging, and hands each command to the
//! library crate that owns it. Exit codes (docs/cli.md): 0 success, 1 refused or failed,
//! 2 usage error (clap's), 64 input that cannot be read or used.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a proxied request allocates about ten times, two
/// of them hyper's 8 KiB read buffers, and glibc served those from its slow bins
/// (`_int_malloc`, `malloc_consolidate`): about 3,000 instructions per request.
/// Built with `no_thp` (Cargo.toml): otherwise mimalloc advises its 1 GiB arena for
/// transparent huge pages, and the first burst after a start faults in whole 2 MiB
/// pages; that doubled Keel's p99 in the first second of 256 new connections.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cmd::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are not errors; every real usage error exits 2.
            let code = if error.use_stderr() {
                cmd::EXIT_USAGE
            } else {
                0
            };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    cmd::init_logging(&cli);
    match cmd::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("keel: {error:#}");
            ExitCode::from(1)
        }
    }
}
