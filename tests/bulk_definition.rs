//! The bulk tagging state machine (statemachine/bulk.asl.json, deployed by both template.yaml
//! and the CDK construct): its structure, checked offline. cfn-lint validates the file against
//! the States Language schema (scripts/check-sam.sh, inlined) and infra's tests run
//! asl-validator on it; this checks what the service needs of it:
//!
//! - a Distributed Map (EXPRESS children) whose ItemReader reads one JSON Lines object from S3,
//!   whose ItemBatcher hands the function `{"Items": [...], "BatchInput": {"thresholds"}}` and
//!   whose ResultWriter writes under results/;
//! - its concurrency, batch size and failure tolerance come from the template's parameters
//!   (DefinitionSubstitutions), not from numbers in the file;
//! - the one Task invokes the function with the batch as its payload, and retries exactly the
//!   transient errors (the function's errorType is the error code) and no permanent one.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use serde_json::Value;

const FILE: &str = "statemachine/bulk.asl.json";

/// What a retry may cure: a busy or unreachable store or bus, an overloaded instance, and
/// Lambda's own service errors and throttling.
const TRANSIENT: &[&str] = &[
    "store_unavailable",
    "store_contention",
    "overloaded",
    "events_unavailable",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

/// What a retry cannot cure: bad input, and internal errors.
const PERMANENT: &[&str] = &[
    "invalid_event",
    "invalid_message",
    "empty_message",
    "message_too_long",
    "internal",
];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn definition() -> Value {
    serde_json::from_str(&read(FILE)).unwrap_or_else(|e| panic!("{FILE} is not JSON: {e}"))
}

fn states(machine: &Value) -> &serde_json::Map<String, Value> {
    machine["States"].as_object().expect("States")
}

/// Every state of a machine (a Map's item processor included), with the states it names.
fn check_graph(machine: &Value, at: &str) {
    let all = states(machine);
    let start = machine["StartAt"].as_str().expect("StartAt");
    assert!(
        all.contains_key(start),
        "{at}: StartAt {start} is not a state"
    );
    let mut reached = BTreeSet::new();
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(name) = queue.pop_front() {
        if !reached.insert(name.clone()) {
            continue;
        }
        let state = &all[&name];
        let next = state.get("Next").and_then(Value::as_str);
        let end = state.get("End").and_then(Value::as_bool) == Some(true);
        assert!(
            next.is_some() != end,
            "{at}: {name} needs Next or End: true"
        );
        if let Some(next) = next {
            assert!(
                all.contains_key(next),
                "{at}: {name} goes to {next}, which is no state"
            );
            queue.push_back(next.to_owned());
        }
        if let Some(processor) = state.get("ItemProcessor") {
            check_graph(processor, &format!("{at} > {name}"));
        }
    }
    let unreached: Vec<&String> = all.keys().filter(|k| !reached.contains(*k)).collect();
    assert!(
        unreached.is_empty(),
        "{at}: unreachable states {unreached:?}"
    );
}

/// The one Map state: its name and value.
fn the_map(machine: &Value) -> (&str, &Value) {
    let maps: Vec<(&String, &Value)> = states(machine)
        .iter()
        .filter(|(_, s)| s["Type"] == "Map")
        .collect();
    assert_eq!(maps.len(), 1, "one Map state");
    (maps[0].0.as_str(), maps[0].1)
}

/// The one Task of the map's item processor.
fn the_task(machine: &Value) -> &Value {
    let (_, map) = the_map(machine);
    let tasks: Vec<&Value> = states(&map["ItemProcessor"])
        .values()
        .filter(|s| s["Type"] == "Task")
        .collect();
    assert_eq!(tasks.len(), 1, "one Task in the item processor");
    tasks[0]
}

#[test]
fn every_state_is_reachable_and_every_transition_lands() {
    check_graph(&definition(), FILE);
}

#[test]
fn it_is_a_distributed_map_of_express_children_over_a_jsonl_object() {
    let machine = definition();
    let (_, map) = the_map(&machine);
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"],
        serde_json::json!({"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"})
    );
    let reader = &map["ItemReader"];
    assert_eq!(reader["Resource"], "arn:aws:states:::s3:getObject");
    assert_eq!(
        reader["ReaderConfig"],
        serde_json::json!({"InputType": "JSONL"})
    );
    // Bucket and key from the execution input (through the Pass states' `job`).
    assert_eq!(
        reader["Parameters"],
        serde_json::json!({"Bucket.$": "$.job.bucket", "Key.$": "$.job.key"})
    );
    let writer = &map["ResultWriter"];
    assert_eq!(writer["Resource"], "arn:aws:states:::s3:putObject");
    assert_eq!(
        writer["Parameters"],
        serde_json::json!({"Bucket": "${BulkBucketName}", "Prefix": "results/"})
    );
    // Only the function's outputs are written (no copy of the input messages), as JSON lines.
    assert_eq!(
        writer["WriterConfig"],
        serde_json::json!({"Transformation": "COMPACT", "OutputType": "JSONL"})
    );
    // The function's payload is the ItemBatcher's shape: {"Items": [...], "BatchInput": {...}},
    // and BatchInput holds exactly the run's thresholds (the function refuses other fields).
    let batcher = &map["ItemBatcher"];
    assert_eq!(
        batcher["BatchInput"],
        serde_json::json!({"thresholds.$": "$.job.thresholds"})
    );
    let bytes = batcher["MaxInputBytesPerBatch"]
        .as_u64()
        .expect("MaxInputBytesPerBatch");
    assert!(
        bytes <= 256 * 1024 - 8 * 1024,
        "{bytes}: leave room under the 256 KiB payload limit"
    );
}

#[test]
fn concurrency_batch_size_and_tolerance_come_from_the_parameters() {
    let machine = definition();
    let (map_name, map) = the_map(&machine);
    // No fixed numbers in the file: the *Path fields, read from `settings`.
    for (fixed, path, setting, placeholder) in [
        (
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "maxConcurrency",
            "MaxConcurrency",
        ),
        (
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "toleratedFailurePercentage",
            "ToleratedFailurePercentage",
        ),
    ] {
        assert!(
            map.get(fixed).is_none(),
            "{map_name}: {fixed} must come from the parameter"
        );
        assert_eq!(
            map[path],
            format!("$.settings.{setting}"),
            "{map_name}: {path}"
        );
        assert_setting(&machine, setting, placeholder);
    }
    let batcher = &map["ItemBatcher"];
    assert!(batcher.get("MaxItemsPerBatch").is_none());
    assert_eq!(
        batcher["MaxItemsPerBatchPath"],
        "$.settings.maxItemsPerBatch"
    );
    assert_setting(&machine, "maxItemsPerBatch", "MaxItemsPerBatch");
    // Each of those placeholders is a SAM parameter's (DefinitionSubstitutions).
    let template = read("template.yaml");
    for (placeholder, parameter) in [
        ("MaxConcurrency", "BulkMaxConcurrency"),
        ("MaxItemsPerBatch", "BulkMaxItemsPerBatch"),
        (
            "ToleratedFailurePercentage",
            "BulkToleratedFailurePercentage",
        ),
    ] {
        assert!(
            template.contains(&format!("        {placeholder}: !Ref {parameter}\n")),
            "template.yaml: {placeholder}: !Ref {parameter}"
        );
        assert!(
            template.contains(&format!("\n  {parameter}:\n    Type: Number\n")),
            "template.yaml: parameter {parameter}"
        );
    }
}

/// The first state sets `settings.<setting>` from `${<placeholder>}` as a number, and the
/// second passes `settings` on to the map.
fn assert_setting(machine: &Value, setting: &str, placeholder: &str) {
    let all = states(machine);
    let first = &all[machine["StartAt"].as_str().unwrap()];
    assert_eq!(first["Type"], "Pass");
    assert_eq!(
        first["Parameters"]["settings"][format!("{setting}.$")],
        format!("States.StringToJson('${{{placeholder}}}')"),
        "settings.{setting}"
    );
    let second = &all[first["Next"].as_str().unwrap()];
    assert_eq!(second["Parameters"]["settings.$"], "$.settings");
    assert_eq!(second["Next"], the_map(machine).0);
}

#[test]
fn the_execution_input_wins_over_its_defaults() {
    let machine = definition();
    let all = states(&machine);
    let first = &all[machine["StartAt"].as_str().unwrap()];
    assert_eq!(
        first["Parameters"]["defaults"],
        serde_json::json!({"bucket": "${BulkBucketName}", "thresholds": {}})
    );
    assert_eq!(first["Parameters"]["input.$"], "$");
    let second = &all[first["Next"].as_str().unwrap()];
    assert_eq!(
        second["Parameters"]["job.$"],
        "States.JsonMerge($.defaults, $.input, false)"
    );
}

#[test]
fn the_task_invokes_the_function_with_the_batch() {
    let machine = definition();
    let task = the_task(&machine);
    assert_eq!(task["Resource"], "arn:aws:states:::lambda:invoke");
    assert_eq!(
        task["Parameters"],
        serde_json::json!({"FunctionName": "${TagbeezFunctionArn}", "Payload.$": "$"})
    );
    assert_eq!(task["OutputPath"], "$.Payload");
    // A failed batch fails its child execution: the map's tolerance decides, no Catch hides it.
    assert!(task.get("Catch").is_none());
}

#[test]
fn the_task_retries_exactly_the_transient_errors_with_backoff_and_jitter() {
    let machine = definition();
    let task = the_task(&machine);
    let retriers = task["Retry"].as_array().expect("Retry");
    let mut named: Vec<&str> = Vec::new();
    for retrier in retriers {
        for name in retrier["ErrorEquals"].as_array().unwrap() {
            named.push(name.as_str().unwrap());
        }
        assert!(
            retrier["BackoffRate"].as_f64().unwrap() > 1.0,
            "backoff: {retrier}"
        );
        assert_eq!(retrier["JitterStrategy"], "FULL", "jitter: {retrier}");
        let attempts = retrier["MaxAttempts"].as_u64().unwrap();
        assert!((2..=10).contains(&attempts), "{retrier}");
        assert!(
            retrier["MaxDelaySeconds"].as_u64().is_some(),
            "a bounded delay: {retrier}"
        );
    }
    let set: BTreeSet<&str> = named.iter().copied().collect();
    assert_eq!(set.len(), named.len(), "an error named twice: {named:?}");
    assert_eq!(set, TRANSIENT.iter().copied().collect::<BTreeSet<_>>());
    for permanent in PERMANENT {
        assert!(!set.contains(permanent), "{permanent} must not be retried");
    }
    for wildcard in ["States.ALL", "States.TaskFailed", "Lambda.Unknown"] {
        assert!(
            !set.contains(wildcard),
            "{wildcard} would retry permanent errors too"
        );
    }
}

/// Every `"..."` literal of the crate's sources.
fn source_literals(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_literals(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, part) in text.split('"').enumerate() {
                if i % 2 == 1 {
                    out.insert(part.to_owned());
                }
            }
        }
    }
}

#[test]
fn the_retried_error_names_are_the_service_codes() {
    let mut literals = BTreeSet::new();
    source_literals(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut literals,
    );
    for code in TRANSIENT.iter().filter(|c| !c.starts_with("Lambda.")) {
        assert!(
            literals.contains(*code),
            "{code} is not an error code of src/ (a misspelt name never matches an errorType)"
        );
    }
}
