//! Metrics and logs as Lambda writes them: CloudWatch Embedded Metric Format lines after an
//! invocation (AWS's own example API Gateway event, and a direct invocation, through the real
//! dispatch and model), and the invocation's request id and X-Ray trace id on every log line.

#[path = "support/events.rs"]
mod events;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::lambda::dispatch;
use tagbeez::service::Tagger;
use tagbeez::store::MemoryStore;
use tagbeez::telemetry::{self, names, MetricsMode};

use events::*;

static CLASSIFIER: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    Arc::new(Classifier::load(embedded::model_files()).expect("the embedded model loads"))
});

const NAMESPACE: &str = "tagbeez-test";
const BUY: &str = "I want to buy this now, send me the checkout link";

fn context(request_id: &str) -> Context {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    context.xray_trace_id = Some(format!("Root=1-5759e988-{request_id}"));
    context
}

/// A writer the log subscriber and the test share.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// The EMF documents: (dimension names, metric names, the document).
fn documents(lines: &[Value]) -> Vec<(Vec<String>, Vec<String>, Value)> {
    lines
        .iter()
        .map(|doc| {
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], NAMESPACE, "{doc}");
            assert!(doc["_aws"]["Timestamp"].as_u64().is_some(), "{doc}");
            let dims = directive["Dimensions"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect();
            let metrics = directive["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["Name"].as_str().unwrap().to_owned())
                .collect();
            (dims, metrics, doc.clone())
        })
        .collect()
}

#[tokio::test]
async fn an_invocation_leaves_emf_lines_and_logs_with_its_ids() {
    let version = CLASSIFIER.labels().file.model_version.clone();
    telemetry::install(MetricsMode::Auto, true, NAMESPACE, &version).unwrap();
    let logs = Buffer::default();
    let writer = logs.clone();
    let _logging =
        tracing::subscriber::set_default(telemetry::logging::subscriber("info", move || {
            writer.clone()
        }));
    let config = Config::from_vars(HashMap::new()).unwrap();
    let tagger = Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(MemoryStore::new()),
        config,
    );
    let router = api::router(tagger.clone());

    // An HTTP API event (AWS's example), then a direct invocation.
    let body = json!({ "message": BUY }).to_string();
    let event = v2_event(http_v2_example(), "POST", "/classify-message", Some(&body));
    let answer = dispatch(&router, &tagger, LambdaEvent::new(event, context("req-1")))
        .await
        .expect("an HTTP answer");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let timing = answer["headers"]["server-timing"]
        .as_str()
        .expect("Server-Timing through API Gateway");
    assert!(timing.contains("inference;dur="), "{timing}");
    let mut emf = Vec::new();
    telemetry::flush_emf(&mut emf, "req-1", Some("Root=1-5759e988-req-1")).unwrap();
    let lines: Vec<Value> = String::from_utf8(emf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    let docs = documents(&lines);

    // The detailed series: dimensions route, status, model_version.
    let detailed = docs
        .iter()
        .find(|(dims, metrics, _)| {
            dims == &["route", "status", "model_version"]
                && metrics.contains(&names::REQUESTS.to_owned())
        })
        .unwrap_or_else(|| panic!("no per-route request count in {lines:#?}"));
    assert_eq!(detailed.2["route"], "/classify-message");
    assert_eq!(detailed.2["status"], "200");
    assert_eq!(detailed.2["model_version"], json!(version));
    assert_eq!(detailed.2[names::REQUESTS], 1);
    assert_eq!(
        detailed.2["request_id"], "req-1",
        "the invocation's ids are properties"
    );
    assert_eq!(detailed.2["xray_trace_id"], "Root=1-5759e988-req-1");
    // The rollups alarms watch: no dimensions at all.
    let (_, rollup_metrics, rollup) = docs
        .iter()
        .find(|(dims, _, _)| dims.is_empty())
        .unwrap_or_else(|| panic!("no rollup in {lines:#?}"));
    for name in [names::REQUESTS, names::REQUEST_LATENCY_MS] {
        assert!(
            rollup_metrics.contains(&name.to_owned()),
            "{name}: {rollup}"
        );
    }
    assert_eq!(rollup[names::REQUESTS], 1);
    // No 5xx: a counter at zero is not written (the error-rate alarm FILLs it with 0).
    assert!(rollup.get(names::SERVER_ERRORS).is_none(), "{rollup}");
    let units: HashMap<String, String> = rollup["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().unwrap().to_owned(),
                m["Unit"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(units[names::REQUEST_LATENCY_MS], "Milliseconds");
    let inference = docs
        .iter()
        .find(|(_, metrics, _)| metrics.contains(&names::INFERENCE_MS.to_owned()))
        .expect("the inference time");
    assert!(
        inference.2[names::INFERENCE_MS].as_array().unwrap()[0]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let selected = docs
        .iter()
        .find(|(dims, _, _)| dims == &["tag", "model_version"])
        .expect("tags selected by tag");
    assert_eq!(selected.2["tag"], "Hot-buyer");

    // A flush sends each value once: the next invocation starts from zero.
    let payload = json!({"operation": "classify-message", "message": "  "});
    let refused = dispatch(
        &router,
        &tagger,
        LambdaEvent::new(payload, context("req-2")),
    )
    .await
    .expect_err("a function error");
    assert_eq!(refused.error_type, "empty_message");
    let mut emf = Vec::new();
    telemetry::flush_emf(&mut emf, "req-2", None).unwrap();
    let second: Vec<Value> = String::from_utf8(emf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let direct = second
        .iter()
        .find(|d| d["route"] == "direct:classify-message" && d.get(names::REQUESTS).is_some())
        .unwrap_or_else(|| panic!("{second:#?}"));
    assert_eq!(
        (direct["status"].clone(), direct[names::REQUESTS].clone()),
        (json!("400"), json!(1))
    );
    assert!(
        second.iter().all(|d| d["route"] != "/classify-message"),
        "flushed once: {second:#?}"
    );
    assert!(second.iter().all(|d| d.get("xray_trace_id").is_none()));

    // Every log line written during the invocations carries its request and trace ids.
    let lines = logs.lines();
    assert!(lines.len() >= 2, "{lines:#?}");
    for id in ["req-1", "req-2"] {
        let of: Vec<&Value> = lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect();
        assert!(!of.is_empty(), "{id}: {lines:#?}");
        for line in &of {
            assert_eq!(
                line["span"]["xray_trace_id"],
                json!(format!("Root=1-5759e988-{id}")),
                "{line}"
            );
        }
    }
    let unlabelled: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"].is_null())
        .collect();
    assert!(
        unlabelled.is_empty(),
        "every line carries the ids: {unlabelled:#?}"
    );
    // The local server's page is not served where metrics go to CloudWatch.
    let page = v2_event(http_v2_example(), "GET", "/metrics", None);
    let answer = dispatch(&router, &tagger, LambdaEvent::new(page, context("req-3")))
        .await
        .expect("an HTTP answer");
    assert_eq!(answer["statusCode"], 404, "{answer}");
}
