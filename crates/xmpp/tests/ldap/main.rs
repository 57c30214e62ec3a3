//! LDAP sign-in against Debian's `slapd`, started by each test on loopback: the directory
//! check itself (LDAPS and StartTLS, direct and search-then-bind, wrong passwords, a
//! disabled user, groups, injection characters, certificates, a stopped or silent
//! server), then slixmpp logging in with SASL PLAIN through the server.

#[path = "../common/mod.rs"]
mod common;
mod slapd;

use std::time::{Duration, Instant};

use common::{DataDir, run_peer_script, start_server};
use convene_xmpp::Config;
use convene_xmpp::auth::{AuthConfig, ModeratorPolicy};
use convene_xmpp::ldap::{Directory, DirectoryError, LdapConfig, LdapConfigError};
use convene_xmpp::token::Secret;
use slapd::{SERVICE, SERVICE_PASSWORD, SUFFIX, Slapd};

const PEOPLE: &str = "ou=people,dc=example,dc=org";
/// Enabled users only: a disabled account is one the filter does not find.
const USER_FILTER: &str = "(&(objectClass=inetOrgPerson)(uid={user})(!(employeeType=disabled)))";

/// Search then bind over LDAPS, verified against the test's CA, with both groups.
fn search_config(slapd: &Slapd) -> LdapConfig {
    LdapConfig {
        enabled: true,
        url: format!("ldaps://{}", slapd.ldaps),
        ca_file: Some(slapd.ca_file()),
        service_dn: SERVICE.into(),
        service_password: Secret(SERVICE_PASSWORD.into()),
        base: SUFFIX.into(),
        user_filter: USER_FILTER.into(),
        host_group: format!("cn=hosts,ou=groups,{SUFFIX}"),
        moderator_filter: format!("(memberOf=cn=moderators,ou=groups,{SUFFIX})"),
        ..LdapConfig::default()
    }
}

/// Direct bind over StartTLS with a DN template.
fn direct_config(slapd: &Slapd) -> LdapConfig {
    LdapConfig {
        url: format!("ldap://{}", slapd.ldap),
        service_dn: String::new(),
        service_password: Secret::default(),
        bind_dn: format!("uid={{user}},{PEOPLE}"),
        base: PEOPLE.into(),
        moderator_filter: String::new(),
        moderator_group: format!("cn=moderators,ou=groups,{SUFFIX}"),
        ..search_config(slapd)
    }
}

fn refused(verdict: Result<convene_xmpp::ldap::DirectoryUser, DirectoryError>, what: &str) {
    assert!(
        matches!(verdict, Err(DirectoryError::Refused(_))),
        "{what}: {verdict:?}"
    );
}

#[tokio::test]
async fn search_then_bind_over_ldaps() {
    let slapd = Slapd::start();
    let directory = Directory::new(&search_config(&slapd)).unwrap();
    let alice = directory.check("alice", "alice-pw").await.unwrap();
    assert_eq!(alice.dn, format!("uid=alice,{PEOPLE}"));
    assert_eq!(alice.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert!(alice.moderator, "memberOf cn=moderators");
    let bob = directory.check("bob", "bob-pw").await.unwrap();
    assert!(!bob.moderator && bob.name.is_none());
    refused(directory.check("alice", "bob-pw").await, "wrong password");
    refused(directory.check("alice", "").await, "empty password");
    refused(directory.check("nobody", "x").await, "unknown user");
    refused(directory.check("carol", "carol-pw").await, "disabled user");
    refused(
        directory.check("eve", "eve-pw").await,
        "not in the host group",
    );
    // Injection characters are searched for literally: they neither widen the search
    // (which would find several entries, or alice) nor break it.
    for user in [
        "*",
        "a*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice\\",
        "alice\0",
    ] {
        refused(directory.check(user, "alice-pw").await, user);
    }
    let dan = directory.check("d(a)n", "dan-pw").await.unwrap();
    assert_eq!(dan.dn, format!("uid=d(a)n,{PEOPLE}"));
}

#[tokio::test]
async fn direct_bind_over_starttls_with_a_moderator_group() {
    let slapd = Slapd::start();
    let directory = Directory::new(&direct_config(&slapd)).unwrap();
    let alice = directory.check("alice", "alice-pw").await.unwrap();
    assert!(alice.moderator, "alice is in cn=moderators");
    assert!(!directory.check("bob", "bob-pw").await.unwrap().moderator);
    refused(directory.check("bob", "alice-pw").await, "wrong password");
    refused(directory.check("carol", "carol-pw").await, "disabled user");
    // DN-escaped: `o,neil` is one value (and logs in); the others cannot become the
    // admin's or another user's DN.
    let oneil = directory.check("o,neil", "oneil-pw").await.unwrap();
    // (as slapd spells the DN it stored)
    assert_eq!(oneil.dn, format!("uid=o\\2Cneil,{PEOPLE}"));
    for user in ["alice,ou=people", "x,cn=admin", "alice+cn=Alice", "*"] {
        refused(directory.check(user, "alice-pw").await, user);
    }
}

#[tokio::test]
async fn certificates_are_verified_and_plain_ldap_needs_insecure() {
    let slapd = Slapd::start();
    // Another CA than the one that signed the server: no connection.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let other_ca = slapd.dir().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    for url in [
        format!("ldaps://{}", slapd.ldaps),
        format!("ldap://{}", slapd.ldap),
    ] {
        let config = LdapConfig {
            url: url.clone(),
            ca_file: Some(other_ca.clone()),
            ..search_config(&slapd)
        };
        let verdict = Directory::new(&config)
            .unwrap()
            .check("alice", "alice-pw")
            .await;
        assert!(
            matches!(verdict, Err(DirectoryError::Unavailable(_))),
            "{url}: {verdict:?}"
        );
    }
    let insecure = LdapConfig {
        url: format!("ldap://{}", slapd.ldap),
        insecure: true,
        ca_file: None,
        ..search_config(&slapd)
    };
    assert!(
        Directory::new(&insecure)
            .unwrap()
            .check("bob", "bob-pw")
            .await
            .is_ok()
    );
    let not_a_ca = LdapConfig {
        ca_file: Some(slapd.dir().join("slapd.conf")),
        ..search_config(&slapd)
    };
    assert!(matches!(
        Directory::new(&not_a_ca),
        Err(LdapConfigError::CaFile { .. })
    ));
}

#[tokio::test]
async fn a_stopped_or_silent_directory_answers_within_seconds() {
    let mut slapd = Slapd::start();
    let directory = Directory::new(&search_config(&slapd)).unwrap();
    assert!(directory.check("bob", "bob-pw").await.is_ok());
    slapd.stop();
    let began = Instant::now();
    let verdict = directory.check("bob", "bob-pw").await;
    assert!(
        matches!(verdict, Err(DirectoryError::Unavailable(_))),
        "{verdict:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    // A server that accepts and never answers: the deadline ends the check.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    for url in [format!("ldaps://{addr}"), format!("ldap://{addr}")] {
        let config = LdapConfig {
            url,
            connect_timeout_ms: 1000,
            timeout_ms: 1500,
            ..search_config(&slapd)
        };
        let began = Instant::now();
        let verdict = Directory::new(&config)
            .unwrap()
            .check("bob", "bob-pw")
            .await;
        let took = began.elapsed();
        assert!(
            matches!(verdict, Err(DirectoryError::Unavailable(_))),
            "{verdict:?}"
        );
        assert!(took < Duration::from_millis(2500), "{took:?}");
        println!("silent {}: {verdict:?} after {took:?}", config.url);
    }
    held.abort();
}

/// slixmpp logs in with PLAIN (over STARTTLS) as directory users and as a local account;
/// with the `claim` policy the moderator group decides who owns the room; a wrong
/// password is `not-authorized`, a stopped directory `temporary-auth-failure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slixmpp_logs_in_with_plain_against_the_directory() {
    const DOMAIN: &str = "convene.test";
    let mut slapd = Slapd::start();
    let data_dir = DataDir::new();
    convene_xmpp::accounts::Accounts::open(data_dir.path())
        .unwrap()
        .set_password("local", "local-pw", false)
        .unwrap();
    let config = Config {
        auth: AuthConfig {
            moderator: ModeratorPolicy::Claim,
            ldap: direct_config(&slapd),
            ..AuthConfig::default()
        },
        ..Config::default()
    };
    let server = start_server(DOMAIN, &data_dir, config).await;
    let args = |extra: &[&str]| {
        let mut args = vec![
            format!("port={}", server.c2s_addr().port()),
            format!("domain={DOMAIN}"),
            "user=alice".into(),
            "password=alice-pw".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let others = args(&[
        "other=bob",
        "other_password=bob-pw",
        "local=local",
        "local_password=local-pw",
    ]);
    run_peer_script("xmpp_scenarios.py", "directory", &others).await;
    slapd.stop();
    let stdout = run_peer_script("xmpp_scenarios.py", "directory-down", &args(&[])).await;
    println!("{stdout}");
}
