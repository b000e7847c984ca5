//! The dependency rule between the crate's top-level modules, as docs/architecture.md states
//! it: every `crate::x` (and `tagbeez::x` in `src/main.rs`, and a `super::` path that leaves
//! its top-level module) in `src/**/*.rs` must be an edge the table under
//! `## Allowed dependencies` allows; there is no list of exceptions. The table is read from the
//! document, so the two cannot drift apart; every module in `src/` must be in it, and the
//! allowed graph must have no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";
const RULES: &str = "## Allowed dependencies";

// ---------------------------------------------------------------------------------------------
// Reading Rust: comments and literals blanked, then the paths that name another module.

/// `source` with comments, string and char literals replaced by spaces (newlines kept, so
/// line numbers stay), leaving only code.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, run: &[char]| {
        out.extend(run.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        // `// ...`, `//! ...`, `/// ...`
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            blank(&mut out, &chars[i..end]);
            i = end;
            continue;
        }
        // `/* ... */`, nested
        if c == '/' && next == Some('*') {
            let (mut depth, mut j) = (0usize, i);
            while j < chars.len() {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            let end = j.min(chars.len());
            blank(&mut out, &chars[i..end]);
            i = end;
            continue;
        }
        // raw strings: `r"..."`, `r#"..."#`, `br#"..."#`
        let starts_word = i == 0 || !is_ident(chars[i - 1]);
        let after_b = i >= 1 && chars[i - 1] == 'b' && (i == 1 || !is_ident(chars[i - 2]));
        if c == 'r' && (starts_word || after_b) {
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(i + 1 + hashes) == Some(&'"') {
                let body = i + 2 + hashes;
                let mut j = body;
                let end = loop {
                    if j >= chars.len() {
                        break chars.len();
                    }
                    if chars[j] == '"'
                        && chars[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&c| c == '#')
                            .count()
                            == hashes
                    {
                        break j + 1 + hashes;
                    }
                    j += 1;
                };
                out.push('r');
                blank(&mut out, &chars[i + 1..end]);
                i = end;
                continue;
            }
        }
        // `"..."` (and `b"..."`: the `b` stays as code)
        if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(chars.len());
            blank(&mut out, &chars[i..end]);
            i = end;
            continue;
        }
        // char literals (`'a'`, `'\''`, `'\u{1F600}'`); a lifetime or label (`'a`) stays
        if c == '\'' {
            if next == Some('\\') {
                let close = chars
                    .get(i + 3..)
                    .and_then(|r| r.iter().position(|&c| c == '\''));
                let end = close.map_or(chars.len(), |p| i + 3 + p + 1);
                blank(&mut out, &chars[i..end]);
                i = end;
                continue;
            }
            if chars.get(i + 2) == Some(&'\'') {
                blank(&mut out, &chars[i..i + 3]);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// The tokens of code (as `code_only` leaves it), each with its 1-based line.
fn tokens(code: &str) -> Vec<(usize, Token)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push((line, Token::Ident(word)));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((line, Token::PathSep));
            i += 2;
        } else {
            out.push((line, Token::Punct(c)));
            i += 1;
        }
    }
    out
}

/// One place a file names another top-level module.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    line: usize,
    target: String,
}

/// Where `source` (the file of module `path`, e.g. `["service", "feedback"]`) names a
/// top-level module through the crate root: `crate::x`, `crate::{x, y}`, `super::...::x` once
/// the `super`s leave the file's top-level module, and `root::x` for `root` other than `crate`
/// (`tagbeez`, from the binary). `$crate` (macros) is not counted.
fn references(path: &[String], source: &str, root: &str) -> Vec<Reference> {
    let toks = tokens(&code_only(source));
    let ident = |i: usize| match toks.get(i) {
        Some((_, Token::Ident(w))) => Some(w.as_str()),
        _ => None,
    };
    let is = |i: usize, t: &Token| toks.get(i).map(|(_, x)| x) == Some(t);
    let mut found = Vec::new();
    // Inline modules (`mod tests { ... }`) deepen the path: `super::` inside one stays here.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let (line, tok) = &toks[i];
        match tok {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            Token::Ident(w)
                if w == "mod" && ident(i + 1).is_some() && is(i + 2, &Token::Punct('{')) =>
            {
                inline.push(depth);
                depth += 1;
                i += 3;
                continue;
            }
            _ => {}
        }
        // A path starts here unless it continues one (`a::crate`) or is `$crate`.
        let continues = i > 0 && matches!(toks[i - 1].1, Token::PathSep | Token::Punct('$'));
        let word = ident(i);
        let mut after_root = None;
        if !continues && word == Some(root) && is(i + 1, &Token::PathSep) {
            after_root = Some(i + 2);
        } else if !continues && word == Some("super") {
            let mut supers = 0;
            let mut j = i;
            while ident(j) == Some("super") && is(j + 1, &Token::PathSep) {
                supers += 1;
                j += 2;
            }
            if supers > 0 && supers >= path.len() + inline.len() {
                after_root = Some(j);
            }
            if supers > 0 && after_root.is_none() {
                i = j;
                continue;
            }
        }
        let Some(at) = after_root else {
            i += 1;
            continue;
        };
        if let Some(name) = ident(at) {
            found.push(Reference {
                line: *line,
                target: name.to_owned(),
            });
            i = at + 1;
            continue;
        }
        if is(at, &Token::Punct('{')) {
            // `crate::{a, b::{c, d}, self}`: the first segment of each item of the group.
            let (mut nest, mut expecting, mut j) = (0usize, true, at);
            while j < toks.len() {
                let (item_line, t) = &toks[j];
                match t {
                    Token::Punct('{') => nest += 1,
                    Token::Punct('}') => {
                        nest -= 1;
                        if nest == 0 {
                            break;
                        }
                    }
                    Token::Punct(',') if nest == 1 => expecting = true,
                    Token::Ident(name) if nest == 1 && expecting => {
                        if name != "self" {
                            found.push(Reference {
                                line: *item_line,
                                target: name.clone(),
                            });
                        }
                        expecting = false;
                    }
                    Token::Punct('*') if nest == 1 && expecting => {
                        found.push(Reference {
                            line: *item_line,
                            target: "*".into(),
                        });
                        expecting = false;
                    }
                    _ => {}
                }
                j += 1;
            }
            // The group's braces are its own: leave `depth` as it was.
            i = j + 1;
            continue;
        }
        if is(at, &Token::Punct('*')) {
            found.push(Reference {
                line: *line,
                target: "*".into(),
            });
        }
        i = at;
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The document: the rule table.

#[derive(Debug, Default)]
struct Rules {
    /// module -> the modules it may depend on (itself always).
    may: BTreeMap<String, BTreeSet<String>>,
    /// module -> the modules its "must not depend on" cell names.
    must_not: BTreeMap<String, BTreeSet<String>>,
}

/// The rows of the first Markdown table under `heading`, as header -> cell.
fn table_under(doc: &str, heading: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut lines = doc.lines().skip_while(|l| l.trim_end() != heading);
    if lines.next().is_none() {
        return Err(format!("{DOC} has no `{heading}` section"));
    }
    let rows: Vec<Vec<String>> = lines
        .take_while(|l| !l.starts_with("## "))
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            let l = l.trim().trim_start_matches('|').trim_end_matches('|');
            l.split('|').map(|c| c.trim().to_owned()).collect()
        })
        .collect();
    let Some((header, body)) = rows.split_first() else {
        return Err(format!("{DOC}: no table under `{heading}`"));
    };
    let header: Vec<String> = header.iter().map(|h| h.to_lowercase()).collect();
    Ok(body
        .iter()
        .filter(|r| !r.iter().all(|c| c.chars().all(|c| "-: ".contains(c))))
        .map(|r| header.iter().cloned().zip(r.iter().cloned()).collect())
        .collect())
}

/// The backticked names of a cell: "`a`, `b`" -> {a, b}.
fn names(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn cell<'a>(row: &'a BTreeMap<String, String>, column: &str) -> Result<&'a str, String> {
    row.get(column)
        .map(String::as_str)
        .ok_or_else(|| format!("{DOC}: a row without a `{column}` column: {row:?}"))
}

fn one_name(cell: &str) -> Result<String, String> {
    let n = names(cell);
    match n.len() {
        1 => Ok(n.into_iter().next().unwrap()),
        _ => Err(format!(
            "{DOC}: `{cell}` should name one module in backticks"
        )),
    }
}

fn parse_rules(doc: &str) -> Result<Rules, String> {
    let mut rules = Rules::default();
    for row in table_under(doc, RULES)? {
        let module = one_name(cell(&row, "module")?)?;
        let may = names(cell(&row, "may depend on")?);
        let must_not = names(cell(&row, "must not depend on")?);
        if rules.may.insert(module.clone(), may).is_some() {
            return Err(format!("{DOC}: `{module}` has two rows"));
        }
        rules.must_not.insert(module, must_not);
    }
    Ok(rules)
}

/// What is wrong with the table itself: a name that is no module, a module both allowed and
/// forbidden.
fn table_problems(rules: &Rules) -> Vec<String> {
    let known: BTreeSet<&String> = rules.may.keys().collect();
    let mut problems = Vec::new();
    for (module, may) in &rules.may {
        let must_not = &rules.must_not[module];
        for name in may.iter().chain(must_not) {
            if !known.contains(name) {
                problems.push(format!("`{module}`'s row names `{name}`, which has no row"));
            }
        }
        for both in may.intersection(must_not) {
            problems.push(format!(
                "`{module}` both may and must not depend on `{both}`"
            ));
        }
    }
    problems
}

/// A cycle of the graph (self-loops aside), as the path that closes it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if next == node {
                continue;
            }
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// The modules that depend on `module`, directly or through others: the ones it must not
/// depend on, since that would close a loop.
fn dependents(graph: &BTreeMap<String, BTreeSet<String>>, module: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = vec![module.to_owned()];
    while let Some(m) = todo.pop() {
        for (from, to) in graph {
            if from != module && to.contains(&m) && found.insert(from.clone()) {
                todo.push(from.clone());
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The sources.

/// A file in `src/`, its module path and the name its code gives the library's root.
struct SourceFile {
    /// Relative to the crate, e.g. `src/service/feedback.rs`.
    shown: String,
    /// e.g. `["service", "feedback"]`; `["main"]` for the binary.
    module: Vec<String>,
    root: &'static str,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `src/**/*.rs` but `src/lib.rs` (the crate root only declares the modules).
fn sources() -> Vec<SourceFile> {
    let mut paths = Vec::new();
    rust_files(Path::new("src"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p != Path::new("src/lib.rs"))
        .map(|p| {
            let rel = p.strip_prefix("src").unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.len() > 1 && module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let root = if module == ["main"] {
                "tagbeez"
            } else {
                "crate"
            };
            SourceFile {
                shown: p.display().to_string(),
                text: std::fs::read_to_string(&p).unwrap(),
                module,
                root,
            }
        })
        .collect()
}

/// The top-level modules on disk: `src/x.rs`, `src/x/`, and `main` for `src/main.rs`.
fn modules_on_disk() -> BTreeSet<String> {
    std::fs::read_dir("src")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "lib")
        .collect()
}

/// The forbidden references of one file, each as `file:line: from -> to ...`; and every edge
/// it has (printed for whoever updates the table).
fn check_file(
    file: &SourceFile,
    rules: &Rules,
    seen: &mut BTreeSet<(String, String)>,
) -> Vec<String> {
    let from = &file.module[0];
    let Some(may) = rules.may.get(from) else {
        return vec![format!(
            "{}: module `{from}` has no row under `{RULES}` in {DOC}",
            file.shown
        )];
    };
    let mut problems = Vec::new();
    for r in references(&file.module, &file.text, file.root) {
        if &r.target == from {
            continue;
        }
        seen.insert((from.clone(), r.target.clone()));
        if may.contains(&r.target) {
            continue;
        }
        let allowed: Vec<String> = may.iter().map(|m| format!("`{m}`")).collect();
        problems.push(format!(
            "{}:{}: `{from}` -> `{}` is not allowed (`{from}` may depend on: {}; {DOC}, `{RULES}`)",
            file.shown,
            r.line,
            r.target,
            if allowed.is_empty() {
                "nothing".to_owned()
            } else {
                allowed.join(", ")
            }
        ));
    }
    problems
}

/// The HTTP crates: only the adapters that speak HTTP may name them.
const HTTP_CRATES: &[&str] = &[
    "axum",
    "http",
    "hyper",
    "lambda_http",
    "tower",
    "tower_http",
];
const HTTP_ADAPTERS: &[&str] = &["api", "lambda", "main"];

/// `line: crate` for every path rooted at an HTTP crate (`axum::...`, `use http::{...}`) in code.
fn http_crate_uses(source: &str) -> Vec<(usize, &'static str)> {
    let code = code_only(source);
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for name in HTTP_CRATES {
            let path = format!("{name}::");
            let mut from = 0;
            while let Some(at) = line[from..].find(&path) {
                let start = from + at;
                let before = line[..start].chars().next_back();
                // `lambda_http::` is not `http::`, and `$crate::x::http::` or `super::http::` is a
                // module of ours, not the crate.
                let rooted = !before.is_some_and(|c| is_ident(c) || c == ':');
                if rooted {
                    found.push((n + 1, *name));
                }
                from = start + path.len();
            }
        }
    }
    found
}

fn rules() -> Rules {
    let doc = std::fs::read_to_string(DOC).expect("docs/architecture.md exists");
    parse_rules(&doc).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// The rule, held.

#[test]
fn every_reference_between_modules_is_allowed() {
    let rules = rules();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for file in sources() {
        problems.extend(check_file(&file, &rules, &mut seen));
    }
    // The edges the code has, for whoever updates the table (`--nocapture`).
    let mut edges: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (from, to) in &seen {
        edges.entry(from).or_default().push(to);
    }
    for (from, to) in &edges {
        let to: Vec<&str> = to.iter().map(|t| t.as_str()).collect();
        eprintln!("{from} -> {}", to.join(", "));
    }
    for (module, may) in &rules.may {
        for to in may {
            if !seen.contains(&(module.clone(), to.clone())) {
                eprintln!("note: `{module}` may depend on `{to}` but does not");
            }
        }
    }
    assert!(
        problems.is_empty(),
        "forbidden dependencies between modules:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_table_lists_exactly_the_modules_in_src() {
    let rules = rules();
    let on_disk = modules_on_disk();
    let listed: BTreeSet<String> = rules.may.keys().cloned().collect();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "modules in src/ without a row under `{RULES}` in {DOC}: {missing:?}"
    );
    assert!(
        gone.is_empty(),
        "rows under `{RULES}` in {DOC} for modules src/ does not have: {gone:?}"
    );
    let problems = table_problems(&rules);
    assert!(problems.is_empty(), "{DOC}:\n{}", problems.join("\n"));
}

#[test]
fn the_allowed_graph_has_no_cycle() {
    let rules = rules();
    if let Some(cycle) = find_cycle(&rules.may) {
        panic!(
            "the table under `{RULES}` in {DOC} allows a loop: {}",
            cycle.join(" -> ")
        );
    }
}

/// "must not depend on" names exactly what depends on the module, directly or not: the
/// modules above it, which it would close a loop with.
#[test]
fn must_not_lists_the_modules_above() {
    let rules = rules();
    let mut problems = Vec::new();
    for (module, must_not) in &rules.must_not {
        let above = dependents(&rules.may, module);
        if &above != must_not {
            problems.push(format!(
                "`{module}`: must not depend on {above:?} (what depends on it), the table says \
                 {must_not:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{DOC}:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The checker, checked: planted lines it must catch, and look-alikes it must not.

fn planted(module: &[&str], source: &str, root: &'static str) -> Vec<String> {
    let doc = "# x\n\n## Allowed dependencies\n\n\
               | module | may depend on | must not depend on |\n|---|---|---|\n\
               | `feedback` | `schema` | `service`, `api` |\n\
               | `schema` | — | `feedback`, `service`, `api` |\n\
               | `service` | `feedback`, `schema` | `api` |\n\
               | `api` | `service`, `feedback`, `schema` | — |\n\
               | `main` | `api`, `service` | — |\n\n## Next\n";
    let rules = parse_rules(doc).unwrap();
    let file = SourceFile {
        shown: format!("src/{}.rs", module.join("/")),
        module: module.iter().map(|m| m.to_string()).collect(),
        root,
        text: source.to_owned(),
    };
    check_file(&file, &rules, &mut BTreeSet::new())
}

#[test]
fn a_planted_forbidden_line_is_caught_with_its_file_and_line() {
    let source = "//! Feedback.\nuse crate::schema::Id;\n\
                  #[schema(value_type = crate::api::openapi::Message)]\nstruct F;\n";
    let problems = planted(&["feedback"], source, "crate");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("src/feedback.rs:3: `feedback` -> `api` is not allowed"),
        "{problems:?}"
    );
    assert!(
        problems[0].contains("may depend on: `schema`"),
        "{problems:?}"
    );
}

#[test]
fn groups_and_escaping_super_paths_are_caught() {
    let group = "use crate::{\n    schema::Id,\n    service::{self, Tagger},\n    self,\n};\n";
    let problems = planted(&["feedback"], group, "crate");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("feedback.rs:3: `feedback` -> `service`"));

    // `super` from `feedback/x.rs` is `feedback`; `super::super` is the crate root.
    assert!(planted(&["feedback", "x"], "use super::Other;\n", "crate").is_empty());
    let escaped = planted(&["feedback", "x"], "use super::super::api::X;\n", "crate");
    assert!(escaped[0].contains("`feedback` -> `api`"), "{escaped:?}");
    // From a top-level file, one `super` leaves the module...
    let up = planted(&["schema"], "fn f() { super::service::go() }\n", "crate");
    assert!(up[0].contains("`schema` -> `service`"), "{up:?}");
    // ...but not from its inline `mod tests`.
    let tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\nuse crate::api::A;\n";
    let problems = planted(&["schema"], tests, "crate");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("schema.rs:6: `schema` -> `api`"));
    // A glob of the root names every module: refused.
    assert_eq!(planted(&["schema"], "use crate::*;\n", "crate").len(), 1);
    // The binary names the library `tagbeez`.
    let main = "use tagbeez::{api, service::Tagger};\nuse tagbeez::feedback::Feedback;\n";
    let problems = planted(&["main"], main, "tagbeez");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("main.rs:2: `main` -> `feedback`"));
}

#[test]
fn comments_strings_and_macros_are_not_references() {
    let source = "//! See `crate::api`.\n/// crate::api::X\n// use crate::api;\n\
                  /* crate::api /* nested crate::api */ */\n\
                  const A: &str = \"crate::api::x\";\nconst B: &str = r#\"crate::api\"#;\n\
                  const C: char = '\"';\nfn f<'a>(x: &'a str) -> &'a str { x }\n\
                  macro_rules! m { () => { $crate::api::x() } }\n\
                  pub(crate) fn g() {}\nuse crate::schema::Id;\n";
    assert_eq!(
        planted(&["feedback"], source, "crate"),
        Vec::<String>::new()
    );
    let lines: Vec<usize> = references(&["feedback".into()], source, "crate")
        .iter()
        .map(|r| r.line)
        .collect();
    assert_eq!(lines, [11], "line numbers survive the blanking");
}

#[test]
fn the_table_checks_catch_a_loop_and_a_missing_must_not() {
    let doc = "## Allowed dependencies\n\n| module | may depend on | must not depend on |\n\
               |---|---|---|\n| `a` | `b` | — |\n| `b` | `a` | `c` |\n";
    let rules = parse_rules(doc).unwrap();
    assert_eq!(
        find_cycle(&rules.may),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
    let problems = table_problems(&rules);
    assert!(
        problems.iter().any(|p| p.contains("names `c`")),
        "{problems:?}"
    );
    let line: BTreeMap<String, BTreeSet<String>> = [
        ("top".to_owned(), BTreeSet::from(["mid".to_owned()])),
        ("mid".to_owned(), BTreeSet::from(["low".to_owned()])),
        ("low".to_owned(), BTreeSet::new()),
    ]
    .into();
    assert_eq!(find_cycle(&line), None);
    assert_eq!(
        dependents(&line, "low"),
        BTreeSet::from(["mid".to_owned(), "top".to_owned()])
    );
}

#[test]
fn only_the_http_adapters_name_http_crates() {
    let mut problems = Vec::new();
    for file in sources() {
        if HTTP_ADAPTERS.contains(&file.module[0].as_str()) {
            continue;
        }
        for (line, name) in http_crate_uses(&file.text) {
            problems.push(format!(
                "{}:{line}: `{}` names the HTTP crate `{name}` (only {HTTP_ADAPTERS:?} may)",
                file.shown, file.module[0]
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_http_check_finds_a_planted_use() {
    let source = "// axum::Router in a comment\nuse axum::Router;\nfn f() -> http::StatusCode {}\n\
                  use lambda_http::Body;\nlet s = \"tower::x\";\nuse crate::x::http::y;\n";
    let found = http_crate_uses(source);
    assert_eq!(found, [(2, "axum"), (3, "http"), (4, "lambda_http")]);
}
