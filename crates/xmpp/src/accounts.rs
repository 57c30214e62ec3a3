//! Accounts in SQLite (`data_dir/accounts.sqlite`): SCRAM salted credentials per hash,
//! never passwords.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::sasl::{CredentialLookup, ScramCredentials, ScramHash};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("account database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("invalid user name {0:?}")]
    InvalidName(String),
    #[error("no such account {0:?}")]
    NoSuchAccount(String),
    #[error("account {0:?} already exists")]
    Exists(String),
}

pub struct Accounts {
    db: Mutex<Connection>,
}

impl Accounts {
    pub fn open(data_dir: &Path) -> Result<Self, AccountError> {
        let db = Connection::open(data_dir.join("accounts.sqlite"))?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS credentials (
                username TEXT NOT NULL,
                hash TEXT NOT NULL,
                salt BLOB NOT NULL,
                iterations INTEGER NOT NULL,
                stored_key BLOB NOT NULL,
                server_key BLOB NOT NULL,
                PRIMARY KEY (username, hash)
            )",
        )?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn exists(&self, username: &str) -> Result<bool, AccountError> {
        let found: Option<i64> = self
            .db()
            .query_row(
                "SELECT 1 FROM credentials WHERE username = ?1 LIMIT 1",
                [username],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Creates an account (`replace`: only an existing one, to change its password).
    pub fn set_password(
        &self,
        username: &str,
        password: &str,
        replace: bool,
    ) -> Result<(), AccountError> {
        let username = normalize(username)?;
        match (self.exists(&username)?, replace) {
            (true, false) => return Err(AccountError::Exists(username)),
            (false, true) => return Err(AccountError::NoSuchAccount(username)),
            _ => {}
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        for hash in ScramHash::ALL {
            let c = ScramCredentials::new_random(hash, password);
            tx.execute(
                "INSERT OR REPLACE INTO credentials VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    username,
                    hash.name(),
                    c.salt,
                    c.iterations,
                    c.stored_key,
                    c.server_key
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn delete(&self, username: &str) -> Result<(), AccountError> {
        let username = normalize(username)?;
        if self
            .db()
            .execute("DELETE FROM credentials WHERE username = ?1", [&username])?
            == 0
        {
            return Err(AccountError::NoSuchAccount(username));
        }
        Ok(())
    }
}

impl CredentialLookup for Accounts {
    fn credentials(&self, username: &str, hash: ScramHash) -> Option<ScramCredentials> {
        let result = self
            .db()
            .query_row(
                "SELECT salt, iterations, stored_key, server_key FROM credentials WHERE username = ?1 AND hash = ?2",
                params![username, hash.name()],
                |row| {
                    Ok(ScramCredentials {
                        salt: row.get(0)?,
                        iterations: row.get(1)?,
                        stored_key: row.get(2)?,
                        server_key: row.get(3)?,
                    })
                },
            )
            .optional();
        result.unwrap_or_else(|e| {
            tracing::error!("account lookup failed: {e}");
            None
        })
    }
}

/// A user name as stored: the JID node, lowercased; `user@domain` is accepted too.
pub fn normalize(name: &str) -> Result<String, AccountError> {
    let node = name.split('@').next().unwrap_or_default();
    match jid::BareJid::new(&format!("{node}@example.invalid")) {
        Ok(jid) if !node.is_empty() => Ok(jid
            .node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default()),
        _ => Err(AccountError::InvalidName(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_store_scram_credentials_only() {
        let dir = std::env::temp_dir().join(format!(
            "convene-accounts-{}",
            crate::session::random_hex(6)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let accounts = Accounts::open(&dir).unwrap();
        accounts
            .set_password("Alice@example.com", "secret", false)
            .unwrap();
        assert!(matches!(
            accounts.set_password("alice", "x", false),
            Err(AccountError::Exists(_))
        ));
        let stored = accounts.credentials("alice", ScramHash::Sha256).unwrap();
        assert_eq!(
            stored,
            ScramCredentials::derive(
                ScramHash::Sha256,
                "secret",
                stored.salt.clone(),
                stored.iterations
            )
        );
        let raw = std::fs::read(dir.join("accounts.sqlite")).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"secret"));
        accounts.delete("alice").unwrap();
        assert!(accounts.credentials("alice", ScramHash::Sha1).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
