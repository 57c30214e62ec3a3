//! Replays every committed corpus file and crash reproducer through the entry its fuzz
//! target calls: `fuzz/corpus/<target>/*` and `fuzz/artifacts/<target>/*`. Runs on stable,
//! in the ordinary suite, so a fixed crash stays fixed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use convene_fuzz_entry::{TARGETS, entry};

/// The replay of all corpora together must stay well inside the suite's budget.
const BUDGET: Duration = Duration::from_secs(60);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The entries of `dir` that `keep` accepts, sorted (an absent directory has none).
fn children(dir: &Path, keep: fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| keep(path))
        .collect();
    found.sort();
    found
}

fn files(dir: &Path) -> Vec<PathBuf> {
    children(dir, Path::is_file)
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (name, _) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} has no seed");
    }
}

#[test]
fn corpora_and_reproducers_replay_without_a_crash() {
    let started = Instant::now();
    let mut replayed = 0;
    for kind in ["corpus", "artifacts"] {
        for dir in children(&fuzz_dir().join(kind), Path::is_dir) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let run = entry(&name);
            for file in files(&dir) {
                let data = std::fs::read(&file).expect("readable input");
                // A panic names the input it came from.
                eprintln!("replaying {}", file.display());
                run(&data);
                replayed += 1;
            }
        }
    }
    assert!(replayed > 0);
    assert!(
        started.elapsed() < BUDGET,
        "{replayed} inputs took {:?}",
        started.elapsed()
    );
}
