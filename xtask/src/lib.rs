//! Checks on the repository itself, run by `cargo test --workspace` (so by `scripts/test`).
//!
//! `tidy` holds the architecture rules: which crate may depend on which, what a sans-IO
//! core may not touch, how long a file may grow. Each rule is a table at the top of
//! `tidy.rs`; edit the table, not the checks.

#[cfg(test)]
mod tidy;
