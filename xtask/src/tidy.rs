//! The architecture test: the rules of `ARCHITECTURE.md` that a machine can check.
//!
//! Three rules, each a table below: crate dependencies, sans-IO cores, file sizes. Any
//! violation fails the test; an exception is written into the rule's table with its reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The role crates. Only [`WIRING_CRATES`] may depend on more than one of them.
const ROLES: &[&str] = &["convene-xmpp", "convene-focus", "convene-bridge"];

/// Crates that put the roles together (the deployment, the load generators, and the fuzz
/// entry points, which feed the focus what the XMPP server's XML guard builds).
const WIRING_CRATES: &[&str] = &[
    "convene",
    "convene-bench-bridge",
    "convene-bench-xmpp",
    "convene-fuzz-entry",
];

/// `(crate, crates it must not depend on, why)`, for `[dependencies]` (also per target)
/// and `[build-dependencies]`. Dev-dependencies are free: integration tests run the real
/// peers of a crate.
const FORBIDDEN_DEPENDENCIES: &[(&str, &[&str], &str)] = &[
    (
        "convene-colibri",
        &[
            "convene-xmpp",
            "convene-focus",
            "convene-bridge",
            "convene-web",
            "tokio",
        ],
        "the bridge API messages: serde types and a trait, usable from any runtime",
    ),
    (
        "convene-focus",
        &["convene-bridge", "convene-xmpp", "convene-web"],
        "the focus reaches the bridge through convene-colibri and the XMPP server through stanzas",
    ),
    (
        "convene-bridge",
        &["convene-xmpp", "convene-focus", "convene-web"],
        "the bridge serves the focus through convene-colibri, knows nothing of XMPP",
    ),
    (
        "convene-xmpp",
        &[
            "convene-bridge",
            "convene-focus",
            "convene-colibri",
            "convene-web",
        ],
        "the XMPP server is a general XMPP server; the focus is one of its entities",
    ),
    (
        "convene-web",
        &[
            "convene-xmpp",
            "convene-focus",
            "convene-bridge",
            "convene-colibri",
        ],
        "the web client talks to the server only over XMPP and the bridge channel",
    ),
];

/// `(crate, crate it must depend on, why)`.
const REQUIRED_DEPENDENCIES: &[(&str, &str, &str)] = &[(
    "convene-focus",
    "convene-colibri",
    "the focus drives bridges through the bridge API crate",
)];

/// Source directories of the sans-IO cores: every `.rs` file below is core code unless
/// it is a shell in [`SHELLS`] or compiled for tests only.
const CORE_DIRS: &[&str] = &[
    "crates/xmpp/src",
    "crates/focus/src",
    "crates/bridge/src",
    "crates/colibri/src",
];

/// The thin async shells: they own sockets, timers, tasks and channels.
const SHELLS: &[(&str, &str)] = &[
    (
        "crates/xmpp/src/lib.rs",
        "starts the listeners and tasks of the XMPP server",
    ),
    (
        "crates/xmpp/src/conn.rs",
        "runs one session over a socket, for tcp.rs and ws.rs",
    ),
    (
        "crates/xmpp/src/tcp.rs",
        "the c2s TCP listener, TLS upgrade and keepalive",
    ),
    ("crates/xmpp/src/ws.rs", "the RFC 7395 WebSocket endpoint"),
    (
        "crates/xmpp/src/token/verifier.rs",
        "fetches token keys over HTTP and from files, caches them, reads the clock",
    ),
    (
        "crates/xmpp/src/ldap/directory.rs",
        "binds and searches on an LDAP server under connect and operation timeouts",
    ),
    (
        "crates/xmpp/src/driver.rs",
        "the one task that runs the hub: its event channel and its timer",
    ),
    (
        "crates/focus/src/shell.rs",
        "the focus's one task: channels and its timer",
    ),
    (
        "crates/bridge/src/lib.rs",
        "the bridge's thread, its sockets, colibri-ws and timer",
    ),
    (
        "crates/bridge/src/udp.rs",
        "recvmmsg/GSO on the media socket",
    ),
    (
        "crates/bridge/src/tcp.rs",
        "the ICE-TCP listener and its RFC 4571 framing",
    ),
    (
        "crates/bridge/src/ws.rs",
        "the colibri-ws WebSocket endpoint",
    ),
];

/// What a core must not use: the clock (time comes in as `now`), sockets, locks (one
/// owner per state) and global randomness (a seeded or OS generator comes in).
const FORBIDDEN_IN_CORES: &[(&str, &str)] = &[
    ("Instant::now", "a clock"),
    ("SystemTime::now", "a clock"),
    ("tokio::time", "a clock"),
    ("TcpStream", "a socket"),
    ("TcpListener", "a socket"),
    ("UdpSocket", "a socket"),
    ("tokio::net", "a socket"),
    ("Mutex", "a lock"),
    ("RwLock", "a lock"),
    ("rand::rng()", "global randomness"),
    ("thread_rng", "global randomness"),
    ("rand::random", "global randomness"),
];

/// Lines a source file may have before it needs a reason below.
const MAX_LINES: usize = 800;

/// What counts as a source file for [`MAX_LINES`].
const SIZED_EXTENSIONS: &[&str] = &["rs", "js", "py"];

/// `(file, why it may be longer than MAX_LINES)`.
const LONG_FILES: &[(&str, &str)] = &[];

/// Directories never scanned for sizes: build output, installed packages, VCS data.
const NOT_SOURCE: &[&str] = &["target", "node_modules", "data"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    Dependency,
    SansIo,
    Size,
}

struct Violation {
    /// The full explanation.
    message: String,
}

#[test]
fn crates_depend_only_on_what_they_may() {
    let crates = workspace_crates();
    let names: BTreeSet<&str> = crates.iter().map(|c| c.name.as_str()).collect();
    let mut found = Vec::new();
    let ruled = FORBIDDEN_DEPENDENCIES
        .iter()
        .map(|(name, ..)| *name)
        .chain(REQUIRED_DEPENDENCIES.iter().map(|(name, ..)| *name));
    for name in ruled.collect::<BTreeSet<_>>() {
        if !names.contains(name) {
            found.push(Violation {
                message: format!(
                    "{name} is named by a dependency rule but is not in the workspace"
                ),
            });
        }
    }
    for krate in &crates {
        for (name, forbidden, why) in FORBIDDEN_DEPENDENCIES {
            if krate.name != *name {
                continue;
            }
            for dependency in krate
                .dependencies
                .iter()
                .filter(|d| forbidden.contains(&d.as_str()))
            {
                found.push(Violation {
                    message: format!(
                        "{name} depends on {dependency} ({}): {why}",
                        krate.manifest.display()
                    ),
                });
            }
        }
        for (name, required, why) in REQUIRED_DEPENDENCIES {
            if krate.name == *name && !krate.dependencies.contains(*required) {
                found.push(Violation {
                    message: format!("{name} does not depend on {required}: {why}"),
                });
            }
        }
        let roles: Vec<&str> = ROLES
            .iter()
            .copied()
            .filter(|role| krate.dependencies.contains(*role))
            .collect();
        if roles.len() > 1 && !WIRING_CRATES.contains(&krate.name.as_str()) {
            found.push(Violation {
                message: format!(
                    "{} depends on {}: only {WIRING_CRATES:?} put roles together",
                    krate.name,
                    roles.join(" and ")
                ),
            });
        }
    }
    check(Rule::Dependency, found);
}

#[test]
fn cores_use_no_clock_socket_lock_or_global_randomness() {
    let root = workspace_root();
    for (shell, _) in SHELLS {
        assert!(
            root.join(shell).is_file(),
            "SHELLS names {shell}, which does not exist"
        );
    }
    let mut found = Vec::new();
    for dir in CORE_DIRS {
        let mut files = Vec::new();
        collect_files(&root.join(dir), &["rs"], &mut files);
        let test_only = test_only_files(&files);
        for file in &files {
            let relative = relative(&root, file);
            if SHELLS.iter().any(|(shell, _)| *shell == relative) || test_only.contains(file) {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            for (line_number, line) in production_lines(&text) {
                for (pattern, what) in FORBIDDEN_IN_CORES {
                    if line.contains(pattern) {
                        found.push(Violation {
                            message: format!(
                                "{relative}:{line_number} uses {what} ({pattern}) in a sans-IO core: \
                                 take it as input, or move the code to a shell listed in SHELLS"
                            ),
                        });
                    }
                }
            }
        }
    }
    check(Rule::SansIo, found);
}

#[test]
fn files_stay_short_or_say_why() {
    let root = workspace_root();
    let mut files = Vec::new();
    collect_files(&root, SIZED_EXTENSIONS, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = relative(&root, &file);
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        if lines > MAX_LINES && !LONG_FILES.iter().any(|(long, _)| *long == relative) {
            found.push(Violation {
                message: format!(
                    "{relative} has {lines} lines (limit {MAX_LINES}): split it along its seams, \
                     or add it to LONG_FILES with the reason"
                ),
            });
        }
    }
    check(Rule::Size, found);
}

/// Fails with every violation of `rule` found.
fn check(rule: Rule, found: Vec<Violation>) {
    assert!(
        found.is_empty(),
        "{rule:?} rule (xtask/src/tidy.rs):\n{}",
        found
            .iter()
            .map(|v| format!("  {}\n", v.message))
            .collect::<String>(),
    );
}

struct Crate {
    name: String,
    manifest: PathBuf,
    /// Normal and build dependencies, by package name.
    dependencies: BTreeSet<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn workspace_crates() -> Vec<Crate> {
    let root = workspace_root();
    let workspace = read_toml(&root.join("Cargo.toml"));
    let members = workspace["workspace"]["members"]
        .as_array()
        .expect("workspace.members");
    members
        .iter()
        .map(|member| {
            let manifest = root.join(member.as_str().unwrap()).join("Cargo.toml");
            let table = read_toml(&manifest);
            let name = table["package"]["name"].as_str().unwrap().to_owned();
            let mut dependencies = BTreeSet::new();
            let targets = table.get("target").and_then(|t| t.as_table());
            let sections = [&table].into_iter().chain(
                targets
                    .into_iter()
                    .flat_map(|t| t.values().filter_map(|v| v.as_table())),
            );
            for section in sections {
                for kind in ["dependencies", "build-dependencies"] {
                    let Some(deps) = section.get(kind).and_then(|d| d.as_table()) else {
                        continue;
                    };
                    for (key, spec) in deps {
                        // `alias = { package = "real-name", ... }` depends on real-name.
                        let package = spec.get("package").and_then(|p| p.as_str()).unwrap_or(key);
                        dependencies.insert(package.to_owned());
                    }
                }
            }
            Crate {
                name,
                manifest: manifest.strip_prefix(&root).unwrap().to_owned(),
                dependencies,
            }
        })
        .collect()
}

/// Every file below `dir` with one of `extensions`, skipping hidden and [`NOT_SOURCE`] dirs.
fn collect_files(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && !NOT_SOURCE.contains(&name.as_ref()) {
                collect_files(&path, extensions, out);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
        {
            out.push(path);
        }
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// `(line number, code)` of the lines compiled outside tests: comments are dropped and
/// everything from the first `#[cfg(test)]` on is test code.
fn production_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, line)| !line.trim_start().starts_with("#[cfg(test)]"))
        .map(|(index, line)| (index + 1, line.split("//").next().unwrap()))
}

/// The module files declared as `#[cfg(test)] mod name;` (or `pub(crate) mod`), and everything
/// below them.
fn test_only_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut test_dirs_and_files = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            let Some(name) = lines
                .next()
                // A test module may be visible to the crate's other tests.
                .map(|next| next.strip_prefix("pub(crate) ").unwrap_or(next))
                .and_then(|next| next.strip_prefix("mod "))
                .and_then(|rest| rest.strip_suffix(';'))
            else {
                continue;
            };
            // Submodules of `lib.rs`/`mod.rs` sit beside it; those of `a.rs` in `a/`.
            let stem = file.file_stem().unwrap();
            let parent = file.parent().unwrap();
            let dir = if stem == "lib" || stem == "mod" || stem == "main" {
                parent.to_owned()
            } else {
                parent.join(stem)
            };
            test_dirs_and_files.push(dir.join(format!("{name}.rs")));
            test_dirs_and_files.push(dir.join(name));
        }
    }
    files
        .iter()
        .filter(|file| {
            test_dirs_and_files
                .iter()
                .any(|test| file.starts_with(test))
        })
        .cloned()
        .collect()
}
