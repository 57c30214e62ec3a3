//! The sans-IO core of token verification: fed the token's bytes, the key that its header
//! asks for and `now`, it says whether the token is good and what it grants, with the
//! refusal texts of Prosody's token library (`token/util.lib.lua`, `luajwtjitsi.lib.lua`)
//! so that the Jitsi clients show the reason they know.
//!
//! The signature is checked by `jsonwebtoken`; the header, the times and the Jitsi claims
//! are read here because Prosody's rules differ from the JWT defaults (`exp` optional, a
//! room claim, `*` in the accepted lists, the exact texts), and because `now` comes in.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use jid::BareJid;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::Value;

use super::TokenError;

/// What the accepted claims must look like (Prosody's `app_id`, `asap_accepted_issuers`,
/// `asap_accepted_audiences`, `asap_require_room_claim`).
#[derive(Debug, Clone)]
pub struct Rules {
    /// Accepted `iss` values; `*` accepts any.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; `*` accepts any.
    pub audiences: Vec<String>,
    pub require_room: bool,
    /// Seconds of clock skew forgiven on `exp` and `nbf` (Prosody: none).
    pub leeway: u64,
    /// Longest token read at all, in bytes.
    pub max_bytes: usize,
}

/// The part of the header that chooses the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

impl Header {
    pub fn family(&self) -> AlgorithmFamily {
        self.alg.family()
    }
}

/// The user as the token describes it (`context.user`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenUser {
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
}

/// Which rooms a token opens (the `room` and `sub` claims), checked at every MUC join as
/// `mod_token_verification` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomGrant {
    /// A room name, or `*`; `None` when the token has no room claim (only accepted when the
    /// claim is not required, and then any room is allowed).
    pub room: Option<String>,
    /// The domain the MUC lives under, a tenant, or `*`.
    pub sub: Option<String>,
    /// `context.room.regex`: `room` is a pattern the whole room name must match.
    pub regex: bool,
}

/// Longest `context.room.regex` pattern, and the most memory its compiled form may take:
/// the pattern comes from the token's issuer, and is compiled at every join. The `regex`
/// crate matches in linear time, so no pattern can make a join slow.
const MAX_ROOM_PATTERN: usize = 256;
const ROOM_REGEX_SIZE: usize = 1 << 16;

fn room_regex(pattern: &str) -> Option<regex::Regex> {
    if pattern.len() > MAX_ROOM_PATTERN {
        return None;
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(ROOM_REGEX_SIZE)
        .dfa_size_limit(ROOM_REGEX_SIZE)
        .build()
        .ok()
}

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub rooms: RoomGrant,
    pub user: TokenUser,
    /// `context.group`.
    pub group: Option<String>,
    /// `context.features`: a feature is on when its value is `true` or `"true"`.
    pub features: BTreeMap<String, bool>,
    /// Any of the moderator claims integrations use: `context.user.moderator` (`true` or
    /// `"true"`), top-level `moderator`, `context.user.affiliation` of owner, moderator or
    /// teacher.
    pub moderator: bool,
    /// `context.tenant`, else `sub` when it names neither this domain nor `*`.
    pub tenant: Option<String>,
    /// When the token stops being valid (seconds since the epoch).
    pub expires: Option<i64>,
}

/// Reads the header: size, shape, `typ`, `alg` (never `none`), `kid`.
pub fn parse_header(token: &str, rules: &Rules) -> Result<Header, TokenError> {
    if token.len() > rules.max_bytes {
        return Err(TokenError::TooLarge {
            size: token.len(),
            max: rules.max_bytes,
        });
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("Invalid token"));
    };
    let header = decode_json(header).ok_or(TokenError::Malformed("bad token format"))?;
    if header.get("typ").and_then(Value::as_str) != Some("JWT") {
        return Err(TokenError::InvalidTyp);
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        None => return Err(TokenError::AlgMissing),
        Some(name) => name
            .parse::<Algorithm>()
            .map_err(|_| TokenError::InvalidAlg)?,
    };
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(TokenError::Malformed("bad token format")),
    };
    Ok(Header { alg, kid })
}

/// Checks the signature with `key` and the claims at `now` (seconds since the epoch).
pub fn verify(
    token: &str,
    header: &Header,
    key: &DecodingKey,
    rules: &Rules,
    now: u64,
) -> Result<Grant, TokenError> {
    if key.family() != header.family() {
        // A key of another family never verifies: HMAC with an RSA key's bytes is the
        // classic confusion.
        return Err(TokenError::InvalidAlg);
    }
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let body = jsonwebtoken::decode::<Value>(token, key, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::InvalidAlg,
            _ => TokenError::Malformed("Invalid body"),
        })?
        .claims;
    claims(&body, rules, now)
}

/// The claims, in Prosody's order: `exp`, `nbf`, `iss`, `room`, `aud`.
fn claims(body: &Value, rules: &Rules, now: u64) -> Result<Grant, TokenError> {
    let Value::Object(body) = body else {
        return Err(TokenError::Malformed("Invalid body"));
    };
    let number = |name: &str, error: TokenError| match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(error),
    };
    let exp = number("exp", TokenError::ExpNotNumber)?;
    let nbf = number("nbf", TokenError::NbfNotNumber)?;
    let now = now as f64;
    let leeway = rules.leeway as f64;
    if let Some(exp) = exp
        && now >= exp + leeway
    {
        let valid_for = match body.get("iat") {
            Some(Value::Number(iat)) => iat.as_f64().map(|iat| (exp - iat) as i64),
            _ => None,
        };
        return Err(TokenError::Expired {
            since: (now - exp) as i64,
            valid_for,
        });
    }
    if let Some(nbf) = nbf
        && now + leeway < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    match body.get("iss") {
        None | Some(Value::Null) => return Err(TokenError::IssMissing),
        Some(iss) if !accepted(iss, &rules.issuers) => return Err(TokenError::IssInvalid),
        Some(_) => {}
    }
    let room = string(body.get("room"));
    if rules.require_room && room.is_none() {
        return Err(TokenError::RoomMissing);
    }
    match body.get("aud") {
        None | Some(Value::Null) => return Err(TokenError::AudMissing),
        Some(aud) if !accepted(aud, &rules.audiences) => return Err(TokenError::AudInvalid),
        Some(_) => {}
    }
    let context = body.get("context");
    let regex = is_true(
        context
            .and_then(|c| c.get("room"))
            .and_then(|r| r.get("regex")),
    );
    if regex
        && room
            .as_deref()
            .is_some_and(|r| r != "*" && room_regex(r).is_none())
    {
        return Err(TokenError::RoomRegex);
    }
    let user = context.and_then(|c| c.get("user"));
    let field = |name: &str| string(user.and_then(|u| u.get(name)));
    let sub = string(body.get("sub"));
    let tenant = string(context.and_then(|c| c.get("tenant")));
    let features = context
        .and_then(|c| c.get("features"))
        .and_then(Value::as_object)
        .map(|features| {
            features
                .iter()
                .map(|(name, value)| (name.clone(), is_true(Some(value))))
                .collect()
        })
        .unwrap_or_default();
    let affiliation = field("affiliation");
    let moderator = is_true(user.and_then(|u| u.get("moderator")))
        || is_true(body.get("moderator"))
        || matches!(
            affiliation.as_deref(),
            Some("owner" | "moderator" | "teacher")
        );
    Ok(Grant {
        rooms: RoomGrant {
            room,
            sub: sub.clone(),
            regex,
        },
        user: TokenUser {
            // A token without `context` may name its user with `user_id` alone.
            id: field("id").or_else(|| string(body.get("user_id"))),
            name: field("name"),
            email: field("email"),
            // Clients also accept `avatarUrl`.
            avatar: field("avatar").or_else(|| field("avatarUrl")),
        },
        group: string(context.and_then(|c| c.get("group"))),
        features,
        moderator,
        tenant,
        expires: exp.map(|exp| exp as i64),
    })
}

impl RoomGrant {
    /// Whether these claims open `room` (`mod_token_verification` with domain verification
    /// on: `room@conference.<sub>`, `[tenant]room@<muc>` for tenants, `*` for any room or
    /// any `sub`). Names compare lower-cased.
    pub fn allows(&self, room: &BareJid) -> bool {
        let Some(node) = room.node() else {
            return false;
        };
        let node = node.as_str().to_lowercase();
        let muc = room.domain().as_str().to_lowercase();
        let Some(sub) = self.sub.as_deref().map(str::to_lowercase) else {
            return false;
        };
        let Some(claimed) = self.room.as_deref().map(str::to_lowercase) else {
            // No room claim, and none required: any room of the domain the token is for.
            return self.sub_allows(&sub, &muc, tenant_of(&node).map(|(t, _)| t));
        };
        match tenant_of(&node) {
            Some((tenant, name)) => self.names(&claimed, name) && (sub == "*" || sub == tenant),
            None => self.names(&claimed, &node) && self.sub_allows(&sub, &muc, None),
        }
    }

    /// Whether the room claim (`claimed`, lower-cased) names the room `name`: `*`, the
    /// same name, or with `regex` a pattern whose first match is the whole name (as
    /// Prosody's `name:match(pattern)` must give back the name itself). Patterns are the
    /// `regex` crate's syntax (Prosody's are Lua patterns: `%d` there is `\d` here).
    fn names(&self, claimed: &str, name: &str) -> bool {
        if claimed == "*" {
            return true;
        }
        if !self.regex {
            return claimed == name;
        }
        let pattern = self.room.as_deref().unwrap_or_default();
        room_regex(pattern)
            .and_then(|regex| regex.find(name).map(|m| m.as_str() == name))
            .unwrap_or(false)
    }

    fn sub_allows(&self, sub: &str, muc: &str, tenant: Option<&str>) -> bool {
        match tenant {
            Some(tenant) => sub == "*" || sub == tenant,
            None => sub == "*" || muc.strip_prefix("conference.") == Some(sub),
        }
    }
}

/// `[tenant]room` → `(tenant, room)`: how the Jitsi deployments name a room of a tenant.
fn tenant_of(node: &str) -> Option<(&str, &str)> {
    let rest = node.strip_prefix('[')?;
    let (tenant, room) = rest.split_once(']')?;
    (!tenant.is_empty() && !room.is_empty()).then_some((tenant, room))
}

/// A claim matches an accepted list by equality, `*` accepting anything. An array claim
/// (RFC 7519 allows one for `aud`) matches when one of its entries does; Prosody compares
/// whole values, so there only `*` lets an array through.
fn accepted(claim: &Value, list: &[String]) -> bool {
    if list.iter().any(|entry| entry == "*") {
        return true;
    }
    match claim {
        Value::String(claim) => list.iter().any(|entry| entry == claim),
        Value::Array(claims) => claims
            .iter()
            .filter_map(Value::as_str)
            .any(|claim| list.iter().any(|entry| entry == claim)),
        _ => false,
    }
}

fn string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn is_true(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true))) || value.and_then(Value::as_str) == Some("true")
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = BASE64URL.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
