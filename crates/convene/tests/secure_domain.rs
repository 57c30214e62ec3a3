//! The secure domain with real XMPP clients (slixmpp, `tests/peers/auth_scenarios.py`): a
//! guest at `guest.D` is told to wait (Jicofo's `not-authorized`) until an account of the
//! main domain opened the conference, then joins as a participant; the host moderates.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{Convene, DOMAIN};

const USER: &str = "host";
const PASSWORD: &str = "open sesame";

#[test]
fn guests_wait_for_a_signed_in_host_then_join_as_participants() {
    let convene = Convene::start_with(
        "secure",
        "[auth]\nsecure_domain = true\nmoderator = \"authenticated\"\n",
    );
    let mut add = Command::new(env!("CARGO_BIN_EXE_convene"))
        .arg("--config")
        .arg(convene.config_path())
        .args(["user", "add", USER])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(add.wait().unwrap().success(), "convene user add");

    let python = std::env::var("CONVENE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/auth_scenarios.py");
    let output = Command::new(python)
        .arg(script)
        .arg("secure")
        .arg(format!("port={}", convene.c2s.port()))
        .arg(format!("domain={DOMAIN}"))
        .arg(format!("user={USER}"))
        .arg(format!("password={PASSWORD}"))
        .output()
        .expect("python with slixmpp (set CONVENE_PYTHON)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("PASS secure"),
        "secure scenario failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}
