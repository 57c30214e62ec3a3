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
    /// Sign-in and moderators: tokens, OIDC, moderator policy (docs/auth.md).
    pub auth: Auth,
    /// The REST API's key and secret (docs/api.md).
    pub api: crate::api::ApiConfig,
}

/// `[auth]`: the XMPP server's part (moderator policy, secure domain, tokens, ...) and
/// the web's (`[auth.oidc]`), in one section. Unknown keys are refused, as everywhere.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "AuthSection")]
pub struct Auth {
    pub xmpp: convene_xmpp::auth::AuthConfig,
    pub oidc: convene_web::OidcConfig,
}

/// `[auth]` as read: serde cannot refuse unknown keys across flattened parts, so the
/// keys neither part knows are collected and refused in `TryFrom`.
#[derive(Deserialize)]
struct AuthSection {
    #[serde(default)]
    oidc: convene_web::OidcConfig,
    #[serde(flatten)]
    xmpp: convene_xmpp::auth::AuthConfig,
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

impl TryFrom<AuthSection> for Auth {
    type Error = String;

    fn try_from(section: AuthSection) -> Result<Self, String> {
        match section.unknown.keys().next() {
            Some(key) => Err(format!("unknown field `{key}` in [auth]")),
            None => Ok(Self {
                xmpp: section.xmpp,
                oidc: section.oidc,
            }),
        }
    }
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
            auth: self.auth.xmpp.clone(),
            ..self.xmpp.clone()
        }
    }

    /// The focus's settings: its auto-owner gives way to any other moderator policy, its
    /// authentication follows `[auth]`.
    pub fn focus(&self) -> convene_focus::Config {
        let auto_owner = self.focus.auto_owner
            && self.auth.xmpp.moderator == convene_xmpp::auth::ModeratorPolicy::First;
        convene_focus::Config {
            auto_owner,
            // Jicofo's authentication: with a secure domain or tokens, only users of the
            // main domain open conferences, guests wait for them.
            authentication: self.auth.xmpp.secure_domain || self.auth.xmpp.token.enabled,
            external_auth: self.auth.xmpp.token.enabled,
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
        let err = toml::from_str::<Config>("[auth]\nsecure_domian = true").unwrap_err();
        assert!(err.to_string().contains("secure_domian"), "{err}");
        let err = toml::from_str::<Config>("[auth.oidc]\nisuer = \"x\"").unwrap_err();
        assert!(err.to_string().contains("isuer"), "{err}");
    }

    #[test]
    fn auth_parts_are_read_from_one_section() {
        let config: Config = toml::from_str(
            "[auth]\nsecure_domain = true\nmoderator = \"claim\"\n[auth.token]\nenabled = true\n\
             [auth.oidc]\nenabled = true\nissuer = \"https://id.example\"\nclient_id = \"convene\"",
        )
        .unwrap();
        assert!(config.auth.xmpp.secure_domain);
        assert!(config.auth.xmpp.token.enabled);
        assert_eq!(
            config.auth.xmpp.moderator,
            convene_xmpp::auth::ModeratorPolicy::Claim
        );
        assert!(config.auth.oidc.enabled);
        assert_eq!(config.auth.oidc.client_id, "convene");
        assert_eq!(Config::default().auth.oidc.token_lifetime_secs, 900);
    }
}
