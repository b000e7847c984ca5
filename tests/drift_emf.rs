//! The drift metrics as Lambda writes them (EMF lines after an invocation): the dimension sets
//! the anomaly alarms watch, `[tag]` for `tagbeez_selection_rate` and `tagbeez_psi` and `[]`
//! for `tagbeez_no_tag_rate`, beside the per-shop ones; and at most 100 rate values per
//! series and flush (an EMF document's limit). Its own test binary: one recorder per process
//! (`drift.rs` has the Prometheus one).

use std::collections::BTreeMap;

use serde_json::Value;
use tagbeez::classifier::embedded;
use tagbeez::classifier::Labels;
use tagbeez::drift::{Baseline, Monitor};
use tagbeez::telemetry::drift::EMF_RATE_VALUES;
use tagbeez::telemetry::{self, names, MetricsMode};

const NAMESPACE: &str = "tagbeez-test";

/// One flush's documents, keyed by dimension set; each dimension set's documents in order.
fn flush() -> BTreeMap<Vec<String>, Vec<Value>> {
    let mut out = Vec::new();
    telemetry::flush_emf(&mut out, "req-1", None).unwrap();
    let mut docs: BTreeMap<Vec<String>, Vec<Value>> = BTreeMap::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let doc: Value = serde_json::from_str(line).expect("one JSON document per line");
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        let sets = directive["Dimensions"].as_array().unwrap();
        assert_eq!(sets.len(), 1, "one dimension set per document: {doc}");
        let dims = sets[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect();
        docs.entry(dims).or_default().push(doc);
    }
    docs
}

/// The metric names a document declares.
fn metrics(doc: &Value) -> Vec<&str> {
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect()
}

/// The document of `dims` whose dimension values are `values`.
fn find<'a>(
    docs: &'a BTreeMap<Vec<String>, Vec<Value>>,
    dims: &[&str],
    values: &[&str],
) -> &'a Value {
    let key: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    docs.get(&key)
        .and_then(|list| {
            list.iter()
                .find(|doc| dims.iter().zip(values).all(|(d, v)| doc[*d] == *v))
        })
        .unwrap_or_else(|| panic!("no document {dims:?} = {values:?} in {docs:#?}"))
}

#[test]
fn emf_lines_carry_the_dimension_sets_the_alarms_watch() {
    let labels = Labels::from_json(embedded::model_files().labels_json).unwrap();
    telemetry::install(
        MetricsMode::Emf,
        true,
        NAMESPACE,
        &labels.file.model_version,
    )
    .unwrap();
    let tags = &labels.tags;
    let monitor = Monitor::try_new(tags, Baseline::embedded().unwrap(), 100, true).unwrap();
    // Deal-seeker (index 2) certain, the rest not: every message gets exactly one tag.
    let deal = tags.iter().position(|t| t == "Deal-seeker").unwrap();
    let probabilities: Vec<f32> = (0..tags.len())
        .map(|i| if i == deal { 0.97 } else { 0.02 })
        .collect();
    let selected: Vec<bool> = (0..tags.len()).map(|i| i == deal).collect();
    // More messages than an EMF document holds values, from one shop.
    let sent = EMF_RATE_VALUES + 50;
    for _ in 0..sent {
        monitor.observe(Some("shop-7"), &probabilities, &selected);
    }
    let docs = flush();

    // The alarms' series: selection rate and PSI by exactly [tag], the no-tag rate by nothing.
    let by_tag = find(&docs, &["tag"], &["Deal-seeker"]);
    let declared = metrics(by_tag);
    assert!(declared.contains(&names::SELECTION_RATE), "{by_tag}");
    assert!(declared.contains(&names::PSI), "{by_tag}");
    assert_eq!(
        by_tag["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["tag"]])
    );
    let values = by_tag[names::SELECTION_RATE].as_array().unwrap();
    assert_eq!(
        values.len(),
        EMF_RATE_VALUES,
        "capped at one document's values"
    );
    assert!(values.iter().all(|v| v.as_f64() == Some(1.0)));
    assert!(by_tag[names::PSI].as_f64().unwrap() > 0.25, "{by_tag}");
    let other = find(&docs, &["tag"], &["Hot-buyer"]);
    assert!(other[names::SELECTION_RATE]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v.as_f64() == Some(0.0)));
    let rollup = find(&docs, &[], &[]);
    assert_eq!(
        rollup["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([[]])
    );
    assert!(metrics(rollup).contains(&names::NO_TAG_RATE), "{rollup}");
    let none = rollup[names::NO_TAG_RATE].as_array().unwrap();
    assert_eq!(none.len(), EMF_RATE_VALUES);
    assert!(none.iter().all(|v| v.as_f64() == Some(0.0)));
    assert_eq!(rollup["request_id"], "req-1");
    // No model version on the drift series (the alarms name none).
    for dims in docs
        .keys()
        .filter(|d| d.first().map(String::as_str) == Some("tag"))
    {
        assert!(!dims.contains(&"model_version".to_owned()), "{dims:?}");
    }

    // The shop's own series.
    let shop = find(&docs, &["tag", "shop_id"], &["Deal-seeker", "shop-7"]);
    assert_eq!(
        shop[names::SELECTION_RATE].as_array().unwrap().len(),
        EMF_RATE_VALUES
    );
    let shop_none = find(&docs, &["shop_id"], &["shop-7"]);
    assert!(metrics(shop_none).contains(&names::NO_TAG_RATE));
    // The bins count every message, with and without the shop.
    let top = find(&docs, &["tag", "bin"], &["Deal-seeker", "9"]);
    assert_eq!(top[names::PROBABILITY_BIN], sent);
    let top_shop = find(
        &docs,
        &["tag", "bin", "shop_id"],
        &["Deal-seeker", "9", "shop-7"],
    );
    assert_eq!(top_shop[names::PROBABILITY_BIN], sent);
    let low = find(&docs, &["tag", "bin"], &["Hot-buyer", "0"]);
    assert_eq!(low[names::PROBABILITY_BIN], sent);

    // The next invocation starts again: its one message gives one value per series.
    let none_selected = vec![false; tags.len()];
    monitor.observe(None, &vec![0.01; tags.len()], &none_selected);
    let docs = flush();
    let by_tag = find(&docs, &["tag"], &["Deal-seeker"]);
    assert_eq!(by_tag[names::SELECTION_RATE], serde_json::json!([0.0]));
    let rollup = find(&docs, &[], &[]);
    assert_eq!(rollup[names::NO_TAG_RATE], serde_json::json!([1.0]));
    assert!(
        !docs.contains_key(&vec!["tag".to_owned(), "shop_id".to_owned()]),
        "no shop named: {docs:#?}"
    );
}
