//! The execution form each shipped bootstrap picks on its CPU, and the tags each form gives:
//! the arm64 bootstrap (`make build`) under qemu-user as a Neoverse N1 (Graviton2's core: NEON
//! and `dotprod`, so tract's SDOT int8 kernels) and as qemu's `max` CPU (SVE2 as well, so the
//! SVE2 kernels tract picks on Graviton4), and the x86_64 binary natively (cargo's `local` build,
//! or `make build-x86`'s package when `X86_64_BOOTSTRAP` names it).
//! Both forms must tag the machine-written test split alike: micro-F1 within 0.005, no
//! probability moved by more than 0.1 (the tolerance `make eval-forms` holds every set to).
//! qemu proves the choice and the arithmetic on arm64, not its speed.
//!
//! The arm64 binary is built for Neoverse N1 (`.cargo/config.toml`), so it cannot start on an
//! arm64 CPU without `dotprod` at all (qemu's `cortex-a72` stops it with an illegal
//! instruction): there, auto's f32 branch is proved by `Selection::choose`'s unit tests.
//!
//! Like `bootstrap_e2e.rs`, these need the built packages and qemu, so they are `#[ignore]`d in
//! a plain `cargo test` and run by `make e2e`. A missing bootstrap or qemu is a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const QEMU: &str = "/usr/bin/qemu-aarch64";
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";
const F1_TOLERANCE: f64 = 0.005;
const PROBABILITY_TOLERANCE: f64 = 0.1;
/// Messages classified under emulation as a Neoverse N1 (about 0.4 s each), and as qemu's `max`
/// CPU, whose SVE2 kernels emulate ten times slower; natively, the whole test split.
const UNDER_QEMU: usize = 40;
const UNDER_QEMU_SVE2: usize = 4;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// How to start a bootstrap.
enum Runner {
    /// The arm64 bootstrap under qemu-user, emulating this CPU model.
    Arm64(&'static str),
    X86_64,
}

impl Runner {
    fn command(&self) -> Command {
        match self {
            Runner::Arm64(cpu) => {
                assert!(
                    Path::new(QEMU).exists() && Path::new(ARM64_SYSROOT).exists(),
                    "{QEMU} or {ARM64_SYSROOT} is missing (scripts/install-e2e-tools.sh)"
                );
                let bootstrap = repo("target/lambda/tagbeez/bootstrap");
                assert!(
                    bootstrap.exists(),
                    "{} (run `make build`)",
                    bootstrap.display()
                );
                let mut command = Command::new(QEMU);
                command
                    .args(["-cpu", cpu, "-L", ARM64_SYSROOT])
                    .arg(bootstrap);
                command
            }
            Runner::X86_64 => {
                // As in bootstrap_e2e.rs: `make build-x86`'s package when X86_64_BOOTSTRAP names
                // it, else the binary cargo built for these tests (`local` profile).
                let bootstrap = std::env::var_os("X86_64_BOOTSTRAP")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tagbeez")));
                assert!(
                    bootstrap.exists(),
                    "{} (run `make build-x86`)",
                    bootstrap.display()
                );
                Command::new(bootstrap)
            }
        }
    }
}

/// One `tagbeez classify` run: the form it reported at start-up and its answers.
struct Run {
    form: String,
    why: String,
    probabilities: Vec<Vec<f64>>,
    selected: Vec<Vec<String>>,
    tags: Vec<String>,
}

fn classify(runner: &Runner, form: &str, messages: &[String]) -> Run {
    let mut child = runner
        .command()
        .arg("classify")
        .env("INFERENCE_FORM", form)
        .env("LOG_LEVEL", "info")
        .env("METRICS", "off")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bootstrap starts");
    let mut input = String::new();
    for (i, message) in messages.iter().enumerate() {
        input += &serde_json::json!({"id": i, "message": message}).to_string();
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("the bootstrap runs");
    writer.join().unwrap().expect("the messages are written");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "classify failed: {stderr}");
    let loaded: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "model loaded")
        .unwrap_or_else(|| panic!("no `model loaded` log line: {stderr}"));
    let mut run = Run {
        form: loaded["fields"]["form"].as_str().unwrap().to_owned(),
        why: loaded["fields"]["why"].as_str().unwrap().to_owned(),
        probabilities: vec![Vec::new(); messages.len()],
        selected: vec![Vec::new(); messages.len()],
        tags: Vec::new(),
    };
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let result: Value = serde_json::from_str(line).expect("a JSON line");
        let i = result["id"].as_u64().expect("the id comes back") as usize;
        let mut all: Vec<(String, f64)> = result["all"]
            .as_array()
            .expect("all")
            .iter()
            .map(|s| {
                (
                    s["tag"].as_str().unwrap().to_owned(),
                    s["confidence"].as_f64().unwrap(),
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        run.tags = all.iter().map(|(t, _)| t.clone()).collect();
        run.probabilities[i] = all.iter().map(|(_, p)| *p).collect();
        run.selected[i] = result["selected"]
            .as_array()
            .expect("selected")
            .iter()
            .map(|s| s["tag"].as_str().unwrap().to_owned())
            .collect();
    }
    assert!(
        run.probabilities.iter().all(|p| !p.is_empty()),
        "an answer per message"
    );
    run
}

/// The machine-written test split: messages and their tags.
fn test_split() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repo("model/data/test.jsonl")).expect("the test split");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            let tags = row["tags"].as_array().unwrap().iter();
            (
                row["message"].as_str().unwrap().to_owned(),
                tags.map(|t| t.as_str().unwrap().to_owned()).collect(),
            )
        })
        .collect()
}

fn micro_f1(selected: &[Vec<String>], truth: &[Vec<String>]) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (got, want) in selected.iter().zip(truth) {
        tp += got.iter().filter(|t| want.contains(t)).count() as f64;
        fp += got.iter().filter(|t| !want.contains(t)).count() as f64;
        fn_ += want.iter().filter(|t| !got.contains(t)).count() as f64;
    }
    2.0 * tp / (2.0 * tp + fp + fn_)
}

/// The largest difference between two runs' probabilities of the same message and tag.
fn largest_change(a: &Run, b: &Run) -> f64 {
    let pairs = a.probabilities.iter().flatten();
    let pairs = pairs.zip(b.probabilities.iter().flatten());
    pairs.map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Same tags within the tolerances: micro-F1 on the labels, and every probability.
fn assert_same_tags(a: &Run, b: &Run, truth: &[Vec<String>], what: &str) {
    assert_eq!(a.tags, b.tags, "{what}: the same tag names");
    let (fa, fb) = (micro_f1(&a.selected, truth), micro_f1(&b.selected, truth));
    let worst = largest_change(a, b);
    eprintln!("{what}: micro-F1 {fa:.4} vs {fb:.4}, largest probability change {worst:.4}");
    assert!(
        (fa - fb).abs() <= F1_TOLERANCE,
        "{what}: micro-F1 {fa} vs {fb}"
    );
    assert!(
        worst <= PROBABILITY_TOLERANCE,
        "{what}: a probability moved by {worst}"
    );
}

#[test]
#[ignore = "needs `make build` and qemu-user: run by `make e2e`"]
fn arm64_runs_int8_on_graviton_cores_unless_told_otherwise() {
    let messages: Vec<String> = test_split().into_iter().take(2).map(|(m, _)| m).collect();
    let graviton2 = classify(&Runner::Arm64("neoverse-n1"), "auto", &messages);
    assert_eq!(graviton2.form, "int8", "{}", graviton2.why);
    assert!(graviton2.why.contains("dotprod"), "{}", graviton2.why);
    let forced = classify(&Runner::Arm64("neoverse-n1"), "f32", &messages);
    assert_eq!(
        (forced.form.as_str(), forced.why.as_str()),
        ("f32", "INFERENCE_FORM=f32")
    );
}

#[test]
#[ignore = "an end-to-end run of the binary: run by `make e2e`"]
fn x86_64_runs_the_form_its_cpu_calls_for() {
    let vnni = x86_has_vnni();
    let run = classify(&Runner::X86_64, "auto", &["hello".to_owned()]);
    assert_eq!(run.form, if vnni { "int8" } else { "f32" }, "{}", run.why);
    assert!(run.why.starts_with("auto: "), "{}", run.why);
}

/// The whole test split where int8 is what auto runs; on an x86 without VNNI, where tract's int8
/// kernel is some 50 times slower (about 0.5 s a message), its first 40 messages.
#[test]
#[ignore = "an end-to-end run of the binary: run by `make e2e`"]
fn x86_64_forms_tag_the_test_split_alike() {
    let fast = x86_has_vnni();
    let split = test_split()
        .into_iter()
        .take(if fast { usize::MAX } else { 40 });
    let (messages, truth): (Vec<String>, Vec<Vec<String>>) = split.unzip();
    let f32 = classify(&Runner::X86_64, "f32", &messages);
    let int8 = classify(&Runner::X86_64, "int8", &messages);
    assert_eq!((f32.form.as_str(), int8.form.as_str()), ("f32", "int8"));
    if fast {
        assert_same_tags(&f32, &int8, &truth, "x86_64 f32 vs int8");
    } else {
        assert_close_runs(&f32, &int8, PROBABILITY_TOLERANCE, 3, "x86_64 f32 vs int8");
    }
}

/// Whether this x86 CPU has the int8 dot products auto runs the int8 form for.
fn x86_has_vnni() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    (flags.contains(&"avx512f") && flags.contains(&"avx512_vnni")) || flags.contains(&"avx_vnni")
}

/// As `assert_same_tags`, for runs too short for micro-F1 to move by less than 0.005 with one
/// decision: at most `decisions` tag decisions differ.
fn assert_close_runs(a: &Run, b: &Run, probability: f64, decisions: usize, what: &str) {
    assert_eq!(a.tags, b.tags, "{what}: the same tag names");
    let worst = largest_change(a, b);
    let changed = a
        .selected
        .iter()
        .zip(&b.selected)
        .map(|(x, y)| {
            x.iter().filter(|t| !y.contains(t)).count()
                + y.iter().filter(|t| !x.contains(t)).count()
        })
        .sum::<usize>();
    eprintln!("{what}: largest probability change {worst:.5}, {changed} decisions changed");
    assert!(
        worst <= probability,
        "{what}: a probability moved by {worst}"
    );
    assert!(changed <= decisions, "{what}: {changed} decisions changed");
}

#[test]
#[ignore = "needs `make build` and qemu-user: run by `make e2e`"]
fn arm64_forms_tag_like_each_other_and_like_x86_64() {
    let (messages, truth): (Vec<String>, Vec<Vec<String>>) =
        test_split().into_iter().take(UNDER_QEMU).unzip();
    let arm_int8 = classify(&Runner::Arm64("neoverse-n1"), "int8", &messages);
    let arm_f32 = classify(&Runner::Arm64("neoverse-n1"), "f32", &messages);
    let x86_f32 = classify(&Runner::X86_64, "f32", &messages);
    let x86_int8 = classify(&Runner::X86_64, "int8", &messages);
    // f32 is f32 on both architectures, to rounding.
    assert_close_runs(&x86_f32, &arm_f32, 1e-3, 0, "f32: x86_64 vs arm64");
    // int8 products are exact on both; the f32 parts between them differ in rounding, which
    // a later quantization can carry (tests/buckets.rs: within 0.02 between plans).
    assert_close_runs(&x86_int8, &arm_int8, 0.02, 1, "int8: x86_64 vs arm64");
    assert_close_runs(
        &arm_f32,
        &arm_int8,
        PROBABILITY_TOLERANCE,
        3,
        "arm64: f32 vs int8",
    );
    let f1 = (
        micro_f1(&arm_f32.selected, &truth),
        micro_f1(&arm_int8.selected, &truth),
    );
    eprintln!(
        "arm64 micro-F1 on {UNDER_QEMU} messages: f32 {:.4}, int8 {:.4}",
        f1.0, f1.1
    );
}

#[test]
#[ignore = "needs `make build` and qemu-user: run by `make e2e`"]
fn arm64_int8_on_sve2_kernels_tags_like_x86_64() {
    let messages: Vec<String> = test_split()
        .into_iter()
        .take(UNDER_QEMU_SVE2)
        .map(|(m, _)| m)
        .collect();
    let sve2 = classify(&Runner::Arm64("max"), "auto", &messages);
    assert_eq!(sve2.form, "int8", "{}", sve2.why);
    let x86_int8 = classify(&Runner::X86_64, "int8", &messages);
    assert_close_runs(&x86_int8, &sve2, 0.02, 0, "int8: x86_64 vs arm64 SVE2");
}
