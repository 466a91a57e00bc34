//! The fuzz targets on stable, without libFuzzer: each target runs every input of its
//! corpus (`fuzz/corpus/TARGET/`), then random mutations of them (bit flips, inserted,
//! deleted and repeated bytes, splices of two inputs, tokens the parsers care about),
//! for a bounded time and number of inputs. No coverage guidance, so it finds less than
//! `cargo fuzz`; it does keep every target building and every corpus input passing. An
//! input that panics is written to `fuzz/artifacts/TARGET/` and the run exits 1.
//!
//!   smoke [--seconds N] [--max-inputs N] [--seed N] [TARGET...]   (defaults: 10, 200000, time)

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_fuzz::TARGETS;

/// Seconds each target runs for when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 10;
/// Inputs each target runs at most when `--max-inputs` is not given.
const DEFAULT_MAX_INPUTS: u64 = 200_000;
/// Longest mutated input (64 KiB, a request head's default bound).
const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Byte strings the parsers branch on, spliced into inputs.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b": ",
    b"Host",
    b"host: ",
    b"CONNECT ",
    b"GET ",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"@",
    b"[::1]",
    b":8080",
    b"%00",
    b"Connection",
    b"keep-alive",
    b"timeout=",
    b"close, ",
    b"Transfer-Encoding",
    b"chunked",
    b"Content-Length: 5",
    b"{\"method\":",
    b"\"host\":",
    b"\"path\":\"/",
    b"\"headers\":",
    b"[[\"a\",\"b\"]]",
    b"https://",
    b"#",
    b"\xef\xbb\xbf",
    b"\xff",
    b"4294967296",
    b"-1",
    b"[[routes]]\n",
    b"[pools.",
    b"= \"",
    b"\"\n",
];

/// A small xorshift generator: reproducible from `--seed`, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(7) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, rng.next() as u8),
            2 if !input.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            4 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(32)).min(input.len());
                let piece = input[start..end].to_vec();
                input.splice(
                    at..at,
                    piece
                        .iter()
                        .copied()
                        .cycle()
                        .take(piece.len() * (1 + rng.below(8))),
                );
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.push(b"\n :=,\"[]"[rng.below(8)]),
        }
    }
    input.truncate(MAX_INPUT_BYTES);
}

fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

fn save_crash(root: &Path, target: &str, input: &[u8]) -> PathBuf {
    let dir = root.join("artifacts").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("crash-{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

fn main() -> ExitCode {
    let mut seconds = DEFAULT_SECONDS;
    let mut max_inputs = DEFAULT_MAX_INPUTS;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut wanted = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Option<u64> {
            let value = args.next().and_then(|v| v.parse().ok());
            if value.is_none() {
                eprintln!("smoke: {name} needs a number");
            }
            value
        };
        match arg.as_str() {
            "--seconds" => match number("--seconds") {
                Some(n) => seconds = n,
                None => return ExitCode::from(2),
            },
            "--max-inputs" => match number("--max-inputs") {
                Some(n) => max_inputs = n,
                None => return ExitCode::from(2),
            },
            "--seed" => match number("--seed") {
                Some(n) => seed = n | 1,
                None => return ExitCode::from(2),
            },
            name if TARGETS.iter().any(|(t, _)| *t == name) => wanted.push(name.to_string()),
            other => {
                eprintln!(
                    "smoke: unknown argument {other}; targets: {}",
                    TARGETS
                        .iter()
                        .map(|(t, _)| *t)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // A panic is reported with its input below; the default hook would print each one twice.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    for (name, target) in TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let corpus = read_corpus(&root.join("corpus").join(name));
        let mut rng = Rng(seed);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut runs = 0u64;
        let mut input = Vec::new();
        let crash = loop {
            if runs >= max_inputs || Instant::now() >= deadline {
                break None;
            }
            let index = runs as usize;
            if index < corpus.len() {
                input.clone_from(&corpus[index]);
            } else {
                if corpus.is_empty() || rng.below(8) == 0 {
                    input.clear();
                } else {
                    input.clone_from(&corpus[rng.below(corpus.len())]);
                }
                mutate(&mut rng, &corpus, &mut input);
            }
            runs += 1;
            if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
                break Some(input.clone());
            }
        };
        match crash {
            None => println!(
                "smoke: {name}: {runs} inputs ({} from the corpus), no panic (seed {seed})",
                corpus.len().min(runs as usize)
            ),
            Some(input) => {
                let path = save_crash(&root, name, &input);
                let reason = catch_unwind(AssertUnwindSafe(|| target(&input)))
                    .err()
                    .and_then(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    })
                    .unwrap_or_default();
                eprintln!(
                    "smoke: {name}: input {runs} panicked: {reason}\n  saved as {} (seed {seed}); copy it into fuzz/corpus/{name}/ to run it first every time",
                    path.display()
                );
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
