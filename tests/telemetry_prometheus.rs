//! Metrics as the local server serves them: the Prometheus page on `GET /metrics`, after real
//! requests through the router with the real model, and the `Server-Timing` header.
//! (One recorder per process: the EMF sink has its own test binary, `telemetry_emf.rs`.)

#[path = "support/router.rs"]
mod router;

use axum::http::StatusCode;
use serde_json::json;
use tagbeez::telemetry::{self, names, MetricsMode};

use router::*;

fn install() -> String {
    let version = CLASSIFIER.labels().file.model_version.clone();
    telemetry::install(MetricsMode::Auto, false, "tagbeez", &version).expect("install");
    version
}

/// The value of the sample line `name{labels}` (labels in the exporter's order), summed over
/// every line that has all of `labels`.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `name;dur=ms` entries of a `Server-Timing` value.
fn timing(value: &str) -> Vec<(String, f64)> {
    value
        .split(',')
        .map(|part| {
            let (name, dur) = part.trim().split_once(";dur=").expect("name;dur=ms");
            (name.to_owned(), dur.parse().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn the_metrics_page_counts_what_the_router_did() {
    let version = install();
    let app = app_with(&[("WINDOW_SIZE", "2")]);
    for _ in 0..3 {
        ok(post(&app, "/classify-message", &json!({ "message": HOT })).await);
    }
    ok(post(
        &app,
        "/classify-batch",
        &json!({ "messages": [HOT, WISHLIST, FIRST_TIME] }),
    )
    .await);
    let refused = post(&app, "/classify-message", &json!({ "message": " " })).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    // A conversation that switches: browsing, then buying twice.
    for m in [WISHLIST, HOT, HOT] {
        converse(&app, "switchy", m).await;
    }

    let reply = app_get_text(&app, "/metrics").await;
    assert_eq!(reply.0, StatusCode::OK);
    assert!(reply.1.starts_with("text/plain"), "{}", reply.1);
    let page = reply.2;
    let route = |r: &'static str| [("route", r), ("model_version", version.as_str())];
    let ok_message = [("route", "/classify-message"), ("status", "200")];
    assert!(sample(&page, names::REQUESTS, &ok_message) >= 3.0, "{page}");
    let bad = [("route", "/classify-message"), ("status", "400")];
    assert!(sample(&page, names::REQUESTS, &bad) >= 1.0, "{page}");
    assert!(
        page.contains(&format!("model_version=\"{version}\"")),
        "the model version is a label"
    );
    let latency = format!("{}_count", names::REQUEST_LATENCY_MS);
    assert!(
        sample(&page, &latency, &route("/classify-message")) >= 4.0,
        "{page}"
    );
    let inference = format!("{}_count", names::INFERENCE_MS);
    assert!(
        sample(&page, &inference, &route("/classify-batch")) >= 1.0,
        "{page}"
    );
    let tokenize = format!("{}_count", names::TOKENIZE_MS);
    assert!(
        sample(&page, &tokenize, &route("/classify-message")) >= 3.0,
        "{page}"
    );
    let store = format!("{}_count", names::STORE_MS);
    assert!(
        sample(&page, &store, &route("/classify-conversation")) >= 3.0,
        "{page}"
    );
    // Batch sizes: the batch of three lands in the bucket le=4, not in le=2.
    let bucket = format!("{}_bucket", names::BATCH_SIZE);
    let le4 = sample(&page, &bucket, &[("le", "4")]);
    let le2 = sample(&page, &bucket, &[("le", "2")]);
    assert!(le4 - le2 >= 1.0, "{page}");
    assert!(
        sample(&page, names::TAGS_SELECTED, &[("tag", "Hot-buyer")]) >= 5.0,
        "{page}"
    );
    assert!(
        sample(&page, names::CONVERSATION_SWITCHES, &[]) >= 1.0,
        "{page}"
    );
    assert!(
        page.contains(&format!("# TYPE {} counter", names::REQUESTS)),
        "{page}"
    );
}

#[tokio::test]
async fn every_response_says_where_its_time_went() {
    install();
    let app = app();
    let reply = post(&app, "/classify-message", &json!({ "message": HOT })).await;
    let value = reply
        .headers
        .get("server-timing")
        .expect("Server-Timing")
        .to_str()
        .unwrap();
    let split = timing(value);
    let names: Vec<&str> = split.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["tokenize", "inference", "store", "total"]);
    let get = |n: &str| split.iter().find(|(m, _)| m == n).unwrap().1;
    assert!(get("inference") > 0.0, "{value}");
    assert_eq!(
        get("store"),
        0.0,
        "a single message touches no store: {value}"
    );
    assert!(
        get("total") >= get("tokenize") + get("inference"),
        "{value}"
    );
    let conversation = converse_reply(&app).await;
    let split = timing(
        conversation
            .headers
            .get("server-timing")
            .unwrap()
            .to_str()
            .unwrap(),
    );
    assert!(split.iter().find(|(n, _)| n == "store").unwrap().1 >= 0.0);
    // Errors carry it too.
    let refused = post(&app, "/classify-message", &json!({ "message": "" })).await;
    assert!(refused.headers.get("server-timing").is_some());
}

async fn converse_reply(app: &axum::Router) -> Reply {
    post(
        app,
        "/classify-conversation",
        &json!({"conversation_id": "t", "message": HOT}),
    )
    .await
}

/// GET a text route: status, content type, body.
async fn app_get_text(app: &axum::Router, uri: &str) -> (StatusCode, String, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app
        .clone()
        .oneshot(request("GET", uri, None, axum::body::Body::empty()))
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}
