//! Shop profiles and threshold experiments through the real router and the real model: what a
//! profile changes in an answer and where each threshold came from, the operators' routes,
//! experiment assignment, outcomes and the report, and the Lambda entry points (direct
//! invocation, SQS, a Function URL refusing the operators' routes).

#[path = "support/events.rs"]
mod events;
#[path = "support/router.rs"]
mod router;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use router::*;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::events::MemorySink;
use tagbeez::service::Tagger;
use tagbeez::store::MemoryStore;

const DEAL: &str = "is there a discount code or any sale on these headphones?";

fn tagger(vars: &[(&str, &str)]) -> Tagger {
    Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(MemoryStore::new()),
        config(vars),
    )
}

async fn put(app: &Router, uri: &str, body: &Value) -> Reply {
    call(
        app,
        request("PUT", uri, Some("application/json"), body.to_string()),
    )
    .await
}

fn tag_names() -> Vec<String> {
    CLASSIFIER.labels().tags.clone()
}

#[tokio::test]
async fn a_profile_sets_thresholds_and_the_answer_says_where_each_came_from() {
    let app = api::router(tagger(&[]));
    let before = ok(post(
        &app,
        "/classify-message",
        &json!({"message": DEAL, "shop_id": "shop-1"}),
    )
    .await);
    assert_eq!(before["profile"], "default", "{before:#}");
    assert!(before["threshold_sources"]
        .as_object()
        .unwrap()
        .values()
        .all(|s| s == "model"));

    let stored = ok(put(
        &app,
        "/shops/shop-1/profile",
        &json!({"thresholds": {"Deal-seeker": 1.0}}),
    )
    .await);
    assert_eq!(stored["shop_id"], "shop-1");
    assert_eq!(stored["version"], 1);
    let after = ok(post(
        &app,
        "/classify-message",
        &json!({"message": DEAL, "shop_id": "shop-1"}),
    )
    .await);
    // The writing instance uses the profile at once, from its cache.
    assert_eq!(after["profile"], "cached");
    assert_eq!(after["shop_id"], "shop-1");
    assert_eq!(num(&after["thresholds"]["Deal-seeker"]), 1.0);
    assert_eq!(after["threshold_sources"]["Deal-seeker"], "profile");
    assert_eq!(after["threshold_sources"]["Hot-buyer"], "model");
    // The same probability, another decision: 1.0 is above any score the model gives.
    assert_eq!(probabilities(&after), probabilities(&before));
    assert!(
        tags(&before["selected"]).contains(&"Deal-seeker".to_owned()),
        "{before:#}"
    );
    assert!(
        !tags(&after["selected"]).contains(&"Deal-seeker".to_owned()),
        "{after:#}"
    );

    // The call's own thresholds win over the profile, and say so.
    let own = ok(post(
        &app,
        "/classify-message",
        &json!({"message": DEAL, "shop_id": "shop-1",
        "thresholds": {"Deal-seeker": 0.2}}),
    )
    .await);
    assert_eq!(own["threshold_sources"]["Deal-seeker"], "request");
    assert!(tags(&own["selected"]).contains(&"Deal-seeker".to_owned()));
    // Another shop, and a call without a shop, are untouched.
    let other = ok(post(
        &app,
        "/classify-message",
        &json!({"message": DEAL, "shop_id": "shop-2"}),
    )
    .await);
    assert_eq!(other["threshold_sources"]["Deal-seeker"], "model");
    let none = ok(post(&app, "/classify-message", &json!({"message": DEAL})).await);
    assert_eq!(none["profile"], "default");
    assert!(none.get("shop_id").is_none());

    let deleted = ok(delete(&app, "/shops/shop-1/profile").await);
    assert_eq!(deleted, json!({"shop_id": "shop-1", "deleted": true}));
    let gone = ok(post(
        &app,
        "/classify-message",
        &json!({"message": DEAL, "shop_id": "shop-1"}),
    )
    .await);
    assert_eq!(gone["threshold_sources"]["Deal-seeker"], "model");
    error_of(
        &get(&app, "/shops/shop-1/profile").await,
        StatusCode::NOT_FOUND,
        "profile_not_found",
    );
    assert_eq!(
        ok(delete(&app, "/shops/shop-1/profile").await)["deleted"],
        false
    );
}

#[tokio::test]
async fn a_disabled_tag_is_never_selected_nor_the_conversation_tag() {
    let app = api::router(tagger(&[]));
    let enabled: Vec<String> = tag_names()
        .into_iter()
        .filter(|t| t != "Hot-buyer")
        .collect();
    ok(put(
        &app,
        "/shops/calm/profile",
        &json!({"enabled_tags": enabled, "window_size": 2}),
    )
    .await);
    for i in 0..3 {
        let body = json!({"conversation_id": "c-calm", "message": HOT, "shop_id": "calm",
            "message_id": format!("m{i}")});
        let reply = ok(post(&app, "/classify-conversation", &body).await);
        let result = &reply["message_result"];
        assert_eq!(result["disabled_tags"], json!(["Hot-buyer"]), "{reply:#}");
        assert!(!tags(&result["selected"]).contains(&"Hot-buyer".to_owned()));
        // The model still scores it: the shop just does not act on it.
        assert!(tags(&result["all"]).contains(&"Hot-buyer".to_owned()));
        assert_ne!(reply["conversation_tag"]["tag"], "Hot-buyer", "{reply:#}");
        assert!(
            reply["window_size"].as_u64().unwrap() <= 2,
            "the profile's window size"
        );
    }
    // Without the shop the same message is a hot buyer.
    let plain = ok(post(&app, "/classify-message", &json!({"message": HOT})).await);
    assert!(
        tags(&plain["selected"]).contains(&"Hot-buyer".to_owned()),
        "{plain:#}"
    );
}

#[tokio::test]
async fn bad_profiles_and_shop_ids_are_400s_that_name_the_problem() {
    let app = api::router(tagger(&[]));
    let cases = [
        (
            json!({"thresholds": {"Bargain-hunter": 0.5}}),
            "unknown_tag",
        ),
        (
            json!({"thresholds": {"Hot-buyer": 1.5}}),
            "invalid_threshold",
        ),
        (json!({"enabled_tags": ["hot-buyer"]}), "unknown_tag"),
        (json!({"window_size": 51}), "invalid_window_size"),
        (
            json!({"experiment": {"name": "e", "variants": [{"name": "a", "share": 1.0}]}}),
            "invalid_experiment",
        ),
        (
            json!({"experiment": {"name": "e", "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.6}]}}),
            "invalid_experiment",
        ),
        (
            json!({"thresholds": {"Hot-buyer": 0.5}, "colour": "red"}),
            "invalid_request",
        ),
    ];
    for (body, code) in cases {
        error_of(
            &put(&app, "/shops/s/profile", &body).await,
            StatusCode::BAD_REQUEST,
            code,
        );
    }
    error_of(
        &put(&app, "/shops/a%20b/profile", &json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_shop_id",
    );
    error_of(
        &get(&app, &format!("/shops/{}/profile", "x".repeat(129))).await,
        StatusCode::BAD_REQUEST,
        "invalid_shop_id",
    );
    let bad = post(
        &app,
        "/classify-message",
        &json!({"message": DEAL, "shop_id": "no spaces"}),
    )
    .await;
    error_of(&bad, StatusCode::BAD_REQUEST, "invalid_shop_id");
    // Nothing was stored by the refusals.
    error_of(
        &get(&app, "/shops/s/profile").await,
        StatusCode::NOT_FOUND,
        "profile_not_found",
    );
}

fn experiment_profile() -> Value {
    json!({"experiment": {"name": "deal-2026", "variants": [
        {"name": "control", "share": 0.5},
        {"name": "strict", "share": 0.5, "thresholds": {"Deal-seeker": 0.95}}
    ]}})
}

#[tokio::test]
async fn conversations_keep_their_variant_and_outcomes_fill_the_report() {
    let app = api::router(tagger(&[]));
    ok(put(&app, "/shops/exp/profile", &experiment_profile()).await);
    let mut variants = std::collections::BTreeMap::new();
    for c in 0..24 {
        let id = format!("conv-{c}");
        let mut seen = Vec::new();
        for m in 0..2 {
            let body = json!({"conversation_id": id, "message": DEAL, "shop_id": "exp",
                "message_id": format!("m{m}")});
            let reply = ok(post(&app, "/classify-conversation", &body).await);
            let result = &reply["message_result"];
            assert_eq!(result["experiment"]["name"], "deal-2026");
            let variant = result["experiment"]["variant"].as_str().unwrap().to_owned();
            let source = &result["threshold_sources"]["Deal-seeker"];
            assert_eq!(
                source,
                if variant == "strict" {
                    "variant"
                } else {
                    "model"
                }
            );
            seen.push(variant);
        }
        assert_eq!(seen[0], seen[1], "a conversation keeps its variant");
        variants.insert(id, seen[0].clone());
    }
    let strict = variants.values().filter(|v| *v == "strict").count();
    assert!(
        (3..=21).contains(&strict),
        "both variants get conversations: {variants:?}"
    );

    // Purchases in the first 10 conversations; the second report of the same outcome is idempotent.
    for c in 0..10 {
        let body = json!({"shop_id": "exp", "conversation_id": format!("conv-{c}"),
            "outcome": "purchase", "value": 40.0, "currency": "EUR"});
        let first = post(&app, "/outcome", &body).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
        assert_eq!(first.json["recorded"], true);
        assert_eq!(
            first.json["experiment"]["variant"],
            variants[&format!("conv-{c}")].as_str()
        );
        let again = post(&app, "/outcome", &body).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json["recorded"], false);
    }
    let report = ok(get(&app, "/shops/exp/experiments/deal-2026").await);
    assert_eq!(report["control"], "control", "{report:#}");
    let rows = report["variants"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let total: u64 = rows
        .iter()
        .map(|r| r["conversations"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 24);
    let purchases: u64 = rows.iter().map(|r| r["purchases"].as_u64().unwrap()).sum();
    assert_eq!(purchases, 10, "each outcome once");
    for row in rows {
        let name = row["name"].as_str().unwrap();
        let n = variants.values().filter(|v| *v == name).count() as u64;
        assert_eq!(row["conversations"], n, "{row:#}");
        let bought = (0..10)
            .filter(|c| variants[&format!("conv-{c}")] == name)
            .count() as f64;
        let rate = row["conversion_rate"]["value"].as_f64().unwrap();
        assert!((rate - bought / n as f64).abs() < 1e-9, "{row:#}");
        // Two messages per conversation.
        let per = row["tags_per_conversation"]["value"].as_f64().unwrap();
        assert!(per >= 0.0 && per <= 2.0 * tag_names().len() as f64);
    }
    error_of(
        &get(&app, "/shops/exp/experiments/other").await,
        StatusCode::NOT_FOUND,
        "experiment_not_found",
    );
    error_of(
        &get(&app, "/shops/nobody/experiments/deal-2026").await,
        StatusCode::NOT_FOUND,
        "experiment_not_found",
    );
}

#[tokio::test]
async fn outcomes_are_checked() {
    let app = api::router(tagger(&[]));
    let base = json!({"shop_id": "s", "conversation_id": "c", "outcome": "purchase"});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for (body, code) in [
        (with(json!({"value": 10.0})), "invalid_currency"),
        (
            with(json!({"value": -1.0, "currency": "EUR"})),
            "invalid_value",
        ),
        (
            with(json!({"value": 1.0, "currency": "eur"})),
            "invalid_currency",
        ),
        (with(json!({"outcome": "refund"})), "invalid_request"),
        (with(json!({"shop_id": "a b"})), "invalid_shop_id"),
        (with(json!({"outcome_id": ""})), "invalid_outcome_id"),
    ] {
        error_of(
            &post(&app, "/outcome", &body).await,
            StatusCode::BAD_REQUEST,
            code,
        );
    }
    // Without an experiment an outcome is still recorded; distinct ids count twice.
    for id in ["order-1", "order-2"] {
        let r = post(
            &app,
            "/outcome",
            &with(json!({"outcome_id": id, "value": 5.0, "currency": "EUR"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        assert!(r.json.get("experiment").is_none());
    }
}

#[tokio::test]
async fn a_profile_names_its_own_event_tags() {
    let sink = Arc::new(MemorySink::default());
    let t = tagger(&[]).with_events(sink.clone(), None).unwrap();
    let app = api::router(t);
    ok(put(
        &app,
        "/shops/deals/profile",
        &json!({"event_tags": ["Deal-seeker"]}),
    )
    .await);
    let body = json!({"conversation_id": "c1", "message": DEAL, "shop_id": "deals"});
    let reply = ok(post(&app, "/classify-conversation", &body).await);
    assert!(tags(&reply["message_result"]["selected"]).contains(&"Deal-seeker".to_owned()));
    let tagged: Vec<String> = sink
        .events()
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter_map(|v| {
            v["detail"]["tag"]
                .as_str()
                .or(v["tag"].as_str())
                .map(str::to_owned)
        })
        .collect();
    assert!(tagged.contains(&"Deal-seeker".to_owned()), "{tagged:?}");
    // Events name the shop, and their ids are the shop's own.
    for event in sink.events() {
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["detail"]["shop_id"], "deals", "{v}");
        assert!(event.event_id().starts_with("deals#c1/"), "{v}");
    }
}

#[tokio::test]
async fn direct_invocations_and_queued_records_carry_the_shop() {
    let t = tagger(&[]);
    let app = api::router(t.clone());
    ok(put(
        &app,
        "/shops/q/profile",
        &json!({"thresholds": {"Deal-seeker": 1.0}}),
    )
    .await);
    let direct = invoke(
        &t,
        json!({"operation": "classify-message", "message": DEAL, "shop_id": "q"}),
    )
    .await;
    assert_eq!(
        direct["threshold_sources"]["Deal-seeker"], "profile",
        "{direct:#}"
    );
    let conv = invoke(
        &t,
        json!({"operation": "classify-conversation", "conversation_id": "d1",
        "message": DEAL, "shop_id": "q"}),
    )
    .await;
    assert_eq!(conv["message_result"]["shop_id"], "q", "{conv:#}");
    let outcome = invoke(
        &t,
        json!({"operation": "outcome", "shop_id": "q", "conversation_id": "d1",
        "outcome": "handoff"}),
    )
    .await;
    assert_eq!(outcome["recorded"], true, "{outcome:#}");
    let bad = invoke(
        &t,
        json!({"operation": "classify-message", "message": DEAL, "shop_id": "?"}),
    )
    .await;
    events::assert_function_error(&bad, "invalid_shop_id");

    let record = json!({"conversation_id": "sq1", "message": DEAL, "shop_id": "q"}).to_string();
    let sqs = events::sqs_event(&[("r1".into(), None, record)]);
    let answer = invoke(&t, sqs).await;
    assert!(
        events::batch_item_failures(&answer).is_empty(),
        "{answer:#}"
    );
    let window = ok(get(&app, "/conversation/sq1?shop_id=q").await);
    let top = tags(&window["window"][0]["top"]);
    assert!(
        !top.contains(&"Deal-seeker".to_owned()),
        "the shop's 1.0 applied: {window:#}"
    );
}

#[tokio::test]
async fn a_function_url_cannot_reach_the_operators_routes() {
    let t = tagger(&[]);
    let body = json!({"thresholds": {"Hot-buyer": 0.9}}).to_string();
    let via_url = events::v2_event(
        events::function_url_example(),
        "PUT",
        "/shops/u/profile",
        Some(&body),
    );
    let reply = invoke(&t, via_url).await;
    let refused = events::http_response(&reply, events::Origin::HttpV2, 403);
    assert_eq!(
        refused["error"]["code"], "admin_route_refused",
        "{refused:#}"
    );
    // Classify routes still work through it, and the operators' routes through API Gateway.
    let classify = json!({"message": DEAL}).to_string();
    let url = events::v2_event(
        events::function_url_example(),
        "POST",
        "/classify-message",
        Some(&classify),
    );
    events::http_response(&invoke(&t, url).await, events::Origin::HttpV2, 200);
    let gateway = events::v2_event(
        events::http_v2_example(),
        "PUT",
        "/shops/u/profile",
        Some(&body),
    );
    let stored = events::http_response(&invoke(&t, gateway).await, events::Origin::HttpV2, 200);
    assert_eq!(stored["profile"]["thresholds"]["Hot-buyer"], 0.9);
}

#[tokio::test]
async fn experiment_metrics_carry_the_variant() {
    use tagbeez::telemetry::{install, render_prometheus, MetricsMode};
    install(MetricsMode::Prometheus, false, "tagbeez-test", "test").expect("the only recorder");
    let app = api::router(tagger(&[]));
    ok(put(&app, "/shops/m/profile", &experiment_profile()).await);
    let body = json!({"conversation_id": "metrics-1", "message": DEAL, "shop_id": "m"});
    let reply = ok(post(&app, "/classify-conversation", &body).await);
    let variant = reply["message_result"]["experiment"]["variant"]
        .as_str()
        .unwrap()
        .to_owned();
    let outcome = json!({"shop_id": "m", "conversation_id": "metrics-1", "outcome": "purchase"});
    assert_eq!(
        post(&app, "/outcome", &outcome).await.status,
        StatusCode::CREATED
    );
    let page = render_prometheus().expect("the Prometheus page");
    let labels = format!(r#"experiment="deal-2026",variant="{variant}""#);
    for metric in [
        "tagbeez_experiment_messages",
        "tagbeez_experiment_tags_selected",
    ] {
        assert!(
            page.lines()
                .any(|l| l.starts_with(metric) && l.contains(&labels)),
            "{metric} with {labels}:\n{page}"
        );
    }
    assert!(
        page.lines().any(|l| l.starts_with("tagbeez_outcomes")
            && l.contains(&labels)
            && l.contains(r#"outcome="purchase""#)),
        "{page}"
    );
    assert!(
        page.contains(r#"tagbeez_profile_reads{how="cached"}"#),
        "{page}"
    );
}

#[tokio::test]
async fn each_shop_has_its_own_conversations() {
    let t = tagger(&[]);
    let app = api::router(t.clone());
    for (shop, message) in [("shop-a", DEAL), ("shop-b", HOT)] {
        let body = json!({"conversation_id": "42", "message": message, "shop_id": shop});
        let reply = ok(post(&app, "/classify-conversation", &body).await);
        assert_eq!(
            reply["window_size"], 1,
            "a fresh window per shop: {reply:#}"
        );
    }
    let a = ok(get(&app, "/conversation/42?shop_id=shop-a").await);
    let b = ok(get(&app, "/conversation/42?shop_id=shop-b").await);
    assert_eq!(a["window"].as_array().unwrap().len(), 1);
    assert_ne!(a["window"][0]["snippet"], b["window"][0]["snippet"]);
    // Without the shop, conversation 42 is a third one, which nobody wrote.
    error_of(
        &get(&app, "/conversation/42").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
    error_of(
        &get(&app, "/conversation/42?shop_id=a%20b").await,
        StatusCode::BAD_REQUEST,
        "invalid_shop_id",
    );
    let direct = invoke(
        &t,
        json!({"operation": "get-conversation", "conversation_id": "42", "shop_id": "shop-b"}),
    )
    .await;
    assert_eq!(
        direct["window"][0]["snippet"], b["window"][0]["snippet"],
        "{direct:#}"
    );
    let cleared = ok(delete(&app, "/conversation/42?shop_id=shop-a").await);
    assert_eq!(cleared["cleared"], true);
    error_of(
        &get(&app, "/conversation/42?shop_id=shop-a").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
    ok(get(&app, "/conversation/42?shop_id=shop-b").await);
}

#[tokio::test]
async fn a_running_experiment_is_not_changed_under_its_name() {
    let app = api::router(tagger(&[]));
    ok(put(&app, "/shops/x/profile", &experiment_profile()).await);
    let mut changed = experiment_profile();
    changed["experiment"]["variants"][0]["share"] = json!(0.9);
    changed["experiment"]["variants"][1]["share"] = json!(0.1);
    let refused = put(&app, "/shops/x/profile", &changed).await;
    let why = error_of(&refused, StatusCode::BAD_REQUEST, "experiment_changed");
    assert!(why.contains("new name"), "{why}");
    // Under a new name it is a new experiment; the same one again is no change.
    changed["experiment"]["name"] = json!("deal-2026-b");
    assert_eq!(
        ok(put(&app, "/shops/x/profile", &changed).await)["version"],
        2
    );
    assert_eq!(
        ok(put(&app, "/shops/x/profile", &changed).await)["version"],
        3
    );
}

#[tokio::test]
async fn the_profile_schema_names_the_models_tags() {
    let doc = ok(get(&api::router(tagger(&[])), "/openapi.json").await);
    let profile = &doc["components"]["schemas"]["Profile"]["properties"];
    let thresholds = json!({"$ref": "#/components/schemas/Thresholds"});
    assert_eq!(profile["thresholds"], thresholds);
    assert_eq!(
        doc["components"]["schemas"]["Variant"]["properties"]["thresholds"],
        thresholds
    );
    for list in ["enabled_tags", "event_tags"] {
        assert_eq!(
            profile[list]["items"],
            json!({"$ref": "#/components/schemas/Tag"}),
            "{list}"
        );
    }
    assert_eq!(
        profile["enabled_tags"]["minItems"], 1,
        "no tag enabled is refused"
    );
    assert!(
        profile["event_tags"]["minItems"].is_null(),
        "no event tag is allowed"
    );
    let tag_enum = &doc["components"]["schemas"]["Tag"]["enum"];
    assert_eq!(tag_enum, &json!(tag_names()));
}

#[tokio::test]
async fn feedback_keeps_its_shop() {
    let t = tagger(&[]);
    let app = api::router(t.clone());
    let body = json!({"message": DEAL, "tags": ["Deal-seeker"], "shop_id": "shop-f"});
    let reply = post(&app, "/feedback", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let bad = json!({"message": DEAL, "tags": [], "shop_id": "no/slash"});
    error_of(
        &post(&app, "/feedback", &bad).await,
        StatusCode::BAD_REQUEST,
        "invalid_shop_id",
    );
    let mut out = Vec::new();
    tagbeez::cli::export_to(t.feedback_store(), &mut out)
        .await
        .unwrap();
    let line: Value = serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["shop_id"], "shop-f", "{line}");
}
