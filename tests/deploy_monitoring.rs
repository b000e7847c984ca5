//! The deployment files' monitoring agrees with the code (issue 11): the SAM template and the
//! CDK construct define the same alarms (the contract's four, the two that come with the
//! queue and event options, issue 22, and the drift alarms, issue 23: anomaly detection on each
//! model tag's selection rate and on the no-tag rate) and the same dashboard over the service's
//! metric names only, and the same feedback table (TTL, encryption, PutItem-only access). The
//! tags the template names in its drift alarms and dashboard row are exactly model/labels.json's
//! (the construct reads that file at synth time). The parsing of both files is in
//! `tests/support/deploy.rs`. (`infra/test/` checks the synthesized CDK template against the
//! construct's route list, alarm and dashboard specs.)

use std::collections::BTreeSet;

#[path = "support/deploy.rs"]
mod deploy;

use deploy::{
    cdk_alarms, cdk_dashboard, model_tags, pascal_case, read, sam_alarms, sam_dashboard,
    sam_resource, sam_resources, sam_statements_on, ts_const_block, ts_strings, yaml_child,
    yaml_values, Alarm, CONSTRUCT,
};

/// The service's metric names: what `src/telemetry` records.
const METRICS: &[&str] = tagbeez::telemetry::names::ALL;

/// The metrics that are also written with no dimensions (what the alarms read).
const ROLLUPS: &[&str] = tagbeez::telemetry::names::ROLLUPS;

/// The metrics that are also written with exactly the dimension set `[tag]` (what the drift
/// alarms and the dashboard's drift row read).
const TAG_ROLLUPS: &[&str] = tagbeez::telemetry::names::TAG_ROLLUPS;

/// A drift alarm: anomaly detection (a band, no static threshold).
fn is_drift(alarm: &Alarm) -> bool {
    alarm.threshold_metric_id.is_some()
}

/// The AWS/Lambda metrics (FunctionName dimension) the deployment files may use.
const LAMBDA_METRICS: &[&str] = &["Throttles"];

/// The AWS/SQS metrics (QueueName dimension, the dead-letter queue) they may use.
const SQS_METRICS: &[&str] = &["ApproximateNumberOfMessagesVisible"];

#[test]
fn sam_and_cdk_define_the_same_alarms() {
    let sam = sam_alarms(&read("template.yaml"));
    let cdk = cdk_alarms(&read(CONSTRUCT), &model_tags());
    assert_eq!(sam, cdk);
    let (drift, sam): (Vec<Alarm>, Vec<Alarm>) = sam.into_iter().partition(is_drift);
    let names: Vec<&str> = sam.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dead-letters",
            "error-rate",
            "events-lost",
            "p99-latency",
            "store-errors",
            "throttles"
        ]
    );
    let mut expected_drift: Vec<String> = model_tags()
        .iter()
        .map(|tag| format!("selection-rate-{tag}"))
        .chain(["no-tag-rate".to_owned()])
        .collect();
    expected_drift.sort();
    assert_eq!(
        drift.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        expected_drift
    );
    // The contract's four are always there; the other two come with their option.
    let always: Vec<&str> = sam
        .iter()
        .filter(|a| a.condition.is_none())
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        always,
        ["error-rate", "p99-latency", "store-errors", "throttles"]
    );
    // The contract's thresholds, statistics and periods.
    let by_name = |n: &str| sam.iter().find(|a| a.name == n).unwrap();
    let error_rate = by_name("error-rate");
    assert_eq!(
        error_rate.metrics,
        [
            ("errors".into(), "tagbeez_server_errors".into()),
            ("requests".into(), "tagbeez_requests".into())
        ]
    );
    assert_eq!(
        error_rate.expression.as_deref(),
        Some("100 * FILL(errors, 0) / requests")
    );
    assert_eq!(
        (error_rate.stat.as_str(), error_rate.threshold.as_deref()),
        ("Sum", Some("1"))
    );
    let p99 = by_name("p99-latency");
    assert_eq!(
        p99.metrics,
        [(String::new(), "tagbeez_request_latency_ms".into())]
    );
    assert_eq!(
        (p99.stat.as_str(), p99.threshold.as_deref()),
        ("p99", Some("1000"))
    );
    let store = by_name("store-errors");
    assert_eq!(
        store.metrics,
        [(String::new(), "tagbeez_store_errors".into())]
    );
    assert_eq!(
        (store.stat.as_str(), store.threshold.as_deref()),
        ("Sum", Some("5"))
    );
    let throttles = by_name("throttles");
    assert_eq!(throttles.metrics, [(String::new(), "Throttles".into())]);
    assert_eq!(
        (
            throttles.namespace.as_str(),
            throttles.stat.as_str(),
            throttles.threshold.as_deref()
        ),
        ("AWS/Lambda", "Sum", Some("0"))
    );
    // Events lost: the rollup, any in 5 minutes, with the event bus.
    let lost = by_name("events-lost");
    assert_eq!(
        lost.metrics,
        [(String::new(), "tagbeez_events_lost".into())]
    );
    assert_eq!(
        (
            lost.namespace.as_str(),
            lost.condition.as_deref(),
            lost.stat.as_str(),
            lost.threshold.as_deref()
        ),
        ("service", Some("events"), "Sum", Some("0"))
    );
    // Dead letters: any message visible in the dead-letter queue, with the queue.
    let dead = by_name("dead-letters");
    assert_eq!(
        dead.metrics,
        [(String::new(), "ApproximateNumberOfMessagesVisible".into())]
    );
    assert_eq!(
        (
            dead.namespace.as_str(),
            dead.condition.as_deref(),
            dead.stat.as_str(),
            dead.threshold.as_deref()
        ),
        ("AWS/SQS", Some("queue"), "Maximum", Some("0"))
    );
    for alarm in &sam {
        assert_eq!(alarm.period, "300", "{}", alarm.name);
        assert_eq!(alarm.threshold_metric_id, None, "{}", alarm.name);
        assert!(alarm.dimensions.is_empty(), "{}: a rollup", alarm.name);
        assert_eq!(alarm.comparison, "GreaterThanThreshold", "{}", alarm.name);
        assert_eq!(alarm.treat_missing_data, "notBreaching", "{}", alarm.name);
        assert_eq!(
            (
                alarm.evaluation_periods.as_str(),
                alarm.datapoints_to_alarm.as_str()
            ),
            ("1", "1")
        );
        if alarm.namespace == "service" {
            for (_, metric) in &alarm.metrics {
                assert!(
                    ROLLUPS.contains(&metric.as_str()),
                    "{}: {metric} is not a rollup",
                    alarm.name
                );
            }
        } else {
            assert!(
                ["AWS/Lambda", "AWS/SQS"].contains(&alarm.namespace.as_str()),
                "{}",
                alarm.name
            );
        }
    }
}

#[test]
fn the_drift_alarms_are_anomaly_bands_on_each_model_tag_and_the_no_tag_rate() {
    let template = read("template.yaml");
    let tags = model_tags();
    let drift: Vec<Alarm> = sam_alarms(&template).into_iter().filter(is_drift).collect();
    assert_eq!(drift.len(), tags.len() + 1, "{drift:?}");
    // The tags the template names: exactly model/labels.json's, each once.
    let mut named: Vec<String> = drift
        .iter()
        .flat_map(|a| a.dimensions.iter())
        .map(|(name, value)| {
            assert_eq!(name, "tag");
            value.clone()
        })
        .collect();
    named.sort();
    let mut expected = tags.clone();
    expected.sort();
    assert_eq!(
        named, expected,
        "template.yaml's drift alarms and model/labels.json"
    );
    for alarm in &drift {
        let per_tag = alarm.name.starts_with("selection-rate-");
        let metric = if per_tag {
            "tagbeez_selection_rate"
        } else {
            "tagbeez_no_tag_rate"
        };
        assert_eq!(alarm.metrics, [("m1".to_owned(), metric.to_owned())]);
        assert_eq!(
            alarm.expression.as_deref(),
            Some("ANOMALY_DETECTION_BAND(m1, 2)")
        );
        assert_eq!(alarm.threshold_metric_id.as_deref(), Some("band"));
        assert_eq!(alarm.threshold, None);
        assert_eq!(alarm.comparison, "LessThanLowerOrGreaterThanUpperThreshold");
        assert_eq!(
            (alarm.stat.as_str(), alarm.period.as_str()),
            ("Average", "3600")
        );
        assert_eq!(
            (
                alarm.evaluation_periods.as_str(),
                alarm.datapoints_to_alarm.as_str(),
                alarm.treat_missing_data.as_str()
            ),
            ("3", "3", "notBreaching")
        );
        assert_eq!(alarm.namespace, "service");
        assert_eq!(alarm.condition, None);
        if per_tag {
            let tag = alarm.name.strip_prefix("selection-rate-").unwrap();
            assert_eq!(alarm.dimensions, [("tag".to_owned(), tag.to_owned())]);
            assert_eq!(alarm.id, format!("SelectionRate{}", pascal_case(tag)));
            assert!(TAG_ROLLUPS.contains(&metric), "{metric}: no [tag] series");
        } else {
            assert!(alarm.dimensions.is_empty());
            assert_eq!(alarm.id, "NoTagRate");
            assert!(ROLLUPS.contains(&metric), "{metric}: no rollup");
        }
        // Both the metric and the band are returned (CloudWatch needs both for a band alarm).
        let block = sam_resource(&template, &format!("{}Alarm", alarm.id));
        assert_eq!(
            yaml_values(&block, "ReturnData"),
            ["true", "true"],
            "{}",
            alarm.id
        );
        assert_eq!(yaml_values(&block, "Id"), ["m1", "band"], "{}", alarm.id);
    }

    // The construct names no tag itself: it reads model/labels.json at synth time (or takes
    // the driftTags prop), and expands its perTag specs over those tags.
    let construct = read(CONSTRUCT);
    for needle in [
        "this.driftTags = checkedDriftTags(props.driftTags);",
        "const tags = given ?? known;",
        "const known = modelTags();",
        "readFileSync(path.join(root, 'model', 'labels.json'), 'utf8')",
        "tags: this.driftTags,",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }
    for block in ["TAGBEEZ_DRIFT_ALARMS", "TAGBEEZ_DASHBOARD"] {
        let text = ts_const_block(&construct, block);
        for tag in &tags {
            assert!(
                !text.contains(&format!("'{tag}'")),
                "{CONSTRUCT} {block} names the tag {tag}: take it from model/labels.json"
            );
        }
    }
}

#[test]
fn sam_and_cdk_define_the_same_dashboard() {
    let template = read("template.yaml");
    let tags = model_tags();
    let sam = sam_dashboard(&template);
    let cdk = cdk_dashboard(&read(CONSTRUCT), &tags);
    assert_eq!(sam, cdk);
    // The four alarms first, then the graphs. Not the alarms that come with an option: the
    // dashboard is the same whatever the options, and cannot name a resource that may not exist.
    // Nor the drift alarms: the drift row draws their metrics.
    let alarm_ids: Vec<String> = sam_alarms(&template)
        .into_iter()
        .filter(|a| a.condition.is_none() && !is_drift(a))
        .map(|a| a.id)
        .collect();
    let mut shown: Vec<String> = sam.iter().filter_map(|w| w.alarm.clone()).collect();
    assert!(
        sam[..4].iter().all(|w| w.alarm.is_some()),
        "the alarms come first"
    );
    shown.sort();
    let mut expected = alarm_ids.clone();
    expected.sort();
    assert_eq!(shown, expected, "one alarm widget per alarm");
    for widget in &sam {
        for series in &widget.series {
            if series.namespace == "service" && series.search.is_none() {
                let tag_only = series.dimensions.len() == 1 && series.dimensions[0].0 == "tag";
                if tag_only {
                    assert!(
                        TAG_ROLLUPS.contains(&series.metric.as_str()),
                        "{}: {} has no [tag] series: draw it with SEARCH",
                        widget.title,
                        series.metric
                    );
                    assert_eq!(
                        series.label.as_deref(),
                        Some(series.dimensions[0].1.as_str())
                    );
                } else {
                    assert!(
                        series.dimensions.is_empty(),
                        "{}: {}: {:?}",
                        widget.title,
                        series.metric,
                        series.dimensions
                    );
                    assert!(
                        ROLLUPS.contains(&series.metric.as_str()),
                        "{}: {} has no no-dimension rollup: draw it with SEARCH",
                        widget.title,
                        series.metric
                    );
                }
            }
        }
    }
    // The drift row: the selection rate and the PSI of exactly model/labels.json's tags, in
    // its order, and the no-tag rate.
    for (metric, stat) in [
        ("tagbeez_selection_rate", "Average"),
        ("tagbeez_psi", "Maximum"),
    ] {
        let lines: Vec<String> = sam
            .iter()
            .flat_map(|w| &w.series)
            .filter(|s| s.metric == metric)
            .map(|s| {
                assert_eq!(s.stat, stat, "{metric}");
                assert_eq!(s.dimensions.len(), 1, "{metric}: {:?}", s.dimensions);
                s.dimensions[0].1.clone()
            })
            .collect();
        assert_eq!(
            lines, tags,
            "template.yaml's {metric} lines and model/labels.json"
        );
    }
    let no_tag: Vec<&str> = sam
        .iter()
        .flat_map(|w| &w.series)
        .filter(|s| s.metric == "tagbeez_no_tag_rate")
        .map(|s| s.stat.as_str())
        .collect();
    assert_eq!(no_tag, ["Average"]);
}

/// Every `tagbeez_*` word of a text.
fn metric_words(text: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find("tagbeez_") {
        let start = from + at;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        let before = start.checked_sub(1).map(|i| bytes[i]);
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            words.insert(text[start..end].to_owned());
        }
        from = end;
    }
    words
}

#[test]
fn every_metric_the_deployment_files_name_is_in_the_contract() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    let known: BTreeSet<&str> = METRICS.iter().copied().collect();
    assert_eq!(known.len(), METRICS.len());
    for (file, text) in [("template.yaml", &template), (CONSTRUCT, &construct)] {
        for word in metric_words(text) {
            assert!(
                known.contains(word.as_str()),
                "{file} names {word}, which is not a tagbeez metric"
            );
        }
    }
    // And what the alarms and dashboards actually use, the AWS/Lambda ones included.
    let tags = model_tags();
    let alarms = sam_alarms(&template)
        .into_iter()
        .chain(cdk_alarms(&construct, &tags));
    let alarm_metrics = alarms.flat_map(|a| {
        a.metrics
            .into_iter()
            .map(move |(_, m)| (a.namespace.clone(), m))
    });
    let series = sam_dashboard(&template)
        .into_iter()
        .chain(cdk_dashboard(&construct, &tags))
        .flat_map(|w| w.series)
        .map(|s| (s.namespace, s.metric));
    for (namespace, metric) in alarm_metrics.chain(series) {
        match namespace.as_str() {
            "service" => assert!(
                known.contains(metric.as_str()),
                "{metric} is not a tagbeez metric"
            ),
            "AWS/Lambda" => assert!(
                LAMBDA_METRICS.contains(&metric.as_str()),
                "AWS/Lambda {metric}"
            ),
            "AWS/SQS" => assert!(SQS_METRICS.contains(&metric.as_str()), "AWS/SQS {metric}"),
            other => panic!("namespace {other}"),
        }
    }
    // The construct's own list is the contract's.
    let listed: Vec<String> = ts_strings(
        ts_const_block(&construct, "TAGBEEZ_METRICS")
            .split_once('[')
            .unwrap()
            .1,
    );
    assert_eq!(listed, METRICS, "{CONSTRUCT} TAGBEEZ_METRICS");
}

#[test]
fn every_contract_metric_is_on_both_dashboards() {
    for (file, widgets) in [
        ("template.yaml", sam_dashboard(&read("template.yaml"))),
        (CONSTRUCT, cdk_dashboard(&read(CONSTRUCT), &model_tags())),
    ] {
        let shown: BTreeSet<String> = widgets
            .into_iter()
            .flat_map(|w| w.series)
            .map(|s| s.metric)
            .collect();
        for metric in METRICS {
            assert!(
                shown.contains(*metric),
                "{file}: the dashboard does not show {metric}"
            );
        }
    }
}

#[test]
fn the_feedback_table_has_ttl_encryption_and_putitem_only_in_both_files() {
    let template = read("template.yaml");
    let table = sam_resource(&template, "FeedbackTable");
    assert!(table.contains("Type: AWS::DynamoDB::Table"));
    assert!(
        table.contains("DeletionPolicy: Retain") && table.contains("UpdateReplacePolicy: Retain")
    );
    assert_eq!(yaml_values(&table, "BillingMode"), ["PAY_PER_REQUEST"]);
    let keys = yaml_child(&table, "KeySchema");
    assert_eq!(yaml_values(&keys, "AttributeName"), ["feedback_id"]);
    assert_eq!(yaml_values(&keys, "KeyType"), ["HASH"]);
    let attributes = yaml_child(&table, "AttributeDefinitions");
    assert_eq!(yaml_values(&attributes, "AttributeName"), ["feedback_id"]);
    assert_eq!(yaml_values(&attributes, "AttributeType"), ["S"]);
    let ttl = yaml_child(&table, "TimeToLiveSpecification");
    assert_eq!(yaml_values(&ttl, "AttributeName"), ["expires_at"]);
    assert_eq!(yaml_values(&ttl, "Enabled"), ["true"]);
    assert_eq!(
        yaml_values(&yaml_child(&table, "SSESpecification"), "SSEEnabled"),
        ["true"]
    );
    assert_eq!(
        yaml_values(
            &yaml_child(&table, "PointInTimeRecoverySpecification"),
            "PointInTimeRecoveryEnabled"
        ),
        ["true"]
    );
    assert!(template.contains("FEEDBACK_TABLE_NAME: !Ref FeedbackTable"));
    // The function's role: one statement on the feedback table, PutItem alone.
    let role = sam_resource(&template, "FunctionRole");
    assert_eq!(
        sam_statements_on(&role, "FeedbackTable"),
        [vec!["dynamodb:PutItem".to_owned()]]
    );
    assert!(
        !role.contains("Resource: \"*\"")
            && !role.contains("Resource: '*'")
            && !role.contains("dynamodb:*")
    );
    // No other resource grants anything on it.
    for (id, block) in sam_resources(&template) {
        if block.contains("FeedbackTable") {
            assert!(
                ["FunctionRole", "TagbeezFunction"].contains(&id.as_str()),
                "{id} refers to FeedbackTable"
            );
        }
    }

    let construct = read(CONSTRUCT);
    assert!(construct
        .contains("export const TAGBEEZ_FEEDBACK_TABLE_ACTIONS = ['dynamodb:PutItem'] as const;"));
    let table = construct
        .split("this.feedbackTable = new dynamodb.Table(")
        .nth(1)
        .expect("the construct creates this.feedbackTable")
        .split("});")
        .next()
        .unwrap();
    for property in [
        "partitionKey: { name: 'feedback_id', type: dynamodb.AttributeType.STRING }",
        "billingMode: dynamodb.BillingMode.PAY_PER_REQUEST",
        "timeToLiveAttribute: 'expires_at'",
        "encryption: dynamodb.TableEncryption.AWS_MANAGED",
        "pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true }",
        "removalPolicy: props.feedbackTableRemovalPolicy ?? RemovalPolicy.RETAIN",
    ] {
        assert!(
            table.contains(property),
            "{CONSTRUCT}: the feedback table lacks {property}"
        );
    }
    assert!(construct.contains("FEEDBACK_TABLE_NAME: this.feedbackTable.tableName"));
    // Its ARN is granted once, with TAGBEEZ_FEEDBACK_TABLE_ACTIONS, and no grant* helper is used.
    assert_eq!(construct.matches("this.feedbackTable.tableArn").count(), 1);
    let statement = construct
        .split("this.feedbackTable.tableArn")
        .next()
        .unwrap()
        .rsplit("new iam.PolicyStatement(")
        .next()
        .unwrap();
    assert!(
        statement.contains("actions: [...TAGBEEZ_FEEDBACK_TABLE_ACTIONS]"),
        "{statement}"
    );
    assert!(!construct.contains("feedbackTable.grant"));
}
