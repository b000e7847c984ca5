//! The Lambda binaries, end to end: the shipped arm64 `bootstrap` that `make build` packages (run
//! under qemu-user) and the x86_64 binary (run natively: cargo's `local` build, or `make
//! build-x86`'s package with `X86_64_BOOTSTRAP=target/lambda-x86_64/tagbeez/bootstrap`), talking to a local
//! Lambda Runtime API (`cargo lambda watch --only-lambda-apis`) and to moto on loopback, fed
//! AWS's own API Gateway example events, direct invocations and malformed events.
//!
//! These tests need the built packages and qemu, so they are `#[ignore]`d in a plain
//! `cargo test`; `make e2e` (part of `make test`) builds what they need and runs them with
//! `--ignored`. A missing bootstrap or qemu is a failure, never a skip.

#[path = "support/dynamodb.rs"]
mod dynamodb;
#[path = "support/events.rs"]
mod events;
#[path = "support/proc_status.rs"]
mod proc_status;

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use dynamodb::{free_port, http, HttpReply, Moto, AWS_ENV};
use events::*;
use serde_json::{json, Value};

const TABLE: &str = "tagbeez-e2e";
const BUY: &str = "I want to buy this now, send me the checkout link";
const BUY_AGAIN: &str = "Add two of these to my cart, I'm paying by card right now";
/// The invoke path of the emulator's one function (`AWS_LAMBDA_FUNCTION_NAME=_`).
const INVOKE: &str = "/2015-03-31/functions/_/invocations";
/// qemu-user's aarch64 loader and the Debian arm64 libc it runs the binary against.
const QEMU: &str = "/usr/bin/qemu-aarch64";
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";
/// Starting the model under emulation takes seconds; every wait is still bounded.
const FIRST_ANSWER_WITHIN: Duration = Duration::from_secs(120);
const ANSWER_WITHIN: Duration = Duration::from_secs(60);
/// Cold starts measured for the x86_64 median.
const COLD_STARTS: usize = 7;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Arch {
    Arm64,
    X86_64,
}

impl Arch {
    /// The arm64 bootstrap `make build` packages, and the x86_64 binary (see `x86_64_binary`).
    fn bootstrap(self) -> PathBuf {
        match self {
            Arch::Arm64 => {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lambda/tagbeez/bootstrap")
            }
            Arch::X86_64 => x86_64_binary(),
        }
    }

    /// The ELF `e_machine` of this architecture.
    fn elf_machine(self) -> u16 {
        match self {
            Arch::Arm64 => 183,
            Arch::X86_64 => 62,
        }
    }

    /// The command that starts the bootstrap on this machine.
    fn command(self) -> Command {
        let bootstrap = self.bootstrap();
        let mut bytes = [0u8; 20];
        File::open(&bootstrap)
            .and_then(|mut f| f.read_exact(&mut bytes))
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run `make build`, or `make build-x86` for X86_64_BOOTSTRAP)",
                    bootstrap.display()
                )
            });
        let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
        assert!(
            bytes.starts_with(b"\x7fELF") && machine == self.elf_machine(),
            "{} is not a {self:?} ELF binary (e_machine {machine})",
            bootstrap.display()
        );
        match self {
            Arch::Arm64 => {
                assert!(
                    Path::new(QEMU).exists() && Path::new(ARM64_SYSROOT).exists(),
                    "{QEMU} or {ARM64_SYSROOT} is missing (scripts/install-e2e-tools.sh installs \
                     qemu-user and libc6-arm64-cross)"
                );
                let mut command = Command::new(QEMU);
                command.arg("-L").arg(ARM64_SYSROOT).arg(bootstrap);
                command
            }
            Arch::X86_64 => Command::new(bootstrap),
        }
    }
}

/// A local Lambda Runtime API: `cargo lambda watch --only-lambda-apis` on a free loopback port.
struct RuntimeApi {
    port: u16,
    child: Child,
}

impl RuntimeApi {
    fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("tagbeez-e2e-runtime-api-{port}.log"));
        let cargo_lambda = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/lambda/bin");
        let path = format!(
            "{}:{}",
            cargo_lambda.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("cargo-lambda")
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string()])
            .env("PATH", path)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("a log file"))
            .spawn()
            .expect("cargo-lambda runs (make lambda-tools installs it)");
        let api = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        // A TCP connect only: any HTTP request to the emulator is an invocation of the function.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the runtime API did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(100));
        }
        api
    }

    /// Invoke the function with a raw payload, as `lambda:Invoke` would.
    fn invoke_raw(&self, payload: &str, within: Duration) -> HttpReply {
        http(self.port, "POST", INVOKE, Some(payload), within)
            .unwrap_or_else(|| panic!("no answer to an invocation within {within:?}"))
    }

    /// Invoke with a JSON event; the function's result must come back as a 200.
    fn invoke(&self, event: &Value) -> Value {
        let reply = self.invoke_raw(&event.to_string(), ANSWER_WITHIN);
        assert_eq!(reply.status, 200, "invocation failed: {}", reply.body);
        reply.json()
    }

    /// The environment a function needs to reach this API (the `http://` prefix included).
    fn function_env(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt", self.port),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME", "_".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One running bootstrap process, killed when dropped; its stderr (the JSON logs) goes to a file.
struct Function {
    child: Child,
    log: PathBuf,
    /// Taken just before the process was spawned.
    started: Instant,
}

impl Function {
    fn start(arch: Arch, api: &RuntimeApi, moto: &Moto) -> Self {
        let log = std::env::temp_dir().join(format!("tagbeez-e2e-{arch:?}-{}.log", api.port));
        let mut command = arch.command();
        command
            .env_clear()
            .envs(api.function_env())
            .envs(AWS_ENV.iter().copied())
            .env("TABLE_NAME", TABLE)
            .env("DYNAMODB_ENDPOINT", moto.endpoint())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("a log file"));
        let started = Instant::now();
        let child = command.spawn().expect("the bootstrap starts");
        Self {
            child,
            log,
            started,
        }
    }

    /// Peak resident memory of the process so far (Linux `VmHWM`), in MB.
    fn peak_rss_mb(&self) -> f64 {
        proc_status::status_mb(&self.child.id().to_string(), "VmHWM")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto_with_table() -> Moto {
    let mut moto = Moto::start();
    moto.create_table(TABLE).await;
    moto
}

fn assert_hot_buyer(result: &Value, message: &str) {
    assert!(
        selected_tags(result).contains(&"Hot-buyer"),
        "{message:?} -> {result:#}"
    );
    let tags: Vec<&str> = result["all"]
        .as_array()
        .expect("all")
        .iter()
        .map(|s| s["tag"].as_str().unwrap())
        .collect();
    let mut sorted = tags.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, label_file_tags(), "{result:#}");
}

/// The tag names of `model/labels.json`, sorted: what the embedded model must report.
fn label_file_tags() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/labels.json");
    let labels: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut tags: Vec<String> = labels["tags"]
        .as_array()
        .expect("labels.json tags")
        .iter()
        .map(|t| t.as_str().expect("a tag name").to_owned())
        .collect();
    tags.sort_unstable();
    tags
}

/// DynamoDB's billed size of an item: attribute names plus string values and number digits
/// (what read and write request units are counted from).
fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + value
                    .as_s()
                    .or_else(|_| value.as_n())
                    .map_or(0, |v| v.len())
        })
        .sum()
}

/// Everything a deployed function is asked to do, in one run of one process.
async fn end_to_end(arch: Arch) {
    let moto = moto_with_table().await;
    let api = RuntimeApi::start();
    let function = Function::start(arch, &api, &moto);

    // 1. HTTP API (v2) event: POST /classify-message. The first answer includes the start.
    let body = json!({ "message": BUY }).to_string();
    let event = v2_event(http_v2_example(), "POST", "/classify-message", Some(&body));
    let reply = api.invoke_raw(&event.to_string(), FIRST_ANSWER_WITHIN);
    let first_answer = function.started.elapsed();
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, function.logs());
    let single = http_response(&reply.json(), Origin::HttpV2, 200);
    assert_hot_buyer(&single, BUY);

    // 2. REST API (v1) events: POST /classify-conversation, twice, persisted in DynamoDB.
    let id = format!("e2e-{arch:?}");
    let mut replies = Vec::new();
    for message in [BUY, BUY_AGAIN] {
        let body = json!({ "conversation_id": id, "message": message }).to_string();
        let event = v1_event(
            rest_v1_example(),
            "POST",
            "/classify-conversation",
            Some(&body),
        );
        let reply = http_response(&api.invoke(&event), Origin::RestV1, 200);
        assert_hot_buyer(&reply["message_result"], message);
        replies.push(reply);
    }
    let [first, second] = [&replies[0], &replies[1]];
    assert_eq!(first["conversation_id"], json!(id));
    assert_eq!(
        (
            &first["window_size"],
            &first["previous_tag"],
            &first["switched"]
        ),
        (&json!(1), &Value::Null, &json!(false)),
        "{first:#}"
    );
    assert_eq!(first["conversation_tag"]["tag"], "Hot-buyer", "{first:#}");
    assert_eq!(
        (
            &second["window_size"],
            &second["previous_tag"]["tag"],
            &second["conversation_tag"]["tag"],
            &second["switched"]
        ),
        (
            &json!(2),
            &json!("Hot-buyer"),
            &json!("Hot-buyer"),
            &json!(false)
        ),
        "{second:#}"
    );
    assert_eq!(second["evidence"].as_array().map(Vec::len), Some(2));
    let item = moto
        .client()
        .get_item()
        .table_name(TABLE)
        .key(
            "conversation_id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.clone()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem on moto");
    let item = item.item().expect("the conversation is in the table");
    assert_eq!(item["version"].as_n().unwrap(), "2");
    let stored_tag: Value = serde_json::from_str(item["tag"].as_s().unwrap()).unwrap();
    assert_eq!(stored_tag["tag"], "Hot-buyer", "{item:?}");
    let item_bytes = item_size(item);

    // 3. Direct invocations, as another Lambda would send them.
    let direct = api.invoke(&json!({ "operation": "classify-message", "message": BUY }));
    assert_eq!(direct, single, "direct and HTTP results differ");
    let view = api.invoke(&json!({ "operation": "get-conversation", "conversation_id": id }));
    assert_eq!(
        (&view["version"], &view["window_size"]),
        (&json!(2), &json!(2)),
        "{view:#}"
    );

    // 4. An SQS batch (AWS's example record, FIFO): a conversation message, a record that
    // can never succeed, and a redelivery of the first. Only the poison record is returned,
    // and the redelivery is a duplicate, not a second window entry.
    let queued = json!({"conversation_id": "queued-1", "message": BUY}).to_string();
    let group = Some("queued-1".to_owned());
    let batch = sqs_event(&[
        ("sqs-1".into(), group.clone(), queued.clone()),
        ("sqs-2".into(), group.clone(), "{not json".into()),
        ("sqs-1".into(), group, queued),
    ]);
    assert_eq!(batch_item_failures(&api.invoke(&batch)), ["sqs-2"]);
    let view =
        api.invoke(&json!({ "operation": "get-conversation", "conversation_id": "queued-1" }));
    assert_eq!(view["window_size"], json!(1), "{view:#}");
    assert_eq!(view["window"][0]["message_id"], json!("sqs-1"), "{view:#}");

    // 5. Failures outside HTTP are Lambda function errors named by their code: JSON that is
    // no event, a direct invocation missing a field, and one with an empty message.
    for (event, code) in [
        (json!([1, 2, 3]), "invalid_event"),
        (json!({ "operation": "classify-message" }), "invalid_event"),
        (
            json!({ "operation": "classify-message", "message": " " }),
            "empty_message",
        ),
    ] {
        let reply = api.invoke_raw(&event.to_string(), ANSWER_WITHIN);
        assert_eq!(reply.status, 500, "{event} -> {}", reply.body);
        let error = reply.json();
        assert_eq!(error["errorType"], json!(code), "{event} -> {error:#}");
        assert!(error["errorMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let broken = v2_event(
        http_v2_example(),
        "POST",
        "/classify-message",
        Some(r#"{"message": "#),
    );
    let error = http_response(&api.invoke(&broken), Origin::HttpV2, 400);
    assert_error(&error, 400, "invalid_json");
    let empty = v2_event(
        http_v2_example(),
        "POST",
        "/classify-message",
        Some(r#"{"message": ""}"#),
    );
    let error = http_response(&api.invoke(&empty), Origin::HttpV2, 400);
    assert_eq!(error["error"]["status"], json!(400), "{error:#}");
    // Bytes that are not JSON at all (Lambda's Invoke API refuses these before they reach a
    // function; the emulator passes them on): the runtime reports a function error and the
    // process keeps serving.
    let reply = api.invoke_raw("{not json", ANSWER_WITHIN);
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("DeserializeError"), "{}", reply.body);
    let again = api.invoke(&json!({ "operation": "classify-message", "message": BUY }));
    assert_eq!(again, single);

    // The logs are JSON lines and never carry the customer's text.
    let logs = function.logs();
    assert!(logs.contains("\"status\":200"), "{logs}");
    assert!(
        !logs.contains("checkout link"),
        "message text in the logs:\n{logs}"
    );
    println!(
        "{arch:?} bootstrap: first answer {:.0} ms after process start{}, peak RSS {:.0} MB, \
         stored item of a 2-message window {item_bytes} bytes",
        first_answer.as_secs_f64() * 1e3,
        if arch == Arch::Arm64 {
            " (under qemu emulation, not a Graviton figure)"
        } else {
            ""
        },
        function.peak_rss_mb()
    );
}

#[tokio::test]
#[ignore = "needs `make build` and qemu-user: run by `make e2e`"]
async fn arm64_bootstrap_under_qemu_end_to_end() {
    end_to_end(Arch::Arm64).await;
}

#[tokio::test]
#[ignore = "an end-to-end run of the binary: run by `make e2e`"]
async fn x86_64_bootstrap_end_to_end() {
    end_to_end(Arch::X86_64).await;
}

/// Cold start of the x86_64 bootstrap: from process start to the first invocation's answer,
/// with the invocation already waiting (as when Lambda starts an instance for a request).
/// Each start gets a fresh Runtime API, so no state carries over. Prints a table.
#[tokio::test]
#[ignore = "an end-to-end run of the binary: run by `make e2e`"]
async fn x86_64_bootstrap_cold_start() {
    let moto = moto_with_table().await;
    let payload = json!({ "operation": "classify-message", "message": BUY }).to_string();
    let mut starts = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..COLD_STARTS {
        let api = RuntimeApi::start();
        let port = api.port;
        let payload = payload.clone();
        let function = Function::start(Arch::X86_64, &api, &moto);
        let invocation =
            thread::spawn(move || http(port, "POST", INVOKE, Some(&payload), FIRST_ANSWER_WITHIN));
        let reply = invocation
            .join()
            .unwrap()
            .unwrap_or_else(|| panic!("no first answer\n{}", function.logs()));
        starts.push(function.started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_hot_buyer(&reply.json(), BUY);
        peaks.push(function.peak_rss_mb());
    }
    let mut sorted = starts.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "x86_64 cold start of {}, process start -> first answer ({COLD_STARTS} starts)",
        x86_64_binary().display()
    );
    println!("| start | ms | peak RSS MB |\n|---:|---:|---:|");
    for (n, (ms, mb)) in starts.iter().zip(&peaks).enumerate() {
        println!("| {} | {ms:.0} | {mb:.0} |", n + 1);
    }
    println!(
        "median {median:.0} ms, min {:.0} ms, max {:.0} ms",
        sorted[0],
        sorted[sorted.len() - 1]
    );
}

/// The x86_64 binary: the package `make build-x86` made when `X86_64_BOOTSTRAP` names it, else
/// the binary cargo built for these tests (the same code and settings in the `local` profile,
/// without LTO). `make test` uses the latter: the shipped package is arm64, and a second
/// fat-LTO build only for this test cost `make test` most of a build's time.
fn x86_64_binary() -> PathBuf {
    std::env::var_os("X86_64_BOOTSTRAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tagbeez")))
}
