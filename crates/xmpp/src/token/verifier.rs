//! The shell around [`super::claims`]: finds the key a token's header asks for (the app
//! secret; a public key by `kid` from a folder, a key server or a JWKS, fetched with a
//! timeout and kept in a bounded cache) and reads the clock.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use sha2::{Digest, Sha256};

use super::claims::{self, Grant, Header, Rules};
use super::{TokenConfig, TokenConfigError, TokenError};

/// Largest key or key set read from a server or a file.
const MAX_KEY_BYTES: usize = 64 * 1024;
/// A JWKS is fetched again after this long (Prosody's `cache_keys_url` default)...
const JWKS_MAX_AGE: Duration = Duration::from_secs(6 * 3600);
/// ...or when it lacks a `kid`, but not more often than this.
const JWKS_RETRY: Duration = Duration::from_secs(30);

/// Verifies tokens against one configuration. Shared by every connection.
pub struct TokenVerifier {
    rules: Rules,
    secret: Option<DecodingKey>,
    key_server: Option<String>,
    key_folder: Option<PathBuf>,
    jwks_url: Option<String>,
    http: reqwest::Client,
    cache: Mutex<KeyCache>,
    jwks: Mutex<Option<(Instant, JwkSet)>>,
}

impl TokenVerifier {
    pub fn new(config: &TokenConfig) -> Result<Self, TokenConfigError> {
        let url = |text: &str| -> Result<Option<String>, TokenConfigError> {
            if text.is_empty() {
                return Ok(None);
            }
            if !(text.starts_with("http://") || text.starts_with("https://")) {
                return Err(TokenConfigError::BadUrl(text.to_owned()));
            }
            Ok(Some(text.trim_end_matches('/').to_owned()))
        };
        let key_server = url(&config.key_server)?;
        let jwks_url = url(&config.jwks_url)?;
        if let Some(folder) = &config.key_folder
            && !folder.is_dir()
        {
            return Err(TokenConfigError::BadFolder(folder.display().to_string()));
        }
        let secret = (!config.app_secret.0.is_empty())
            .then(|| DecodingKey::from_secret(config.app_secret.0.as_bytes()))
            .transpose()
            .map_err(|e| TokenConfigError::Client(e.to_string()))?;
        if secret.is_none()
            && key_server.is_none()
            && jwks_url.is_none()
            && config.key_folder.is_none()
        {
            return Err(TokenConfigError::NoKey);
        }
        let timeout = Duration::from_millis(config.key_fetch_timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| TokenConfigError::Client(e.to_string()))?;
        Ok(Self {
            rules: config.rules(),
            secret,
            key_server,
            key_folder: config.key_folder.clone(),
            jwks_url,
            http,
            cache: Mutex::new(KeyCache::new(config.key_cache_size.max(1))),
            jwks: Mutex::new(None),
        })
    }

    /// Verifies `token` now: what it grants, or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<Grant, TokenError> {
        let header = claims::parse_header(token, &self.rules)?;
        let key = self.key(&header).await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        claims::verify(token, &header, &key, &self.rules, now)
    }

    async fn key(&self, header: &Header) -> Result<DecodingKey, TokenError> {
        let has_public =
            self.key_server.is_some() || self.key_folder.is_some() || self.jwks_url.is_some();
        match header.alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                self.secret.clone().ok_or(TokenError::InvalidAlg)
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::ES256
            | Algorithm::ES384
                if has_public =>
            {
                let kid = header.kid.as_deref().ok_or(TokenError::KidMissing)?;
                self.public_key(kid, header.family())
                    .await
                    .inspect_err(|e| {
                        if let TokenError::KeyUnavailable { detail } = e {
                            tracing::warn!("token refused: no public key for its kid: {detail}");
                        }
                    })
            }
            _ => Err(TokenError::InvalidAlg),
        }
    }

    async fn public_key(
        &self,
        kid: &str,
        family: AlgorithmFamily,
    ) -> Result<DecodingKey, TokenError> {
        let cache_key = format!("{family:?}/{kid}");
        if let Some(key) = self.cache.lock().expect("cache lock").get(&cache_key) {
            return Ok(key);
        }
        let file = format!("{}.pem", hex(&Sha256::digest(kid.as_bytes())));
        let mut failures = Vec::new();
        let mut found = None;
        if let Some(folder) = &self.key_folder {
            match read_file(&folder.join(&file)).await {
                Ok(pem) => found = Some(pem_key(&pem, family)),
                Err(e) => failures.push(e),
            }
        }
        if found.is_none()
            && let Some(server) = &self.key_server
        {
            match self.fetch(&format!("{server}/{file}")).await {
                Ok(pem) => found = Some(pem_key(&pem, family)),
                Err(e) => failures.push(e),
            }
        }
        if found.is_none()
            && let Some(url) = &self.jwks_url
        {
            match self.jwks_key(url, kid).await {
                Ok(key) => found = Some(Ok(key)),
                Err(e) => failures.push(e),
            }
        }
        let key = found
            .unwrap_or_else(|| Err(failures.join("; ")))
            .map_err(|detail| TokenError::KeyUnavailable { detail })?;
        if key.family() != family {
            return Err(TokenError::KeyUnavailable {
                detail: format!("the key of kid {kid:?} is not of the token's family"),
            });
        }
        self.cache
            .lock()
            .expect("cache lock")
            .insert(cache_key, key.clone());
        Ok(key)
    }

    async fn jwks_key(&self, url: &str, kid: &str) -> Result<DecodingKey, String> {
        let lookup = |set: &JwkSet| set.find(kid).map(DecodingKey::from_jwk);
        let stale = {
            let jwks = self.jwks.lock().expect("jwks lock");
            match &*jwks {
                Some((fetched, set)) => {
                    if let Some(key) = lookup(set).filter(|_| fetched.elapsed() < JWKS_MAX_AGE) {
                        return key.map_err(|e| format!("{url}: key {kid:?}: {e}"));
                    }
                    fetched.elapsed() >= JWKS_RETRY
                }
                None => true,
            }
        };
        if !stale {
            return Err(format!("{url}: no key {kid:?}"));
        }
        let body = self.fetch(url).await?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: not a JWKS: {e}"))?;
        let key = lookup(&set);
        *self.jwks.lock().expect("jwks lock") = Some((Instant::now(), set));
        match key {
            Some(key) => key.map_err(|e| format!("{url}: key {kid:?}: {e}")),
            None => Err(format!("{url}: no key {kid:?}")),
        }
    }

    /// One GET, within the configured timeout and [`MAX_KEY_BYTES`].
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", describe(&e)))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", describe(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_KEY_BYTES {
                return Err(format!("{url}: more than {MAX_KEY_BYTES} bytes"));
            }
        }
        Ok(body)
    }
}

async fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() > MAX_KEY_BYTES {
        return Err(format!(
            "{}: more than {MAX_KEY_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        error.to_string()
    }
}

fn pem_key(pem: &[u8], family: AlgorithmFamily) -> Result<DecodingKey, String> {
    let key = match family {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        _ => return Err("unsupported key family".to_owned()),
    };
    key.map_err(|e| format!("not a {family:?} public key in PEM: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Public keys by family and `kid`, the oldest dropped beyond the capacity.
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    order: VecDeque<String>,
    capacity: usize,
}

impl KeyCache {
    fn new(capacity: usize) -> Self {
        Self {
            keys: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, key: &str) -> Option<DecodingKey> {
        self.keys.get(key).cloned()
    }

    fn insert(&mut self, name: String, key: DecodingKey) {
        if self.keys.insert(name.clone(), key).is_none() {
            self.order.push_back(name);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
    }
}
