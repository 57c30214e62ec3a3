//! SCRAM-SHA-1 client side (RFC 5802), without channel binding.
//!
//! Hand-written on hmac/sha1/pbkdf2 because the Rust SCRAM client crates either lack
//! SHA-1 or cannot reuse the salted password. Reuse matters here: like real clients
//! (which store it), the load generator derives the salted password once per account
//! instead of spending its share of the CPU on PBKDF2 at every login.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

type HmacSha1 = Hmac<Sha1>;

/// What a salted password is derived from: password, salt, iteration count.
type SaltedKey = (String, Vec<u8>, u32);

/// Salted passwords already derived.
#[derive(Default)]
pub struct ScramCache {
    salted: Mutex<HashMap<SaltedKey, [u8; 20]>>,
}

impl ScramCache {
    fn salted_password(&self, password: &str, salt: &[u8], iterations: u32) -> [u8; 20] {
        let key = (password.to_owned(), salt.to_vec(), iterations);
        if let Some(salted) = self.salted.lock().expect("cache lock").get(&key) {
            return *salted;
        }
        let mut salted = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), salt, iterations, &mut salted);
        self.salted.lock().expect("cache lock").insert(key, salted);
        salted
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut mac = HmacSha1::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The client's state between its first message and the server's challenge.
pub struct ScramExchange {
    client_first_bare: String,
    client_nonce: String,
}

/// Checks the server's final message.
pub struct ServerVerifier {
    expected_signature: [u8; 20],
}

impl ScramExchange {
    /// Starts an exchange; returns the client-first message to send.
    pub fn start(username: &str) -> (Self, String) {
        let client_nonce = BASE64.encode(rand::random::<[u8; 18]>());
        let escaped = username.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={escaped},r={client_nonce}");
        let message = format!("n,,{client_first_bare}");
        (
            Self {
                client_first_bare,
                client_nonce,
            },
            message,
        )
    }

    /// Answers the server-first message with the client proof.
    pub fn finish(
        self,
        server_first: &str,
        password: &str,
        cache: &ScramCache,
    ) -> anyhow::Result<(String, ServerVerifier)> {
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|part| part.strip_prefix(name))
                .ok_or_else(|| anyhow!("SCRAM server-first without {name}: {server_first:?}"))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            bail!("SCRAM server nonce does not extend ours: {server_first:?}");
        }
        let salt = BASE64.decode(field("s=")?)?;
        let iterations: u32 = field("i=")?.parse()?;

        let salted = cache.salted_password(password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 20] = Sha1::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        let expected_signature = hmac(&server_key, auth_message.as_bytes());
        let message = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((message, ServerVerifier { expected_signature }))
    }
}

impl ServerVerifier {
    /// Fails unless the server proved it knows the password too.
    pub fn verify(&self, server_final: &str) -> anyhow::Result<()> {
        let signature = server_final
            .strip_prefix("v=")
            .ok_or_else(|| anyhow!("SCRAM server-final without v=: {server_final:?}"))?;
        if BASE64.decode(signature)? != self.expected_signature {
            bail!("SCRAM server signature does not match");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SCRAM-SHA-1 example exchange of RFC 5802 section 5.
    #[test]
    fn rfc5802_example() {
        let exchange = ScramExchange {
            client_first_bare: "n=user,r=fyko+d2lbbFgONRv9qkxdawL".into(),
            client_nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
        };
        let server_first = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        let (client_final, verifier) = exchange
            .finish(server_first, "pencil", &ScramCache::default())
            .unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        verifier.verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        assert!(verifier.verify("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_err());
    }
}
