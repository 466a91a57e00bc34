//! Why the game day could not run. A scene that runs but does not behave as expected is
//! not an error: it is a failed [`SceneResult`](crate::scenes::SceneResult).

/// Why the demo could not set up or run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulated shop could not start.
    #[error("the shop could not start: {0}")]
    Shop(#[from] crate::shop::ShopError),
    /// The shopper load could not start or ended abnormally.
    #[error("the shopper load: {0}")]
    Load(#[from] crate::load::LoadError),
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Keel could not start.
    #[error("Keel could not start: {0}")]
    Boot(#[from] keel_control::boot::BootError),
    /// The admin token could not be created.
    #[error("{0}")]
    Token(#[from] keel_control::admin::TokenError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] keel_store::StoreError),
    /// The control plane failed (not a refusal: an internal failure).
    #[error("control plane: {0}")]
    Control(#[from] keel_control::ControlError),
    /// A report could not be built.
    #[error("report: {0}")]
    Report(#[from] keel_report::ReportError),
    /// Something the demo needs was not there.
    #[error("{0}")]
    Setup(String),
    /// Ctrl-C or `q`: the game day was stopped before it ended.
    #[error("stopped before the end (Ctrl-C)")]
    Aborted,
}
