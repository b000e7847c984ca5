//! A client written for the reference service (the Python FastAPI service tagbeez replaces)
//! works unchanged: every route it had, with its request bodies, answers with the fields and
//! types its response models declared (`MessageResponse`, `ConversationResponse`, the root and
//! health dictionaries, the DELETE message). New fields may be added beside them; none is
//! renamed or retyped. The shapes are written here from the reference's write-up.

#[path = "support/router.rs"]
mod router;

use axum::http::StatusCode;
use serde_json::{json, Value};

use router::*;

/// The types of the reference's pydantic models, as a JSON check.
#[derive(Clone, Copy)]
enum Shape {
    Str,
    Float,
    Bool,
    /// `TagScore`: `{tag: str, confidence: float}`.
    TagScore,
    /// `List[TagScore]`
    TagScores,
    /// `Optional[TagScore]`
    OptionalTagScore,
    /// `List[str]`
    Strs,
    /// `List[Dict]` of evidence: `{message: str, top: List[TagScore]}`.
    Evidence,
}

fn check(value: &Value, shape: Shape, what: &str) {
    let ok = match shape {
        Shape::Str => value.is_string(),
        Shape::Float => value.is_number(),
        Shape::Bool => value.is_boolean(),
        Shape::TagScore => {
            check(&value["tag"], Shape::Str, what);
            check(&value["confidence"], Shape::Float, what);
            let c = value["confidence"].as_f64().unwrap();
            (0.0..=1.0).contains(&c)
        }
        Shape::TagScores => value.as_array().is_some_and(|items| {
            items.iter().for_each(|i| check(i, Shape::TagScore, what));
            true
        }),
        Shape::OptionalTagScore => {
            value.is_null() || {
                check(value, Shape::TagScore, what);
                true
            }
        }
        Shape::Strs => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
        Shape::Evidence => value.as_array().is_some_and(|items| {
            items.iter().for_each(|e| {
                check(&e["message"], Shape::Str, what);
                check(&e["top"], Shape::TagScores, what);
            });
            items.len() <= 2
        }),
    };
    assert!(ok, "{what}: {value} is not a {}", name(shape));
}

fn name(shape: Shape) -> &'static str {
    match shape {
        Shape::Str => "str",
        Shape::Float => "float",
        Shape::Bool => "bool",
        Shape::TagScore => "TagScore",
        Shape::TagScores => "List[TagScore]",
        Shape::OptionalTagScore => "Optional[TagScore]",
        Shape::Strs => "List[str]",
        Shape::Evidence => "List[Dict]",
    }
}

fn conforms(body: &Value, model: &[(&str, Shape)], what: &str) {
    for (field, shape) in model {
        let value = body
            .get(*field)
            .unwrap_or_else(|| panic!("{what}: no {field:?} in {body:#}"));
        check(value, *shape, &format!("{what}.{field}"));
    }
}

const MESSAGE_RESPONSE: &[(&str, Shape)] = &[
    ("threshold", Shape::Float),
    ("selected", Shape::TagScores),
    ("all", Shape::TagScores),
];

const CONVERSATION_RESPONSE: &[(&str, Shape)] = &[
    ("conversation_id", Shape::Str),
    ("threshold", Shape::Float),
    ("conversation_tag", Shape::OptionalTagScore),
    ("switched", Shape::Bool),
    ("evidence", Shape::Evidence),
];

#[tokio::test]
async fn every_reference_route_answers_in_the_reference_shape() {
    let app = app();

    // GET /: {service, version, endpoints, tags, model_loaded}.
    let root = ok(get(&app, "/").await);
    conforms(
        &root,
        &[
            ("service", Shape::Str),
            ("version", Shape::Str),
            ("endpoints", Shape::Strs),
            ("tags", Shape::Strs),
            ("model_loaded", Shape::Bool),
        ],
        "GET /",
    );
    let endpoints: Vec<&str> = root["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for path in ["/classify-message", "/classify-conversation", "/health"] {
        assert!(endpoints.contains(&path), "{endpoints:?}");
    }
    assert_eq!(root["model_loaded"], true);
    assert_eq!(root["tags"].as_array().unwrap().len(), 5);

    // GET /health: {status: "healthy", model_loaded: true}.
    let health = ok(get(&app, "/health").await);
    conforms(
        &health,
        &[("status", Shape::Str), ("model_loaded", Shape::Bool)],
        "GET /health",
    );
    assert_eq!(
        (health["status"].clone(), health["model_loaded"].clone()),
        (json!("healthy"), json!(true))
    );

    // POST /classify-message {message} -> MessageResponse.
    let result = ok(post(&app, "/classify-message", &json!({ "message": HOT })).await);
    conforms(&result, MESSAGE_RESPONSE, "POST /classify-message");
    assert_eq!(tags(&result["selected"])[0], "Hot-buyer");
    assert_eq!(result["all"].as_array().unwrap().len(), 5);

    // POST /classify-conversation {conversation_id, message} -> ConversationResponse, over the
    // reference demo's kind of conversation: browsing, then buying.
    let mut replies = Vec::new();
    for message in [WISHLIST, HOT, HOT] {
        let reply = ok(post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": "ref-1", "message": message }),
        )
        .await);
        conforms(&reply, CONVERSATION_RESPONSE, "POST /classify-conversation");
        assert_eq!(reply["conversation_id"], "ref-1");
        replies.push(reply);
    }
    assert_eq!(
        replies[0]["switched"], false,
        "no previous tag: not a switch"
    );
    assert_eq!(replies[0]["evidence"].as_array().unwrap().len(), 1);
    assert_eq!(replies[2]["evidence"].as_array().unwrap().len(), 2);
    assert_eq!(
        replies[2]["conversation_tag"]["tag"], "Hot-buyer",
        "{:#}",
        replies[2]
    );
    assert!(
        replies.iter().any(|r| r["switched"] == true),
        "the demo's switch: {replies:#?}"
    );

    // DELETE /conversation/{id} -> {message: "Conversation <id> cleared"}; an unknown one is a
    // 200 with "... not found", as the reference answers.
    let cleared = ok(delete(&app, "/conversation/ref-1").await);
    assert_eq!(cleared["message"], "Conversation ref-1 cleared");
    let unknown = delete(&app, "/conversation/ref-1").await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.json["message"], "Conversation ref-1 not found");
}
