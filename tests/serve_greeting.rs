//! `tagbeez serve` greets a person once, on a terminal, and keeps its logs JSON otherwise.
//!
//! The terminal is a real pseudo-terminal (`support/serve.rs`).

#[path = "support/serve.rs"]
#[allow(dead_code)]
mod serve;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use serve::{get, Server};

const GREETING: &str = "tagbeez is serving on ";

fn model_version() -> String {
    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string("model/labels.json").unwrap()).unwrap();
    labels["model_version"].as_str().unwrap().to_owned()
}

#[test]
fn a_terminal_gets_one_greeting_with_the_address_demo_page_and_model() {
    let mut server = Server::on_terminal(None);
    let first = server.until("greeting", |l| l.starts_with(GREETING));
    let base = first[GREETING.len()..].trim().to_owned();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(base, format!("http://127.0.0.1:{port}"));
    let demo = server.until("demo line", |l| l.contains("demo page"));
    assert_eq!(demo.trim(), format!("demo page  {base}/demo"));
    let model = server.until("model line", |l| l.trim_start().starts_with("model "));
    assert!(model.contains(&model_version()), "{model}");
    assert!(model.contains("int8") || model.contains("f32"), "{model}");
    server.until("store line", |l| l.contains("store      in memory"));
    // What the greeting names answers.
    assert_eq!(get(port, "/demo"), 200);
    assert_eq!(get(port, "/health"), 200);
    server.drain(Duration::from_millis(500));
    let greetings = server
        .seen
        .iter()
        .filter(|l| l.starts_with(GREETING))
        .count();
    assert_eq!(
        greetings,
        1,
        "greeted {greetings} times:\n{}",
        server.seen.join("\n")
    );
    // After the greeting, the logs are still JSON lines.
    let after: Vec<&String> = server
        .seen
        .iter()
        .skip_while(|l| !l.starts_with("JSON logs follow"))
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(!after.is_empty(), "no log line after the greeting");
    assert_json_lines(after.into_iter());
}

#[test]
fn a_pipe_gets_json_lines_only() {
    let mut server = Server::on_pipe();
    let port = server.port();
    assert_eq!(get(port, "/health"), 200);
    server.drain(Duration::from_millis(500));
    assert_json_lines(server.seen.iter());
}

#[test]
fn log_format_json_keeps_a_terminal_to_json_lines() {
    let mut server = Server::on_terminal(Some("json"));
    let port = server.port();
    assert_eq!(get(port, "/health"), 200);
    server.drain(Duration::from_millis(500));
    assert_json_lines(server.seen.iter());
}

#[test]
fn a_bad_log_format_stops_start_up_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_tagbeez"))
        .arg("serve")
        .env("LOG_FORMAT", "pretty")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOG_FORMAT"), "{stderr}");
}

/// Every non-empty line parses as JSON.
fn assert_json_lines<'a>(lines: impl Iterator<Item = &'a String>) {
    for line in lines.filter(|l| !l.is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}
