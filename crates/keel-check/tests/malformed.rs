//! Bad input never panics the loader: every prefix of a real config (truncated files),
//! the files of `tests/corpus/` (wrong types everywhere, huge numbers, odd Unicode,
//! heavy regexes; add any input the fuzzer finds there), deep nesting, and random text.
//! The stable-Rust companion of `fuzz/fuzz_targets/check.rs`.

use keel_check::load;
use proptest::prelude::*;

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/keel.toml"
    ))
    .expect("example config")
}

/// Loads and renders, as `keel check` would: both must survive any input.
fn survives(name: &str, source: &str) {
    let loaded = load(name, source);
    let _ = loaded.report.render_human();
    let _ = loaded.report.to_json();
}

#[test]
fn every_truncation_of_the_example_loads_without_panic() {
    let source = example();
    let mut errors = 0;
    for (cut, _) in source.char_indices() {
        let loaded = load("truncated.toml", &source[..cut]);
        errors += usize::from(loaded.report.has_errors());
        let _ = loaded.report.render_human();
    }
    // Most truncations are broken files, and they are reported as such.
    assert!(errors > source.len() / 2, "{errors} errors");
}

#[test]
fn the_corpus_loads_with_findings_and_without_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("readable");
        let source = String::from_utf8_lossy(&bytes);
        let loaded = load(&path.display().to_string(), &source);
        assert!(
            !loaded.report.diagnostics.is_empty(),
            "{} has no finding",
            path.display()
        );
        let _ = loaded.report.render_human();
        let _ = loaded.report.to_json();
        seen += 1;
    }
    assert!(seen >= 4, "corpus files: {seen}");
}

#[test]
fn pathological_shapes_load_without_panic() {
    let deep_array = format!("a = {}{}", "[".repeat(50_000), "]".repeat(50_000));
    let deep_table = format!("a = {}1{}", "{ b = ".repeat(5_000), " }".repeat(5_000));
    let long_name = format!(
        "[listeners.{}]\naddr = \"127.0.0.1:1\"\n",
        "n".repeat(100_000)
    );
    let long_host = format!(
        "[listeners.w]\naddr = \"127.0.0.1:1\"\n[services.w]\nallow_no_identity = true\n[pools.w]\nservice = \"w\"\nbackends = [\"127.0.0.1:2\"]\n[[routes]]\nname = \"r\"\nhost = \"{}.com\"\nservice = \"w\"\npool = \"w\"\n[[routes]]\nname = \"s\"\nhost = \"*.{}.com\"\nservice = \"w\"\npool = \"w\"\n",
        "a".repeat(300),
        "b".repeat(300)
    );
    let many_routes: String = (0..2_000)
        .map(|i| format!("[[routes]]\nname = \"r{i}\"\nservice = \"nope\"\npool = \"nope\"\n"))
        .collect();
    for (name, source) in [
        ("empty", String::new()),
        ("nul", "\0\0\0".to_string()),
        (
            "bom",
            "\u{feff}[listeners.web]\naddr = \"127.0.0.1:1\"".to_string(),
        ),
        ("crlf", example().replace('\n', "\r\n")),
        ("lone-cr", example().replace('\n', "\r")),
        ("deep-array", deep_array),
        ("deep-table", deep_table),
        ("long-name", long_name),
        ("long-host", long_host),
        ("many-routes", many_routes),
        ("dotted", "a.b.c.d.e.f = 1\n[[routes.x]]\n[[[".to_string()),
    ] {
        survives(name, &source);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_loads_without_panic(text in ".{0,400}") {
        survives("random.toml", &text);
    }

    #[test]
    fn mutated_examples_load_without_panic(cut in 0usize..2000, insert in "[\\[\\]{}=\",.0-9a-z\\n *\\\\]{0,12}") {
        let mut source = example();
        let at = source
            .char_indices()
            .map(|(i, _)| i)
            .find(|i| *i >= cut % source.len().max(1))
            .unwrap_or(source.len());
        source.insert_str(at, &insert);
        survives("mutated.toml", &source);
    }
}
