//! The reader and every later phase must never panic on bad input: a
//! regression corpus (`tests/corpus/`: `ok-*` must analyse, `bad-*` must be an
//! error) and proptest mutations (cuts, byte flips, insertions, digit swaps) of
//! small valid snapshots run through the whole summary.

mod common;

use std::path::{Path, PathBuf};

use common::mutate::{apply, mutation};
use memguard_report::snapshot::{self, Options};
use memguard_report::ReportError;
use proptest::prelude::*;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn opts() -> Options {
    Options { top: 50, paths: 50, progress: false }
}

#[test]
fn corpus_files_analyse_or_fail_cleanly() {
    let files = corpus();
    assert!(files.len() >= 10);
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let result = snapshot::summarize(&f, &opts());
        if name.starts_with("ok-") {
            let s = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(s.node_count >= 1, "{name}");
        } else {
            match result {
                Err(ReportError::Corrupt { .. }) | Err(ReportError::Truncated { .. }) => {}
                other => panic!("{name}: expected an error, got {:?}", other.map(|s| s.node_count)),
            }
        }
    }
}

#[test]
fn corpus_gzip_reads_like_plain() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let a = snapshot::summarize(&dir.join("ok-mixed.heapsnapshot"), &opts()).unwrap();
    let b = snapshot::summarize(&dir.join("ok-mixed.heapsnapshot.gz"), &opts()).unwrap();
    assert_eq!(format!("{:?}", a.classes), format!("{:?}", b.classes));
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    ["ok-mixed.heapsnapshot", "ok-escapes.heapsnapshot"].iter().map(|n| std::fs::read(dir.join(n)).unwrap()).collect()
}

proptest! {
    #![proptest_config(common::mutate::config(400))]

    #[test]
    fn mutated_snapshots_never_panic(seed in 0usize..2, muts in proptest::collection::vec(mutation(), 1..4), gz in any::<bool>()) {
        let bytes = apply(seeds()[seed].clone(), &muts);
        let bytes = if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            e.finish().unwrap()
        } else {
            bytes
        };
        // Removed when the case ends.
        let file = tempfile::Builder::new().prefix("memguard-report-fuzz-").suffix(".heapsnapshot").tempfile().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        let path = file.path();
        // Ok or a clean error; a panic fails the test.
        let _ = snapshot::summarize(path, &opts());
        let _ = snapshot::diff(path, path, &opts());
    }
}
