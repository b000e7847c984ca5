//! Target 1: `lambda::dispatch` on arbitrary JSON events, on direct invocations with odd
//! fields, and on AWS's example API Gateway events with mutated fields, body, headers, path,
//! method and stage.

use std::sync::LazyLock;

use axum::Router;
use lambda_runtime::{Context, LambdaEvent};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Value};
use tagbeez::lambda::dispatch;
use tagbeez::service::Tagger;

use crate::strategies::*;
use crate::{assert_dispatch_answer, events, function, fuzz, runtime};

async fn invoke(router: &Router, tagger: &Tagger, event: &Value) -> Value {
    dispatch(
        router,
        tagger,
        LambdaEvent::new(event.clone(), Context::default()),
    )
    .await
    .unwrap_or_else(|d| json!({"errorType": d.error_type, "errorMessage": d.error_message}))
}

/// Arbitrary JSON, direct invocations with odd fields, and objects that look like HTTP events.
fn any_event() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        4 => (or_any(select(OPERATIONS).prop_map(Value::from)), fields()).prop_map(|(op, f)| {
            let mut event = f.body_of(op.as_str().unwrap_or_default());
            event.insert("operation".into(), op);
            Value::Object(event)
        }),
        1 => (select(&["requestContext", "httpMethod"][..]), json_value(), fields())
            .prop_map(|(k, v, f)| {
                let mut event = f.body_of("classify-message");
                event.insert(k.into(), v);
                Value::Object(event)
            }),
    ]
}

#[test]
fn fuzz_dispatch_arbitrary_events() {
    let rt = runtime();
    let (router, tagger) = function();
    fuzz("dispatch/arbitrary", 0.30, any_event(), |event| {
        let out = rt.block_on(invoke(&router, &tagger, &event));
        assert_dispatch_answer(&event, &out)
    });
}

/// What to do to an example event.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the field at this index of all the event's fields (any depth).
    Remove(Index),
    /// Replace the field at this index with a value.
    Replace(Index, Value),
    /// A new body: text, JSON text, or any JSON value; `isBase64Encoded` as given.
    Body(Value, bool),
    /// A well-formed base64 body: of these bytes, or of the body as it is (as API Gateway sends
    /// binary media types).
    Base64Body(Option<Vec<u8>>),
    /// Set a header (in `headers`, or in `multiValueHeaders` when REST v1 and `multi`).
    Header(String, Value, bool),
    /// A new path, written where each payload version keeps it.
    Path(String),
    Method(String),
    Stage(Value),
}

#[rustfmt::skip]
const HEADER_NAMES: &[&str] = &[
    "content-type", "Content-Type", "content-length", "host", "Host", "x-forwarded-proto",
    "cookie", "transfer-encoding", "content-encoding", "x-amzn-trace-id", "accept", "bad name",
    "ü", "",
];
#[rustfmt::skip]
const CONTENT_TYPES: &[&str] = &[
    "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
    "application/x+json", "text/plain", "application/jsonx", ";", "",
];
#[rustfmt::skip]
const PATHS: &[&str] = &[
    "/classify-message", "/classify-batch", "/classify-conversation", "/conversation/c1",
    "/conversation/%FF", "/conversation/a%2Fb", "/conversation/", "/health", "/", "/openapi.json",
    "/prod/classify-message", "/testStage/health", "//", "/classify-message?x=1#f", "",
    "classify-message", "/a b", "/ü", "/..", "/%", "@x:y", "/?",
];
#[rustfmt::skip]
const METHODS: &[&str] = &[
    "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "get", "",
    "P O",
];

fn header_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => select(CONTENT_TYPES).prop_map(Value::from),
        1 => (0..100_000u64).prop_map(|n| json!(n.to_string())),
        1 => select(&["-1", "99999999999999999999", "https", "ht tp", "a b.com", "x:y@z"][..])
            .prop_map(Value::from),
        2 => text(1..3, 40).prop_map(Value::from),
        1 => json_value(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let body = prop_oneof![
        2 => text(0..4, 300).prop_map(Value::from),
        2 => json_value().prop_map(|v| Value::from(v.to_string())),
        1 => json_value(),
    ];
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::Remove),
        1 => (any::<Index>(), json_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => (body, prop::bool::weighted(0.2)).prop_map(|(b, b64)| Mutation::Body(b, b64)),
        1 => prop::option::of(vec(any::<u8>(), 0..200)).prop_map(Mutation::Base64Body),
        2 => (
            prop_oneof![3 => select(HEADER_NAMES).prop_map(str::to_owned), 1 => text(1..2, 20)],
            header_value(),
            any::<bool>()
        )
            .prop_map(|(n, v, multi)| Mutation::Header(n, v, multi)),
        2 => prop_oneof![3 => select(PATHS).prop_map(str::to_owned), 1 => text(1..3, 60)]
            .prop_map(Mutation::Path),
        1 => prop_oneof![3 => select(METHODS).prop_map(str::to_owned), 1 => text(1..2, 10)]
            .prop_map(Mutation::Method),
        1 => prop_oneof![
            select(&["prod", "$default", "", "a/b", "testStage"][..]).prop_map(Value::from),
            json_value()
        ]
        .prop_map(Mutation::Stage),
    ]
}

/// JSON-pointer-like paths of every field of `value` (not the root), depth first.
fn field_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (k, v) in children {
        prefix.push(k);
        out.push(prefix.clone());
        field_paths(v, prefix, out);
        prefix.pop();
    }
}

/// The parent of the field at `path`, and the field's key in it.
fn parent_of<'a>(event: &'a mut Value, path: &'a [String]) -> (&'a mut Value, &'a str) {
    let (last, init) = path.split_last().expect("not the root");
    let parent = init.iter().fold(event, |v, k| match v {
        Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
        v => &mut v[k.as_str()],
    });
    (parent, last)
}

fn mutate(event: &mut Value, mutation: &Mutation, rest_v1: bool) {
    let pick = |event: &Value, i: &Index| {
        let mut paths = Vec::new();
        field_paths(event, &mut Vec::new(), &mut paths);
        (!paths.is_empty()).then(|| paths.swap_remove(i.index(paths.len())))
    };
    match mutation {
        Mutation::Remove(i) => {
            if let Some(path) = pick(event, i) {
                match parent_of(event, &path) {
                    (Value::Object(m), k) => {
                        m.remove(k);
                    }
                    (Value::Array(a), k) => {
                        a.remove(k.parse::<usize>().unwrap());
                    }
                    _ => unreachable!("fields are in objects and arrays"),
                }
            }
        }
        Mutation::Replace(i, value) => {
            if let Some(path) = pick(event, i) {
                match parent_of(event, &path) {
                    (Value::Array(a), k) => a[k.parse::<usize>().unwrap()] = value.clone(),
                    (parent, k) => parent[k] = value.clone(),
                }
            }
        }
        Mutation::Body(body, base64) => {
            event["body"] = body.clone();
            event["isBase64Encoded"] = json!(base64);
        }
        Mutation::Base64Body(bytes) => {
            let body = event["body"].as_str().unwrap_or_default().as_bytes();
            event["body"] = json!(base64(bytes.as_deref().unwrap_or(body)));
            event["isBase64Encoded"] = json!(true);
        }
        Mutation::Header(name, value, multi) => {
            let (headers, value) = match (rest_v1 && *multi, value) {
                (true, Value::String(_)) => ("multiValueHeaders", json!([value])),
                (true, _) => ("multiValueHeaders", value.clone()),
                (false, _) => ("headers", value.clone()),
            };
            if !event[headers].is_object() {
                event[headers] = json!({});
            }
            events::set_header(&mut event[headers], name, value);
        }
        Mutation::Path(path) if rest_v1 => {
            set(event, &["path"], json!(path));
            set(event, &["requestContext", "path"], json!(path));
        }
        Mutation::Path(path) => {
            set(event, &["rawPath"], json!(path));
            set(event, &["requestContext", "http", "path"], json!(path));
        }
        Mutation::Method(m) if rest_v1 => {
            set(event, &["httpMethod"], json!(m));
            set(event, &["requestContext", "httpMethod"], json!(m));
        }
        Mutation::Method(m) => set(event, &["requestContext", "http", "method"], json!(m)),
        Mutation::Stage(stage) => set(event, &["requestContext", "stage"], stage.clone()),
    }
}

/// Set the field at `path`, unless an earlier mutation made a parent something other than an
/// object (`Value`'s indexing would panic).
fn set(event: &mut Value, path: &[&str], value: Value) {
    let (last, init) = path.split_last().expect("a path");
    let mut at = event;
    for k in init {
        if at.is_null() {
            *at = json!({});
        }
        match at {
            Value::Object(m) => at = m.entry(*k).or_insert(Value::Null),
            _ => return,
        }
    }
    if at.is_null() {
        *at = json!({});
    }
    if let Value::Object(m) = at {
        m.insert((*last).to_owned(), value);
    }
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            let c = ABC[(n >> (18 - 6 * i) & 63) as usize] as char;
            out.push(if i <= chunk.len() { c } else { '=' });
        }
    }
    out
}

/// An example event (0: REST v1, 1: HTTP API v2, 2: Function URL), retargeted at a route with
/// a body for it (or left as AWS wrote it), then mutated.
#[derive(Debug, Clone)]
struct HttpCase {
    origin: u8,
    route: Option<(&'static str, &'static str)>,
    fields: Fields,
    mutations: Vec<Mutation>,
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/classify-message"),
    ("POST", "/classify-batch"),
    ("POST", "/classify-conversation"),
    ("GET", "/conversation/c1"),
    ("DELETE", "/conversation/c2"),
    ("GET", "/health"),
    ("GET", "/"),
];

static EXAMPLES: LazyLock<[Value; 3]> = LazyLock::new(|| {
    [
        events::rest_v1_example(),
        events::http_v2_example(),
        events::function_url_example(),
    ]
});

impl HttpCase {
    fn event(&self) -> Value {
        let example = EXAMPLES[usize::from(self.origin)].clone();
        let mut event = match self.route {
            None => example,
            Some((method, path)) => {
                let body = (method == "POST")
                    .then(|| Value::Object(self.fields.body_of(path)).to_string());
                if self.origin == 0 {
                    events::v1_event(example, method, path, body.as_deref())
                } else {
                    events::v2_event(example, method, path, body.as_deref())
                }
            }
        };
        for m in &self.mutations {
            mutate(&mut event, m, self.origin == 0);
        }
        event
    }
}

fn http_case() -> impl Strategy<Value = HttpCase> {
    (
        0..3u8,
        prop::option::weighted(0.9, select(ROUTES)),
        fields(),
        vec(mutation(), 0..4),
    )
        .prop_map(|(origin, route, fields, mutations)| HttpCase {
            origin,
            route,
            fields,
            mutations,
        })
}

#[test]
fn fuzz_dispatch_mutated_api_gateway_events() {
    let rt = runtime();
    let (router, tagger) = function();
    fuzz("dispatch/api-gateway", 0.37, http_case(), |case| {
        let event = case.event();
        let out = rt.block_on(invoke(&router, &tagger, &event));
        assert_dispatch_answer(&event, &out)
    });
}

/// Events the targets above found (shrunk by proptest), checked on every run.
#[test]
fn dispatch_regressions() {
    let rt = runtime();
    let (router, tagger) = function();
    let v2 = |path: &str| events::v2_event(events::http_v2_example(), "GET", path, None);
    let with = |mut event: Value, field: &str, value: Value| {
        set(&mut event, &field.split('.').collect::<Vec<_>>(), value);
        event
    };
    let cases = [
        // lambda_http's conversion of the event to a request panics on these.
        (
            "a base64 body that is not base64",
            with(
                with(v2("/health"), "body", json!("{}")),
                "isBase64Encoded",
                json!(true),
            ),
        ),
        ("a path that makes a port", v2("@x:y")),
        ("a path that makes an empty host", v2("@")),
        ("a path that makes an invalid host", v2("a b")),
        (
            "an X-Forwarded-Proto that is not a scheme",
            with(v2("/health"), "headers.x-forwarded-proto", json!(";")),
        ),
        (
            "a Host that is not a host",
            with(v2("/health"), "headers.host", json!("a b")),
        ),
        // Accepted as `{"operation": ..., "message": ...}`: a direct invocation is an object.
        (
            "a direct invocation as a JSON array",
            json!(["classify-message", "hi"]),
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(what, event)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let out = rt.block_on(invoke(&router, &tagger, event));
                assert_dispatch_answer(event, &out);
            }))
            .err()
            .map(|panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                format!("{what}: {why}")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "dispatch fails on:\n{}",
        failures.join("\n")
    );
}
