//! The `tagbeez` binary's command-line modes, run as a process.

use std::io::Write;
use std::process::{Command, Stdio};

fn tagbeez(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagbeez"));
    cmd.args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn classify_reads_json_lines_and_echoes_ids_in_order() {
    let mut input = String::new();
    for i in 0..40 {
        // 40 lines: more than one internal batch of 32.
        let message = if i % 2 == 0 {
            "ok I'll take the blue one, checkout please"
        } else {
            "where is my order #5531?"
        };
        input.push_str(&format!("{{\"id\": {i}, \"message\": \"{message}\"}}\n"));
    }
    input.push_str("\n{\"message\": \"just browsing for ideas, not buying today\"}\n");
    let (ok, stdout, _) = tagbeez(&["classify"], &[], &input);
    assert!(ok);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 41, "one output line per non-blank input line");
    for (i, line) in lines[..40].iter().enumerate() {
        assert_eq!(line["id"], i);
        let tags: Vec<&str> = line["selected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["tag"].as_str().unwrap())
            .collect();
        assert_eq!(
            tags,
            if i % 2 == 0 {
                vec!["Hot-buyer"]
            } else {
                vec![]
            },
            "line {i}"
        );
    }
    assert!(lines[40].get("id").is_none());
    assert_eq!(lines[40]["selected"][0]["tag"], "Window-shopper");
}

#[test]
fn bad_lines_get_an_error_line_and_do_not_stop_the_run() {
    let input = "{\"id\": \"a\", \"message\": \"hello\"}\nnot json\n{\"id\": \"b\", \"message\": \"   \"}\n{\"id\": \"c\", \"message\": \"add it to my cart\"}\n";
    let (ok, stdout, _) = tagbeez(&["classify"], &[], input);
    assert!(ok);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("invalid line"));
    assert_eq!(lines[2]["id"], "b");
    assert_eq!(lines[2]["error"]["code"], "empty_message");
    assert_eq!(lines[3]["id"], "c");
    assert_eq!(lines[3]["selected"][0]["tag"], "Hot-buyer");
}

#[test]
fn a_bad_setting_stops_start_up_with_its_name() {
    let (ok, _, stderr) = tagbeez(&["classify"], &[("WINDOW_DECAY", "1.5")], "");
    assert!(!ok);
    assert!(stderr.contains("WINDOW_DECAY"), "{stderr}");
    let (ok, _, stderr) = tagbeez(&["frobnicate"], &[], "");
    assert!(!ok);
    assert!(stderr.contains("unknown command"), "{stderr}");
}
