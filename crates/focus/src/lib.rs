//! The conference focus: joins each room, offers every participant a Jingle session with the
//! bridge, and keeps everyone's sources in step.

pub mod config;
pub use config::Config;
