//! The README and `docs/` as a newcomer meets them:
//!
//! - every relative link in README.md and docs/*.md reaches a file, and every `#anchor` a heading
//!   of that file (GitHub's slugs);
//! - the README's tour (the sh block under `## Tour`) works pasted as it is, against
//!   `tagbeez serve` with the embedded model and the in-memory store.

#[path = "support/serve.rs"]
#[allow(dead_code)]
mod serve;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use serve::{get, Server};

/// README.md and every Markdown file in docs/.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir("docs").expect("docs/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Markdown outside fenced code blocks, line by line with line numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The targets of inline links `[text](target)` on a line (code spans skipped).
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'`' => in_code = !in_code,
            b']' if !in_code && bytes.get(i + 1) == Some(&b'(') => {
                let rest = &line[i + 2..];
                if let Some(end) = rest.find(')') {
                    let target = rest[..end].split_whitespace().next().unwrap_or("");
                    targets.push(target.to_owned());
                    i += end + 2;
                }
            }
            _ => {}
        }
        i += 1;
    }
    targets
}

/// GitHub's anchor for a heading: lower case; letters, digits, spaces, `-` and `_` kept (other
/// characters dropped); spaces become `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown file offers, duplicates numbered `-1`, `-2` as GitHub does.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(&heading.replace('`', ""));
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// What is wrong with the relative links of one file (`file:line: ...` each).
fn broken_links(file: &Path, text: &str) -> Vec<String> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut broken = Vec::new();
    for (number, line) in prose(text) {
        for target in link_targets(line) {
            if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let here = format!("{}:{number}: {target}", file.display());
            if path.is_empty() {
                if !anchors(text).contains(anchor) {
                    broken.push(format!("{here}: no heading #{anchor} in this file"));
                }
                continue;
            }
            let resolved = dir.join(path);
            if !resolved.exists() {
                broken.push(format!("{here}: no file {}", resolved.display()));
                continue;
            }
            if anchor.is_empty() || resolved.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let target_text = std::fs::read_to_string(&resolved).unwrap();
            if !anchors(&target_text).contains(anchor) {
                broken.push(format!(
                    "{here}: no heading #{anchor} in {}",
                    resolved.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_reaches_its_file_and_heading() {
    let mut broken = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        broken.extend(broken_links(&file, &text));
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_finds_a_broken_file_and_a_broken_anchor() {
    let text = "# Top\n## The `make test` parts\n[ok](#the-make-test-parts) [ok](README.md#top)\n\
                [gone](docs/nothing.md) [bad](#nowhere)\n```\n[code](not/checked.md)\n```\n";
    // README.md resolves from the crate root; its own anchors are not #top, so that one fails too.
    let broken = broken_links(Path::new("x.md"), text);
    assert!(
        broken.iter().any(|b| b.contains("docs/nothing.md")),
        "{broken:?}"
    );
    assert!(broken.iter().any(|b| b.contains("#nowhere")), "{broken:?}");
    assert!(
        broken.iter().any(|b| b.contains("README.md#top")),
        "{broken:?}"
    );
    assert!(
        !broken.iter().any(|b| b.contains("make-test-parts")),
        "{broken:?}"
    );
    assert!(
        !broken.iter().any(|b| b.contains("not/checked")),
        "{broken:?}"
    );
    assert_eq!(broken.len(), 3, "{broken:?}");
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Queue in: SQS (FIFO)"), "queue-in-sqs-fifo");
    assert_eq!(
        slug("Training pipeline (`train.py`)"),
        "training-pipeline-trainpy"
    );
    let twice = anchors("# A\n## A\n");
    assert!(twice.contains("a") && twice.contains("a-1"));
}

/// The README's tour: the command lines of the sh block right under `## Tour`, continuation
/// lines joined.
fn tour() -> Vec<String> {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let section = readme
        .split("\n## Tour\n")
        .nth(1)
        .expect("the README has a `## Tour` section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the tour has an sh block");
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let (text, continued) = match line.trim_end().strip_suffix('\\') {
            Some(t) => (t, true),
            None => (line, false),
        };
        current.push_str(text);
        if !continued {
            if !current.trim().is_empty() {
                commands.push(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    commands
}

#[test]
fn the_readme_tour_works_pasted_as_it_is() {
    let commands = tour();
    assert!(commands.len() >= 3, "a tour of {commands:?}");
    let mut server = Server::on_pipe();
    let port = server.port();
    let mut answers = Vec::new();
    for command in &commands {
        assert!(
            command.trim_start().starts_with("curl "),
            "not a curl line: {command}"
        );
        assert!(
            command.contains("localhost:8080"),
            "not against the server: {command}"
        );
        // Pasted as is, but on this test's port, and failing on an HTTP error.
        let pasted = command
            .replacen("curl ", "curl --fail-with-body --max-time 30 ", 1)
            .replace("localhost:8080", &format!("127.0.0.1:{port}"));
        let out = Command::new("bash").args(["-c", &pasted]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{command}\nfailed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{command}\nanswered no JSON ({e}): {stdout}"));
        assert!(answer.is_object(), "{command}: {answer}");
        answers.push(answer);
    }
    // What the README says the tour shows: two tags on the first message, a conversation whose
    // tag switches from First-time-visitor to Deal-seeker on its second message, read back.
    let selected = |a: &Value| -> Vec<String> {
        a["selected"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["tag"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(selected(&answers[0]), ["First-time-visitor", "Deal-seeker"]);
    let second = &answers[2];
    assert_eq!(second["conversation_tag"]["tag"], "Deal-seeker", "{second}");
    assert_eq!(
        second["previous_tag"]["tag"], "First-time-visitor",
        "{second}"
    );
    assert_eq!(second["switched"], true, "{second}");
    assert!(
        selected(&second["message_result"]).contains(&"Hot-buyer".to_owned()),
        "{second}"
    );
    assert_eq!(
        answers[3]["window"].as_array().map(Vec::len),
        Some(2),
        "{}",
        answers[3]
    );
    // The demo page the tour points to.
    assert_eq!(get(port, "/demo"), 200);
    server.drain(Duration::from_millis(100));
}

#[test]
fn the_readme_fits_on_two_screens_and_maps_every_doc() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 250,
        "README.md has {lines} lines: depth goes in docs/"
    );
    for file in documents().iter().filter(|f| f.starts_with("docs")) {
        let link = format!("({})", file.display());
        assert!(
            readme.contains(&link),
            "README.md does not link {}",
            file.display()
        );
    }
}
