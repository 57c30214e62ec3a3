//! The STARTTLS certificate: the configured one, or a self-signed one generated on first
//! start and kept in the data directory so that clients can pin it.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid PEM in {0}")]
    Pem(String),
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Loads `certificate`/`key`, or `data_dir/xmpp-cert.pem`/`xmpp-key.pem`, generating the
/// latter for `domain` and its subdomains when missing.
pub fn server_config(
    domain: &str,
    data_dir: &Path,
    certificate: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = match (certificate, key) {
        (Some(cert), Some(key)) => (cert.to_path_buf(), key.to_path_buf()),
        _ => {
            let cert = data_dir.join("xmpp-cert.pem");
            let key = data_dir.join("xmpp-key.pem");
            if !cert.exists() || !key.exists() {
                generate(domain, &cert, &key)?;
            }
            (cert, key)
        }
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let chain = CertificateDer::pem_slice_iter(&read(&cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem(cert_path.display().to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&key_path)?)
        .map_err(|_| TlsError::Pem(key_path.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

fn generate(domain: &str, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let names =
        ["", "conference.", "guest.", "auth.", "focus."].map(|prefix| format!("{prefix}{domain}"));
    let generated = rcgen::generate_simple_self_signed(names.to_vec())?;
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| TlsError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    write_private(key_path, &generated.signing_key.serialize_pem()).map_err(|source| {
        TlsError::Write {
            path: key_path.display().to_string(),
            source,
        }
    })?;
    write(cert_path, generated.cert.pem())?;
    tracing::info!(
        "generated a self-signed XMPP certificate in {}",
        cert_path.display()
    );
    Ok(())
}

/// The private key file is created readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
