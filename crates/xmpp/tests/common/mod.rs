//! Set-up shared by the server's integration tests.

use std::path::{Path, PathBuf};

use convene_xmpp::{Config, XmppServer};

/// A fresh data directory for one test, removed when dropped.
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        // Tests of one binary run in parallel threads of one process.
        let thread = format!("{:?}", std::thread::current().id()).replace(['(', ')'], "");
        let dir = std::env::temp_dir().join(format!(
            "convene-xmpp-test-{}-{thread}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server for `domain` with its data in `data_dir`, its client port an ephemeral one
/// on loopback.
pub async fn start_server(domain: &str, data_dir: &DataDir, config: Config) -> XmppServer {
    let config = Config {
        c2s_listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    XmppServer::start(domain, data_dir.path(), config)
        .await
        .unwrap()
}
