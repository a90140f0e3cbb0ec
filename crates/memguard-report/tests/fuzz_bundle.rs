//! The other files of a bundle are untrusted too: mutated `summary.json`,
//! `timeline.ndjson.gz` (mutated before or after compression, members cut
//! anywhere) and `.heapprofile` files — deep nesting included — are read
//! and rendered without a panic, a stack overflow or a hang: `Ok` renders
//! printable text, `Err` is a usage/input error (exit code 2). A regression
//! corpus (`tests/corpus-bundle/`) holds inputs that once failed.

mod common;

use std::io::Write;
use std::path::Path;

use common::mutate::{apply, mutation};
use memguard_report::report::{Report, SCHEMA};
use memguard_report::{allocations, summary, terminal, timeline, ReportError};
use proptest::prelude::*;

const EVIL: &str = r"\u001b]0;PWNED\u0007\u001b[2J\u001b[31mEVIL\u009b\n";

fn summary_seed() -> Vec<u8> {
    format!(
        r#"{{"memguard":"0.1.0","node":"v20.20.2","pid":4242,"threadId":0,"startedAt":"2026-11-25T12:57:05Z",
"argv":["/usr/bin/node","/srv/{EVIL}.js"],"execArgv":["--max-old-space-size=48"],
"captures":[{{"seq":1,"trigger":"near-heap-limit","reason":"{EVIL}","time":"2026-11-25T12:57:16.168Z",
"heap":{{"usedHeapSize":49200000,"heapSizeLimit":100700000}},"outcome":"failed","error":"{EVIL}",
"snapshotSkipped":{{"reason":"{EVIL}"}},
"stack":[{{"functionName":"{EVIL}","url":"file:///srv/{EVIL}","line":20,"column":3}},{{"functionName":"","url":"","line":1}}]}}],
"ended":{{"reason":"{EVIL}","code":3}}}}"#
    )
    .into_bytes()
}

fn timeline_lines() -> Vec<String> {
    let mut lines = vec![r#"{"type":"start","t":0,"epochMs":1795604791040.1,"time":"2026-11-25T10:26:31.040Z","pid":1}"#.to_string()];
    for s in 1..=12u64 {
        let used = 10_000_000 + s * 2_000_000;
        lines.push(format!(r#"{{"type":"gc","t":{},"kind":"mark-compact","ms":{s},"beforeKB":{},"afterKB":{}}}"#, s * 1000, used >> 10, used >> 10));
        lines.push(format!(
            r#"{{"type":"sample","t":{},"heap":{{"used":{used},"limit":50000000}},"spaces":{{"old_space":[{used},1]}},"rss":99}}"#,
            s * 1000 + 1
        ));
    }
    lines.push(format!(r#"{{"type":"marker","t":13000,"name":"{EVIL}","{EVIL}":"{EVIL}","seq":1}}"#));
    lines.push(format!(r#"{{"type":"gc","t":13001,"kind":"{EVIL}","ms":1}}"#));
    lines.push(r#"{"type":"dropped","t":13002,"count":3}"#.into());
    lines
}

/// `lines` as three gzip members, as the recorder writes them.
fn gzip_members(text: &[u8]) -> Vec<u8> {
    let third = text.len() / 3;
    let mut out = Vec::new();
    for part in [&text[..third], &text[third..2 * third], &text[2 * third..]] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        out.extend(e.finish().unwrap());
    }
    out
}

fn profile_seed() -> Vec<u8> {
    use memguard_core::heapprofile::{to_cdp, ProfileNode};
    let node = |id, parent, name: &str, url: &str, self_size| ProfileNode {
        id,
        parent,
        function_name: name.into(),
        url: url.into(),
        script_id: 1,
        line: 3,
        column: 5,
        self_size,
    };
    let evil = "\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{9b}";
    let nodes = vec![
        node(1, 0, "(root)", "", 0),
        node(2, 1, "main", "file:///app.js", 100),
        node(3, 2, evil, &format!("file:///{evil}.js"), 5000),
        node(4, 3, "repeat", "", 700),
    ];
    to_cdp(&nodes, &[]).to_string().into_bytes()
}

/// What a user sees: the terminal page, which must hold no raw control.
fn assert_printable(report: &Report) {
    let text = terminal::render(report);
    let raw: Vec<char> = text.chars().filter(|&c| c != '\n' && matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')).collect();
    assert!(raw.is_empty(), "raw {raw:?} in\n{text}");
}

fn assert_clean_error(e: &ReportError) {
    assert_eq!(e.exit_code(), 2, "{e}");
}

fn report() -> Report {
    Report { schema: SCHEMA, input: "fuzz".into(), ..Report::default() }
}

fn check_summary(path: &Path) {
    match summary::read(path) {
        Ok(v) => assert_printable(&Report { bundle: Some(v), ..report() }),
        Err(e) => assert_clean_error(&e),
    }
}

fn check_timeline(path: &Path) {
    match timeline::read(path) {
        Ok(t) => assert_printable(&Report { timeline: Some(t), ..report() }),
        Err(e) => assert_clean_error(&e),
    }
}

fn check_profile(path: &Path) {
    match allocations::read(path, 10) {
        Ok(a) => assert_printable(&Report { allocations: Some(a), ..report() }),
        Err(e) => assert_clean_error(&e),
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("memguard-report-fuzz-").tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    dir
}

#[test]
fn seeds_render_escaped() {
    let dir = temp_file("summary.json", &summary_seed());
    let s = summary::read(&dir.path().join("summary.json")).unwrap();
    let text = terminal::render(&Report { bundle: Some(s), ..report() });
    assert!(text.contains("\\x1b]0;PWNED\\x07") && text.contains("\\u{9b}"), "{text}");
    let dir = temp_file("timeline.ndjson.gz", &gzip_members((timeline_lines().join("\n") + "\n").as_bytes()));
    let t = timeline::read(&dir.path().join("timeline.ndjson.gz")).unwrap();
    assert_eq!((t.markers.len(), t.samples.len()), (1, 12));
    let dir = temp_file("allocations-1.heapprofile", &profile_seed());
    let a = allocations::read(&dir.path().join("allocations-1.heapprofile"), 10).unwrap();
    assert_eq!(a.sites.len(), 2);
    for seed in [Report { timeline: Some(t), ..report() }, Report { allocations: Some(a), ..report() }] {
        let text = terminal::render(&seed);
        assert!(text.contains("\\x1b]0;PWNED\\x07"), "{text}");
        assert_printable(&seed);
    }
}

/// Inputs that once failed (or are worth keeping), by their file's kind.
#[test]
fn regression_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-bundle");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match () {
            _ if name.ends_with(".json") => check_summary(&path),
            _ if name.ends_with(".ndjson.gz") => check_timeline(&path),
            _ if name.ends_with(".heapprofile") => check_profile(&path),
            _ => panic!("{name}: unknown kind"),
        }
        n += 1;
    }
    assert!(n >= 3);
}

proptest! {
    #![proptest_config(common::mutate::config(200))]

    #[test]
    fn mutated_summaries_never_panic(muts in proptest::collection::vec(mutation(), 1..4)) {
        let dir = temp_file("summary.json", &apply(summary_seed(), &muts));
        check_summary(&dir.path().join("summary.json"));
    }

    #[test]
    fn mutated_timelines_never_panic(muts in proptest::collection::vec(mutation(), 1..4), compressed_first in any::<bool>()) {
        let text = (timeline_lines().join("\n") + "\n").into_bytes();
        // Mutating the compressed bytes cuts and corrupts members anywhere;
        // mutating the text keeps the gzip valid around broken records.
        let bytes = if compressed_first { apply(gzip_members(&text), &muts) } else { gzip_members(&apply(text, &muts)) };
        let dir = temp_file("timeline.ndjson.gz", &bytes);
        check_timeline(&dir.path().join("timeline.ndjson.gz"));
    }

    #[test]
    fn mutated_profiles_never_panic(muts in proptest::collection::vec(mutation(), 1..4)) {
        let dir = temp_file("allocations-1.heapprofile", &apply(profile_seed(), &muts));
        check_profile(&dir.path().join("allocations-1.heapprofile"));
    }
}
