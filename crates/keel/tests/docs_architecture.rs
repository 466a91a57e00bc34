//! `docs/ARCHITECTURE.md`'s crate table keeps up with the workspace: every crate under
//! `crates/` has a row, and each row's "depends on" column names exactly the Keel crates
//! its `Cargo.toml` depends on (dev-dependencies aside). "all of the above" means every
//! crate of the rows before it.

use std::collections::BTreeSet;

fn read(relative: &str) -> String {
    let path = format!("{}/../../{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The crate directories of the workspace (`keel`, `keel-config`, ...).
fn crates() -> BTreeSet<String> {
    let dir = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The Keel crates named in a manifest's `[dependencies]` table.
fn keel_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut in_dependencies = false;
    let mut found = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies || !line.starts_with("keel") {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        found.insert(name);
    }
    found
}

/// The crate table's rows, in order: (crate, "depends on" column).
fn table_rows(architecture: &str) -> Vec<(String, String)> {
    architecture
        .lines()
        .skip_while(|line| !line.starts_with("## Crates and what each owns"))
        .skip(1)
        .skip_while(|line| !line.starts_with("| crate |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            let name = cells
                .first()
                .unwrap_or(&"")
                .trim()
                .trim_matches('`')
                .to_string();
            let depends = cells.last().unwrap_or(&"").trim().to_string();
            (name, depends)
        })
        .collect()
}

#[test]
fn every_crate_has_a_row_and_its_dependencies_are_the_manifests() {
    let rows = table_rows(&read("docs/ARCHITECTURE.md"));
    let named: BTreeSet<String> = rows.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(named, crates(), "the crate table's rows against crates/*");

    let mut above = BTreeSet::new();
    for (name, depends) in &rows {
        let documented: BTreeSet<String> = if depends == "all of the above" {
            above.clone()
        } else {
            depends
                .split(',')
                .map(|word| word.replace("(optional)", ""))
                .map(|word| word.trim().to_string())
                .filter(|word| !word.is_empty() && word != "–")
                .map(|word| format!("keel-{word}"))
                .collect()
        };
        let manifest = read(&format!("crates/{name}/Cargo.toml"));
        assert_eq!(
            documented,
            keel_dependencies(&manifest),
            "docs/ARCHITECTURE.md: `{name}` depends on"
        );
        above.insert(name.clone());
    }
}
