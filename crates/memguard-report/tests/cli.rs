//! `memguard report` as a user runs it, on crafted bundles: heap strings,
//! argv, markers and allocation sites full of terminal escapes come out
//! escaped, and a bad file ends with exit code 2 and one escaped line.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Snap;

const EVIL: &str = "\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{1b}[31mEVIL\u{9b}\r\n\t";

fn report(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memguard-report")).arg("report").args(args).output().unwrap()
}

/// Raw C0 (but the newline that ends a line), DEL and C1 characters in
/// `bytes`, which must also be UTF-8.
fn raw_controls(bytes: &[u8]) -> Vec<char> {
    let text = std::str::from_utf8(bytes).expect("output is UTF-8");
    text.chars().filter(|&c| c != '\n' && matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')).collect()
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A bundle whose every string a report shows holds `EVIL`.
fn crafted_bundle(dir: &Path) {
    let e = json(EVIL);
    std::fs::write(
        dir.join("summary.json"),
        format!(
            r#"{{"pid":1,"threadId":0,"node":{e},"startedAt":{e},"argv":["node",{e}],"ended":{{"reason":{e},"signal":{e}}},
"captures":[{{"seq":1,"trigger":{e},"time":{e},"outcome":{e},"error":{e},"snapshotSkipped":{{"reason":{e}}},
"stack":[{{"functionName":{e},"url":{e},"line":1}}]}}]}}"#
        ),
    )
    .unwrap();
    let timeline = format!(
        "{}\n{}\n{}\n",
        format_args!(r#"{{"type":"start","t":0,"time":{e}}}"#),
        format_args!(r#"{{"type":"gc","t":1,"kind":{e},"ms":1,"beforeKB":1,"afterKB":1}}"#),
        format_args!(r#"{{"type":"marker","t":2,"name":{e},{e}:{e}}}"#),
    );
    std::fs::write(dir.join("timeline.ndjson.gz"), gzip(timeline.as_bytes())).unwrap();
    std::fs::write(
        dir.join("allocations-1.heapprofile"),
        format!(r#"{{"head":{{"callFrame":{{}},"children":[{{"callFrame":{{"functionName":{e},"url":{e}}},"selfSize":9}}]}}}}"#),
    )
    .unwrap();
    // Two snapshots, so the diff section shows too. The class of an object
    // is its constructor name; JSON.parse makes any string a property name.
    for (seq, count) in [(1, 1), (2, 3)] {
        let mut s = Snap::new();
        let holder = s.node("object", EVIL, 100);
        s.edge(0, "property", EVIL, holder);
        for i in 0..count {
            let leaf = s.node("object", &format!("{{{EVIL}, b}}"), 50);
            s.edge(holder, "property", &format!("{EVIL}{i}"), leaf);
            let f = s.node("closure", EVIL, 10);
            s.edge(leaf, "context", EVIL, f);
        }
        std::fs::write(dir.join(format!("heap-{seq}.heapsnapshot")), s.json()).unwrap();
    }
}

#[test]
fn a_crafted_bundle_prints_escapes_never_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    crafted_bundle(dir.path());
    let out = report(&[dir.path().as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(raw_controls(&out.stdout), [], "{stdout}");
    assert_eq!(raw_controls(&out.stderr), []);
    for section in ["Process:", "Capture 1:", "Top classes", "What retains them", "Growth from", "Markers:", "Where the live memory"] {
        assert!(stdout.contains(section), "{section} in\n{stdout}");
    }
    // Each place shows the escaped form.
    assert!(stdout.matches("\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mEVIL\\u{9b}\\x0d\\x0a\\x09").count() >= 15, "{stdout}");
    // --json stays exact: the same strings, JSON-escaped.
    let out = report(&[dir.path().as_os_str(), "--json".as_ref()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bundle"]["argv"][1], EVIL);
    assert_eq!(v["allocations"]["sites"][0]["function"], EVIL);
}

fn assert_one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("memguard report: error: "), "{stderr}");
    assert_eq!(raw_controls(&out.stderr), [], "{stderr}");
    stderr
}

#[test]
fn bad_bundle_files_end_in_one_escaped_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join(format!("b{EVIL}"));
    std::fs::create_dir(&bundle).unwrap();
    // Nesting no recursive parser survives, in each JSON file.
    std::fs::write(bundle.join("summary.json"), format!(r#"{{"argv":{}{}}}"#, "[".repeat(1_000_000), "]".repeat(1_000_000))).unwrap();
    let line = assert_one_error_line(&report(&[bundle.as_os_str()]));
    assert!(line.contains("b\\x1b]0;PWNED") && line.contains("not valid JSON"), "{line}");
    std::fs::remove_file(bundle.join("summary.json")).unwrap();
    let node = r#"{"callFrame":{},"children":["#;
    let deep = format!(r#"{{"head":{}{}}}"#, node.repeat(200_000), "]}".repeat(200_000));
    std::fs::write(bundle.join("allocations-1.heapprofile"), deep).unwrap();
    let line = assert_one_error_line(&report(&[bundle.as_os_str()]));
    assert!(line.contains("nested deeper than"), "{line}");
    // A path that is not there, named with escapes.
    assert_one_error_line(&report(&[dir.path().join(EVIL).as_os_str()]));
    // Not UTF-8 at all.
    use std::os::unix::ffi::OsStrExt;
    let line = assert_one_error_line(&report(&[std::ffi::OsStr::from_bytes(b"/nonexistent/\xff\x1b[2J")]));
    assert!(line.contains("\\x1b[2J"), "{line}");
}
