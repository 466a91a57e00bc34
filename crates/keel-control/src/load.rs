//! The one place the control plane turns text into a config: `keel_check::load`, so an
//! apply runs exactly what `keel check` runs.

pub(crate) use keel_check::Loaded;

/// Parses and checks a config text, reporting findings against `file`.
pub(crate) fn load(file: &str, text: &str) -> Loaded {
    keel_check::load(file, text)
}

/// [`load`] with relative certificate paths starting at `config_dir`.
pub(crate) fn load_in(file: &str, text: &str, config_dir: &std::path::Path) -> Loaded {
    keel_check::load_in(file, text, config_dir)
}
