//! Shop profiles and experiments on a real DynamoDB-compatible server (moto on loopback),
//! through the real router and model: profiles read from the table and cached, and what a
//! request gets when the table stops answering (never a 5xx on a classify route: the last
//! known profile, or the model's defaults, and the answer says so).

#[path = "support/dynamodb.rs"]
mod dynamodb;
#[path = "support/router.rs"]
mod router;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use dynamodb::{
    create_experiment_table, create_profile_table, settings, use_test_credentials, Moto,
};
use router::*;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::service::Tagger;
use tagbeez::store::{DynamoExperiments, DynamoProfiles, MemoryStore};

const DEAL: &str = "any coupon or sale on the linen shirts this week?";

async fn put(app: &Router, uri: &str, body: &Value) -> Reply {
    call(
        app,
        request("PUT", uri, Some("application/json"), body.to_string()),
    )
    .await
}

/// A tagger on moto's profile and experiment tables; `cache` is `PROFILE_CACHE_SECONDS`.
async fn tagger_on(moto: &Moto, cache: &str) -> Tagger {
    use_test_credentials();
    let client = moto.client();
    create_profile_table(&client, "profiles").await;
    create_experiment_table(&client, "experiments").await;
    let endpoint = moto.endpoint();
    let timeout = Duration::from_millis(400);
    let profiles =
        DynamoProfiles::connect(&settings("profiles", &endpoint, timeout, timeout)).await;
    let experiments =
        DynamoExperiments::connect(&settings("experiments", &endpoint, timeout, timeout)).await;
    let vars = [
        ("PROFILE_CACHE_SECONDS", cache),
        ("PROFILE_TIMEOUT_MS", "500"),
        ("STORE_DEADLINE_MS", "1500"),
    ];
    Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(MemoryStore::new()),
        config(&vars),
    )
    .with_profiles(Arc::new(profiles))
    .with_experiments(Arc::new(experiments))
}

async fn classify(app: &Router, shop: &str) -> Value {
    ok(post(
        app,
        "/classify-message",
        &json!({"message": DEAL, "shop_id": shop}),
    )
    .await)
}

#[tokio::test]
async fn profiles_are_read_once_then_cached() {
    let moto = Moto::start();
    let t = tagger_on(&moto, "60").await;
    let app = api::router(t.clone());
    // Written through another instance: this one has never seen it.
    let other = api::router(tagger_on_same(&moto).await);
    ok(put(
        &other,
        "/shops/s1/profile",
        &json!({"thresholds": {"Hot-buyer": 0.8}}),
    )
    .await);
    let first = classify(&app, "s1").await;
    assert_eq!(first["profile"], "stored", "{first:#}");
    assert_eq!(first["threshold_sources"]["Hot-buyer"], "profile");
    let second = classify(&app, "s1").await;
    assert_eq!(second["profile"], "cached", "{second:#}");
    // A shop without a profile is cached too (as "no profile"): still the defaults.
    assert_eq!(classify(&app, "nobody").await["profile"], "default");
    let stored = ok(get(&app, "/shops/s1/profile").await);
    assert_eq!(stored["profile"]["thresholds"]["Hot-buyer"], 0.8);
    assert_eq!(stored["version"], 1);
}

/// A second tagger over the same (already created) tables.
async fn tagger_on_same(moto: &Moto) -> Tagger {
    let endpoint = moto.endpoint();
    let timeout = Duration::from_millis(400);
    let profiles =
        DynamoProfiles::connect(&settings("profiles", &endpoint, timeout, timeout)).await;
    Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(MemoryStore::new()),
        config(&[]),
    )
    .with_profiles(Arc::new(profiles))
}

#[tokio::test]
async fn a_profile_table_that_stops_answering_never_fails_a_classify_call() {
    let mut moto = Moto::start();
    // Read on every request: every request meets the outage.
    let t = tagger_on(&moto, "0").await;
    let app = api::router(t.clone());
    let profile = json!({"thresholds": {"Deal-seeker": 1.0},
        "experiment": {"name": "e1", "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}});
    ok(put(&app, "/shops/known/profile", &profile).await);
    assert_eq!(classify(&app, "known").await["profile"], "stored");

    moto.stop();
    let known = classify(&app, "known").await;
    assert_eq!(
        known["profile"], "cached",
        "the last known profile: {known:#}"
    );
    assert_eq!(known["threshold_sources"]["Deal-seeker"], "profile");
    let why = known["profile_error"].as_str().unwrap();
    assert!(why.contains("last known profile"), "{why}");
    let unknown = classify(&app, "never-seen").await;
    assert_eq!(unknown["profile"], "default", "{unknown:#}");
    assert!(unknown["profile_error"]
        .as_str()
        .unwrap()
        .contains("defaults"));
    assert!(unknown["threshold_sources"]
        .as_object()
        .unwrap()
        .values()
        .all(|s| s == "model"));

    // Operators and outcomes cannot do without the tables: a 503 naming the store.
    let reply = get(&app, "/shops/known/profile").await;
    error_of(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "profile_unavailable",
    );
    assert!(reply.headers.get("retry-after").is_some());
    // Even for a shop whose profile is known: the stored one may name another experiment.
    let outcome = json!({"shop_id": "known", "conversation_id": "c", "outcome": "purchase"});
    error_of(
        &post(&app, "/outcome", &outcome).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "profile_unavailable",
    );
    let unknown_shop =
        json!({"shop_id": "never-seen", "conversation_id": "c", "outcome": "purchase"});
    error_of(
        &post(&app, "/outcome", &unknown_shop).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "profile_unavailable",
    );
    // A conversation in the experiment is still tagged and stored; its exposure is lost, counted.
    let conv = json!({"conversation_id": "c1", "message": DEAL, "shop_id": "known"});
    let reply = ok(post(&app, "/classify-conversation", &conv).await);
    assert!(
        reply["message_result"]["experiment"]["variant"].is_string(),
        "{reply:#}"
    );
}

#[tokio::test]
async fn outcomes_and_exposures_land_in_the_table_and_make_the_report() {
    let moto = Moto::start();
    let t = tagger_on(&moto, "60").await;
    let app = api::router(t);
    let profile = json!({"experiment": {"name": "e2", "variants": [
        {"name": "control", "share": 0.5}, {"name": "low", "share": 0.5, "thresholds": {"Deal-seeker": 0.1}}]}});
    ok(put(&app, "/shops/r/profile", &profile).await);
    for c in 0..8 {
        let body = json!({"conversation_id": format!("c{c}"), "message": DEAL, "shop_id": "r"});
        ok(post(&app, "/classify-conversation", &body).await);
    }
    for c in 0..4 {
        let body = json!({"shop_id": "r", "conversation_id": format!("c{c}"), "outcome": "purchase",
            "value": 10.0, "currency": "EUR"});
        assert_eq!(
            post(&app, "/outcome", &body).await.status,
            StatusCode::CREATED
        );
        assert_eq!(post(&app, "/outcome", &body).await.status, StatusCode::OK);
    }
    let report = ok(get(&app, "/shops/r/experiments/e2").await);
    let rows = report["variants"].as_array().unwrap();
    let n: u64 = rows
        .iter()
        .map(|r| r["conversations"].as_u64().unwrap())
        .sum();
    let bought: u64 = rows.iter().map(|r| r["purchases"].as_u64().unwrap()).sum();
    assert_eq!((n, bought), (8, 4), "{report:#}");
    let revenue: f64 = rows
        .iter()
        .map(|r| {
            r["revenue_per_conversation"]["EUR"]["value"]
                .as_f64()
                .unwrap()
                * r["conversations"].as_f64().unwrap()
        })
        .sum();
    assert!((revenue - 40.0).abs() < 1e-9, "{report:#}");
}
