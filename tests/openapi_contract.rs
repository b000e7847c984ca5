//! The OpenAPI document is the contract: `GET /openapi.json` from the real router (the
//! embedded model, the in-memory store) must list every status each route can answer, with
//! the body it sends; state the limits the server enforces, from the same constants and
//! settings; link a conversation's write to its read and delete; and agree with the server's
//! own validation on every boundary case. `scripts/schemathesis.sh` checks the same document
//! with generated requests; these tests pin the facts it relies on.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};
use tagbeez::config::{MAX_BATCH, MAX_BODY_BYTES};
use tagbeez::service::ID_PATTERN;

#[path = "support/router.rs"]
mod router;
use router::*;

async fn document(app: &Router) -> Value {
    ok(get(app, "/openapi.json").await)
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

fn ref_to(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Every operation, with every status it can answer.
const OPERATIONS: &[(&str, &str, &[&str])] = &[
    (
        "/outcome",
        "post",
        &["200", "201", "400", "413", "415", "500", "503"],
    ),
    (
        "/shops/{shop_id}/profile",
        "put",
        &["200", "400", "403", "413", "415", "500", "503"],
    ),
    (
        "/shops/{shop_id}/profile",
        "get",
        &["200", "400", "403", "404", "500", "503"],
    ),
    (
        "/shops/{shop_id}/profile",
        "delete",
        &["200", "400", "403", "500", "503"],
    ),
    (
        "/shops/{shop_id}/experiments/{name}",
        "get",
        &["200", "400", "403", "404", "500", "503"],
    ),
    (
        "/classify-message",
        "post",
        &["200", "400", "413", "415", "500", "503"],
    ),
    (
        "/classify-batch",
        "post",
        &["200", "400", "413", "415", "500", "503"],
    ),
    (
        "/classify-conversation",
        "post",
        &["200", "400", "413", "415", "500", "503"],
    ),
    (
        "/conversation/{id}",
        "get",
        &["200", "400", "404", "500", "503"],
    ),
    (
        "/conversation/{id}",
        "delete",
        &["200", "400", "500", "503"],
    ),
    (
        "/feedback",
        "post",
        &["201", "400", "413", "415", "500", "503"],
    ),
    ("/health", "get", &["200", "500", "503"]),
    ("/metrics", "get", &["200", "404", "500"]),
    ("/demo", "get", &["200", "404", "500"]),
    ("/", "get", &["200", "500"]),
];

#[tokio::test]
async fn every_operation_lists_every_status_with_the_body_sent() {
    let doc = document(&app()).await;
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, OPERATIONS.len(), "{}", doc["paths"]);
    for (path, method, statuses) in OPERATIONS {
        let responses = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"));
        let listed: Vec<&str> = responses.keys().map(String::as_str).collect();
        assert_eq!(listed, *statuses, "{method} {path}: exact codes, no ranges");
        for (status, response) in responses {
            let what = format!("{method} {path} {status}");
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{what}: no description"
            );
            let body = &response["content"]["application/json"]["schema"];
            let health = *path == "/health" && status != "500";
            // The metrics page and the demo page are text, not JSON.
            let text = match *path {
                "/metrics" => Some("text/plain"),
                "/demo" => Some("text/html"),
                _ => None,
            };
            if let Some(media) = text.filter(|_| status == "200") {
                assert_eq!(
                    response["content"][media]["schema"]["type"], "string",
                    "{what}"
                );
            } else if status.starts_with('2') || health {
                assert!(body.is_object(), "{what}: no JSON body");
                assert_ne!(body, &ref_to("ErrorBody"), "{what}");
            } else {
                assert_eq!(body, &ref_to("ErrorBody"), "{what}");
            }
            // Every ApiError 503 carries Retry-After (`api::error`); /health's own does not.
            let retry_after = &response["headers"]["Retry-After"];
            if status == "503" && !health {
                assert_eq!(retry_after["schema"]["type"], "integer", "{what}");
            } else {
                assert!(retry_after.is_null(), "{what}: Retry-After is not sent");
            }
        }
    }
    let error = schema(&doc, "ErrorBody");
    assert_eq!(error["required"], json!(["error"]));
    assert_eq!(error["properties"]["error"], ref_to("ErrorDetail"));
    assert_eq!(
        schema(&doc, "ErrorDetail")["required"],
        json!(["status", "code", "message"])
    );
    let too_large = &doc["paths"]["/classify-message"]["post"]["responses"]["413"];
    assert!(
        too_large["description"]
            .as_str()
            .unwrap()
            .contains(&format!("{} KiB", MAX_BODY_BYTES / 1024)),
        "{too_large}"
    );
}

#[tokio::test]
async fn the_limits_are_the_servers() {
    let doc = document(&app()).await;
    let message = schema(&doc, "Message");
    assert_eq!(message["type"], "string");
    assert_eq!(message["minLength"], 1);
    assert_eq!(message["maxLength"], 5_000, "the default MAX_MESSAGE_CHARS");
    // The pattern's class is exactly the whitespace `str::trim` removes.
    let class = negated_class(message["pattern"].as_str().unwrap());
    let whitespace: BTreeSet<char> = (0..=u32::from(char::MAX))
        .filter_map(char::from_u32)
        .filter(|c| c.is_whitespace())
        .collect();
    assert_eq!(class, whitespace);

    let batch = schema(&doc, "Messages");
    assert_eq!(
        (&batch["type"], &batch["minItems"], &batch["maxItems"]),
        (&json!("array"), &json!(1), &json!(MAX_BATCH))
    );
    assert_eq!(batch["items"], ref_to("Message"));

    let id = schema(&doc, "Id");
    assert_eq!(id["pattern"], ID_PATTERN);
    assert_eq!(
        (&id["minLength"], &id["maxLength"]),
        (&json!(1), &json!(128))
    );

    // The request bodies use them, and refuse unknown fields.
    for (name, fields) in [
        ("MessageRequest", json!({ "message": ref_to("Message") })),
        ("BatchRequest", json!({ "messages": ref_to("Messages") })),
    ] {
        let body = schema(&doc, name);
        assert_eq!(body["additionalProperties"], false, "{name}");
        for (field, want) in fields.as_object().unwrap() {
            assert_eq!(&body["properties"][field], want, "{name}.{field}");
        }
    }
    let conversation = schema(&doc, "ConversationRequest");
    assert_eq!(conversation["additionalProperties"], false);
    assert_eq!(
        conversation["required"],
        json!(["conversation_id", "message"])
    );
    let props = &conversation["properties"];
    assert_eq!(props["conversation_id"]["$ref"], ref_to("Id")["$ref"]);
    assert_eq!(props["message"], ref_to("Message"));
    let message_id = props["message_id"]["oneOf"].as_array().unwrap();
    assert_eq!(message_id[0], json!({ "type": "null" }));
    assert_eq!(message_id[1]["$ref"], ref_to("Id")["$ref"]);
    for method in ["get", "delete"] {
        let params = &doc["paths"]["/conversation/{id}"][method]["parameters"];
        assert_eq!(params[0]["name"], "id");
        assert_eq!(params[0]["in"], "path");
        assert_eq!(params[0]["schema"], ref_to("Id"), "{method}");
    }

    // The message limit is the setting the server runs with.
    let doc = document(&app_with(&[("MAX_MESSAGE_CHARS", "300")])).await;
    assert_eq!(schema(&doc, "Message")["maxLength"], 300);
}

#[tokio::test]
async fn links_chain_a_conversation_write_to_its_read_and_delete() {
    let doc = document(&app()).await;
    let operations: BTreeMap<&str, (&str, &Value)> = OPERATIONS
        .iter()
        .map(|(path, method, _)| {
            let op = &doc["paths"][path][method];
            (op["operationId"].as_str().unwrap(), (*path, op))
        })
        .collect();
    let links_of =
        |path: &str, method: &str| doc["paths"][path][method]["responses"]["200"]["links"].clone();
    let want = [
        (
            "/classify-conversation",
            "post",
            json!({
                "GetConversation": "get_conversation",
                "ClearConversation": "clear_conversation",
            }),
        ),
        (
            "/conversation/{id}",
            "get",
            json!({ "ClearConversation": "clear_conversation" }),
        ),
        (
            "/conversation/{id}",
            "delete",
            json!({ "GetConversation": "get_conversation" }),
        ),
    ];
    for (path, method, names) in want {
        let links = links_of(path, method);
        let links = links
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: no links"));
        assert_eq!(links.len(), names.as_object().unwrap().len(), "{links:?}");
        for (name, target) in names.as_object().unwrap() {
            let link = &links[name];
            // The specification's field names (utoipa 5.5 writes `operation_id`).
            assert_eq!(
                keys(link),
                ["description", "operationId", "parameters"],
                "{link}"
            );
            assert_eq!(&link["operationId"], target);
            // The shop travels with the id: a shop's conversation is found only with it.
            let shop = if path == "/classify-conversation" {
                "$request.body#/shop_id"
            } else {
                "$request.query.shop_id"
            };
            assert_eq!(
                link["parameters"],
                json!({ "id": "$response.body#/conversation_id", "shop_id": shop })
            );
            let (target_path, _) = operations[target.as_str().unwrap()];
            assert_eq!(target_path, "/conversation/{id}");
        }
    }
    // The expression resolves: every source's 200 body requires `conversation_id`.
    for name in ["ConversationResponse", "ConversationView", "Cleared"] {
        let required = schema(&doc, name)["required"].as_array().unwrap().clone();
        assert!(required.contains(&json!("conversation_id")), "{name}");
    }
    // No other response has links.
    let all_links = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .flat_map(|op| op["responses"].as_object().unwrap().values())
        .filter(|r| r.get("links").is_some())
        .count();
    assert_eq!(all_links, 3);
}

#[tokio::test]
async fn responses_are_what_the_schemas_say() {
    let app = app();
    let doc = document(&app).await;
    let check = |name: &str, body: &Value| {
        let schema = schema(&doc, name);
        let properties: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let sent: BTreeSet<&str> = keys(body).into_iter().collect();
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(sent.is_subset(&properties), "{name}: {body}");
        assert!(required.is_subset(&sent), "{name}: {body}");
    };
    // Nullable fields are always sent (null when empty); `message_id` only when given.
    let response = schema(&doc, "ConversationResponse");
    for field in ["conversation_tag", "previous_tag"] {
        assert!(response["required"]
            .as_array()
            .unwrap()
            .contains(&json!(field)));
        assert_eq!(response["properties"][field]["oneOf"][0]["type"], "null");
    }
    assert!(!response["required"]
        .as_array()
        .unwrap()
        .contains(&json!("message_id")));
    assert_eq!(
        response["properties"]["message_id"]["$ref"],
        ref_to("Id")["$ref"]
    );

    let first = converse(&app, "contract-1", FIRST_TIME).await;
    check("ConversationResponse", &first);
    assert!(first["previous_tag"].is_null());
    assert!(first.get("message_id").is_none(), "{first}");
    let with_id = ok(post(
        &app,
        "/classify-conversation",
        &json!({ "conversation_id": "contract-1", "message": HOT, "message_id": "m-1" }),
    )
    .await);
    check("ConversationResponse", &with_id);
    assert_eq!(with_id["message_id"], "m-1");
    check(
        "ConversationView",
        &ok(get(&app, "/conversation/contract-1").await),
    );
    check(
        "Cleared",
        &ok(delete(&app, "/conversation/contract-1").await),
    );
    check("MessageResult", &classify(&app, HOT).await);
    check("Health", &ok(get(&app, "/health").await));
    check("ServiceInfo", &ok(get(&app, "/").await));
}

// ---------------------------------------------------------------------------------------
// The server refuses exactly what the document refuses
// ---------------------------------------------------------------------------------------

/// A string schema of the document, evaluated for the keywords it uses.
struct StringRule {
    min: usize,
    max: usize,
    /// `Some(class)`: every character in the class (`^[class]{m,n}$`); `None`: see `blank`.
    allowed: Option<BTreeSet<char>>,
    /// For `[^class]`: the characters that do not count (at least one other is needed).
    blank: BTreeSet<char>,
}

impl StringRule {
    fn of(schema: &Value) -> Self {
        let pattern = schema["pattern"].as_str().expect("a pattern");
        let (allowed, blank) = if pattern.starts_with("[^") {
            (None, negated_class(pattern))
        } else {
            let (class, min, max) = anchored_class(pattern);
            assert_eq!(
                (min, max),
                (1, schema["maxLength"].as_u64().unwrap() as usize)
            );
            (Some(class), BTreeSet::new())
        };
        Self {
            min: schema["minLength"].as_u64().unwrap() as usize,
            max: schema["maxLength"].as_u64().unwrap() as usize,
            allowed,
            blank,
        }
    }

    /// JSON Schema semantics: lengths in code points, `pattern` unanchored unless anchored.
    fn accepts(&self, s: &str) -> bool {
        let n = s.chars().count();
        let pattern = match &self.allowed {
            Some(class) => s.chars().all(|c| class.contains(&c)),
            None => s.chars().any(|c| !self.blank.contains(&c)),
        };
        (self.min..=self.max).contains(&n) && pattern
    }
}

/// The characters of a `[^...]` pattern's class.
fn negated_class(pattern: &str) -> BTreeSet<char> {
    let body = pattern
        .strip_prefix("[^")
        .and_then(|p| p.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a negated class: {pattern}"));
    class_chars(body)
}

/// The class and bounds of a `^[...]{m,n}$` pattern.
fn anchored_class(pattern: &str) -> (BTreeSet<char>, usize, usize) {
    let inner = pattern
        .strip_prefix("^[")
        .and_then(|p| p.strip_suffix('$'))
        .unwrap_or_else(|| panic!("not ^[...]{{m,n}}$: {pattern}"));
    let (body, bounds) = inner.rsplit_once("]{").expect("a bounded class");
    let (min, max) = bounds
        .strip_suffix('}')
        .and_then(|b| b.split_once(','))
        .expect("{m,n}");
    (
        class_chars(body),
        min.parse().unwrap(),
        max.parse().unwrap(),
    )
}

/// A regex class body of literals, `\uXXXX` escapes and `a-b` ranges (a last `-` is literal).
fn class_chars(body: &str) -> BTreeSet<char> {
    let mut items = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            assert_eq!(chars.next(), Some('u'), "only \\u escapes: {body}");
            let hex: String = chars.by_ref().take(4).collect();
            items.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
        } else {
            items.push(c);
        }
        // A range marker, kept as a sentinel between its ends.
        if chars.peek() == Some(&'-') {
            chars.next();
            if chars.peek().is_some() {
                items.push('\0');
            } else {
                items.push('-');
            }
        }
    }
    let mut set = BTreeSet::new();
    let mut i = 0;
    while i < items.len() {
        if items.get(i + 1) == Some(&'\0') {
            set.extend(items[i]..=items[i + 2]);
            i += 3;
        } else {
            set.insert(items[i]);
            i += 1;
        }
    }
    set
}

fn percent_encoded(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[track_caller]
fn agrees(reply: &Reply, schema_valid: bool, what: &str) {
    let accepted = reply.status.is_success();
    assert_eq!(
        accepted,
        schema_valid,
        "{what}: the schema says {}, the server answered {} {}",
        if schema_valid { "valid" } else { "invalid" },
        reply.status,
        reply.json
    );
    if !accepted {
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.json
        );
    }
}

#[tokio::test]
async fn messages_on_the_boundary_are_refused_exactly_when_the_schema_refuses_them() {
    for (vars, max) in [(&[][..], 5_000), (&[("MAX_MESSAGE_CHARS", "20")][..], 20)] {
        let app = app_with(vars);
        let doc = document(&app).await;
        let rule = StringRule::of(schema(&doc, "Message"));
        assert_eq!(rule.max, max);
        let a = |n: usize| "a".repeat(n);
        let cases = [
            String::new(),
            " ".into(),
            "\t\n\r\u{b}\u{c}".into(),
            "\u{3000}\u{a0}\u{85}\u{2028}".into(),
            // Not whitespace to Rust: to ECMA-262 U+FEFF is, to Python U+001C is.
            "\u{feff}".into(),
            "\u{1c}".into(),
            "\u{0}".into(),
            "a".into(),
            a(max),
            a(max + 1),
            format!(" {}", a(max - 1)),
            format!(" {}", a(max)),
            format!("{}\n", a(max)),
            format!("{}\n", a(max - 1)),
            "é".repeat(max),
            "🔥".repeat(max),
            "🔥".repeat(max + 1),
            " ".repeat(max + 1),
        ];
        for message in &cases {
            let valid = rule.accepts(message);
            let what = format!("{} chars {:?}", message.chars().count(), message.get(..12));
            let reply = post(&app, "/classify-message", &json!({ "message": message })).await;
            agrees(&reply, valid, &format!("classify-message {what}"));
            let reply = post(
                &app,
                "/classify-conversation",
                &json!({ "conversation_id": "boundary", "message": message }),
            )
            .await;
            agrees(&reply, valid, &format!("classify-conversation {what}"));
            let reply = post(
                &app,
                "/classify-batch",
                &json!({ "messages": ["hello", message] }),
            )
            .await;
            agrees(&reply, valid, &format!("classify-batch {what}"));
        }
        // The boundary itself, asserted outright.
        assert!(rule.accepts(&a(max)) && !rule.accepts(&a(max + 1)));
        assert!(!rule.accepts("") && !rule.accepts(" \n") && rule.accepts("\u{feff}"));
    }
}

#[tokio::test]
async fn batch_sizes_on_the_boundary_are_refused_exactly_when_the_schema_refuses_them() {
    let app = app();
    let doc = document(&app).await;
    let batch = schema(&doc, "Messages");
    let (min, max) = (
        batch["minItems"].as_u64().unwrap() as usize,
        batch["maxItems"].as_u64().unwrap() as usize,
    );
    for n in [0, 1, 2, MAX_BATCH - 1, MAX_BATCH, MAX_BATCH + 1, 100] {
        let messages = vec!["hi"; n];
        let reply = post(&app, "/classify-batch", &json!({ "messages": messages })).await;
        agrees(&reply, (min..=max).contains(&n), &format!("a batch of {n}"));
        if reply.status.is_success() {
            assert_eq!(reply.json["results"].as_array().unwrap().len(), n);
        }
    }
}

#[tokio::test]
async fn ids_on_the_boundary_are_refused_exactly_when_the_schema_refuses_them() {
    let app = app();
    let doc = document(&app).await;
    let rule = StringRule::of(schema(&doc, "Id"));
    let cases = [
        String::new(),
        "a".into(),
        "A".repeat(127),
        "A".repeat(128),
        "A".repeat(129),
        "Az09_.:@-".into(),
        ".".into(),
        "a b".into(),
        "a/b".into(),
        "café".into(),
        "a\n".into(),
        "\na".into(),
        "tab\t".into(),
        "50%".into(),
        "hash#".into(),
        "a+b".into(),
        "a~b".into(),
        "ａ".into(), // fullwidth: alphanumeric to Unicode, not to the pattern
    ];
    for id in &cases {
        let valid = rule.accepts(id);
        let what = format!("id {id:?}");
        let reply = post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": id, "message": HOT }),
        )
        .await;
        agrees(&reply, valid, &format!("conversation_id {what}"));
        let reply = post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": "ids", "message": HOT, "message_id": id }),
        )
        .await;
        agrees(&reply, valid, &format!("message_id {what}"));
        if id.is_empty() {
            continue; // `/conversation/` is another path (no route: 404 not_found)
        }
        // In the path: valid ids are read (200 when written above, else 404) and refused
        // only when invalid.
        let uri = format!("/conversation/{}", percent_encoded(id));
        for reply in [get(&app, &uri).await, delete(&app, &uri).await] {
            if valid {
                assert!(
                    reply.status == StatusCode::OK || reply.status == StatusCode::NOT_FOUND,
                    "{uri}: {} {}",
                    reply.status,
                    reply.json
                );
                if reply.status == StatusCode::NOT_FOUND {
                    error_of(&reply, StatusCode::NOT_FOUND, "conversation_not_found");
                }
            } else {
                error_of(&reply, StatusCode::BAD_REQUEST, "invalid_conversation_id");
            }
        }
    }
    // A null or absent message_id is valid; an unknown field is not.
    for body in [
        json!({ "conversation_id": "ids", "message": HOT, "message_id": null }),
        json!({ "conversation_id": "ids", "message": HOT }),
    ] {
        agrees(
            &post(&app, "/classify-conversation", &body).await,
            true,
            "{body}",
        );
    }
    let extra = json!({ "conversation_id": "ids", "message": HOT, "extra": 1 });
    let reply = post(&app, "/classify-conversation", &extra).await;
    error_of(&reply, StatusCode::BAD_REQUEST, "invalid_request");
}
