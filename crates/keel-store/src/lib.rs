//! Durable history of generations and events, behind a trait; SQLite is the embedded default.
