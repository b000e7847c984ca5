//! API Gateway example events for tests: AWS's own examples, read from the `aws_lambda_events`
//! and `lambda_http` crates' sources (located with `cargo metadata`, not copied into this
//! repository), retargeted at our routes, and the checks of a Lambda response to them.
//! Use from a test file with `#[path = "support/events.rs"] mod events;`.

#![allow(dead_code)] // each test file uses the part it needs

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde_json::{json, Value};

/// Manifest directories of `lambda_http` (our dependency) and of the `aws_lambda_events` that
/// `lambda_http` resolves to, from `cargo metadata`.
struct Sources {
    lambda_http: PathBuf,
    aws_lambda_events: PathBuf,
}

static SOURCES: LazyLock<Sources> = LazyLock::new(|| {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let root = meta["resolve"]["root"].as_str().expect("resolve.root");
    let lambda_http = resolved_dependency(&meta, root, "lambda_http");
    let aws_lambda_events = resolved_dependency(&meta, &lambda_http, "aws_lambda_events");
    Sources {
        lambda_http: manifest_dir(&meta, &lambda_http),
        aws_lambda_events: manifest_dir(&meta, &aws_lambda_events),
    }
});

/// The package id that `parent` resolves its dependency `name` to.
fn resolved_dependency(meta: &Value, parent: &str, name: &str) -> String {
    let node = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == parent)
        .unwrap_or_else(|| panic!("no resolve node for {parent}"));
    let deps: Vec<&str> = node["deps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["pkg"].as_str())
        .collect();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && deps.contains(&p["id"].as_str().unwrap()))
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("{parent} does not depend on {name}"))
        .to_owned()
}

fn manifest_dir(meta: &Value, id: &str) -> PathBuf {
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap();
    Path::new(package["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned()
}

pub fn load(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An example event shipped in `aws_lambda_events/src/fixtures/`.
pub fn aws_fixture(name: &str) -> Value {
    load(SOURCES.aws_lambda_events.join("src/fixtures").join(name))
}

/// REST API (payload v1) example: `POST /hello/world`, stage `testStage`.
pub fn rest_v1_example() -> Value {
    aws_fixture("example-apigw-request.json")
}

/// HTTP API (payload v2) example: `GET /`, stage `$default`, no body.
pub fn http_v2_example() -> Value {
    aws_fixture("example-apigw-v2-request-no-authorizer.json")
}

/// Function URL example (`*.lambda-url.*.on.aws`, payload v2). `aws_lambda_events` ships none,
/// so this one comes from `lambda_http`'s own test data.
pub fn function_url_example() -> Value {
    load(
        SOURCES
            .lambda_http
            .join("tests/data/lambda_function_url_request.json"),
    )
}

/// AWS's example SQS event (`example-sqs-event.json`, one record of a standard queue).
pub fn sqs_example() -> Value {
    aws_fixture("example-sqs-event.json")
}

/// An SQS event of `records` (`messageId`, FIFO message group or none, body), each record
/// AWS's example record with those fields set; a FIFO record also gets the attributes and
/// queue ARN a FIFO queue's records carry.
pub fn sqs_event(records: &[(String, Option<String>, String)]) -> Value {
    let template = sqs_example()["Records"][0].clone();
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, (id, group, body))| {
            let mut r = template.clone();
            r["messageId"] = json!(id);
            r["receiptHandle"] = json!(format!("handle-{id}"));
            r["body"] = json!(body);
            if let Some(group) = group {
                r["attributes"]["MessageGroupId"] = json!(group);
                r["attributes"]["MessageDeduplicationId"] = json!(id);
                r["attributes"]["SequenceNumber"] = json!(format!("{:020}", i + 1));
                r["eventSourceARN"] = json!("arn:aws:sqs:us-west-2:123456789012:tagbeez-in.fifo");
            }
            r
        })
        .collect();
    json!({ "Records": records })
}

/// The `itemIdentifier`s of an SQS batch response, in order.
pub fn batch_item_failures(answer: &Value) -> Vec<String> {
    let failures = answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {answer:#}"));
    assert_eq!(answer.as_object().map(|o| o.len()), Some(1), "{answer:#}");
    failures
        .iter()
        .map(|f| {
            f["itemIdentifier"]
                .as_str()
                .expect("itemIdentifier")
                .to_owned()
        })
        .collect()
}

/// Set a header, replacing any spelling of the same name (header names ignore case).
pub fn set_header(headers: &mut Value, name: &str, value: Value) {
    let map = headers.as_object_mut().expect("a header object");
    map.retain(|k, _| !k.eq_ignore_ascii_case(name));
    map.insert(name.to_owned(), value);
}

/// The JSON request body, its content-type, and a consistent content-length if the example
/// had one.
pub fn set_body(event: &mut Value, body: Option<&str>, multi_value: bool) {
    let mut header_sets = vec!["headers"];
    if multi_value {
        header_sets.push("multiValueHeaders");
    }
    for set in header_sets {
        let had_length = event[set]
            .as_object()
            .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-length")));
        let wrap = |v: String| {
            if multi_value && set == "multiValueHeaders" {
                json!([v])
            } else {
                json!(v)
            }
        };
        if body.is_some() {
            set_header(
                &mut event[set],
                "content-type",
                wrap("application/json".into()),
            );
        }
        if had_length {
            let len = body.map_or(0, str::len).to_string();
            set_header(&mut event[set], "content-length", wrap(len));
        }
    }
    event["body"] = body.map_or(Value::Null, |b| json!(b));
    event["isBase64Encoded"] = json!(false);
}

/// An HTTP API v2 / Function URL example retargeted at `method raw_path`.
pub fn v2_event(mut event: Value, method: &str, raw_path: &str, body: Option<&str>) -> Value {
    event["rawPath"] = json!(raw_path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(raw_path);
    set_body(&mut event, body, false);
    event
}

/// A REST API v1 example retargeted at `method path` (a resource without path parameters).
pub fn v1_event(mut event: Value, method: &str, path: &str, body: Option<&str>) -> Value {
    event["httpMethod"] = json!(method);
    event["path"] = json!(path);
    event["resource"] = json!(path);
    event["pathParameters"] = Value::Null;
    event["requestContext"]["httpMethod"] = json!(method);
    event["requestContext"]["path"] = json!(path);
    event["requestContext"]["resourcePath"] = json!(path);
    set_body(&mut event, body, true);
    event
}

#[derive(Clone, Copy, Debug)]
pub enum Origin {
    /// REST API: headers in `multiValueHeaders`.
    RestV1,
    /// HTTP API and Function URL: single-value `headers` and `cookies`.
    HttpV2,
}

/// Check the Lambda response shape API Gateway expects for `origin`; return the parsed body.
pub fn http_response(response: &Value, origin: Origin, status: u16) -> Value {
    assert_eq!(
        response["statusCode"],
        json!(status),
        "{origin:?}: {response:#}"
    );
    assert_eq!(response["isBase64Encoded"], json!(false), "{response:#}");
    match origin {
        Origin::RestV1 => {
            assert_eq!(
                response["multiValueHeaders"]["content-type"],
                json!(["application/json"]),
                "{response:#}"
            );
        }
        Origin::HttpV2 => {
            assert_eq!(
                response["headers"]["content-type"],
                json!("application/json"),
                "{response:#}"
            );
            assert!(response["cookies"].is_array(), "{response:#}");
        }
    }
    let body = response["body"].as_str().expect("a text body");
    serde_json::from_str(body).expect("a JSON body")
}

pub fn selected_tags(result: &Value) -> Vec<&str> {
    result["selected"]
        .as_array()
        .unwrap_or_else(|| panic!("no selected in {result:#}"))
        .iter()
        .map(|s| s["tag"].as_str().unwrap())
        .collect()
}

/// `{"error": {"status", "code", "message"}}` with the given status and code.
/// A Lambda function error as `lambda::dispatch` returns it, in the shape the Runtime API
/// posts it (`{"errorType", "errorMessage"}`), for tests that compare answers as JSON.
pub fn function_error(d: &lambda_runtime::Diagnostic) -> Value {
    json!({"errorType": d.error_type, "errorMessage": d.error_message})
}

/// A function error named `code` with a message.
pub fn assert_function_error(value: &Value, code: &str) {
    assert_eq!(value["errorType"], json!(code), "{value:#}");
    assert!(
        value["errorMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{value:#}"
    );
    assert_eq!(value.as_object().unwrap().len(), 2, "{value:#}");
}

pub fn assert_error(value: &Value, status: u16, code: &str) {
    let error = &value["error"];
    assert_eq!(
        (&error["status"], &error["code"]),
        (&json!(status), &json!(code)),
        "{value:#}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{value:#}"
    );
    assert_eq!(value.as_object().unwrap().len(), 1, "{value:#}");
}
