//! A `convene` binary started for one test, and a one-shot HTTP GET.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "convene.test";

/// A running `convene` on free loopback ports with a temporary data directory.
pub struct Convene {
    child: Child,
    pub http: SocketAddr,
    pub c2s: SocketAddr,
    data_dir: PathBuf,
    config: PathBuf,
}

impl Convene {
    pub fn start(name: &str) -> Convene {
        Self::start_with(name, "")
    }

    /// With `extra` appended to the configuration file (tables such as `[http]`).
    pub fn start_with(name: &str, extra: &str) -> Convene {
        let data_dir = std::env::temp_dir().join(format!(
            "convene-ops-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&data_dir).unwrap();
        let (http, c2s) = (free_port(), free_port());
        let config = data_dir.join("convene.toml");
        std::fs::write(
            &config,
            format!(
                "domain = \"{DOMAIN}\"\n\
                 data_dir = \"{data}\"\n\
                 http_listen = \"{http}\"\n\
                 [xmpp]\n\
                 c2s_listen = \"{c2s}\"\n\
                 [bridge]\n\
                 udp_port = 0\n\
                 ice_tcp = false\n\
                 addresses = [\"127.0.0.1\"]\n\
                 {extra}",
                data = data_dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_convene"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the convene binary");
        let convene = Convene {
            child,
            http,
            c2s,
            data_dir,
            config,
        };
        convene.wait_until_serving();
        convene
    }

    fn wait_until_serving(&self) {
        let started = Instant::now();
        while http_get(self.http, "/about/health").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "convene does not answer HTTP on {}",
                self.http
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The configuration file it runs with (for `convene user add` and friends).
    pub fn config_path(&self) -> PathBuf {
        self.data_dir.join("convene.toml")
    }

    pub fn get(&self, path: &str) -> Response {
        http_get(self.http, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Adds an account with `convene user add`, as an operator would.
    pub fn add_user(&self, user: &str, password: &str) {
        let mut add = Command::new(env!("CARGO_BIN_EXE_convene"))
            .arg("--config")
            .arg(&self.config)
            .args(["user", "add", user])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(add.stdin.take().unwrap(), "{password}").unwrap();
        assert!(add.wait().unwrap().success(), "convene user add {user}");
    }

    /// The process's resident set, in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    pub fn wait_for_exit(&mut self, bound: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < bound,
                "convene still running {bound:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Convene {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A port nobody listens on now (the kernel's pick, released again).
pub fn free_port() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    /// The status line and header lines.
    pub head: String,
    pub body: String,
}

/// A one-shot HTTP/1.1 GET (`Connection: close`, so the body ends with the connection).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    http_get_with(addr, path, "")
}

/// [`http_get`] with `headers` (complete `Name: value\r\n` lines) added to the request.
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {raw:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked bodies are not decoded here: {head}"
    );
    Ok(Response {
        status,
        content_type,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}
