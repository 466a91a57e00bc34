//! The control plane: applies, rollbacks, the compiled-generation cache, the admin API and the guard.
