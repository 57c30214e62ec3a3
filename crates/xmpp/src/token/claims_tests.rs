//! Every claim rule and each bad input, fed by hand with a fixed `now`.

use jsonwebtoken::{EncodingKey, Header as JwtHeader, encode};
use serde_json::json;

use super::*;

const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"correct horse battery staple";

fn rules() -> Rules {
    Rules {
        issuers: vec!["my_app".into()],
        audiences: vec!["*".into()],
        require_room: true,
        leeway: 0,
        max_bytes: 8192,
    }
}

fn claims_json() -> Value {
    json!({
        "iss": "my_app", "aud": "jitsi", "sub": "meet.example", "room": "standup",
        "exp": NOW + 3600, "nbf": NOW - 10,
        "context": {
            "user": {"id": "u42", "name": "Alice", "email": "a@example.com", "avatar": "https://a/x.png"},
            "group": "staff",
            "features": {"recording": "true", "livestreaming": false, "transcription": true}
        }
    })
}

fn hs256(claims: &Value) -> String {
    encode(
        &JwtHeader::default(),
        claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

fn check(token: &str, key: &DecodingKey, rules: &Rules) -> Result<Grant, TokenError> {
    let header = parse_header(token, rules)?;
    verify(token, &header, key, rules, NOW)
}

fn check_hs(claims: &Value) -> Result<Grant, TokenError> {
    check(
        &hs256(claims),
        &DecodingKey::from_secret(SECRET).unwrap(),
        &rules(),
    )
}

fn with(mut claims: Value, path: &[&str], value: Value) -> Value {
    let mut at = &mut claims;
    for key in &path[..path.len() - 1] {
        at = &mut at[*key];
    }
    match value {
        Value::Null => {
            at.as_object_mut().unwrap().remove(path[path.len() - 1]);
        }
        value => at[path[path.len() - 1]] = value,
    }
    claims
}

/// Header and payload as given, signed with the test secret, whatever they say.
fn raw_token(header: &str, claims: &Value) -> String {
    use hmac::{Hmac, Mac};
    let head = BASE64URL.encode(header);
    let body = BASE64URL.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    let signature = BASE64URL.encode(mac.finalize().into_bytes());
    format!("{head}.{body}.{signature}")
}

#[test]
fn a_good_token_grants_its_user_features_and_rooms() {
    let grant = check_hs(&claims_json()).unwrap();
    assert_eq!(grant.user.name.as_deref(), Some("Alice"));
    assert_eq!(grant.user.id.as_deref(), Some("u42"));
    assert_eq!(grant.user.email.as_deref(), Some("a@example.com"));
    assert_eq!(grant.user.avatar.as_deref(), Some("https://a/x.png"));
    assert_eq!(grant.group.as_deref(), Some("staff"));
    assert_eq!(
        grant.features,
        BTreeMap::from([
            ("livestreaming".into(), false),
            ("recording".into(), true),
            ("transcription".into(), true)
        ])
    );
    assert_eq!(grant.rooms.room.as_deref(), Some("standup"));
    assert_eq!(grant.rooms.sub.as_deref(), Some("meet.example"));
    assert!(!grant.moderator);
    assert_eq!(grant.expires, Some((NOW + 3600) as i64));
}

#[test]
fn exp_and_nbf_are_optional_numbers_checked_against_now() {
    let no_times = with(
        with(claims_json(), &["exp"], Value::Null),
        &["nbf"],
        Value::Null,
    );
    assert!(check_hs(&no_times).is_ok(), "exp and nbf are optional");
    let expired = with(claims_json(), &["exp"], json!(NOW - 12));
    assert_eq!(
        check_hs(&expired).unwrap_err().to_string(),
        "Not acceptable by exp (12 sec since expired)"
    );
    let with_iat = with(expired, &["iat"], json!(NOW - 112));
    assert_eq!(
        check_hs(&with_iat).unwrap_err().to_string(),
        "Not acceptable by exp (12 sec since expired, valid for:100 sec)"
    );
    let at_exp = with(claims_json(), &["exp"], json!(NOW));
    assert!(matches!(
        check_hs(&at_exp),
        Err(TokenError::Expired { since: 0, .. })
    ));
    let early = with(claims_json(), &["nbf"], json!(NOW + 1));
    assert_eq!(check_hs(&early), Err(TokenError::NotYetValid));
    assert_eq!(
        check_hs(&with(claims_json(), &["exp"], json!("tomorrow"))),
        Err(TokenError::ExpNotNumber)
    );
    assert_eq!(
        check_hs(&with(claims_json(), &["nbf"], json!(true))),
        Err(TokenError::NbfNotNumber)
    );
}

#[test]
fn leeway_forgives_that_much_skew_and_no_more() {
    let rules = Rules {
        leeway: 30,
        ..rules()
    };
    let key = DecodingKey::from_secret(SECRET).unwrap();
    let just_expired = hs256(&with(claims_json(), &["exp"], json!(NOW - 29)));
    assert!(check(&just_expired, &key, &rules).is_ok());
    let long_expired = hs256(&with(claims_json(), &["exp"], json!(NOW - 30)));
    assert!(check(&long_expired, &key, &rules).is_err());
    let soon = hs256(&with(claims_json(), &["nbf"], json!(NOW + 30)));
    assert!(check(&soon, &key, &rules).is_ok());
    let later = hs256(&with(claims_json(), &["nbf"], json!(NOW + 31)));
    assert_eq!(check(&later, &key, &rules), Err(TokenError::NotYetValid));
}

#[test]
fn issuer_audience_and_room_claims() {
    assert_eq!(
        check_hs(&with(claims_json(), &["iss"], Value::Null)),
        Err(TokenError::IssMissing)
    );
    assert_eq!(
        check_hs(&with(claims_json(), &["iss"], json!("other_app"))),
        Err(TokenError::IssInvalid)
    );
    assert_eq!(
        check_hs(&with(claims_json(), &["aud"], Value::Null)),
        Err(TokenError::AudMissing)
    );
    assert_eq!(
        check_hs(&with(claims_json(), &["room"], Value::Null)),
        Err(TokenError::RoomMissing)
    );
    let key = DecodingKey::from_secret(SECRET).unwrap();
    let strict = Rules {
        audiences: vec!["jitsi".into()],
        issuers: vec!["*".into()],
        require_room: false,
        ..rules()
    };
    let any_issuer = hs256(&with(claims_json(), &["iss"], json!("whoever")));
    assert!(
        check(&any_issuer, &key, &strict).is_ok(),
        "`*` accepts any issuer"
    );
    let wrong_aud = hs256(&with(claims_json(), &["aud"], json!("meet")));
    assert_eq!(
        check(&wrong_aud, &key, &strict),
        Err(TokenError::AudInvalid)
    );
    let array_aud = hs256(&with(claims_json(), &["aud"], json!(["meet", "jitsi"])));
    assert!(
        check(&array_aud, &key, &strict).is_ok(),
        "one entry matches"
    );
    let no_room = hs256(&with(claims_json(), &["room"], Value::Null));
    let grant = check(&no_room, &key, &strict).unwrap();
    assert_eq!(grant.rooms.room, None, "not required: accepted");
}

#[test]
fn moderator_claim_variants() {
    for (path, value, moderator) in [
        (&["context", "user", "moderator"][..], json!(true), true),
        (&["context", "user", "moderator"][..], json!("true"), true),
        (&["context", "user", "moderator"][..], json!(false), false),
        (&["context", "user", "moderator"][..], json!("yes"), false),
        (&["moderator"][..], json!(true), true),
        (
            &["context", "user", "affiliation"][..],
            json!("owner"),
            true,
        ),
        (
            &["context", "user", "affiliation"][..],
            json!("teacher"),
            true,
        ),
        (
            &["context", "user", "affiliation"][..],
            json!("moderator"),
            true,
        ),
        (
            &["context", "user", "affiliation"][..],
            json!("member"),
            false,
        ),
    ] {
        let grant = check_hs(&with(claims_json(), path, value.clone())).unwrap();
        assert_eq!(grant.moderator, moderator, "{path:?} = {value}");
    }
}

#[test]
fn user_id_and_avatar_url_fallbacks_and_tenant() {
    let claims = json!({"iss": "my_app", "aud": "x", "room": "*", "sub": "acme", "user_id": "u7",
        "context": {"user": {"avatarUrl": "https://a/b.png"}, "tenant": "acme"}});
    let grant = check_hs(&claims).unwrap();
    assert_eq!(grant.user.id.as_deref(), Some("u7"));
    assert_eq!(grant.user.avatar.as_deref(), Some("https://a/b.png"));
    assert_eq!(grant.tenant.as_deref(), Some("acme"));
}

#[test]
fn malformed_tokens_are_refused_with_prosodys_texts() {
    let key = DecodingKey::from_secret(SECRET).unwrap();
    let good = hs256(&claims_json());
    let (head, rest) = good.split_once('.').unwrap();
    let cases = [
        ("", "Invalid token"),
        ("abc", "Invalid token"),
        ("a.b", "Invalid token"),
        ("a.b.c.d", "Invalid token"),
        ("!!!.b.c", "bad token format"),
        (
            &format!("{}.{rest}", BASE64URL.encode("[1,2]")),
            "Invalid typ",
        ),
        (&format!("{head}.%%%.sig"), "Invalid signature"),
        (
            &format!("{head}.{}.sig", BASE64URL.encode("not json")),
            "Invalid signature",
        ),
    ];
    for (token, text) in cases {
        let error = check(token, &key, &rules()).unwrap_err();
        assert_eq!(error.to_string(), text, "{token:?}");
    }
    // Correctly signed, but the payload is no JSON object.
    let not_json = raw_token(r#"{"alg":"HS256","typ":"JWT"}"#, &json!("a string"));
    assert_eq!(
        check(&not_json, &key, &rules()).unwrap_err().to_string(),
        "Invalid body"
    );
}

#[test]
fn header_typ_alg_and_kid() {
    let key = DecodingKey::from_secret(SECRET).unwrap();
    let claims = claims_json();
    for (header, error) in [
        (r#"{"alg":"HS256"}"#, TokenError::InvalidTyp),
        (r#"{"alg":"HS256","typ":"jwt"}"#, TokenError::InvalidTyp),
        (r#"{"typ":"JWT"}"#, TokenError::AlgMissing),
        (r#"{"alg":"none","typ":"JWT"}"#, TokenError::InvalidAlg),
        (r#"{"alg":"","typ":"JWT"}"#, TokenError::InvalidAlg),
        (
            r#"{"alg":"HS256","typ":"JWT","kid":7}"#,
            TokenError::Malformed("bad token format"),
        ),
    ] {
        let token = raw_token(header, &claims);
        assert_eq!(check(&token, &key, &rules()), Err(error), "{header}");
    }
    // `alg: none` with an empty signature, as an attacker sends it.
    let none = format!(
        "{}.{}.",
        BASE64URL.encode(r#"{"alg":"none","typ":"JWT"}"#),
        BASE64URL.encode(claims.to_string())
    );
    assert_eq!(check(&none, &key, &rules()), Err(TokenError::InvalidAlg));
    let with_kid = raw_token(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#, &claims);
    assert_eq!(
        parse_header(&with_kid, &rules()).unwrap().kid.as_deref(),
        Some("k1")
    );
}

#[test]
fn a_wrong_signature_is_refused() {
    let other = DecodingKey::from_secret(b"another secret").unwrap();
    let token = hs256(&claims_json());
    assert_eq!(
        check(&token, &other, &rules()),
        Err(TokenError::BadSignature)
    );
    // A payload swapped under a valid signature.
    let forged = hs256(&with(claims_json(), &["room"], json!("*")));
    let (head, _) = token.rsplit_once('.').unwrap();
    let (_, signature) = forged.rsplit_once('.').unwrap();
    let mixed = format!("{head}.{signature}");
    let key = DecodingKey::from_secret(SECRET).unwrap();
    assert_eq!(check(&mixed, &key, &rules()), Err(TokenError::BadSignature));
}

#[test]
fn rsa_and_ec_tokens_and_key_confusion() {
    let rsa = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let rsa_public = rsa.public_key_pem();
    let rsa_key = DecodingKey::from_rsa_pem(rsa_public.as_bytes()).unwrap();
    let mut header = JwtHeader::new(Algorithm::RS256);
    header.kid = Some("tenant/key1".into());
    let signing = EncodingKey::from_rsa_pem(rsa.serialize_pem().as_bytes()).unwrap();
    let token = encode(&header, &claims_json(), &signing).unwrap();
    let grant = check(&token, &rsa_key, &rules()).unwrap();
    assert_eq!(grant.user.name.as_deref(), Some("Alice"));

    // HS256 "signed" with the RSA public key's PEM as secret: the classic confusion.
    let confused = encode(
        &JwtHeader::default(),
        &claims_json(),
        &EncodingKey::from_secret(rsa_public.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        check(&confused, &rsa_key, &rules()),
        Err(TokenError::InvalidAlg)
    );
    // And an RS256 token checked with a secret.
    let secret = DecodingKey::from_secret(SECRET).unwrap();
    assert_eq!(
        check(&token, &secret, &rules()),
        Err(TokenError::InvalidAlg)
    );

    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_key = DecodingKey::from_ec_pem(ec.public_key_pem().as_bytes()).unwrap();
    let mut header = JwtHeader::new(Algorithm::ES256);
    header.kid = Some("ec1".into());
    let signing = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
    let token = encode(&header, &claims_json(), &signing).unwrap();
    assert!(check(&token, &ec_key, &rules()).is_ok());
    assert_eq!(
        check(&token, &rsa_key, &rules()),
        Err(TokenError::InvalidAlg)
    );
}

#[test]
fn a_megabyte_token_is_refused_unread() {
    let huge = "a".repeat(1 << 20);
    assert_eq!(
        parse_header(&huge, &rules()),
        Err(TokenError::TooLarge {
            size: 1 << 20,
            max: 8192
        })
    );
    let big_claims = with(claims_json(), &["pad"], json!("x".repeat(9000)));
    assert!(matches!(
        check_hs(&big_claims),
        Err(TokenError::TooLarge { .. })
    ));
}

fn room(jid: &str) -> BareJid {
    BareJid::new(jid).unwrap()
}

fn grant(room: &str, sub: &str) -> RoomGrant {
    RoomGrant {
        room: Some(room.into()),
        sub: Some(sub.into()),
        regex: false,
    }
}

#[test]
fn rooms_as_mod_token_verification_checks_them() {
    let cases = [
        // (room claim, sub, room JID, allowed)
        (
            "standup",
            "meet.example",
            "standup@conference.meet.example",
            true,
        ),
        (
            "StandUp",
            "meet.example",
            "standup@conference.meet.example",
            true,
        ),
        (
            "standup",
            "meet.example",
            "other@conference.meet.example",
            false,
        ),
        (
            "*",
            "meet.example",
            "anything@conference.meet.example",
            true,
        ),
        ("standup", "*", "standup@conference.meet.example", true),
        (
            "standup",
            "other.example",
            "standup@conference.meet.example",
            false,
        ),
        ("*", "*", "x@conference.meet.example", true),
        // Tenants: `[tenant]room`, `sub` names the tenant.
        (
            "standup",
            "acme",
            "[acme]standup@conference.meet.example",
            true,
        ),
        (
            "standup",
            "acme",
            "[evil]standup@conference.meet.example",
            false,
        ),
        (
            "standup",
            "acme",
            "[acme]other@conference.meet.example",
            false,
        ),
        ("*", "acme", "[acme]whatever@conference.meet.example", true),
        ("standup", "*", "[any]standup@conference.meet.example", true),
        ("standup", "acme", "standup@conference.meet.example", false),
        (
            "[acme]standup",
            "meet.example",
            "[acme]standup@conference.meet.example",
            false,
        ),
    ];
    for (claim, sub, jid, allowed) in cases {
        assert_eq!(
            grant(claim, sub).allows(&room(jid)),
            allowed,
            "room={claim} sub={sub} → {jid}"
        );
    }
    let no_sub = RoomGrant {
        room: Some("*".into()),
        sub: None,
        regex: false,
    };
    assert!(!no_sub.allows(&room("a@conference.meet.example")));
    let no_room = RoomGrant {
        room: None,
        sub: Some("meet.example".into()),
        regex: false,
    };
    assert!(no_room.allows(&room("a@conference.meet.example")));
    assert!(!no_room.allows(&room("a@conference.other.example")));
}

#[test]
fn room_regex_matches_whole_names_and_bad_patterns_are_refused() {
    let claims = with(
        claims_json(),
        &["context", "room"],
        json!({"regex": "true"}),
    );
    let claims = with(claims, &["room"], json!("team-[0-9]+"));
    let grant = check_hs(&claims).unwrap().rooms;
    assert!(grant.regex);
    let cases = [
        ("team-1@conference.meet.example", true),
        ("team-42@conference.meet.example", true),
        // The first match must be the whole name, as Prosody's `name:match(pattern)`.
        ("team-1x@conference.meet.example", false),
        ("xteam-1@conference.meet.example", false),
        ("team-@conference.meet.example", false),
        ("team-1@conference.other.example", false),
    ];
    for (jid, allowed) in cases {
        assert_eq!(grant.allows(&room(jid)), allowed, "{jid}");
    }
    // Without the flag the same claim is a plain name.
    let literal = RoomGrant {
        regex: false,
        ..grant.clone()
    };
    assert!(!literal.allows(&room("team-1@conference.meet.example")));
    // Not a pattern, too long, or too large compiled: refused at login, not at each join.
    let huge_repetition = "(a{1000}){1000}";
    for pattern in ["team-(", &"a".repeat(257), huge_repetition] {
        let claims = with(claims.clone(), &["room"], json!(pattern));
        assert_eq!(
            check_hs(&claims).unwrap_err(),
            TokenError::RoomRegex,
            "{pattern}"
        );
    }
    // `*` is any room, with or without the flag.
    let any = with(claims, &["room"], json!("*"));
    assert!(
        check_hs(&any)
            .unwrap()
            .rooms
            .allows(&room("x@conference.meet.example"))
    );
}
