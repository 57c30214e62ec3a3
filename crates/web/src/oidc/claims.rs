//! From the claims of a verified ID token to the Convene user its Jitsi token describes:
//! display name, email, avatar, and the moderator right by a group or a claim.

use serde_json::{Map, Value};

use super::OidcConfig;

/// Longest claim value copied into the Jitsi token (names, emails, avatar URLs).
const MAX_CLAIM_CHARS: usize = 512;

/// Who signed in, as the Jitsi token's `context.user` will say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcUser {
    /// The provider's `sub`.
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    pub moderator: bool,
}

/// Maps `claims` (the ID token's payload, already verified) as `config` says.
pub fn map_claims(config: &OidcConfig, claims: &Map<String, Value>) -> OidcUser {
    let text = |path: &str| {
        lookup(claims, path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(MAX_CLAIM_CHARS).collect::<String>())
    };
    let name = text(&config.name_claim).or_else(|| text("preferred_username"));
    OidcUser {
        id: text("sub").unwrap_or_default(),
        name,
        email: text(&config.email_claim),
        avatar: text(&config.avatar_claim),
        moderator: is_moderator(config, claims),
    }
}

/// With `moderator_claim` set: the claim is `true` (or `"true"`) when no
/// `moderator_values` are given; otherwise the claim (a string or a list of strings, such
/// as `groups`) holds one of them.
fn is_moderator(config: &OidcConfig, claims: &Map<String, Value>) -> bool {
    let Some(value) = config
        .moderator_claim
        .as_deref()
        .and_then(|path| lookup(claims, path))
    else {
        return false;
    };
    let wanted = &config.moderator_values;
    if wanted.is_empty() {
        return matches!(value, Value::Bool(true)) || value.as_str() == Some("true");
    }
    let has = |v: &Value| v.as_str().is_some_and(|s| wanted.iter().any(|w| w == s));
    match value {
        Value::Array(items) => items.iter().any(has),
        other => has(other),
    }
}

/// A claim by its dotted path (`realm_access.roles`); a key that itself holds dots
/// (`https://example.com/roles`) is found whole first.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn standard_claims_map_to_the_user() {
        let user = map_claims(
            &OidcConfig::default(),
            &claims(
                json!({"sub": "u1", "name": "Alice", "email": "a@x", "picture": "https://x/a.png"}),
            ),
        );
        assert_eq!(
            user,
            OidcUser {
                id: "u1".into(),
                name: Some("Alice".into()),
                email: Some("a@x".into()),
                avatar: Some("https://x/a.png".into()),
                moderator: false,
            }
        );
        let user = map_claims(
            &OidcConfig::default(),
            &claims(json!({"sub": "u2", "preferred_username": "bob", "name": 7})),
        );
        assert_eq!(user.name.as_deref(), Some("bob"));
        assert_eq!(user.email, None);
    }

    #[test]
    fn moderators_by_group_nested_role_or_boolean_claim() {
        let mut config = OidcConfig {
            moderator_claim: Some("groups".into()),
            moderator_values: vec!["hosts".into()],
            ..OidcConfig::default()
        };
        let member = claims(json!({"sub": "a", "groups": ["staff", "hosts"]}));
        let other = claims(json!({"sub": "b", "groups": ["staff"]}));
        let odd = claims(json!({"sub": "c", "groups": {"hosts": true}}));
        assert!(map_claims(&config, &member).moderator);
        assert!(!map_claims(&config, &other).moderator);
        assert!(!map_claims(&config, &odd).moderator);

        config.moderator_claim = Some("realm_access.roles".into());
        let keycloak = claims(json!({"sub": "a", "realm_access": {"roles": ["hosts"]}}));
        assert!(map_claims(&config, &keycloak).moderator);

        config.moderator_claim = Some("is_host".into());
        config.moderator_values.clear();
        assert!(map_claims(&config, &claims(json!({"sub": "a", "is_host": true}))).moderator);
        assert!(map_claims(&config, &claims(json!({"sub": "a", "is_host": "true"}))).moderator);
        assert!(!map_claims(&config, &claims(json!({"sub": "a", "is_host": "yes"}))).moderator);
        assert!(!map_claims(&config, &claims(json!({"sub": "a"}))).moderator);
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(10_000);
        let user = map_claims(
            &OidcConfig::default(),
            &claims(json!({"sub": "a", "name": long})),
        );
        assert_eq!(user.name.unwrap().len(), MAX_CLAIM_CHARS);
    }
}
