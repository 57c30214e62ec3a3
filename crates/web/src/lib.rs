//! The web client: static ES modules embedded in the binary, plus the generated `config.js`.

pub mod config;
pub use config::Config;
