//! The whole configuration: embedded defaults, then the TOML file, then command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The one XMPP domain; `conference.D`, `guest.D`, `auth.D` and `focus.D` derive from it.
    pub domain: String,
    /// Where accounts, the generated TLS certificate and other state are kept.
    pub data_dir: PathBuf,
    /// HTTP listener: web client, XMPP over WebSocket, bridge channel, metrics.
    pub http_listen: SocketAddr,
    /// Timeouts and connection caps of the HTTP listener.
    pub http: crate::http::HttpConfig,
    pub xmpp: convene_xmpp::Config,
    pub bridge: convene_bridge::Config,
    pub focus: convene_focus::Config,
    pub web: convene_web::Config,
    /// Sign-in and moderators: tokens, moderator policy (docs/auth.md).
    pub auth: convene_xmpp::auth::AuthConfig,
    /// The REST API's key and secret (docs/api.md).
    pub api: crate::api::ApiConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            data_dir: PathBuf::from("data"),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            http: Default::default(),
            xmpp: Default::default(),
            bridge: Default::default(),
            focus: Default::default(),
            web: Default::default(),
            auth: Default::default(),
            api: Default::default(),
        }
    }
}

impl Config {
    /// The XMPP server's settings with `[auth]` in them.
    pub fn xmpp(&self) -> convene_xmpp::Config {
        convene_xmpp::Config {
            auth: self.auth.clone(),
            ..self.xmpp.clone()
        }
    }

    /// The focus's settings: its auto-owner gives way to any other moderator policy, its
    /// authentication follows `[auth]`.
    pub fn focus(&self) -> convene_focus::Config {
        let auto_owner = self.focus.auto_owner
            && self.auth.moderator == convene_xmpp::auth::ModeratorPolicy::First;
        convene_focus::Config {
            auto_owner,
            // Jicofo's authentication: with a secure domain or tokens, only users of the
            // main domain open conferences, guests wait for them.
            authentication: self.auth.secure_domain || self.auth.token.enabled,
            external_auth: self.auth.token.enabled,
            ..self.focus.clone()
        }
    }

    /// Defaults overlaid with the TOML file at `path`.
    pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped example documents every key; it must stay loadable as the schema moves.
    #[test]
    fn example_config_parses() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
        let config = Config::load(Some(&path)).expect("config/example.toml must parse");
        assert_eq!(config.domain, "localhost");
        assert_eq!(config.http_listen, Config::default().http_listen);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("domian = \"typo.example\"").unwrap_err();
        assert!(err.to_string().contains("domian"), "{err}");
    }
}
