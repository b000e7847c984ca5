//! The greeting `tagbeez serve` prints once for a person at a terminal: where the server listens,
//! the demo page, the model it runs and where conversations go. Logs stay JSON lines after it,
//! and a server whose stderr is a pipe or a file (CI, a container, `2> log.jsonl`) or that runs
//! with `LOG_FORMAT=json` prints only those: a log reader never meets a line it cannot parse.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::config::LogFormat;

/// What the greeting names.
pub struct Greeting<'a> {
    /// The address the listener is bound to (the real port, also when `PORT=0`).
    pub addr: SocketAddr,
    /// Whether `GET /demo` serves the page.
    pub demo_page: bool,
    pub model_version: &'a str,
    /// The execution form and why it was picked (`int8`, "the CPU has AVX-512 VNNI").
    pub form: String,
    pub form_reason: &'a str,
    /// Where conversation windows are kept: "in memory" or the DynamoDB table.
    pub store: String,
}

/// Greet only a person: `auto` and stderr a terminal.
pub fn wanted(format: LogFormat, stderr_is_terminal: bool) -> bool {
    format == LogFormat::Auto && stderr_is_terminal
}

impl Greeting<'_> {
    /// The text, a few lines, ending in a newline.
    pub fn render(&self) -> String {
        let base = base_url(self.addr);
        let mut out = format!("tagbeez is serving on {base}\n");
        if self.demo_page {
            let _ = writeln!(out, "  demo page  {base}/demo");
        }
        let _ = writeln!(out, "  API        {base}/openapi.json");
        let _ = writeln!(
            out,
            "  model      {} ({}: {})",
            self.model_version, self.form, self.form_reason
        );
        let _ = writeln!(out, "  store      {}", self.store);
        let _ = writeln!(
            out,
            "  try        curl -s {base}/classify-message -H 'content-type: application/json' \
             -d '{{\"message\": \"first time here, any welcome discount?\"}}'"
        );
        out.push_str("JSON logs follow (LOG_FORMAT=json: logs only). Ctrl-C stops.\n");
        out
    }
}

/// The URL a person can paste: an unspecified listen address (`0.0.0.0`, `::`) is reached
/// through loopback.
fn base_url(addr: SocketAddr) -> String {
    let port = addr.port();
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => format!("http://127.0.0.1:{port}"),
        ip if ip.is_unspecified() => format!("http://[::1]:{port}"),
        std::net::IpAddr::V6(ip) => format!("http://[{ip}]:{port}"),
        ip => format!("http://{ip}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting(addr: &str, demo_page: bool) -> String {
        Greeting {
            addr: addr.parse().unwrap(),
            demo_page,
            model_version: "v1",
            form: "int8".into(),
            form_reason: "the CPU has VNNI",
            store: "in memory".into(),
        }
        .render()
    }

    #[test]
    fn names_the_address_demo_model_and_store() {
        let text = greeting("127.0.0.1:8080", true);
        assert!(text.starts_with("tagbeez is serving on http://127.0.0.1:8080\n"));
        assert!(text.contains("demo page  http://127.0.0.1:8080/demo\n"));
        assert!(text.contains("model      v1 (int8: the CPU has VNNI)\n"));
        assert!(text.contains("store      in memory\n"));
    }

    #[test]
    fn no_demo_line_when_the_page_is_off() {
        assert!(!greeting("127.0.0.1:8080", false).contains("/demo"));
    }

    #[test]
    fn unspecified_addresses_are_reached_through_loopback() {
        assert!(greeting("0.0.0.0:9000", true).contains("http://127.0.0.1:9000/demo"));
        assert!(greeting("[::]:9000", true).contains("http://[::1]:9000/demo"));
        assert!(greeting("[fe80::1]:9000", true).contains("http://[fe80::1]:9000/demo"));
    }

    #[test]
    fn only_a_terminal_in_auto_is_greeted() {
        assert!(wanted(LogFormat::Auto, true));
        assert!(!wanted(LogFormat::Auto, false));
        assert!(!wanted(LogFormat::Json, true));
        assert!(!wanted(LogFormat::Json, false));
    }
}
