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

/// Runs `scenario` of the peer script `tests/peers/<script>` (Python from `CONVENE_PYTHON`)
/// with `key=value` arguments; panics with its output unless it printed `PASS <scenario>`.
/// Returns what it printed.
#[allow(dead_code)] // not every test binary runs peers
pub async fn run_peer_script(script: &str, scenario: &str, args: &[String]) -> String {
    let python = std::env::var("CONVENE_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers")
        .join(script);
    let child = tokio::process::Command::new(python)
        .arg(path)
        .arg(scenario)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python with the peers' packages (set CONVENE_PYTHON)");
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("peer script timed out")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("PASS {scenario}")),
        "scenario {scenario} of {script} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}
