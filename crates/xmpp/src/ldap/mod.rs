//! LDAP and Active Directory sign-in (`[auth.ldap]`): a user name and password from SASL
//! PLAIN checked by a simple bind, either directly (a bind DN template) or after a search
//! with a service account; group filters decide who may sign in (hosts) and who moderates.
//!
//! This module is the sans-IO part: the settings, the templates with the user name
//! escaped into them, the group checks to run and the verdicts. `directory` is the shell
//! that talks to the server (`ldap3`), with its connect and operation timeouts.

mod directory;

use std::path::PathBuf;

use serde::Deserialize;

pub use directory::Directory;

use crate::token::Secret;

/// Longest user name sent to the directory, in bytes.
pub const MAX_USER_BYTES: usize = 256;

/// `[auth.ldap]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapConfig {
    /// Check PLAIN logins of users without a local account against the directory.
    pub enabled: bool,
    /// `ldaps://host[:636]`, or `ldap://host[:389]` with StartTLS.
    pub url: String,
    /// PEM file of the CA(s) that sign the directory's certificate (default: the
    /// system's roots).
    pub ca_file: Option<PathBuf>,
    /// `ldap://` without StartTLS: passwords cross the network in clear. Only for a
    /// directory on the same machine.
    pub insecure: bool,
    /// Direct bind: the DN (or Active Directory's `user@domain`) to bind as, with
    /// `{user}` for the user name (DN-escaped).
    pub bind_dn: String,
    /// Search then bind: the service account that searches for the user's entry...
    pub service_dn: String,
    pub service_password: Secret,
    /// ...below `base`, with `user_filter` (`{user}` is filter-escaped). In direct mode
    /// the user's own bind reads its entry the same way.
    pub base: String,
    pub user_filter: String,
    /// Who may sign in at all (the hosts): members of this group DN...
    pub host_group: String,
    /// ...or users whose entry matches this filter (`{user}`, `{dn}`).
    pub host_filter: String,
    /// Who moderates (the `claim` policy's claim): members of this group DN...
    pub moderator_group: String,
    /// ...or users whose entry matches this filter.
    pub moderator_filter: String,
    /// Attributes of the user's entry shown to the others.
    pub name_attribute: String,
    pub email_attribute: String,
    /// How long connecting (TCP and TLS) may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How long the whole check (binds and searches) may take, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: String::new(),
            ca_file: None,
            insecure: false,
            bind_dn: String::new(),
            service_dn: String::new(),
            service_password: Secret::default(),
            base: String::new(),
            user_filter: "(uid={user})".into(),
            host_group: String::new(),
            host_filter: String::new(),
            moderator_group: String::new(),
            moderator_filter: String::new(),
            name_attribute: "displayName".into(),
            email_attribute: "mail".into(),
            connect_timeout_ms: 3000,
            timeout_ms: 5000,
        }
    }
}

/// How the user's password is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindMode {
    /// Bind as the template's DN with the user's password, then read the user's entry.
    Direct { template: String },
    /// Bind as the service account, find the user's entry, bind as it.
    Search { dn: String, password: Secret },
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ldaps,
    StartTls,
    Plain,
}

/// A membership test: an entry at `base` (scope base) matching `filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub base: String,
    pub filter: String,
}

/// The checks of one user, with the user name and DN escaped into them.
#[derive(Debug, Clone, Copy)]
enum Membership<'a> {
    None,
    Group(&'a str),
    Filter(&'a str),
}

impl Membership<'_> {
    fn check(self, user: &str, dn: &str) -> Option<Check> {
        match self {
            Self::None => None,
            // The member attributes of groupOfNames, groupOfUniqueNames, posixGroup and AD.
            Self::Group(group) => Some(Check {
                base: group.to_owned(),
                filter: fill_filter(
                    "(|(member={dn})(uniqueMember={dn})(memberUid={user}))",
                    user,
                    dn,
                ),
            }),
            Self::Filter(filter) => Some(Check {
                base: dn.to_owned(),
                filter: fill_filter(filter, user, dn),
            }),
        }
    }
}

/// A bad `[auth.ldap]`.
#[derive(Debug, thiserror::Error)]
pub enum LdapConfigError {
    #[error("[auth.ldap] url {0:?} is not ldaps:// or ldap://")]
    Url(String),
    #[error(
        "[auth.ldap] url is ldap:// and insecure is off: use ldaps:// or StartTLS (ldap:// is StartTLS unless insecure = true)"
    )]
    Insecure,
    #[error("[auth.ldap] set bind_dn (direct bind) or service_dn (search then bind), not both")]
    Mode,
    #[error("[auth.ldap] bind_dn must contain {{user}}")]
    Template,
    #[error("[auth.ldap] base must be set")]
    Base,
    #[error("[auth.ldap] {key} is not an LDAP filter: {value:?}")]
    Filter { key: &'static str, value: String },
    #[error("[auth.ldap] set {0}_group or {0}_filter, not both")]
    Membership(&'static str),
    #[error("[auth.ldap] cannot read ca_file {path}: {detail}")]
    CaFile { path: String, detail: String },
}

impl LdapConfig {
    /// The bind mode, or why the settings cannot work.
    pub fn mode(&self) -> Result<BindMode, LdapConfigError> {
        let mode = match (self.bind_dn.is_empty(), self.service_dn.is_empty()) {
            (false, true) if self.bind_dn.contains("{user}") => BindMode::Direct {
                template: self.bind_dn.clone(),
            },
            (false, true) => return Err(LdapConfigError::Template),
            (true, false) => BindMode::Search {
                dn: self.service_dn.clone(),
                password: self.service_password.clone(),
            },
            _ => return Err(LdapConfigError::Mode),
        };
        if self.base.is_empty() {
            return Err(LdapConfigError::Base);
        }
        let filters = [
            ("user_filter", &self.user_filter),
            ("host_filter", &self.host_filter),
            ("moderator_filter", &self.moderator_filter),
        ];
        for (key, value) in filters {
            let sample = fill_filter(value, "user", "uid=user,dc=example");
            if !value.is_empty() && ldap3::parse_filter(&sample).is_err() {
                return Err(LdapConfigError::Filter {
                    key,
                    value: value.clone(),
                });
            }
        }
        self.host()?;
        self.moderator()?;
        Ok(mode)
    }

    /// How to protect the connection, or why the URL cannot be used.
    pub fn transport(&self) -> Result<Transport, LdapConfigError> {
        let scheme = self.url.split_once("://").map(|(s, _)| s.to_lowercase());
        match scheme.as_deref() {
            Some("ldaps") => Ok(Transport::Ldaps),
            Some("ldap") if self.insecure => Ok(Transport::Plain),
            Some("ldap") => Ok(Transport::StartTls),
            _ => Err(LdapConfigError::Url(self.url.clone())),
        }
    }

    fn host(&self) -> Result<Membership<'_>, LdapConfigError> {
        membership("host", &self.host_group, &self.host_filter)
    }

    fn moderator(&self) -> Result<Membership<'_>, LdapConfigError> {
        membership("moderator", &self.moderator_group, &self.moderator_filter)
    }

    /// The filter that finds (and, in direct mode, re-reads) the user's entry below `base`.
    pub fn user_search(&self, user: &str) -> String {
        fill_filter(&self.user_filter, user, "")
    }

    /// The checks that decide whether `user` (entry `dn`) may sign in and moderates.
    pub fn checks(&self, user: &str, dn: &str) -> (Option<Check>, Option<Check>) {
        let none = |_| Membership::None;
        (
            self.host().unwrap_or_else(none).check(user, dn),
            self.moderator().unwrap_or_else(none).check(user, dn),
        )
    }
}

fn membership<'a>(
    key: &'static str,
    group: &'a str,
    filter: &'a str,
) -> Result<Membership<'a>, LdapConfigError> {
    match (group.is_empty(), filter.is_empty()) {
        (true, true) => Ok(Membership::None),
        (false, true) => Ok(Membership::Group(group)),
        (true, false) => Ok(Membership::Filter(filter)),
        (false, false) => Err(LdapConfigError::Membership(key)),
    }
}

/// `template` with `{user}` DN-escaped (RFC 4514): a name such as `x,ou=admins` or
/// `a+cn=b` stays one attribute value and cannot change the DN.
pub fn fill_dn(template: &str, user: &str) -> String {
    template.replace("{user}", &ldap3::dn_escape(user))
}

/// `template` with `{user}` and `{dn}` filter-escaped (RFC 4515): `*`, `(`, `)`, `\`
/// and NUL cannot widen the search.
pub fn fill_filter(template: &str, user: &str, dn: &str) -> String {
    template
        .replace("{user}", &ldap3::ldap_escape(user))
        .replace("{dn}", &ldap3::ldap_escape(dn))
}

/// What the directory says of a user whose password it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The DN of the user's entry.
    pub dn: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// In the moderator group (the `claim` policy's claim).
    pub moderator: bool,
}

/// Why a directory login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Wrong password, no such user, disabled or not a host: SASL `not-authorized`. The
    /// reason is for the log only.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// The directory is down, slow or misconfigured: SASL `temporary-auth-failure`.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

/// A user name the directory is never asked about.
pub fn refuse_early(user: &str, password: &str) -> Option<DirectoryError> {
    if user.is_empty() || user.len() > MAX_USER_BYTES {
        return Some(DirectoryError::Refused("user name empty or too long"));
    }
    // A simple bind with an empty password is an unauthenticated bind (RFC 4513
    // §5.1.2), which servers answer with success.
    password
        .is_empty()
        .then_some(DirectoryError::Refused("empty password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LdapConfig {
        LdapConfig {
            enabled: true,
            url: "ldaps://ldap.example.org".into(),
            bind_dn: "uid={user},ou=people,dc=example,dc=org".into(),
            base: "ou=people,dc=example,dc=org".into(),
            ..LdapConfig::default()
        }
    }

    #[test]
    fn injection_characters_stay_inside_one_value() {
        let template = "uid={user},ou=people,dc=example,dc=org";
        assert_eq!(
            fill_dn(template, "x,ou=admins"),
            "uid=x\\2cou\\3dadmins,ou=people,dc=example,dc=org"
        );
        assert_eq!(
            fill_dn(template, "a+cn=b"),
            "uid=a\\2bcn\\3db,ou=people,dc=example,dc=org"
        );
        assert_eq!(fill_dn("{user}@example.org", "bob"), "bob@example.org");
        let filter = fill_filter("(&(objectClass=person)(uid={user}))", "*)(uid=*", "");
        assert_eq!(filter, "(&(objectClass=person)(uid=\\2a\\29\\28uid=\\2a))");
        assert!(ldap3::parse_filter(&filter).is_ok());
        assert_eq!(
            fill_filter("(uid={user})", "a\\b\0", ""),
            "(uid=a\\5cb\\00)"
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        assert_eq!(
            config().mode().unwrap(),
            BindMode::Direct {
                template: "uid={user},ou=people,dc=example,dc=org".into()
            }
        );
        let both = LdapConfig {
            service_dn: "cn=svc".into(),
            ..config()
        };
        assert!(matches!(both.mode(), Err(LdapConfigError::Mode)));
        let no_user = LdapConfig {
            bind_dn: "cn=fixed".into(),
            ..config()
        };
        assert!(matches!(no_user.mode(), Err(LdapConfigError::Template)));
        let bad_filter = LdapConfig {
            user_filter: "(uid={user}".into(),
            ..config()
        };
        assert!(matches!(
            bad_filter.mode(),
            Err(LdapConfigError::Filter { .. })
        ));
        let two = LdapConfig {
            moderator_group: "cn=mods".into(),
            moderator_filter: "(a=b)".into(),
            ..config()
        };
        assert!(matches!(
            two.mode(),
            Err(LdapConfigError::Membership("moderator"))
        ));
        let plain = LdapConfig {
            url: "ldap://127.0.0.1".into(),
            ..config()
        };
        assert_eq!(plain.transport().unwrap(), Transport::StartTls);
        let insecure = LdapConfig {
            insecure: true,
            ..plain
        };
        assert_eq!(insecure.transport().unwrap(), Transport::Plain);
        let http = LdapConfig {
            url: "http://x".into(),
            ..config()
        };
        assert!(matches!(http.transport(), Err(LdapConfigError::Url(_))));
    }

    #[test]
    fn groups_are_checked_with_the_dn_escaped() {
        let config = LdapConfig {
            moderator_group: "cn=moderators,ou=groups,dc=example,dc=org".into(),
            host_filter: "(memberOf=cn=staff,dc=example,dc=org)".into(),
            ..config()
        };
        let dn = "uid=a(b,ou=people,dc=example,dc=org";
        let (host, moderator) = config.checks("a(b", dn);
        assert_eq!(
            host.unwrap(),
            Check {
                base: dn.into(),
                filter: "(memberOf=cn=staff,dc=example,dc=org)".into()
            }
        );
        let moderator = moderator.unwrap();
        assert_eq!(moderator.base, "cn=moderators,ou=groups,dc=example,dc=org");
        assert!(moderator.filter.contains("(member=uid=a\\28b,ou=people"));
        assert!(moderator.filter.contains("(memberUid=a\\28b)"));
    }

    #[test]
    fn empty_passwords_and_huge_names_never_reach_the_directory() {
        assert!(refuse_early("alice", "").is_some());
        assert!(refuse_early("", "pw").is_some());
        assert!(refuse_early(&"a".repeat(MAX_USER_BYTES + 1), "pw").is_some());
        assert!(refuse_early("alice", "pw").is_none());
    }
}
