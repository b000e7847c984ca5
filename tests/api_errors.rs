//! Every refusal of the HTTP API as a JSON error with its status and code: malformed JSON,
//! wrong content types and shapes, empty and over-long messages, bad batches and ids,
//! oversized bodies, unknown routes; and inputs that must never fail (emoji, control
//! characters, non-ASCII).

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{json, Value};
use tagbeez::config::MAX_BODY_BYTES;

#[path = "support/router.rs"]
mod router;
use router::*;

// ---------------------------------------------------------------------------------------
// Refusals: 4xx JSON errors
// ---------------------------------------------------------------------------------------

/// A valid body for each POST route.
fn valid_bodies() -> [(&'static str, Value); 3] {
    [
        ("/classify-message", json!({ "message": "hello" })),
        ("/classify-batch", json!({ "messages": ["hello"] })),
        (
            "/classify-conversation",
            json!({ "conversation_id": "c1", "message": "hello" }),
        ),
    ]
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let app = app();
    for (route, valid) in valid_bodies() {
        let valid = valid.to_string();
        let truncated = valid[..valid.len() - 1].to_owned();
        let trailing = format!("{valid} trailing");
        // A lone UTF-16 surrogate is not a character.
        let surrogate = valid.replace("hello", "\\ud800");
        for body in [
            "",
            "{",
            "{message: hi}",
            "[",
            "nul",
            truncated.as_str(),
            trailing.as_str(),
            surrogate.as_str(),
        ] {
            let reply = post_raw(&app, route, Some("application/json"), body.to_owned()).await;
            let message = error_of(&reply, StatusCode::BAD_REQUEST, "invalid_json");
            assert!(
                message.starts_with("malformed JSON"),
                "{route} {body:?}: {message}"
            );
        }
    }
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = app();
    for (route, body) in valid_bodies() {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("json"),
            None,
        ] {
            let reply = post_raw(&app, route, content_type, body.to_string()).await;
            let message = error_of(
                &reply,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            );
            assert!(message.contains("application/json"), "{message}");
        }
        // The same body with the right content type is accepted.
        ok(post(&app, route, &body).await);
    }
}

#[tokio::test]
async fn wrong_shapes_are_400_invalid_request() {
    let app = app();
    let cases = [
        ("/classify-message", json!({}), "`message`"),
        ("/classify-message", json!({ "text": "hi" }), "`text`"),
        (
            "/classify-message",
            json!({ "message": "hi", "extra": 1 }),
            "`extra`",
        ),
        ("/classify-message", json!({ "message": 5 }), "invalid type"),
        (
            "/classify-message",
            json!({ "message": null }),
            "invalid type",
        ),
        (
            "/classify-message",
            json!({ "message": ["hi"] }),
            "invalid type",
        ),
        ("/classify-message", json!("hi"), "invalid type"),
        ("/classify-message", json!(5), "invalid type"),
        // serde would read an array as the fields in order: the body must be an object.
        ("/classify-message", json!(["hi"]), "must be a JSON object"),
        ("/classify-batch", json!([["hi"]]), "must be a JSON object"),
        (
            "/classify-conversation",
            json!(["c1", "hi"]),
            "must be a JSON object",
        ),
        ("/classify-batch", json!({}), "`messages`"),
        (
            "/classify-batch",
            json!({ "messages": "hi" }),
            "invalid type",
        ),
        (
            "/classify-batch",
            json!({ "messages": ["hi", 5] }),
            "invalid type",
        ),
        (
            "/classify-batch",
            json!({ "messages": ["hi"], "extra": true }),
            "`extra`",
        ),
        ("/classify-batch", json!({ "message": "hi" }), "`message`"),
        (
            "/classify-conversation",
            json!({ "message": "hi" }),
            "`conversation_id`",
        ),
        (
            "/classify-conversation",
            json!({ "conversation_id": "c" }),
            "`message`",
        ),
        (
            "/classify-conversation",
            json!({ "conversation_id": 7, "message": "hi" }),
            "invalid type",
        ),
        (
            "/classify-conversation",
            json!({ "conversation_id": "c", "message": "hi", "x": 1 }),
            "`x`",
        ),
    ];
    for (route, body, mentions) in cases {
        let reply = post(&app, route, &body).await;
        let message = error_of(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(message.starts_with("invalid request"), "{message}");
        assert!(
            message.contains(mentions),
            "{route} {body}: {message:?} does not mention {mentions}"
        );
    }
}

#[tokio::test]
async fn empty_and_whitespace_messages_are_400_empty_message() {
    let app = app();
    for empty in ["", " ", "\n\t  \r\n", "\u{3000}\u{a0}"] {
        let reply = post(&app, "/classify-message", &json!({ "message": empty })).await;
        assert_eq!(
            error_of(&reply, StatusCode::BAD_REQUEST, "empty_message"),
            "message is empty"
        );
        let reply = post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": "c", "message": empty }),
        )
        .await;
        assert_eq!(
            error_of(&reply, StatusCode::BAD_REQUEST, "empty_message"),
            "message is empty"
        );
    }
    // A refused message never starts a conversation.
    error_of(
        &get(&app, "/conversation/c").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
}

#[tokio::test]
async fn messages_over_the_limit_are_400_message_too_long() {
    let app = app_with(&[("MAX_MESSAGE_CHARS", "20")]);
    let at_limit = "é".repeat(20); // 20 characters, 40 bytes: the limit counts characters
    ok(post(&app, "/classify-message", &json!({ "message": at_limit })).await);
    ok(post(
        &app,
        "/classify-message",
        &json!({ "message": format!("   {}\n", "é".repeat(16)) }),
    )
    .await);
    let over = "a".repeat(21);
    for (route, body) in [
        ("/classify-message", json!({ "message": over })),
        (
            "/classify-conversation",
            json!({ "conversation_id": "c", "message": over }),
        ),
    ] {
        let message = error_of(
            &post(&app, route, &body).await,
            StatusCode::BAD_REQUEST,
            "message_too_long",
        );
        assert_eq!(message, "message has 21 characters; the limit is 20");
    }

    // The default limit is 5,000 characters.
    let reply = post(
        &self::app(),
        "/classify-message",
        &json!({ "message": "a".repeat(5_001) }),
    )
    .await;
    let message = error_of(&reply, StatusCode::BAD_REQUEST, "message_too_long");
    assert!(
        message.contains("5001") && message.contains("5000"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_batches_are_refused_with_their_code() {
    let app = app_with(&[("MAX_MESSAGE_CHARS", "30")]);
    let reply = post(&app, "/classify-batch", &json!({ "messages": [] })).await;
    error_of(&reply, StatusCode::BAD_REQUEST, "empty_batch");

    let sixty_five = vec!["hello"; 65];
    let reply = post(&app, "/classify-batch", &json!({ "messages": sixty_five })).await;
    let message = error_of(&reply, StatusCode::BAD_REQUEST, "batch_too_large");
    assert_eq!(message, "messages holds 65 messages; the limit is 64");

    let reply = post(
        &app,
        "/classify-batch",
        &json!({ "messages": ["hello", "  ", "bye"] }),
    )
    .await;
    assert_eq!(
        error_of(&reply, StatusCode::BAD_REQUEST, "empty_message"),
        "messages[1] is empty"
    );

    let long = "b".repeat(31);
    let reply = post(
        &app,
        "/classify-batch",
        &json!({ "messages": ["hello", "hi", long] }),
    )
    .await;
    let message = error_of(&reply, StatusCode::BAD_REQUEST, "message_too_long");
    assert_eq!(message, "messages[2] has 31 characters; the limit is 30");
}

const BAD_IDS: &[&str] = &[
    "",
    "a b",
    "a/b",
    "café",
    "ü",
    "line\nbreak",
    "tab\t",
    "percent%",
    "hash#",
];

#[tokio::test]
async fn bad_conversation_ids_are_400_in_the_body() {
    let app = app();
    let too_long = "a".repeat(129);
    for id in BAD_IDS.iter().copied().chain([too_long.as_str()]) {
        let reply = post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": id, "message": HOT }),
        )
        .await;
        let message = error_of(&reply, StatusCode::BAD_REQUEST, "invalid_conversation_id");
        assert!(message.contains("1-128 characters"), "{id:?}: {message}");
    }
    // The longest id, and every allowed punctuation character, are accepted.
    let longest = "A".repeat(128);
    for id in [longest.as_str(), "Az09_.:@-"] {
        let reply = converse(&app, id, HOT).await;
        assert_eq!(reply["conversation_id"], id);
        assert_eq!(
            ok(get(&app, &format!("/conversation/{id}")).await)["conversation_id"],
            id
        );
    }
}

#[tokio::test]
async fn bad_conversation_ids_are_400_in_the_path() {
    let app = app();
    let too_long = "a".repeat(129);
    // Percent-encoded: a space, '/', 'é', '\n', '%', and bytes that are not UTF-8.
    for segment in [
        too_long.as_str(),
        "a%20b",
        "a%2Fb",
        "caf%C3%A9",
        "line%0Abreak",
        "50%25",
        "%FF",
        "%C3",
    ] {
        for reply in [
            get(&app, &format!("/conversation/{segment}")).await,
            delete(&app, &format!("/conversation/{segment}")).await,
        ] {
            error_of(&reply, StatusCode::BAD_REQUEST, "invalid_conversation_id");
        }
    }
    // An empty id does not match the route at all.
    for reply in [
        get(&app, "/conversation/").await,
        delete(&app, "/conversation/").await,
    ] {
        error_of(&reply, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn bodies_over_4_mib_are_413() {
    let app = app();
    let prefix = "{\"message\":\"";
    let suffix = "\"}";
    let exactly = |bytes: usize| {
        format!(
            "{prefix}{}{suffix}",
            "a".repeat(bytes - prefix.len() - suffix.len())
        )
    };
    // At the limit the body is read, and the message itself is refused as too long.
    let body = exactly(MAX_BODY_BYTES);
    let reply = post_raw(&app, "/classify-message", Some("application/json"), body).await;
    error_of(&reply, StatusCode::BAD_REQUEST, "message_too_long");
    // One byte over, the body is refused before parsing.
    for (route, _) in valid_bodies() {
        let reply = post_raw(
            &app,
            route,
            Some("application/json"),
            exactly(MAX_BODY_BYTES + 1),
        )
        .await;
        let message = error_of(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
        assert_eq!(message, "the body is over 4096 KiB");
    }
    let reply = post_raw(
        &app,
        "/classify-batch",
        Some("application/json"),
        exactly(8 * 1024 * 1024),
    )
    .await;
    error_of(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

/// The largest batch the document allows, at its most bytes per character (every character
/// a non-BMP one, written as a JSON surrogate-pair escape), is read and classified, not 413.
#[tokio::test]
async fn the_largest_valid_batch_fits_the_body_limit() {
    let message = "\\ud83d\\ude00".repeat(5_000);
    let body = format!(
        "{{\"messages\":[{}]}}",
        vec![format!("\"{message}\""); 64].join(",")
    );
    assert!(
        body.len() > 3_800_000 && body.len() <= MAX_BODY_BYTES,
        "{}",
        body.len()
    );
    let reply = post_raw(&app(), "/classify-batch", Some("application/json"), body).await;
    let results = ok(reply)["results"].as_array().unwrap().len();
    assert_eq!(results, 64);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = app();
    for (method, uri) in [
        ("GET", "/nope"),
        ("POST", "/classify"),
        ("GET", "/conversation"),
        ("GET", "/conversation/a/b"),
        ("GET", "/classify-message/extra"),
        ("DELETE", "/conversations/abc"),
    ] {
        let reply = call(&app, request(method, uri, None, Body::empty())).await;
        let message = error_of(&reply, StatusCode::NOT_FOUND, "not_found");
        assert_eq!(message, format!("no route for {method} {uri}"));
    }
    for (method, uri) in [
        ("GET", "/classify-message"),
        ("GET", "/classify-batch"),
        ("PUT", "/classify-conversation"),
        ("PUT", "/health"),
        ("POST", "/health"),
        ("DELETE", "/"),
        ("POST", "/openapi.json"),
        ("POST", "/conversation/abc"),
        ("PATCH", "/conversation/abc"),
    ] {
        let reply = call(&app, request(method, uri, Some("application/json"), "{}")).await;
        let message = error_of(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(message, format!("{method} is not allowed on {uri}"));
    }
}

#[tokio::test]
async fn long_messages_are_accepted_and_marked_truncated() {
    let app = app();
    let long = "I really love this jacket and I want to buy it now please ".repeat(34); // ~400 words
    assert!(long.split_whitespace().count() >= 400);
    let result = classify(&app, &long).await;
    assert_well_formed(&result);
    assert_eq!(result["truncated"], true);
    assert_eq!(classify(&app, HOT).await["truncated"], false);

    let batch = ok(post(&app, "/classify-batch", &json!({ "messages": [HOT, long] })).await);
    assert_eq!(batch["results"][0]["truncated"], false);
    assert_eq!(batch["results"][1]["truncated"], true);
    let reply = converse(&app, "long", &long).await;
    assert_eq!(reply["message_result"]["truncated"], true);
    assert_eq!(
        reply["evidence"][0]["message"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        53
    );
}

#[tokio::test]
async fn emoji_control_characters_and_non_ascii_never_fail() {
    let app = app();
    let messages = [
        "🔥🔥🔥",
        "😀 buy now!!! 💳👟",
        "\u{0}\u{7}hello\u{1b}[31m world\u{7f}",
        "\u{0}\u{1}\u{2}",
        "\u{200b}\u{feff}\u{200d}",
        "私はこの靴を今すぐ買いたいです",
        "Привет, есть ли скидки для новых покупателей?",
        "مرحبا، هل لديكم خصومات؟",
        "e\u{301}\u{301}\u{301} ñ ß ﬁ Ω",
        "\u{202e}reversed\u{202c} text",
        "a\u{fffd}b \u{10ffff}",
        "👨‍👩‍👧‍👦🏳️‍🌈",
        "\\n\\t not real escapes \" ' ` <script>",
    ];
    for message in messages {
        let result = classify(&app, message).await;
        assert_well_formed(&result);
        let reply = converse(&app, "unicode", message).await;
        assert_well_formed(&reply["message_result"]);
    }
    let batch = ok(post(&app, "/classify-batch", &json!({ "messages": messages })).await);
    assert_eq!(batch["results"].as_array().unwrap().len(), messages.len());

    // Snippets are cut by character, never inside a multi-byte one.
    let emoji = "🔥".repeat(60);
    let reply = converse(&app, "emoji", &emoji).await;
    assert_eq!(
        reply["evidence"][0]["message"],
        format!("{}...", "🔥".repeat(50))
    );
}
