//! The one loader: parse, validate, lint, shadow analysis, route tests and intents.
