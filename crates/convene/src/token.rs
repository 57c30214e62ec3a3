//! `convene token`: mints a Jitsi token (HS256 with the configured `app_secret`) for a
//! room and a user, as an integration would; for testing and for scripts. The REST API's
//! `POST /api/v1/tokens` ([`crate::api`]) takes the same fields as JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Config;

#[derive(Args, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenArgs {
    /// The room the token opens (`*`: every room).
    #[arg(long)]
    pub room: String,
    /// The user's display name.
    #[arg(long)]
    pub name: Option<String>,
    /// The user's id at the issuer (default: the name).
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    /// An avatar URL.
    #[arg(long)]
    pub avatar: Option<String>,
    /// Claim the moderator right (`context.user.moderator`).
    #[arg(long)]
    #[serde(default)]
    pub moderator: bool,
    /// `sub`: the domain (default: the configured one), a tenant, or `*`.
    #[arg(long)]
    pub sub: Option<String>,
    /// `aud` (default `jitsi`).
    #[arg(long, default_value = "jitsi")]
    #[serde(default = "default_aud")]
    pub aud: String,
    /// Seconds the token is valid.
    #[arg(long, default_value_t = 3600)]
    #[serde(default = "default_valid_secs")]
    pub valid_secs: u64,
    /// A feature to grant (`context.features.<name> = true`), repeatable.
    #[arg(long = "feature")]
    #[serde(default)]
    pub features: Vec<String>,
}

fn default_aud() -> String {
    "jitsi".into()
}

fn default_valid_secs() -> u64 {
    3600
}

pub fn run(config: &Config, args: TokenArgs) -> anyhow::Result<()> {
    println!("{}", mint(config, &args, unix_now()?)?);
    Ok(())
}

/// The token for `args`, signed with `[auth.token] app_secret`, issued at `now` (Unix s).
pub fn mint(config: &Config, args: &TokenArgs, now: u64) -> anyhow::Result<String> {
    TokenMinter::new(config)?.sign(&args.user(), &args.grant(), now)
}

impl TokenArgs {
    fn user(&self) -> User<'_> {
        User {
            id: self.id.as_deref().or(self.name.as_deref()),
            name: self.name.as_deref(),
            email: self.email.as_deref(),
            avatar: self.avatar.as_deref(),
            moderator: self.moderator,
            features: &self.features,
        }
    }

    fn grant(&self) -> Grant<'_> {
        Grant {
            room: &self.room,
            sub: self.sub.as_deref(),
            aud: &self.aud,
            valid_secs: self.valid_secs,
        }
    }
}

/// Mints HS256 Jitsi tokens with `[auth.token] app_secret`: for `convene token`, and for
/// the OIDC sign-in, whose users get one for the room they signed in to.
pub struct TokenMinter {
    domain: String,
    app_id: String,
    key: EncodingKey,
}

/// Who the token is for (`context.user`, `context.features`).
struct User<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
    email: Option<&'a str>,
    avatar: Option<&'a str>,
    moderator: bool,
    features: &'a [String],
}

/// What the token opens, to whom it is addressed, for how long.
struct Grant<'a> {
    room: &'a str,
    /// Default: the domain.
    sub: Option<&'a str>,
    aud: &'a str,
    valid_secs: u64,
}

impl TokenMinter {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let token = &config.auth.xmpp.token;
        if token.app_secret.0.is_empty() {
            bail!("[auth.token] app_secret is not set: there is nothing to sign with");
        }
        if token.app_id.is_empty() {
            bail!("[auth.token] app_id is not set: it is the token's issuer");
        }
        Ok(Self {
            domain: config.domain.clone(),
            app_id: token.app_id.clone(),
            key: EncodingKey::from_secret(token.app_secret.0.as_bytes())?,
        })
    }

    fn sign(&self, user: &User, grant: &Grant, now: u64) -> anyhow::Result<String> {
        Ok(encode(
            &Header::default(),
            &self.claims(user, grant, now),
            &self.key,
        )?)
    }

    fn claims(&self, user: &User, grant: &Grant, now: u64) -> Value {
        let mut context_user = serde_json::Map::new();
        for (field, value) in [
            ("id", user.id),
            ("name", user.name),
            ("email", user.email),
            ("avatar", user.avatar),
        ] {
            if let Some(value) = value {
                context_user.insert(field.into(), json!(value));
            }
        }
        if user.moderator {
            context_user.insert("moderator".into(), json!(true));
        }
        let features: serde_json::Map<String, Value> = user
            .features
            .iter()
            .map(|name| (name.clone(), json!(true)))
            .collect();
        json!({
            "iss": self.app_id,
            "aud": grant.aud,
            "sub": grant.sub.unwrap_or(&self.domain),
            "room": grant.room,
            "iat": now,
            "nbf": now,
            "exp": now + grant.valid_secs,
            "context": { "user": context_user, "features": features },
        })
    }
}

impl convene_web::Minter for TokenMinter {
    fn mint(
        &self,
        user: &convene_web::OidcUser,
        room: &str,
        lifetime: Duration,
    ) -> Result<String, String> {
        let user = User {
            id: Some(&user.id),
            name: user.name.as_deref(),
            email: user.email.as_deref(),
            avatar: user.avatar.as_deref(),
            moderator: user.moderator,
            features: &[],
        };
        let grant = Grant {
            room,
            sub: None,
            aud: "jitsi",
            valid_secs: lifetime.as_secs(),
        };
        unix_now()
            .and_then(|now| self.sign(&user, &grant, now))
            .map_err(|e| format!("cannot mint the token: {e}"))
    }
}

/// Seconds since 1970, as tokens count time.
pub fn unix_now() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TokenArgs,
    }

    #[test]
    fn claims_name_the_room_the_user_and_the_issuer() {
        let mut config = Config::default();
        config.auth.xmpp.token.app_id = "my_app".into();
        config.auth.xmpp.token.app_secret.0 = "s".into();
        let cli = Cli::parse_from([
            "token",
            "--room",
            "standup",
            "--name",
            "Alice",
            "--moderator",
            "--feature",
            "recording",
        ]);
        let claims =
            TokenMinter::new(&config)
                .unwrap()
                .claims(&cli.args.user(), &cli.args.grant(), 1000);
        assert_eq!(claims["iss"], "my_app");
        assert_eq!(claims["sub"], "localhost");
        assert_eq!(claims["room"], "standup");
        assert_eq!(claims["exp"], 4600);
        assert_eq!(claims["context"]["user"]["name"], "Alice");
        assert_eq!(claims["context"]["user"]["id"], "Alice");
        assert_eq!(claims["context"]["user"]["moderator"], true);
        assert_eq!(claims["context"]["features"]["recording"], true);
    }
}
