//! What a shop's profile costs per request (issue 23), measured side by side in one run:
//!
//! - `lookup/cached` against `lookup/cold`: the profile read alone (`Profiles::lookup`), from
//!   this instance's cache against a `GetItem` on a DynamoDB-compatible server (moto on
//!   loopback: a real HTTP round trip and SigV4 signing, without the network's distance);
//! - `request/no-shop`, `request/cached`, `request/cold`: a whole `POST /classify-message`
//!   through the real router and model, without a `shop_id`, with one whose profile is cached,
//!   and with `PROFILE_CACHE_SECONDS=0` (a read on every request).
//!
//! Run with `make bench-profiles` (`cargo bench --profile local --bench profiles`; starts moto,
//! about two minutes). Compare ratios, not absolute times, across machines: moto answers in
//! about a millisecond on loopback, DynamoDB in the same region in a few.

#[path = "../tests/support/dynamodb.rs"]
#[allow(unused_imports)]
mod dynamodb;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::service::{Profiles, Tagger};
use tagbeez::shops::{Profile, StoredProfile};
use tagbeez::store::{DynamoProfiles, MemoryStore, ProfileStore};
use tower::ServiceExt;

const BODY_NO_SHOP: &str =
    r#"{"message": "Is this jacket still on sale, and does it come in medium?"}"#;
const BODY_SHOP: &str = r#"{"message": "Is this jacket still on sale, and does it come in medium?", "shop_id": "bench-shop"}"#;

async fn classify(app: &Router, body: &'static str) {
    let request = Request::post("/classify-message")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    assert!(response.status().is_success());
    black_box(response);
}

fn router(classifier: &Arc<Classifier>, store: Arc<dyn ProfileStore>, cache: &str) -> Router {
    let vars = HashMap::from([("PROFILE_CACHE_SECONDS".to_owned(), cache.to_owned())]);
    let config = Config::from_vars(vars).expect("config");
    let tagger = Tagger::new(Arc::clone(classifier), Arc::new(MemoryStore::new()), config)
        .with_profiles(store);
    tagbeez::api::router(tagger)
}

fn profiles(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    dynamodb::use_test_credentials();
    let moto = dynamodb::Moto::start();
    let endpoint = moto.endpoint();
    let store: Arc<dyn ProfileStore> = rt.block_on(async {
        dynamodb::create_profile_table(&moto.client(), "profiles").await;
        let timeout = Duration::from_secs(2);
        let settings = dynamodb::settings("profiles", &endpoint, timeout, timeout);
        let store = DynamoProfiles::connect(&settings).await;
        let profile = Profile {
            thresholds: [("Deal-seeker".to_owned(), 0.4)].into(),
            ..Profile::default()
        };
        let stored = StoredProfile {
            profile,
            updated_at: 0,
            version: 1,
        };
        store
            .put("bench-shop", &stored)
            .await
            .expect("profile stored");
        Arc::new(store)
    });

    let cached = Profiles::new(
        Arc::clone(&store),
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let cold = Profiles::new(Arc::clone(&store), Duration::ZERO, Duration::from_secs(2));
    let mut group = c.benchmark_group("lookup");
    group.bench_function("cached", |b| {
        b.iter(|| rt.block_on(async { black_box(cached.lookup("bench-shop").await) }))
    });
    group.bench_function("cold", |b| {
        b.iter(|| rt.block_on(async { black_box(cold.lookup("bench-shop").await) }))
    });
    group.finish();

    let classifier = Arc::new(Classifier::load(embedded::model_files()).expect("model"));
    let with_cache = router(&classifier, Arc::clone(&store), "60");
    let without_cache = router(&classifier, Arc::clone(&store), "0");
    let mut group = c.benchmark_group("request");
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("no-shop", |b| {
        b.iter(|| rt.block_on(classify(&with_cache, BODY_NO_SHOP)))
    });
    group.bench_function("cached", |b| {
        b.iter(|| rt.block_on(classify(&with_cache, BODY_SHOP)))
    });
    group.bench_function("cold", |b| {
        b.iter(|| rt.block_on(classify(&without_cache, BODY_SHOP)))
    });
    group.finish();
    drop(moto);
}

criterion_group!(benches, profiles);
criterion_main!(benches);
