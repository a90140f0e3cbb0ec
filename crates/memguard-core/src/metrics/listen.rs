//! `MEMGUARD_METRICS`: where the metrics endpoint listens. Pure, so every
//! rule is unit-tested. A bare port means loopback; another interface only
//! when an IP address is given. Host names other than `localhost` are not
//! resolved: a name can point anywhere, and the endpoint must not end up
//! reachable from other machines without being asked.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// What a `MEMGUARD_METRICS` value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Off,
    /// Serve on this address; `note` is a warning about how the value was read.
    On { addr: SocketAddr, note: Option<String> },
}

/// The port `on` means: OpenTelemetry's Prometheus exporter's default.
pub const DEFAULT_PORT: u16 = 9464;

/// The problem with a value that cannot be used (the endpoint then stays off).
pub const PROBLEM: &str = "is not off, on, a port (9464) or an IP address and port (127.0.0.1:9464, [::1]:9464)";
pub const HOSTNAME: &str =
    "names a host other than localhost, which memguard does not resolve (it could expose the endpoint beyond this machine); give an IP address";

pub fn parse(value: &str) -> Result<Parsed, &'static str> {
    let value = value.trim();
    let loopback = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    match value.to_ascii_lowercase().as_str() {
        "" | "0" | "off" | "no" | "false" | "none" => return Ok(Parsed::Off),
        "on" | "yes" | "true" => return Ok(Parsed::On { addr: loopback(DEFAULT_PORT), note: None }),
        _ => {}
    }
    if let Some(port) = port(value) {
        return Ok(Parsed::On { addr: loopback(port?), note: None });
    }
    if let Some(rest) = value.strip_prefix(':') {
        // Go's `:9464` means every interface; here it stays on loopback.
        let port = port(rest).ok_or(PROBLEM)??;
        let note = format!(
            "MEMGUARD_METRICS=\"{value}\" names no host; serving on 127.0.0.1:{port} only (give 0.0.0.0:{port} to listen on every interface)"
        );
        return Ok(Parsed::On { addr: loopback(port), note: Some(note) });
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return if addr.port() == 0 { Err(PROBLEM) } else { Ok(Parsed::On { addr, note: None }) };
    }
    let (host, port_text) = value.rsplit_once(':').ok_or(PROBLEM)?;
    let port = port(port_text).ok_or(PROBLEM)??;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(Parsed::On { addr: loopback(port), note: None });
    }
    let hostname = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    Err(if hostname { HOSTNAME } else { PROBLEM })
}

/// `Some(Ok(port))` for 1–65535, `Some(Err)` for other numbers, `None` for
/// text that is not a number at all.
fn port(text: &str) -> Option<Result<u16, &'static str>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u16>().ok().filter(|&p| p != 0).ok_or(PROBLEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(value: &str) -> (String, Option<String>) {
        match parse(value) {
            Ok(Parsed::On { addr, note }) => (addr.to_string(), note),
            other => panic!("{value}: {other:?}"),
        }
    }

    #[test]
    fn off_spellings() {
        for v in ["", " ", "0", "off", "OFF", "no", "false", "none"] {
            assert_eq!(parse(v), Ok(Parsed::Off), "{v:?}");
        }
    }

    #[test]
    fn a_bare_port_is_loopback() {
        assert_eq!(on("9464"), ("127.0.0.1:9464".into(), None));
        assert_eq!(on(" 65535 "), ("127.0.0.1:65535".into(), None));
        assert_eq!(on("localhost:9464"), ("127.0.0.1:9464".into(), None));
        assert_eq!(on("LocalHost:80"), ("127.0.0.1:80".into(), None));
        assert_eq!(on("on"), ("127.0.0.1:9464".into(), None));
    }

    #[test]
    fn an_ip_address_is_taken_as_given() {
        assert_eq!(on("127.0.0.1:9464"), ("127.0.0.1:9464".into(), None));
        assert_eq!(on("0.0.0.0:9464"), ("0.0.0.0:9464".into(), None));
        assert_eq!(on("10.1.2.3:9100"), ("10.1.2.3:9100".into(), None));
        assert_eq!(on("[::1]:9464"), ("[::1]:9464".into(), None));
        assert_eq!(on("[::]:9464"), ("[::]:9464".into(), None));
    }

    #[test]
    fn a_port_without_host_stays_on_loopback_with_a_note() {
        let (addr, note) = on(":9464");
        assert_eq!(addr, "127.0.0.1:9464");
        let note = note.unwrap();
        assert!(note.contains("names no host") && note.contains("0.0.0.0:9464"), "{note}");
    }

    #[test]
    fn host_names_are_not_resolved() {
        assert_eq!(parse("example.com:9464"), Err(HOSTNAME));
        assert_eq!(parse("metrics-host:9464"), Err(HOSTNAME));
    }

    #[test]
    fn bad_values() {
        for v in ["65536", "99999999999", "-1", "abc", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", ":0", ":", "1.2.3.4:x", "[::1]", "http://127.0.0.1:9464", "9464/metrics", "300.1.1.1:80"] {
            assert!(parse(v).is_err(), "{v:?} → {:?}", parse(v));
        }
    }
}
