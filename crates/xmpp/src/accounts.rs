//! Accounts in SQLite (`data_dir/accounts.sqlite`): SCRAM salted credentials per hash,
//! never passwords. [`Accounts`] is the database itself (used as is by `convene user`);
//! the running server reaches it through an [`AccountStore`], which owns it on a thread of
//! its own so that lookups never block the async runtime.

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::auth::{Answer, Lookup};
use crate::sasl::{ScramCredentials, ScramHash};

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
    #[error("cannot start the account store thread: {0}")]
    Thread(std::io::Error),
}

pub struct Accounts {
    db: Connection,
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
        Ok(Self { db })
    }

    pub fn exists(&self, username: &str) -> Result<bool, AccountError> {
        let found: Option<i64> = self
            .db
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
        let mut rng = StdRng::from_os_rng();
        let tx = self.db.unchecked_transaction()?;
        for hash in ScramHash::ALL {
            let c = ScramCredentials::new_random(hash, password, &mut rng);
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
            .db
            .execute("DELETE FROM credentials WHERE username = ?1", [&username])?
            == 0
        {
            return Err(AccountError::NoSuchAccount(username));
        }
        Ok(())
    }

    /// An account's stored credentials for `hash` (`None`: no such account, or the
    /// database failed, which is logged).
    pub fn credentials(&self, username: &str, hash: ScramHash) -> Option<ScramCredentials> {
        let result = self
            .db
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

    pub fn answer(&self, lookup: &Lookup) -> Answer {
        match lookup {
            Lookup::ScramCredentials { username, hash } => {
                Answer::ScramCredentials(self.credentials(username, *hash))
            }
            // Tokens are the verifier's, passwords of directory users the directory's.
            Lookup::Token(_) => Answer::Token(Err(crate::token::TokenError::Required)),
            Lookup::Directory { .. } => {
                Answer::Directory(Err(crate::ldap::DirectoryError::Refused("no directory")))
            }
        }
    }
}

/// The account database on its own thread, answering the sessions' [`Lookup`]s.
pub struct AccountStore {
    requests: std::sync::mpsc::Sender<(Lookup, oneshot::Sender<Answer>)>,
}

impl AccountStore {
    /// Moves `accounts` to a new thread; it ends when the store is dropped.
    pub fn spawn(accounts: Accounts) -> Result<Self, AccountError> {
        let (requests, incoming) = std::sync::mpsc::channel::<(Lookup, oneshot::Sender<Answer>)>();
        std::thread::Builder::new()
            .name("convene-accounts".into())
            .spawn(move || {
                for (lookup, reply) in incoming {
                    let _ = reply.send(accounts.answer(&lookup));
                }
            })
            .map_err(AccountError::Thread)?;
        Ok(Self { requests })
    }

    pub async fn answer(&self, lookup: Lookup) -> Answer {
        let (reply, answer) = oneshot::channel();
        let unknown = Answer::ScramCredentials(None);
        if self.requests.send((lookup, reply)).is_err() {
            return unknown;
        }
        answer.await.unwrap_or(unknown)
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
            "convene-accounts-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
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
        // The store answers from its own thread what the database holds.
        let store = AccountStore::spawn(accounts).unwrap();
        let lookup = |username: &str| Lookup::ScramCredentials {
            username: username.into(),
            hash: ScramHash::Sha256,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            runtime.block_on(store.answer(lookup("alice"))),
            Answer::ScramCredentials(Some(stored))
        );
        assert_eq!(
            runtime.block_on(store.answer(lookup("bob"))),
            Answer::ScramCredentials(None)
        );
        drop(store);
        let accounts = Accounts::open(&dir).unwrap();
        accounts.delete("alice").unwrap();
        assert!(accounts.credentials("alice", ScramHash::Sha1).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
