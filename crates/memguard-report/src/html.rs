//! `--html <file>`: the report as one self-contained page — Chart.js and the
//! report JSON inlined, a Content-Security-Policy that forbids any request —
//! so it opens offline from a ticket attachment or an air-gapped machine.
//!
//! The page template (`assets/report.html`) holds the layout and the script
//! that draws the charts from the embedded JSON; Chart.js is vendored
//! unmodified (`assets/chart.umd.min.js`, MIT, `assets/chart.js-LICENSE.md`).

use crate::report::Report;

const TEMPLATE: &str = include_str!("../assets/report.html");
const CHART_JS: &str = include_str!("../assets/chart.umd.min.js");

pub fn render(report: &Report) -> String {
    let json = serde_json::to_string(report).expect("a Report always serializes");
    let title = format!("memguard report: {}", report.input);
    // One pass over the template: a placeholder's text in the inserted content
    // (a class named `{{TITLE}}`) is never expanded again.
    let mut out = String::with_capacity(TEMPLATE.len() + CHART_JS.len() + json.len());
    let mut rest = TEMPLATE;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        out.push_str(&rest[..start]);
        match &rest[start + 2..start + len] {
            "TITLE" => out.push_str(&escape_html(&title)),
            "CHART_JS" => out.push_str(CHART_JS),
            "REPORT_JSON" => out.push_str(&script_safe_json(&json)),
            other => {
                out.push_str("{{");
                out.push_str(other);
                out.push_str("}}");
            }
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside `<script type="application/json">`: every `<`,
/// `>` and `&` (only ever inside strings in JSON) becomes a `\u` escape, so
/// no `</script>` or `<!--` in a heap string can end or bend the element;
/// U+2028/2029 too, for old JS parsers. `JSON.parse` reads it back unchanged.
pub fn script_safe_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ClassStat, SnapshotSummary, SCHEMA};

    #[test]
    fn the_vendored_library_cannot_end_its_script_element() {
        let lower = CHART_JS.to_ascii_lowercase();
        assert!(!lower.contains("</script") && !lower.contains("<!--"));
        assert!(CHART_JS.contains("Chart.js v4"));
    }

    #[test]
    fn heap_strings_cannot_break_out_of_the_page() {
        let evil = "</script><script>alert(1)</script><!-- {{CHART_JS}} \u{2028}";
        let report = Report {
            schema: SCHEMA,
            input: format!("<b>{evil}"),
            snapshot: Some(SnapshotSummary {
                classes: vec![ClassStat { name: evil.into(), ..ClassStat::default() }],
                ..SnapshotSummary::default()
            }),
            ..Report::default()
        };
        let page = render(&report);
        // Exactly the template's own script elements end, nothing from the data.
        assert_eq!(page.matches("</script>").count(), TEMPLATE.matches("</script>").count());
        assert_eq!(page.matches("Chart.js v4").count(), 1, "a placeholder in the data was expanded");
        assert!(page.contains("<title>memguard report: &lt;b&gt;&lt;/script&gt;"));
        assert!(!page.contains("{{REPORT_JSON}}") && !page.contains("{{TITLE}}"));
        // The embedded JSON parses back to the same report.
        let start = page.find(r#"<script type="application/json" id="report-data">"#).unwrap();
        let body = &page[start..];
        let body = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
        let back: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(back["snapshot"]["classes"][0]["name"], evil);
        assert_eq!(back["schema"], "memguard-report/1");
    }

    #[test]
    fn the_page_makes_no_requests() {
        let page = render(&Report { schema: SCHEMA, ..Report::default() });
        assert!(page.contains("Content-Security-Policy"));
        assert!(page.contains("default-src 'none'"));
        for needle in ["src=\"http", "href=\"http", "<link", "@import", "url(http"] {
            assert!(!TEMPLATE.contains(needle), "{needle}");
        }
    }
}
