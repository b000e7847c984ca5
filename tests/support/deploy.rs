//! Reading and parsing the deployment files, shared by the tests that check them against the
//! code (`tests/deploy_files.rs`, `tests/deploy_monitoring.rs`): template.yaml's resources and
//! YAML blocks, the CDK construct's exported TypeScript constants, and from both the alarms
//! and the dashboard as one description each, to compare. The CDK construct names the model's
//! tags only at synth time (from model/labels.json), so its per-tag alarms and dashboard lines
//! are expanded here over `model_tags()`, the same file's tags.
//! Use from a test file with `#[path = "support/deploy.rs"] mod deploy;`.

#![allow(dead_code)] // each test file uses the part it needs

use std::collections::BTreeSet;
use std::path::Path;

/// The CDK construct that deploys the service: every TypeScript module of this folder (the
/// TagbeezService construct and the parts it composes), read as one text.
pub const CONSTRUCT: &str = "infra/lib";

/// A file of the repository, by its path from the crate root; for a folder, its `.ts` files,
/// in name order, one after the other.
pub fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if !path.is_dir() {
        return std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|file| file.extension().is_some_and(|ext| ext == "ts"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no .ts files", path.display());
    files
        .iter()
        .map(|file| {
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The model's tags: `tags` of model/labels.json, in order.
pub fn model_tags() -> Vec<String> {
    let labels: serde_json::Value =
        serde_json::from_str(&read("model/labels.json")).expect("model/labels.json is JSON");
    let tags: Vec<String> = labels["tags"]
        .as_array()
        .expect("model/labels.json has tags")
        .iter()
        .map(|t| t.as_str().expect("a tag is a string").to_owned())
        .collect();
    assert!(!tags.is_empty(), "model/labels.json has no tags");
    tags
}

/// A tag as part of a logical id, as the construct's `tagbeezPascalCase`: `First-time-visitor`
/// is `FirstTimeVisitor`.
pub fn pascal_case(tag: &str) -> String {
    tag.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().unwrap().to_ascii_uppercase();
            std::iter::once(first).chain(chars).collect::<String>()
        })
        .collect()
}

pub fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The resources of template.yaml: (logical id, the lines under it).
pub fn sam_resources(template: &str) -> Vec<(String, String)> {
    let body = template
        .split("\nResources:\n")
        .nth(1)
        .expect("template.yaml has Resources")
        .split("\nOutputs:")
        .next()
        .unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if indent(line) == 2 && line.trim_end().ends_with(':') && !line.trim().starts_with('#') {
            out.push((line.trim().trim_end_matches(':').to_owned(), String::new()));
        } else if let Some((_, block)) = out.last_mut() {
            if indent(line) > 2 || line.trim().is_empty() {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    out
}

/// The entries of a top-level section of template.yaml (`Parameters`, `Mappings`,
/// `Conditions`, `Resources`, `Outputs`): (key, the rest of its line and the lines under it).
pub fn sam_section(template: &str, section: &str) -> Vec<(String, String)> {
    let head = format!("{section}:");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in template.lines().skip_while(|l| *l != head).skip(1) {
        let trimmed = line.trim();
        if indent(line) == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            break;
        }
        if indent(line) == 2 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            let (key, rest) = trimmed
                .split_once(':')
                .unwrap_or_else(|| panic!("{section}: not a key: {line}"));
            out.push((
                key.trim_matches('"').to_owned(),
                format!("{}\n", rest.trim()),
            ));
        } else if let Some((_, block)) = out.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(!out.is_empty(), "template.yaml has no {section}");
    out
}

/// One parameter of template.yaml: its lines.
pub fn sam_parameter(template: &str, name: &str) -> String {
    sam_section(template, "Parameters")
        .into_iter()
        .find(|(key, _)| key == name)
        .unwrap_or_else(|| panic!("template.yaml has no parameter {name}"))
        .1
}

/// A YAML scalar without its quotes.
pub fn unquote(value: &str) -> &str {
    value.trim().trim_matches(['"', '\''])
}

/// A parameter's Default, MinValue and MaxValue (`-` for one it lacks).
pub fn sam_parameter_range(template: &str, name: &str) -> [String; 3] {
    let block = sam_parameter(template, name);
    ["Default", "MinValue", "MaxValue"].map(|key| {
        let values = yaml_values(&block, key);
        assert!(values.len() <= 1, "{name}: {key}: {values:?}");
        values
            .first()
            .map_or("-".to_owned(), |v| unquote(v).to_owned())
    })
}

/// The statements of an IAM policy block (each from its `- Effect:` line): their actions and
/// the statement's whole text.
pub fn sam_statements(block: &str) -> Vec<(Vec<String>, String)> {
    let mut statements: Vec<String> = Vec::new();
    let mut depth = 0;
    for line in block.lines() {
        if line.trim().starts_with("- Effect:") {
            statements.push(String::new());
            depth = indent(line);
        } else if !statements.is_empty() && !line.trim().is_empty() && indent(line) <= depth {
            // The statement list ended (the next policy, or the next property).
            depth = usize::MAX;
        }
        if depth != usize::MAX {
            if let Some(statement) = statements.last_mut() {
                statement.push_str(line);
                statement.push('\n');
            }
        }
    }
    statements
        .into_iter()
        .map(|s| {
            let mut actions: Vec<String> = Vec::new();
            let mut in_actions = false;
            for line in s.lines() {
                let trimmed = line.trim();
                if let Some(value) = trimmed.strip_prefix("Action:") {
                    in_actions = value.trim().is_empty();
                    if !in_actions {
                        actions.push(value.trim().to_owned());
                    }
                } else if in_actions && trimmed.starts_with("- ") {
                    actions.push(trimmed[2..].trim().to_owned());
                } else {
                    in_actions = false;
                }
            }
            (actions, s)
        })
        .collect()
}

/// The actions of each IAM statement of a policy block that names `resource`.
pub fn sam_statements_on(block: &str, resource: &str) -> Vec<Vec<String>> {
    sam_statements(block)
        .into_iter()
        .filter(|(_, s)| s.contains(resource))
        .map(|(actions, _)| actions)
        .collect()
}

/// The arguments of the construct's `checkInt('<name>', <value>, <min>, <max>)` call, and the
/// value's default (the number after `??`): [default, min, max], as sam_parameter_range gives.
pub fn ts_check_int(construct: &str, name: &str) -> [String; 3] {
    let start = construct
        .match_indices("checkInt(")
        .map(|(i, _)| i)
        .find(|&i| {
            construct[i + "checkInt(".len()..]
                .trim_start()
                .starts_with(&format!("'{name}'"))
        })
        .unwrap_or_else(|| panic!("{CONSTRUCT} has no checkInt('{name}', ...)"));
    let rest = &construct[start + "checkInt(".len()..];
    let (mut depth, mut end) = (0i32, rest.len());
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                end = i;
                break;
            }
            ')' => depth -= 1,
            _ => {}
        }
    }
    let mut args: Vec<String> = Vec::new();
    let (mut depth, mut from) = (0i32, 0usize);
    let call = &rest[..end];
    for (i, c) in call.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(call[from..i].trim().to_owned());
                from = i + 1;
            }
            _ => {}
        }
    }
    args.push(call[from..].trim().to_owned());
    args.retain(|a| !a.is_empty());
    assert_eq!(args.len(), 4, "checkInt('{name}', ...): {args:?}");
    let number = |text: &str| -> String {
        let digits: String = text
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit() || *c == '_')
            .filter(|c| *c != '_')
            .collect();
        assert!(
            !digits.is_empty(),
            "checkInt('{name}'): no number in {text:?}"
        );
        digits
    };
    let default = args[1]
        .split_once("??")
        .unwrap_or_else(|| panic!("checkInt('{name}'): no `?? <default>` in {:?}", args[1]))
        .1;
    // A Duration default, in the unit the name gives: `eventsTimeout (ms)`, `... (days)`.
    let default = match default.trim().trim_start_matches('(').split_once('(') {
        Some((unit, _)) if unit.starts_with("Duration.") => {
            let millis: u64 = match unit {
                "Duration.millis" => 1,
                "Duration.seconds" => 1_000,
                "Duration.minutes" => 60_000,
                "Duration.hours" => 3_600_000,
                "Duration.days" => 86_400_000,
                other => panic!("checkInt('{name}'): {other}"),
            };
            let per: u64 = if name.ends_with("(ms)") {
                1
            } else if name.ends_with("(seconds)") {
                1_000
            } else if name.ends_with("(days)") {
                86_400_000
            } else {
                panic!("checkInt('{name}'): a Duration default needs the unit in the name")
            };
            let n: u64 = number(default).parse().unwrap();
            assert_eq!(n * millis % per, 0, "checkInt('{name}'): {default}");
            (n * millis / per).to_string()
        }
        _ => number(default),
    };
    [default, number(&args[2]), number(&args[3])]
}

pub fn sam_resource(template: &str, id: &str) -> String {
    sam_resources(template)
        .into_iter()
        .find(|(name, _)| name == id)
        .unwrap_or_else(|| panic!("template.yaml has no resource {id}"))
        .1
}

/// `key: value` of a YAML line (a leading `- ` dropped), comments and blank lines skipped.
pub fn yaml_pair(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    let line = line.strip_prefix("- ").unwrap_or(line);
    if line.starts_with('#') {
        return None;
    }
    let (key, value) = line.split_once(':')?;
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((key, value.trim()))
}

/// Every value of `key` in a YAML block.
pub fn yaml_values<'a>(block: &'a str, key: &str) -> Vec<&'a str> {
    block
        .lines()
        .filter_map(yaml_pair)
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

/// The lines nested under the first `key:` line of a YAML block.
pub fn yaml_child(block: &str, key: &str) -> String {
    let mut lines = block.lines();
    let head = lines
        .by_ref()
        .find(|l| yaml_pair(l).is_some_and(|(k, _)| k == key))
        .unwrap_or_else(|| panic!("no {key}: in\n{block}"));
    let depth = indent(head);
    lines
        .take_while(|l| l.trim().is_empty() || indent(l) > depth)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one value that every element has.
pub fn single<T: Ord + std::fmt::Debug>(values: impl IntoIterator<Item = T>, what: &str) -> T {
    let set: BTreeSet<T> = values.into_iter().collect();
    assert_eq!(set.len(), 1, "{what}: expected one value, got {set:?}");
    set.into_iter().next().unwrap()
}

/// One alarm, as both files describe it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Alarm {
    /// The alarm name after `<stack name>-`.
    pub name: String,
    /// The construct's id / the template's logical id without `Alarm`.
    pub id: String,
    /// `service` (the service's own namespace, a no-dimension rollup), `AWS/Lambda` (the
    /// function's) or `AWS/SQS` (the dead-letter queue's).
    pub namespace: String,
    /// The option the alarm comes with: `queue` or `events` (the template's conditions
    /// QueueEnabled and EventsEnabled, the construct's `option`); `None` for an alarm always there.
    pub condition: Option<String>,
    /// Metric ids to metric names (id "" for a single-metric alarm).
    pub metrics: Vec<(String, String)>,
    /// The dimensions of a service metric, (name, value): the drift alarms' `tag`; none for the
    /// no-dimension rollups. (The AWS/Lambda and AWS/SQS dimensions are checked apart.)
    pub dimensions: Vec<(String, String)>,
    pub expression: Option<String>,
    pub stat: String,
    pub period: String,
    /// A static threshold; `None` for an anomaly detection alarm.
    pub threshold: Option<String>,
    /// The id of the band an anomaly detection alarm compares with (its ThresholdMetricId).
    pub threshold_metric_id: Option<String>,
    pub comparison: String,
    pub evaluation_periods: String,
    pub datapoints_to_alarm: String,
    pub treat_missing_data: String,
}

pub fn sam_alarms(template: &str) -> Vec<Alarm> {
    let mut alarms = Vec::new();
    for (id, block) in sam_resources(template) {
        if !block.contains("Type: AWS::CloudWatch::Alarm") {
            continue;
        }
        let one = |key: &str| -> String {
            let values = yaml_values(&block, key);
            assert_eq!(values.len(), 1, "{id}: {key}: {values:?}");
            values[0].to_owned()
        };
        let optional = |key: &str| -> Option<String> {
            let values = yaml_values(&block, key);
            assert!(values.len() <= 1, "{id}: {key}: {values:?}");
            values.first().map(|v| v.to_string())
        };
        let name = one("AlarmName");
        let name = name
            .strip_prefix("!Sub ${AWS::StackName}-")
            .unwrap_or_else(|| {
                panic!("{id}: AlarmName {name} is not !Sub ${{AWS::StackName}}-<name>")
            })
            .to_owned();
        let stats = [
            yaml_values(&block, "Stat"),
            yaml_values(&block, "Statistic"),
            yaml_values(&block, "ExtendedStatistic"),
        ]
        .concat();
        for value in yaml_values(&block, "Statistic") {
            assert!(
                !value.starts_with('p'),
                "{id}: a percentile must be an ExtendedStatistic"
            );
        }
        let namespace = single(
            yaml_values(&block, "Namespace")
                .into_iter()
                .map(|ns| match ns {
                    "!Ref MetricsNamespace" => "service".to_owned(),
                    other => other.to_owned(),
                }),
            &format!("{id}: Namespace"),
        );
        if namespace == "AWS/Lambda" {
            assert_eq!(yaml_values(&block, "Name"), ["FunctionName"], "{id}");
            assert_eq!(
                yaml_values(&block, "Value"),
                ["!Ref TagbeezFunction"],
                "{id}"
            );
        } else if namespace == "AWS/SQS" {
            assert_eq!(yaml_values(&block, "Name"), ["QueueName"], "{id}");
            assert_eq!(
                yaml_values(&block, "Value"),
                ["!GetAtt DeadLetterQueue.QueueName"],
                "{id}"
            );
        }
        let dimensions: Vec<(String, String)> = if namespace == "service" {
            let names = yaml_values(&block, "Name");
            let values = yaml_values(&block, "Value");
            assert_eq!(names.len(), values.len(), "{id}: Dimensions");
            names
                .into_iter()
                .zip(values)
                .map(|(n, v)| (n.to_owned(), unquote(v).to_owned()))
                .collect()
        } else {
            Vec::new()
        };
        // Metric ids, in the order of `Metrics:` (the single-metric form has none).
        let mut metrics = Vec::new();
        let mut current_id = String::new();
        for (key, value) in block.lines().filter_map(yaml_pair) {
            match key {
                "Id" => current_id = value.to_owned(),
                "MetricName" => metrics.push((current_id.clone(), value.to_owned())),
                _ => {}
            }
        }
        metrics.sort();
        let expressions = yaml_values(&block, "Expression");
        assert!(expressions.len() <= 1, "{id}: {expressions:?}");
        for action in ["AlarmActions", "OKActions"] {
            assert_eq!(
                one(action),
                "!If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]",
                "{id}: {action}"
            );
        }
        let condition = yaml_values(&block, "Condition").first().map(|c| {
            match *c {
                "QueueEnabled" => "queue",
                "EventsEnabled" => "events",
                other => panic!("{id}: Condition {other} is not an option's"),
            }
            .to_owned()
        });
        alarms.push(Alarm {
            name,
            id: id
                .strip_suffix("Alarm")
                .unwrap_or_else(|| panic!("{id}: alarm logical ids end in Alarm"))
                .to_owned(),
            namespace,
            condition,
            metrics,
            dimensions,
            expression: expressions.first().map(|e| e.to_string()),
            stat: single(stats, &format!("{id}: statistic")).to_owned(),
            period: single(yaml_values(&block, "Period"), &format!("{id}: Period")).to_owned(),
            threshold: optional("Threshold"),
            threshold_metric_id: optional("ThresholdMetricId"),
            comparison: one("ComparisonOperator"),
            evaluation_periods: one("EvaluationPeriods"),
            datapoints_to_alarm: one("DatapointsToAlarm"),
            treat_missing_data: one("TreatMissingData"),
        });
    }
    alarms.sort();
    alarms
}

/// The text of `export const NAME ... = [` up to its closing `]` (a line of its own) in the construct.
pub fn ts_const_block<'a>(construct: &'a str, name: &str) -> &'a str {
    let start = construct
        .find(&format!("export const {name}"))
        .unwrap_or_else(|| panic!("{CONSTRUCT} has no `export const {name}`"));
    let rest = &construct[start..];
    &rest[..rest
        .find("\n]")
        .expect("the array ends in a line starting with `]`")]
}

/// A TypeScript value as text: a 'string' unquoted, anything else as written.
pub fn ts_unquote(value: &str) -> String {
    let value = value.trim().trim_end_matches(',').trim();
    value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value)
        .to_owned()
}

/// The `key: value` fields of a one-line TypeScript object literal (`{ a: 'x', b: ['y'] }`),
/// split on the commas outside quotes and brackets.
pub fn ts_fields(object: &str) -> Vec<(String, String)> {
    let inner = object.trim().trim_end_matches(',').trim();
    let inner = inner
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(inner);
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once(':')
                .unwrap_or_else(|| panic!("not a field: {p}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// The elements of a TypeScript array of strings (`['a', 'b']`).
pub fn ts_strings(array: &str) -> Vec<String> {
    let inner = array.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(ts_unquote)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The construct's alarms: TAGBEEZ_ALARMS, and TAGBEEZ_DRIFT_ALARMS with each `perTag` one
/// expanded over `tags` (as the construct does at synth time with model/labels.json's), named
/// `<name>-<tag>`, with the id `<id><Tag>` and the dimension `tag`.
pub fn cdk_alarms(construct: &str, tags: &[String]) -> Vec<Alarm> {
    let mut alarms: Vec<Alarm> = ["TAGBEEZ_ALARMS", "TAGBEEZ_DRIFT_ALARMS"]
        .into_iter()
        .flat_map(|name| cdk_alarm_specs(construct, name))
        .flat_map(|(alarm, per_tag)| {
            if !per_tag {
                return vec![alarm];
            }
            tags.iter()
                .map(|tag| Alarm {
                    name: format!("{}-{tag}", alarm.name),
                    id: format!("{}{}", alarm.id, pascal_case(tag)),
                    dimensions: vec![("tag".to_owned(), tag.clone())],
                    metrics: alarm.metrics.clone(),
                    namespace: alarm.namespace.clone(),
                    condition: alarm.condition.clone(),
                    expression: alarm.expression.clone(),
                    stat: alarm.stat.clone(),
                    period: alarm.period.clone(),
                    threshold: alarm.threshold.clone(),
                    threshold_metric_id: alarm.threshold_metric_id.clone(),
                    comparison: alarm.comparison.clone(),
                    evaluation_periods: alarm.evaluation_periods.clone(),
                    datapoints_to_alarm: alarm.datapoints_to_alarm.clone(),
                    treat_missing_data: alarm.treat_missing_data.clone(),
                })
                .collect()
        })
        .collect();
    alarms.sort();
    alarms
}

/// The alarm specs of one exported array of the construct, each with its `perTag`.
fn cdk_alarm_specs(construct: &str, array: &str) -> Vec<(Alarm, bool)> {
    let block = ts_const_block(construct, array);
    let mut objects: Vec<Vec<(String, String)>> = Vec::new();
    for line in block.lines().skip(1) {
        let trimmed = line.trim();
        if trimmed == "{" {
            objects.push(Vec::new());
            continue;
        }
        let Some(fields) = objects.last_mut() else {
            continue;
        };
        // Only `key: value` lines: a continued string or a comment is skipped.
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        fields.push((key.to_owned(), value.trim().to_owned()));
    }
    objects
        .into_iter()
        .map(|fields| {
            let get = |key: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| ts_unquote(v))
            };
            let req = |key: &str| {
                get(key).unwrap_or_else(|| panic!("{CONSTRUCT}: alarm without {key}: {fields:?}"))
            };
            let mut metrics: Vec<(String, String)> = match (get("metric"), get("metrics")) {
                (Some(metric), None) => vec![(String::new(), metric)],
                (None, Some(map)) => ts_fields(&map)
                    .into_iter()
                    .map(|(k, v)| (k, ts_unquote(&v)))
                    .collect(),
                other => panic!("{CONSTRUCT}: an alarm has metric or metrics: {other:?}"),
            };
            metrics.sort();
            let alarm = Alarm {
                name: req("name"),
                id: req("id"),
                namespace: req("namespace"),
                condition: get("option"),
                metrics,
                dimensions: Vec::new(),
                expression: get("expression"),
                stat: req("stat"),
                period: req("period"),
                threshold: get("threshold"),
                threshold_metric_id: get("thresholdMetricId"),
                comparison: req("comparison"),
                evaluation_periods: req("evaluationPeriods"),
                datapoints_to_alarm: req("datapointsToAlarm"),
                treat_missing_data: req("treatMissingData"),
            };
            let per_tag = match get("perTag").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => panic!("{CONSTRUCT}: perTag: {other}"),
            };
            (alarm, per_tag)
        })
        .collect()
}

/// One line (or one line per dimension value, with `search`) of a dashboard graph.
#[derive(Debug, PartialEq, Eq)]
pub struct Series {
    pub metric: String,
    pub stat: String,
    /// `service` or `AWS/Lambda`.
    pub namespace: String,
    /// The dimension names of a SEARCH; `None` for the no-dimension rollup, a metric's own
    /// dimensions or a Lambda metric.
    pub search: Option<Vec<String>>,
    /// The (name, value) dimensions of one service series drawn without SEARCH: the drift row's
    /// `tag`; none for a rollup. (A Lambda metric's FunctionName is checked apart.)
    pub dimensions: Vec<(String, String)>,
    pub label: Option<String>,
    pub right: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Widget {
    pub title: String,
    /// The alarm id of an alarm widget.
    pub alarm: Option<String>,
    pub series: Vec<Series>,
}

/// template.yaml's DashboardBody (Fn::Sub) as JSON: `${MetricsNamespace}` becomes `NS`,
/// `${TagbeezFunction}` `FUNCTION`, `${XAlarm.Arn}` `ALARM:X` and `${AWS::Region}` `REGION`.
pub fn sam_dashboard_json(template: &str) -> serde_json::Value {
    let block = sam_resource(template, "Dashboard");
    assert!(block.contains("Type: AWS::CloudWatch::Dashboard"));
    let body = block
        .split("DashboardBody: !Sub |\n")
        .nth(1)
        .expect("Dashboard has `DashboardBody: !Sub |`");
    let mut text = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        text.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 2..end];
        text.push_str(&match name {
            "MetricsNamespace" => "NS".to_owned(),
            "TagbeezFunction" => "FUNCTION".to_owned(),
            "AWS::Region" => "REGION".to_owned(),
            other => match other.strip_suffix("Alarm.Arn") {
                Some(alarm) => format!("ALARM:{alarm}"),
                None => panic!("unexpected ${{{other}}} in the DashboardBody"),
            },
        });
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("template.yaml DashboardBody is not JSON: {e}\n{text}"))
}

/// `SEARCH('{"NS","dim",...} MetricName="metric"', 'Stat', 300)` as (dimensions, metric, stat).
pub fn parse_search(expression: &str) -> (Vec<String>, String, String) {
    let rest = expression
        .strip_prefix("SEARCH('{")
        .unwrap_or_else(|| panic!("not a SEARCH over a schema: {expression}"));
    let (schema, rest) = rest.split_once('}').unwrap();
    let mut names = schema
        .split(',')
        .map(|n| n.trim().trim_matches('"').to_owned());
    assert_eq!(
        names.next().as_deref(),
        Some("NS"),
        "{expression}: the namespace must be MetricsNamespace"
    );
    let dims: Vec<String> = names.collect();
    let rest = rest
        .trim()
        .strip_prefix("MetricName=\"")
        .unwrap_or_else(|| panic!("{expression}"));
    let (metric, rest) = rest.split_once('"').unwrap();
    let rest = rest
        .strip_prefix("', '")
        .unwrap_or_else(|| panic!("{expression}"));
    let (stat, rest) = rest.split_once('\'').unwrap();
    assert_eq!(rest, ", 300)", "{expression}: period 300");
    (dims, metric.to_owned(), stat.to_owned())
}

pub fn sam_dashboard(template: &str) -> Vec<Widget> {
    let body = sam_dashboard_json(template);
    let widgets = body["widgets"].as_array().expect("widgets");
    widgets
        .iter()
        .map(|w| {
            let props = &w["properties"];
            let title = props["title"].as_str().expect("title").to_owned();
            let alarm = props["annotations"]["alarms"].as_array().map(|alarms| {
                assert_eq!(alarms.len(), 1, "{title}");
                let arn = alarms[0].as_str().unwrap();
                arn.strip_prefix("ALARM:")
                    .unwrap_or_else(|| panic!("{title}: {arn}"))
                    .to_owned()
            });
            let mut series = Vec::new();
            for entry in props["metrics"].as_array().into_iter().flatten() {
                let entry = entry.as_array().expect("a metrics entry is an array");
                let opts = entry
                    .last()
                    .filter(|o| o.is_object())
                    .cloned()
                    .unwrap_or_default();
                let right = opts["yAxis"].as_str() == Some("right");
                let label = opts["label"].as_str().map(str::to_owned);
                if let Some(expression) = entry[0]["expression"].as_str() {
                    let (dims, metric, stat) = parse_search(expression);
                    assert_eq!(label, None, "{title}: a SEARCH is labelled by CloudWatch");
                    series.push(Series {
                        metric,
                        stat,
                        namespace: "service".into(),
                        search: Some(dims),
                        dimensions: Vec::new(),
                        label,
                        right,
                    });
                    continue;
                }
                let strings: Vec<&str> = entry.iter().filter_map(|v| v.as_str()).collect();
                assert_eq!(props["period"], 300, "{title}");
                // Average is the dashboard's default statistic: the CDK leaves it out, and so
                // does the template.
                let stat = opts["stat"].as_str().unwrap_or("Average").to_owned();
                let (namespace, metric, dims) = (strings[0], strings[1], &strings[2..]);
                assert_eq!(
                    dims.len() % 2,
                    0,
                    "{title}: {metric}: dimension name, value, ..."
                );
                let mut dimensions: Vec<(String, String)> = Vec::new();
                let namespace = match namespace {
                    "NS" => {
                        dimensions = dims
                            .chunks(2)
                            .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
                            .collect();
                        "service"
                    }
                    "AWS/Lambda" => {
                        assert_eq!(dims, ["FunctionName", "FUNCTION"], "{title}");
                        "AWS/Lambda"
                    }
                    other => panic!("{title}: namespace {other}"),
                };
                series.push(Series {
                    metric: metric.to_owned(),
                    stat,
                    namespace: namespace.to_owned(),
                    search: None,
                    dimensions,
                    label,
                    right,
                });
            }
            Widget {
                title,
                alarm,
                series,
            }
        })
        .collect()
}

/// The construct's dashboard, with each `perTag` series expanded over `tags` into one line per
/// tag (the `tag` dimension, labelled by the tag), as the construct draws it.
pub fn cdk_dashboard(construct: &str, tags: &[String]) -> Vec<Widget> {
    let block = ts_const_block(construct, "TAGBEEZ_DASHBOARD");
    let mut widgets: Vec<Widget> = Vec::new();
    for line in block.lines().skip(1) {
        let trimmed = line.trim();
        if trimmed.starts_with("{ title: ") || trimmed.starts_with("title: ") {
            let fields = ts_fields(if trimmed.starts_with('{') {
                trimmed
            } else {
                trimmed.trim_end_matches(',')
            });
            let get = |key: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| ts_unquote(v))
            };
            widgets.push(Widget {
                title: get("title").unwrap(),
                alarm: get("alarm"),
                series: Vec::new(),
            });
        } else if trimmed.starts_with("{ metric: ") {
            let fields = ts_fields(trimmed);
            let get = |key: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let widget = widgets.last_mut().expect("a series inside a widget");
            let series = |dimensions: Vec<(String, String)>, label: Option<String>| Series {
                metric: ts_unquote(&get("metric").unwrap()),
                stat: ts_unquote(&get("stat").expect("stat")),
                namespace: get("namespace")
                    .map(|n| ts_unquote(&n))
                    .unwrap_or_else(|| "service".into()),
                search: get("search").map(|s| ts_strings(&s)),
                dimensions,
                label,
                right: get("right").as_deref() == Some("true"),
            };
            if get("perTag").as_deref() == Some("true") {
                assert_eq!(
                    get("label"),
                    None,
                    "a perTag series is labelled by its tags"
                );
                for tag in tags {
                    widget.series.push(series(
                        vec![("tag".to_owned(), tag.clone())],
                        Some(tag.clone()),
                    ));
                }
            } else {
                widget
                    .series
                    .push(series(Vec::new(), get("label").map(|l| ts_unquote(&l))));
            }
        }
    }
    widgets
}
