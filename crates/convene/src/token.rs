//! `convene token`: mints a Jitsi token (HS256 with the configured `app_secret`) for a
//! room and a user, as an integration would; for testing and for scripts. The REST API's
//! `POST /api/v1/tokens` ([`crate::api`]) takes the same fields as JSON.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// Seconds since 1970, as tokens count time.
pub fn unix_now() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs())
}

/// The token for `args`, signed with `[auth.token] app_secret`, issued at `now` (Unix s).
pub fn mint(config: &Config, args: &TokenArgs, now: u64) -> anyhow::Result<String> {
    let token = &config.auth.token;
    if token.app_secret.0.is_empty() {
        bail!("[auth.token] app_secret is not set: there is nothing to sign with");
    }
    if token.app_id.is_empty() {
        bail!("[auth.token] app_id is not set: it is the token's issuer");
    }
    let claims = claims(config, args, now);
    let key = EncodingKey::from_secret(token.app_secret.0.as_bytes())?;
    Ok(encode(&Header::default(), &claims, &key)?)
}

fn claims(config: &Config, args: &TokenArgs, now: u64) -> Value {
    let mut user = serde_json::Map::new();
    let id = args.id.clone().or_else(|| args.name.clone());
    for (field, value) in [
        ("id", &id),
        ("name", &args.name),
        ("email", &args.email),
        ("avatar", &args.avatar),
    ] {
        if let Some(value) = value {
            user.insert(field.into(), json!(value));
        }
    }
    if args.moderator {
        user.insert("moderator".into(), json!(true));
    }
    let features: serde_json::Map<String, Value> = args
        .features
        .iter()
        .map(|name| (name.clone(), json!(true)))
        .collect();
    json!({
        "iss": config.auth.token.app_id,
        "aud": args.aud,
        "sub": args.sub.clone().unwrap_or_else(|| config.domain.clone()),
        "room": args.room,
        "iat": now,
        "nbf": now,
        "exp": now + args.valid_secs,
        "context": { "user": user, "features": features },
    })
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
        config.auth.token.app_id = "my_app".into();
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
        let claims = claims(&config, &cli.args, 1000);
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
