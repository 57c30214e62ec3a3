//! The LDAP shell: one connection per login (LDAPS, StartTLS, or plain when configured
//! so), binds and searches under a deadline, so that a directory that is down or slow
//! answers within `timeout_ms` instead of holding the login.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::{
    BindMode, Check, DirectoryError, DirectoryUser, LdapConfig, LdapConfigError, Transport,
    fill_dn, refuse_early,
};

/// LDAP result codes that mean "these credentials are not good" (RFC 4511 appendix A):
/// invalidCredentials, inappropriateAuthentication, insufficientAccessRights,
/// unwillingToPerform (a locked or disabled account on some servers).
const REFUSED_CODES: [u32; 4] = [49, 48, 50, 53];

/// The directory of `[auth.ldap]`.
pub struct Directory {
    config: LdapConfig,
    mode: BindMode,
    transport: Transport,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.config.url)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Checks the settings and reads the CA file; connects only when a login comes.
    pub fn new(config: &LdapConfig) -> Result<Self, LdapConfigError> {
        let mode = config.mode()?;
        let transport = config.transport()?;
        let tls = match &config.ca_file {
            Some(path) => Some(Arc::new(client_config(path)?)),
            None => None,
        };
        Ok(Self {
            config: config.clone(),
            mode,
            transport,
            tls,
        })
    }

    /// Whether `password` is `user`'s, and what the directory says of the user. Never
    /// takes longer than the configured timeout.
    pub async fn check(&self, user: &str, password: &str) -> Result<DirectoryUser, DirectoryError> {
        if let Some(refused) = refuse_early(user, password) {
            return Err(refused);
        }
        let limit = Duration::from_millis(self.config.timeout_ms);
        match tokio::time::timeout(limit, self.run(user, password)).await {
            Ok(verdict) => verdict,
            Err(_) => Err(DirectoryError::Unavailable(format!(
                "no answer from {} within {} ms",
                self.config.url, self.config.timeout_ms
            ))),
        }
    }

    async fn run(&self, user: &str, password: &str) -> Result<DirectoryUser, DirectoryError> {
        let mut ldap = self.connect().await?;
        let verdict = self.authenticate(&mut ldap, user, password).await;
        let _ = ldap.unbind().await;
        verdict
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_millis(self.config.connect_timeout_ms))
            .set_starttls(self.transport == Transport::StartTls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| self.unavailable("cannot connect", &e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!("LDAP connection ended: {e}");
            }
        });
        Ok(ldap)
    }

    async fn authenticate(
        &self,
        ldap: &mut Ldap,
        user: &str,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        let entry = match &self.mode {
            BindMode::Direct { template } => {
                bind(ldap, &fill_dn(template, user), password)
                    .await
                    .map_err(|e| self.bind_error(e))?;
                self.find_user(ldap, user).await?
            }
            BindMode::Search {
                dn,
                password: secret,
            } => {
                bind(ldap, dn, &secret.0).await.map_err(|e| match e {
                    Bind::Refused(code) => DirectoryError::Unavailable(format!(
                        "the service account {dn} was refused (LDAP result {code})"
                    )),
                    Bind::Failed(e) => self.unavailable("service bind", &e),
                })?;
                let entry = self.find_user(ldap, user).await?;
                bind(ldap, &entry.dn, password)
                    .await
                    .map_err(|e| self.bind_error(e))?;
                entry
            }
        };
        let (host, moderator) = self.config.checks(user, &entry.dn);
        if let Some(host) = host
            && !self.matches(ldap, &host).await?
        {
            return Err(DirectoryError::Refused("not in the host group"));
        }
        let moderator = match moderator {
            Some(check) => self.matches(ldap, &check).await?,
            None => false,
        };
        let first = |attribute: &str| {
            entry
                .attrs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
                .and_then(|(_, values)| values.first().cloned())
        };
        Ok(DirectoryUser {
            name: first(&self.config.name_attribute),
            email: first(&self.config.email_attribute),
            dn: entry.dn.clone(),
            moderator,
        })
    }

    /// The one entry below `base` that `user_filter` finds for `user`.
    async fn find_user(&self, ldap: &mut Ldap, user: &str) -> Result<SearchEntry, DirectoryError> {
        let attributes = [
            self.config.name_attribute.as_str(),
            self.config.email_attribute.as_str(),
        ];
        let (entries, _) = ldap
            .search(
                &self.config.base,
                Scope::Subtree,
                &self.config.user_search(user),
                attributes.to_vec(),
            )
            .await
            .and_then(|result| result.success())
            .map_err(|e| self.unavailable("user search", &e))?;
        let mut entries = entries.into_iter();
        match (entries.next(), entries.next()) {
            (Some(entry), None) => Ok(SearchEntry::construct(entry)),
            (None, _) => Err(DirectoryError::Refused("no entry matches user_filter")),
            (Some(_), Some(_)) => Err(DirectoryError::Refused(
                "more than one entry matches user_filter",
            )),
        }
    }

    /// Whether the entry at `check.base` matches `check.filter`.
    async fn matches(&self, ldap: &mut Ldap, check: &Check) -> Result<bool, DirectoryError> {
        let result = ldap
            .search(&check.base, Scope::Base, &check.filter, vec!["1.1"])
            .await
            .map_err(|e| self.unavailable("group check", &e))?;
        // noSuchObject: the group (or entry) is not there, so nobody is in it.
        match result.1.rc {
            0 => Ok(!result.0.is_empty()),
            32 => Ok(false),
            code => Err(DirectoryError::Unavailable(format!(
                "group check at {} answered LDAP result {code}",
                check.base
            ))),
        }
    }

    fn bind_error(&self, error: Bind) -> DirectoryError {
        match error {
            Bind::Refused(_) => DirectoryError::Refused("wrong password or unknown user"),
            Bind::Failed(e) => self.unavailable("bind", &e),
        }
    }

    fn unavailable(&self, what: &str, error: &LdapError) -> DirectoryError {
        DirectoryError::Unavailable(format!("{what} at {}: {error}", self.config.url))
    }
}

enum Bind {
    /// The server refused the credentials, with this result code.
    Refused(u32),
    Failed(LdapError),
}

async fn bind(ldap: &mut Ldap, dn: &str, password: &str) -> Result<(), Bind> {
    let result = ldap.simple_bind(dn, password).await.map_err(Bind::Failed)?;
    match result.rc {
        0 => Ok(()),
        code if REFUSED_CODES.contains(&code) => Err(Bind::Refused(code)),
        _ => Err(Bind::Failed(LdapError::from(result))),
    }
}

/// A rustls client that trusts exactly the CAs of `path`.
fn client_config(path: &std::path::Path) -> Result<rustls::ClientConfig, LdapConfigError> {
    let error = |detail: String| LdapConfigError::CaFile {
        path: path.display().to_string(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| error(e.to_string()))? {
        roots
            .add(cert.map_err(|e| error(e.to_string()))?)
            .map_err(|e| error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(error("no certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
