//! `"explain": true` (occlusion) and per-call `thresholds`, through the router with the real
//! embedded model, on every classify route.

#[path = "support/router.rs"]
mod router;

use axum::http::StatusCode;
use serde_json::{json, Value};

use router::*;

/// The explanation's words, as (word, start, end, weight).
fn words_of(explanation: &Value, tag: &str) -> Vec<(String, usize, usize, f32)> {
    let entry = explanation["tags"]
        .as_array()
        .expect("explanation.tags")
        .iter()
        .find(|t| t["tag"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {explanation:#}"));
    entry["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["word"].as_str().unwrap().to_owned(),
                w["start"].as_u64().unwrap() as usize,
                w["end"].as_u64().unwrap() as usize,
                num(&w["weight"]),
            )
        })
        .collect()
}

fn probability_of(result: &Value, tag: &str) -> f32 {
    let all = result["all"].as_array().unwrap();
    num(&all.iter().find(|s| s["tag"] == tag).unwrap()["confidence"])
}

#[tokio::test]
async fn an_explanation_names_the_words_whose_removal_lowers_the_tag_most() {
    let app = app();
    // Leading spaces and a non-ASCII character: offsets count characters of the message as sent.
    let message = "  Ça alors, I want to buy this right now, send me the checkout link";
    let result = ok(post(
        &app,
        "/classify-message",
        &json!({"message": message, "explain": true}),
    )
    .await);
    let explanation = &result["explanation"];
    assert_eq!(explanation["method"], "occlusion");
    let total = message.split_whitespace().count();
    assert_eq!(explanation["words"], json!(total));
    assert_eq!(explanation["explained_words"], json!(total));
    assert_eq!(explanation["truncated"], json!(false));
    // One entry per selected tag, in `selected` order.
    let explained: Vec<String> = explanation["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(explained, tags(&result["selected"]));
    assert!(explained.contains(&"Hot-buyer".to_owned()), "{result:#}");

    let words = words_of(explanation, "Hot-buyer");
    assert!(!words.is_empty() && words.len() <= 3, "{words:?}");
    let chars: Vec<char> = message.chars().collect();
    let p = probability_of(&result, "Hot-buyer");
    for window in words.windows(2) {
        assert!(
            window[0].3 >= window[1].3,
            "largest weight first: {words:?}"
        );
    }
    for (word, start, end, weight) in &words {
        assert_eq!(&chars[*start..*end].iter().collect::<String>(), word);
        assert!(*weight > 0.0);
        // The weight is the drop in probability when the word is removed: classify the
        // message without it and compare (the variant ran padded in a batch: within 1e-3).
        let without: String = format!(
            "{}{}",
            chars[..*start].iter().collect::<String>(),
            chars[*end..].iter().collect::<String>()
        );
        let alone = ok(post(&app, "/classify-message", &json!({ "message": without })).await);
        let drop = p - probability_of(&alone, "Hot-buyer");
        assert!((drop - weight).abs() < 1e-3, "{word}: {drop} vs {weight}");
    }
    // Without `explain` there is no explanation field at all.
    let plain = ok(post(&app, "/classify-message", &json!({ "message": message })).await);
    assert!(plain.get("explanation").is_none(), "{plain:#}");
    assert_eq!(
        plain["all"], result["all"],
        "explaining does not change the result"
    );
}

#[tokio::test]
async fn long_messages_are_explained_by_their_first_words_and_say_so() {
    let app = app_with(&[("EXPLAIN_MAX_WORDS", "4")]);
    let message = "checkout link please, I want to buy this right now";
    let result = ok(post(
        &app,
        "/classify-message",
        &json!({"message": message, "explain": true}),
    )
    .await);
    let e = &result["explanation"];
    assert_eq!(
        (e["words"].clone(), e["explained_words"].clone()),
        (json!(10), json!(4))
    );
    assert_eq!(e["truncated"], json!(true));
    for entry in e["tags"].as_array().unwrap() {
        for w in entry["words"].as_array().unwrap() {
            // The first four words end at character 24 ("checkout link please, I").
            assert!(w["end"].as_u64().unwrap() <= 23, "{w}");
        }
    }
}

#[tokio::test]
async fn batches_and_conversations_explain_too() {
    let app = app();
    let many: Vec<&str> = std::iter::repeat_n(HOT, 10).collect();
    let batch = ok(post(
        &app,
        "/classify-batch",
        &json!({"messages": many, "explain": true}),
    )
    .await);
    let results = batch["results"].as_array().unwrap();
    // Only the first eight: each explanation is one more padded batch.
    assert_eq!(batch["explained"], json!(8));
    assert!(results[..8].iter().all(|r| r["explanation"].is_object()));
    assert!(results[8..].iter().all(|r| r.get("explanation").is_none()));
    assert_eq!(results[0]["explanation"], results[7]["explanation"]);
    let plain = ok(post(&app, "/classify-batch", &json!({ "messages": [HOT] })).await);
    assert!(plain.get("explained").is_none(), "{plain}");

    let reply = ok(post(
        &app,
        "/classify-conversation",
        &json!({"conversation_id": "x", "message": HOT, "explain": true}),
    )
    .await);
    assert!(!words_of(&reply["message_result"]["explanation"], "Hot-buyer").is_empty());
}

#[tokio::test]
async fn a_callers_thresholds_decide_the_selection_and_are_echoed() {
    let app = app();
    let model = ok(post(&app, "/classify-message", &json!({ "message": WISHLIST })).await);
    let p_hot = probability_of(&model, "Hot-buyer");
    // Every tag at 0: every tag is selected.
    let zeros: serde_json::Map<String, Value> = CLASSIFIER
        .labels()
        .tags
        .iter()
        .map(|t| (t.clone(), json!(0.0)))
        .collect();
    let all = ok(post(
        &app,
        "/classify-message",
        &json!({"message": WISHLIST, "thresholds": zeros}),
    )
    .await);
    assert_eq!(all["selected"].as_array().unwrap().len(), 5);
    assert_eq!(all["threshold"], json!(0.0));
    // One tag just under its probability: selected; the others keep the model's thresholds.
    let under = (p_hot - 0.001).max(0.0);
    let one = ok(post(
        &app,
        "/classify-message",
        &json!({"message": WISHLIST, "thresholds": {"Hot-buyer": under}}),
    )
    .await);
    assert!(
        tags(&one["selected"]).contains(&"Hot-buyer".to_owned()),
        "{one:#}"
    );
    assert!((num(&one["thresholds"]["Hot-buyer"]) - under).abs() < 1e-6);
    assert_eq!(
        num(&one["thresholds"]["Deal-seeker"]),
        threshold_of("Deal-seeker")
    );
    // A threshold of 1 keeps a tag out unless its probability is exactly 1.
    let hot = ok(post(&app, "/classify-message", &json!({ "message": HOT })).await);
    let strict = ok(post(
        &app,
        "/classify-message",
        &json!({"message": HOT, "thresholds": {"Hot-buyer": 1}}),
    )
    .await);
    let still = probability_of(&hot, "Hot-buyer") >= 1.0;
    assert_eq!(
        tags(&strict["selected"]).contains(&"Hot-buyer".to_owned()),
        still
    );

    // Conversations: the call's thresholds decide the conversation tag of that step.
    let step = ok(post(
        &app,
        "/classify-conversation",
        &json!({"conversation_id": "t", "message": WISHLIST, "thresholds": zeros}),
    )
    .await);
    assert!(step["conversation_tag"].is_object(), "{step:#}");
    assert_eq!(step["threshold"], json!(0.0));
    let batch = ok(post(
        &app,
        "/classify-batch",
        &json!({"messages": [WISHLIST, HOT], "thresholds": zeros}),
    )
    .await);
    for r in batch["results"].as_array().unwrap() {
        assert_eq!(r["selected"].as_array().unwrap().len(), 5);
    }
}

#[tokio::test]
async fn bad_thresholds_are_400s_that_say_what_was_wrong() {
    let app = app();
    for route in [
        "/classify-message",
        "/classify-batch",
        "/classify-conversation",
    ] {
        let body = |thresholds: Value| {
            let mut b = json!({ "conversation_id": "b", "thresholds": thresholds });
            if route == "/classify-batch" {
                b["messages"] = json!([HOT]);
                b.as_object_mut().unwrap().remove("conversation_id");
            } else {
                b["message"] = json!(HOT);
                if route == "/classify-message" {
                    b.as_object_mut().unwrap().remove("conversation_id");
                }
            }
            b
        };
        let unknown = post(&app, route, &body(json!({"Bargain-hunter": 0.5}))).await;
        let message = error_of(&unknown, StatusCode::BAD_REQUEST, "unknown_tag");
        assert!(message.contains("Bargain-hunter"), "{message}");
        for tag in &CLASSIFIER.labels().tags {
            assert!(
                message.contains(tag.as_str()),
                "{route}: lists {tag}: {message}"
            );
        }
        for bad in [json!(1.5), json!(-0.1), json!(1e300)] {
            let reply = post(&app, route, &body(json!({ "Hot-buyer": bad }))).await;
            let message = error_of(&reply, StatusCode::BAD_REQUEST, "invalid_threshold");
            assert!(message.contains("[0, 1]"), "{message}");
        }
        let typed = post(&app, route, &body(json!({"Hot-buyer": "0.5"}))).await;
        error_of(&typed, StatusCode::BAD_REQUEST, "invalid_request");
        let not_bool = post(
            &app,
            route,
            &json!({"message": HOT, "messages": [HOT], "explain": "yes"}),
        )
        .await;
        assert_eq!(not_bool.status, StatusCode::BAD_REQUEST);
    }
    // Refused before any write: the conversation was never started.
    error_of(
        &get(&app, "/conversation/b").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
}
