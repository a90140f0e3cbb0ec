//! The snapshot engine on tiny hand-written snapshots with known answers:
//! dominators (diamond, weak edge, shortcut edge, page-owned rule, WeakMap
//! ephemeron, cycles only the fallback reaches), shallow-size transfer, class
//! naming, retainer paths, diff, and the reader (escapes, field order, gzip).

mod common;

use common::{write_text, Snap};
use memguard_report::snapshot::{self, progress::Progress, Options};
use memguard_report::ReportError;

/// Retained size by node ordinal, and the immediate dominators.
fn retained(s: &Snap, name: &str) -> (Vec<u64>, Vec<u32>) {
    let path = s.write(name);
    let r = snapshot::retained(&path, &Progress::silent()).expect("analyses");
    (r.retained, r.dominators.idom)
}

#[test]
fn diamond_is_dominated_by_its_top() {
    let mut s = Snap::new();
    let a = s.node("object", "A", 10);
    let b = s.node("object", "B", 20);
    let c = s.node("object", "C", 30);
    let d = s.node("object", "D", 40);
    s.edge(0, "property", "a", a);
    s.edge(a, "property", "b", b);
    s.edge(a, "property", "c", c);
    s.edge(b, "property", "d", d);
    s.edge(c, "property", "d", d);
    let (r, idom) = retained(&s, "diamond.heapsnapshot");
    assert_eq!(idom[d], a as u32);
    assert_eq!(r[a], 100);
    assert_eq!((r[b], r[c], r[d]), (20, 30, 40));
    assert_eq!(r[0], 100);
}

#[test]
fn weak_edges_retain_nothing() {
    let mut s = Snap::new();
    let a = s.node("object", "A", 10);
    let b = s.node("object", "B", 7);
    let x = s.node("object", "X", 5);
    let y = s.node("object", "Y", 3);
    s.edge(0, "property", "a", a);
    s.edge(0, "property", "b", b);
    s.edge(a, "weak", "x", x);
    s.edge(b, "property", "x", x);
    // Y is only weakly held: it hangs under the root.
    s.edge(a, "weak", "y", y);
    let (r, idom) = retained(&s, "weak.heapsnapshot");
    assert_eq!(idom[x], b as u32);
    assert_eq!(r[b], 12);
    assert_eq!(r[a], 10);
    assert_eq!(idom[y], 0);
    assert_eq!(r[0], 25);
}

#[test]
fn shortcut_edges_count_only_at_the_root() {
    let mut s = Snap::new();
    let a = s.node("object", "A", 10);
    let b = s.node("object", "B", 20);
    let x = s.node("object", "X", 5);
    s.edge(0, "property", "a", a);
    s.edge(0, "property", "b", b);
    s.edge(a, "shortcut", "x", x);
    s.edge(b, "property", "x", x);
    let (r, idom) = retained(&s, "shortcut.heapsnapshot");
    assert_eq!(idom[x], b as u32);
    assert_eq!(r[a], 10);
    assert_eq!(r[b], 25);
}

#[test]
fn edges_from_outside_the_page_into_it_do_not_dominate() {
    // root -shortcut-> W (a global: page-owned) -> P; root -> (GC roots) -> S -> P.
    let mut s = Snap::new();
    let w = s.node("object", "Window", 10);
    let gc = s.node("synthetic", "(GC roots)", 0);
    let st = s.node("object", "Stack", 4);
    let p = s.node("object", "P", 6);
    s.edge(0, "shortcut", "w", w);
    s.edge(0, "element", "1", gc);
    s.edge(gc, "element", "0", st);
    s.edge(st, "property", "p", p);
    s.edge(w, "property", "p", p);
    let (r, idom) = retained(&s, "page.heapsnapshot");
    assert_eq!(idom[p], w as u32, "the Stack -> P edge is skipped");
    assert_eq!(r[w], 16);
    assert_eq!(r[st], 4);
}

/// A WeakMap `map` with table `table` holding `key -> value`.
fn weakmap_entry(s: &mut Snap, table: usize, key: usize, value: usize) {
    let (tid, kid, vid) = (s.nodes[table].id, s.nodes[key].id, s.nodes[value].id);
    let name = format!("1 / part of key (Object @{kid}) -> value (Object @{vid}) pair in WeakMap (table @{tid})");
    s.edge(table, "internal", &name, value);
    s.edge(key, "internal", &name, value);
}

#[test]
fn weakmap_values_belong_to_their_key() {
    let mut s = Snap::new();
    let map = s.node("object", "WeakMap", 8);
    let table = s.node("array", "(table)", 16);
    let key = s.node("object", "Key", 10);
    let value = s.node("object", "Value", 100);
    s.edge(0, "property", "map", map);
    s.edge(0, "property", "key", key);
    s.edge(map, "internal", "table", table);
    s.edge(table, "weak", "key", key);
    weakmap_entry(&mut s, table, key, value);
    let (r, idom) = retained(&s, "weakmap.heapsnapshot");
    assert_eq!(idom[value], key as u32, "the table's edge is not essential");
    assert_eq!(r[key], 110);
}

#[test]
fn cycles_reachable_only_through_the_fallback_hang_under_the_root() {
    // K <-> V, K held only weakly, V only through the table (dropped) and K.
    let mut s = Snap::new();
    let map = s.node("object", "WeakMap", 8);
    let table = s.node("array", "(table)", 16);
    let key = s.node("object", "Key", 10);
    let value = s.node("object", "Value", 100);
    let extra = s.node("object", "Extra", 1);
    s.edge(0, "property", "map", map);
    s.edge(map, "internal", "table", table);
    s.edge(table, "weak", "key", key);
    weakmap_entry(&mut s, table, key, value);
    s.edge(value, "property", "back", key);
    s.edge(value, "property", "extra", extra);
    s.edge(extra, "property", "key", key);
    let (r, idom) = retained(&s, "cycle.heapsnapshot");
    assert_eq!(idom[key], 0);
    assert_eq!(idom[value], 0);
    assert_eq!(r[0], 8 + 16 + 10 + 100 + 1);
}

#[test]
fn owned_arrays_and_system_objects_give_their_size_to_the_owner() {
    let mut s = Snap::new();
    let o = s.node("object", "Owner", 16);
    let other = s.node("object", "Other", 8);
    let own = s.node("array", "(object elements)", 100);
    let shared = s.node("array", "(shared)", 50);
    let sys = s.node("hidden", "system / Foo", 7);
    s.edge(0, "property", "o", o);
    s.edge(0, "property", "other", other);
    s.edge(o, "internal", "elements", own);
    s.edge(own, "element", "0", sys);
    s.edge(o, "internal", "s", shared);
    s.edge(other, "internal", "s", shared);
    let path = s.write("transfer.heapsnapshot");
    let r = snapshot::retained(&path, &Progress::silent()).unwrap();
    assert_eq!(r.g.self_size[o], 123);
    assert_eq!(r.g.self_size[own], 0);
    assert_eq!(r.g.self_size[sys], 0);
    assert_eq!(r.g.self_size[shared], 50);
    assert_eq!(r.retained[0], 16 + 8 + 100 + 50 + 7);
}

#[test]
fn classes_are_named_as_devtools_names_them() {
    let mut s = Snap::new();
    let global = s.node("object", "global", 10);
    s.edge(0, "property", "global", global);
    let kinds = [
        ("closure", "makeThing", "Function"),
        ("string", "hello", "(string)"),
        ("hidden", "system / Context", "(system)"),
        ("code", "foo", "(compiled code)"),
        ("array", "(object elements)", "(array)"),
        ("regexp", "a+b", "RegExp"),
        ("object", "Session", "Session"),
        ("native", "<div id=\"x\">", "<div>"),
        ("number", "heap number", "(number)"),
    ];
    for (i, (ty, name, _)) in kinds.iter().enumerate() {
        let n = s.node(ty, name, 8);
        s.edge(global, "property", &format!("k{i}"), n);
        // A second holder, so arrays and system objects keep their own size.
        s.edge(0, "element", &i.to_string(), n);
    }
    // Three plain objects of one shape: named after it. A lone shape is not.
    for i in 0..3 {
        let o = s.node("object", "Object", 12);
        s.edge(global, "property", &format!("p{i}"), o);
        let v = s.node("string", "v", 4);
        s.edge(o, "property", "name", v);
        s.edge(o, "property", "quote\"d", v);
        s.edge(o, "property", "__proto__", v);
    }
    let lone = s.node("object", "Object", 12);
    s.edge(global, "property", "lone", lone);
    let v = s.node("string", "w", 4);
    s.edge(lone, "property", "unique", v);
    let path = s.write("names.heapsnapshot");
    let a = snapshot::analyse(&path, &Progress::silent()).unwrap();
    let names: Vec<&str> = a.classes.aggs.iter().map(|c| c.name.as_str()).collect();
    for (_, _, want) in kinds {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let shape = a.classes.aggs.iter().find(|c| c.name == "{name, \"quote\\\"d\"}").expect("shape class");
    assert_eq!(shape.count, 3);
    assert!(names.contains(&"{unique}") == false && names.contains(&"Object"), "{names:?}");
}

#[test]
fn detached_dom_state_spreads_and_renames_native_nodes() {
    let mut s = Snap::new();
    let global = s.node("object", "global", 10);
    s.edge(0, "property", "global", global);
    // A detached tree (div -> span), an attached one (p -> a), and a node
    // reachable from both: attached-ness spreads first and wins.
    let div = s.node("native", "<div>", 8);
    let span = s.node("native", "<span>", 8);
    let p = s.node("native", "<p>", 8);
    let a = s.node("native", "<a>", 8);
    let shared = s.node("native", "<b>", 8);
    for (k, n) in [div, p].into_iter().enumerate() {
        s.edge(global, "property", &format!("n{k}"), n);
    }
    s.edge(div, "property", "child", span);
    s.edge(p, "property", "child", a);
    s.edge(div, "property", "shared", shared);
    s.edge(p, "property", "shared", shared);
    // Hidden and weak edges carry no state.
    let hidden = s.node("native", "<i>", 8);
    s.edge(div, "hidden", "0", hidden);
    s.edge(global, "property", "i", hidden);
    s.with_detachedness(div, 2);
    s.with_detachedness(p, 1);
    let path = s.write("dom.heapsnapshot");
    let analysis = snapshot::analyse(&path, &Progress::silent()).unwrap();
    let mut names: Vec<&str> = analysis.classes.aggs.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["<a>", "<b>", "<i>", "<p>", "Detached <div>", "Detached <span>", "global"], "{names:?}");
}

/// root -> global -cache-> Map -table-> (array) -[i]-> Session × n
fn sessions(ids: &[u32]) -> Snap {
    let mut s = Snap::new();
    let global = s.node("object", "global", 10);
    let map = s.node("object", "Map", 20);
    let table = s.node("array", "(table)", 40);
    s.edge(0, "shortcut", "global", global);
    s.edge(global, "property", "cache", map);
    s.edge(map, "internal", "table", table);
    for (i, &id) in ids.iter().enumerate() {
        let n = s.node("object", "Session", 100);
        s.with_id(n, id);
        s.edge(table, "element", &i.to_string(), n);
        let str = s.node("string", "payload", 50);
        s.with_id(str, id + 1);
        s.edge(n, "property", "data", str);
    }
    s
}

#[test]
fn summary_ranks_classes_and_explains_the_top_one_with_a_path() {
    let s = sessions(&[101, 103, 105]);
    let path = s.write("paths.heapsnapshot");
    let sum = snapshot::summarize(&path, &Options { top: 10, paths: 10, progress: false }).unwrap();
    let session = sum.classes.iter().find(|c| c.name == "Session").unwrap();
    assert_eq!((session.count, session.shallow_size, session.retained_size), (3, 300, 450));
    let p = sum.retainer_paths.iter().find(|p| p.class == "Session").expect("a path for Session");
    assert_eq!((p.objects, p.retained_size), (3, 450));
    let steps: Vec<(&str, Option<&str>)> = p.steps.iter().map(|s| (s.node.as_str(), s.edge.as_deref())).collect();
    assert_eq!(
        steps,
        [("(root)", None), ("global", Some("global")), ("Map", Some("cache")), ("(array)", Some("table")), ("Session", Some("0"))]
    );
    assert_eq!(p.steps[4].edge_type.as_deref(), Some("element"));
    assert_eq!(p.steps[2].edge_type.as_deref(), Some("property"));
    let phases: Vec<&str> = sum.timings_ms.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["parse", "graph", "dominators", "retained", "classes", "paths"] {
        assert!(phases.contains(&want), "{want} timed: {phases:?}");
    }
    assert_eq!(sum.total_size, 10 + 20 + 40 + 3 * 150);
}

#[test]
fn diff_counts_objects_added_and_removed_by_id() {
    let before = sessions(&[101, 103, 105]).write("before.heapsnapshot");
    let after = sessions(&[103, 105, 201, 203, 205]).write("after.heapsnapshot");
    let d = snapshot::diff(&before, &after, &Options { top: 10, paths: 3, progress: false }).unwrap();
    let s = d.classes.iter().find(|c| c.name == "Session").unwrap();
    assert_eq!((s.count_before, s.count_after, s.added, s.removed), (3, 5, 3, 1));
    assert_eq!((s.retained_before, s.retained_after, s.retained_delta), (450, 750, 300));
    assert_eq!(d.classes[0].name, "Session", "largest growth first");
    let p = s.retainer_path.as_ref().expect("path for the added objects");
    assert_eq!(p.objects, 3);
    assert_eq!(p.steps.last().unwrap().node, "Session");
    assert!([201, 203, 205].contains(&p.steps.last().unwrap().id));
}

#[test]
fn strings_are_unescaped_and_lone_surrogates_replaced() {
    let text = r#"{"snapshot":{"meta":{"node_fields":["id","type","name","edge_count","self_size"],
        "node_types":["number",["hidden","object","synthetic"],"string","number","number"],
        "edge_fields":["to_node","type","name_or_index"],"edge_types":["node",["property","weak"],"string_or_number"]},
        "node_count":6,"edge_count":5},
      "nodes":[1,2,0,5,0, 3,1,1,0,10, 5,1,2,0,20, 7,1,3,0,30, 9,1,4,0,40, 11,1,5,0,50],
      "edges":[5,0,1, 10,0,1, 15,0,1, 20,0,1, 25,0,1],
      "strings":["","caf\u00e9","\ud83d\ude00 grin","\ud800x","end\udc00","tab\tq\"\\\/"]}"#;
    let path = write_text("escapes.heapsnapshot", text);
    let a = snapshot::analyse(&path, &Progress::silent()).unwrap();
    let names: Vec<&str> = (0..6).map(|i| a.g.name(i)).collect();
    assert_eq!(names, ["", "café", "😀 grin", "\u{FFFD}x", "end\u{FFFD}", "tab\tq\"\\/"]);
    // Field order came from meta: ids, sizes and edges in their own places.
    assert_eq!(a.g.node_id, [1, 3, 5, 7, 9, 11]);
    assert_eq!(a.retained[0], 150);
}

#[test]
fn gzip_with_several_members_reads_like_the_plain_file() {
    use std::io::Write;
    let s = sessions(&[101, 103]);
    let plain = s.write("plain.heapsnapshot");
    let text = s.json();
    let (a, b) = text.as_bytes().split_at(text.len() / 2);
    let mut out = Vec::new();
    for part in [a, b] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(part).unwrap();
        out.extend(enc.finish().unwrap());
    }
    let gz = plain.with_extension("heapsnapshot.gz");
    std::fs::write(&gz, out).unwrap();
    let x = snapshot::retained(&plain, &Progress::silent()).unwrap();
    let y = snapshot::retained(&gz, &Progress::silent()).unwrap();
    assert_eq!(x.retained, y.retained);
    assert_eq!(x.g.node_id, y.g.node_id);
}

#[test]
fn bad_files_are_errors_not_panics() {
    let text = sessions(&[101, 103]).json();
    let missing = snapshot::retained(std::path::Path::new("/nonexistent/x.heapsnapshot"), &Progress::silent());
    assert!(matches!(missing, Err(ReportError::Io { .. })));
    for cut in [1, 10, 100, text.len() / 2, text.len() - 3] {
        let p = write_text("cut.heapsnapshot", &text[..cut]);
        match snapshot::retained(&p, &Progress::silent()) {
            Err(ReportError::Truncated { .. }) => {}
            other => panic!("cut at {cut}: {:?}", other.err()),
        }
    }
    for bad in ["", "[]", "{\"nodes\":[1]}", "<html>", &text.replace("\"nodes\":[", "\"nodes\":[-")] {
        let p = write_text("bad.heapsnapshot", bad);
        let r = snapshot::retained(&p, &Progress::silent());
        assert!(matches!(r, Err(ReportError::Corrupt { .. }) | Err(ReportError::Truncated { .. })), "{bad:.40}: {:?}", r.err());
    }
}

#[test]
fn tiny_read_buffers_give_the_same_snapshot() {
    use memguard_report::snapshot::reader::read_snapshot_buffered;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for name in ["ok-mixed.heapsnapshot", "ok-escapes.heapsnapshot"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let whole = read_snapshot_buffered(&bytes[..], u64::MAX, 1 << 20).unwrap();
        for size in [16, 17, 23, 64, 129] {
            let r = read_snapshot_buffered(&bytes[..], u64::MAX, size).unwrap();
            assert_eq!(r.node_id, whole.node_id, "{name} @ {size}");
            assert_eq!(r.edge_to, whole.edge_to, "{name} @ {size}");
            assert_eq!(r.edge_name, whole.edge_name, "{name} @ {size}");
            assert_eq!(r.self_size, whole.self_size, "{name} @ {size}");
            let strings = |s: &memguard_report::snapshot::reader::RawSnapshot| -> Vec<String> {
                (0..s.strings.len() as u32).map(|i| s.strings.get(i).to_string()).collect()
            };
            assert_eq!(strings(&r), strings(&whole), "{name} @ {size}");
        }
    }
}

#[test]
fn summarize_and_diff_match_the_separate_calls() {
    let before = sessions(&[101, 103, 105]).write("sd-before.heapsnapshot");
    let after = sessions(&[103, 105, 201, 203, 205]).write("sd-after.heapsnapshot");
    let opts = Options { top: 10, paths: 3, progress: false };
    let (sum, d) = snapshot::summarize_and_diff(&after, &before, &opts).unwrap();
    let sum2 = snapshot::summarize(&after, &opts).unwrap();
    let d2 = snapshot::diff(&before, &after, &opts).unwrap();
    assert_eq!(format!("{:?}", sum.classes), format!("{:?}", sum2.classes));
    assert_eq!(format!("{:?}", sum.retainer_paths), format!("{:?}", sum2.retainer_paths));
    assert_eq!(format!("{:?}", d), format!("{:?}", d2));
}
