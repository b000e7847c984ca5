//! The deployment files agree with the code: the SAM template and the CDK construct expose
//! exactly the router's routes, and pass every setting the README documents for Lambda, so a
//! new route or setting cannot ship half-wired. They also define the same four alarms and the
//! same dashboard over the service's metric names only, and the same feedback table (TTL,
//! encryption, PutItem-only access). (`infra/test/` checks the synthesized CDK template against
//! the construct's route list, alarm and dashboard specs.)

use std::collections::BTreeSet;
use std::path::Path;

use tagbeez::api::ROUTES;

/// Settings that only the local server reads: Lambda must not set them. The back-pressure
/// settings are inert in Lambda, which gives an instance one request at a time.
const LOCAL_ONLY: &[&str] = &[
    "HOST",
    "PORT",
    "DYNAMODB_ENDPOINT",
    "INFERENCE_CONCURRENCY",
    "INFERENCE_QUEUE",
    "INFERENCE_QUEUE_TIMEOUT_MS",
];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `RouteKey: GET /path` lines of the SAM template.
fn template_routes() -> Vec<String> {
    read("template.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RouteKey:"))
        .map(|r| r.trim().trim_matches(['"', '\'']).to_owned())
        .collect()
}

/// The variable names of the README's configuration table.
fn readme_settings() -> Vec<String> {
    let readme = read("README.md");
    let table = readme
        .split("### Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    let table = table.split("\n#").next().unwrap();
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// The variable names `src/config.rs` reads (`get("NAME")`).
fn config_settings() -> BTreeSet<String> {
    read("src/config.rs")
        .split("get(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_sam_template_routes_are_exactly_the_routers() {
    let routes = template_routes();
    let unique: BTreeSet<&str> = routes.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), routes.len(), "a route twice: {routes:?}");
    assert_eq!(unique, ROUTES.iter().copied().collect(), "template.yaml");
}

#[test]
fn the_readme_documents_every_setting_the_code_reads() {
    let documented: BTreeSet<String> = readme_settings().into_iter().collect();
    assert_eq!(documented, config_settings());
    assert!(documented.len() >= 12, "{documented:?}");
}

#[test]
fn sam_and_cdk_pass_every_lambda_setting_and_no_local_one() {
    let template = read("template.yaml");
    let construct = read("infra/lib/tagbeez-service.ts");
    for name in readme_settings() {
        let in_template = template.contains(&format!("{name}:"));
        let in_construct = construct.contains(&format!("{name}:"));
        let lambda = !LOCAL_ONLY.contains(&name.as_str());
        assert_eq!(in_template, lambda, "template.yaml and {name}");
        assert_eq!(
            in_construct, lambda,
            "infra/lib/tagbeez-service.ts and {name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics, alarms and the dashboard (issue 11): template.yaml and the CDK construct define the
// same four alarms and the same dashboard, over the service's metric names only.

/// The service's metric names: what `src/telemetry` records.
const METRICS: &[&str] = tagbeez::telemetry::names::ALL;

/// The metrics that are also written with no dimensions (what the alarms read).
const ROLLUPS: &[&str] = tagbeez::telemetry::names::ROLLUPS;

/// The AWS/Lambda metrics (FunctionName dimension) the deployment files may use.
const LAMBDA_METRICS: &[&str] = &["Throttles"];

const CONSTRUCT: &str = "infra/lib/tagbeez-service.ts";

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The resources of template.yaml: (logical id, the lines under it).
fn sam_resources(template: &str) -> Vec<(String, String)> {
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

fn sam_resource(template: &str, id: &str) -> String {
    sam_resources(template)
        .into_iter()
        .find(|(name, _)| name == id)
        .unwrap_or_else(|| panic!("template.yaml has no resource {id}"))
        .1
}

/// `key: value` of a YAML line (a leading `- ` dropped), comments and blank lines skipped.
fn yaml_pair(line: &str) -> Option<(&str, &str)> {
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
fn yaml_values<'a>(block: &'a str, key: &str) -> Vec<&'a str> {
    block
        .lines()
        .filter_map(yaml_pair)
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

/// The lines nested under the first `key:` line of a YAML block.
fn yaml_child(block: &str, key: &str) -> String {
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
fn single<T: Ord + std::fmt::Debug>(values: impl IntoIterator<Item = T>, what: &str) -> T {
    let set: BTreeSet<T> = values.into_iter().collect();
    assert_eq!(set.len(), 1, "{what}: expected one value, got {set:?}");
    set.into_iter().next().unwrap()
}

/// One alarm, as both files describe it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Alarm {
    /// The alarm name after `<stack name>-`.
    name: String,
    /// The construct's id / the template's logical id without `Alarm`.
    id: String,
    /// `service` (the service's own namespace, a no-dimension rollup) or `AWS/Lambda`.
    namespace: String,
    /// Metric ids to metric names (id "" for a single-metric alarm).
    metrics: Vec<(String, String)>,
    expression: Option<String>,
    stat: String,
    period: String,
    threshold: String,
    comparison: String,
    evaluation_periods: String,
    datapoints_to_alarm: String,
    treat_missing_data: String,
}

fn sam_alarms(template: &str) -> Vec<Alarm> {
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
        } else {
            assert!(
                !block.contains("Dimensions:"),
                "{id}: the alarms read the no-dimension rollups"
            );
        }
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
        alarms.push(Alarm {
            name,
            id: id
                .strip_suffix("Alarm")
                .unwrap_or_else(|| panic!("{id}: alarm logical ids end in Alarm"))
                .to_owned(),
            namespace,
            metrics,
            expression: expressions.first().map(|e| e.to_string()),
            stat: single(stats, &format!("{id}: statistic")).to_owned(),
            period: single(yaml_values(&block, "Period"), &format!("{id}: Period")).to_owned(),
            threshold: one("Threshold"),
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
fn ts_const_block<'a>(construct: &'a str, name: &str) -> &'a str {
    let start = construct
        .find(&format!("export const {name}"))
        .unwrap_or_else(|| panic!("{CONSTRUCT} has no `export const {name}`"));
    let rest = &construct[start..];
    &rest[..rest
        .find("\n]")
        .expect("the array ends in a line starting with `]`")]
}

/// A TypeScript value as text: a 'string' unquoted, anything else as written.
fn ts_unquote(value: &str) -> String {
    let value = value.trim().trim_end_matches(',').trim();
    value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value)
        .to_owned()
}

/// The `key: value` fields of a one-line TypeScript object literal (`{ a: 'x', b: ['y'] }`),
/// split on the commas outside quotes and brackets.
fn ts_fields(object: &str) -> Vec<(String, String)> {
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
fn ts_strings(array: &str) -> Vec<String> {
    let inner = array.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(ts_unquote)
        .filter(|s| !s.is_empty())
        .collect()
}

fn cdk_alarms(construct: &str) -> Vec<Alarm> {
    let block = ts_const_block(construct, "TAGBEEZ_ALARMS");
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
    let mut alarms: Vec<Alarm> = objects
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
            Alarm {
                name: req("name"),
                id: req("id"),
                namespace: req("namespace"),
                metrics,
                expression: get("expression"),
                stat: req("stat"),
                period: req("period"),
                threshold: req("threshold"),
                comparison: req("comparison"),
                evaluation_periods: req("evaluationPeriods"),
                datapoints_to_alarm: req("datapointsToAlarm"),
                treat_missing_data: req("treatMissingData"),
            }
        })
        .collect();
    alarms.sort();
    alarms
}

/// One line (or one line per dimension value, with `search`) of a dashboard graph.
#[derive(Debug, PartialEq, Eq)]
struct Series {
    metric: String,
    stat: String,
    /// `service` or `AWS/Lambda`.
    namespace: String,
    /// The dimension names of a SEARCH; `None` for the no-dimension rollup or a Lambda metric.
    search: Option<Vec<String>>,
    label: Option<String>,
    right: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Widget {
    title: String,
    /// The alarm id of an alarm widget.
    alarm: Option<String>,
    series: Vec<Series>,
}

/// template.yaml's DashboardBody (Fn::Sub) as JSON: `${MetricsNamespace}` becomes `NS`,
/// `${TagbeezFunction}` `FUNCTION`, `${XAlarm.Arn}` `ALARM:X` and `${AWS::Region}` `REGION`.
fn sam_dashboard_json(template: &str) -> serde_json::Value {
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
fn parse_search(expression: &str) -> (Vec<String>, String, String) {
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

fn sam_dashboard(template: &str) -> Vec<Widget> {
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
                        label,
                        right,
                    });
                    continue;
                }
                let strings: Vec<&str> = entry.iter().filter_map(|v| v.as_str()).collect();
                assert_eq!(props["period"], 300, "{title}");
                let stat = opts["stat"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{title}: no stat"))
                    .to_owned();
                let (namespace, metric, dims) = (strings[0], strings[1], &strings[2..]);
                let namespace = match namespace {
                    "NS" => {
                        assert!(
                            dims.is_empty(),
                            "{title}: {metric} without SEARCH must be the rollup"
                        );
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

fn cdk_dashboard(construct: &str) -> Vec<Widget> {
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
            widget.series.push(Series {
                metric: ts_unquote(&get("metric").unwrap()),
                stat: ts_unquote(&get("stat").expect("stat")),
                namespace: get("namespace")
                    .map(|n| ts_unquote(&n))
                    .unwrap_or_else(|| "service".into()),
                search: get("search").map(|s| ts_strings(&s)),
                label: get("label").map(|l| ts_unquote(&l)),
                right: get("right").as_deref() == Some("true"),
            });
        }
    }
    widgets
}

#[test]
fn sam_and_cdk_define_the_same_four_alarms() {
    let sam = sam_alarms(&read("template.yaml"));
    let cdk = cdk_alarms(&read(CONSTRUCT));
    assert_eq!(sam, cdk);
    let names: Vec<&str> = sam.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
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
        (error_rate.stat.as_str(), error_rate.threshold.as_str()),
        ("Sum", "1")
    );
    let p99 = by_name("p99-latency");
    assert_eq!(
        p99.metrics,
        [(String::new(), "tagbeez_request_latency_ms".into())]
    );
    assert_eq!((p99.stat.as_str(), p99.threshold.as_str()), ("p99", "1000"));
    let store = by_name("store-errors");
    assert_eq!(
        store.metrics,
        [(String::new(), "tagbeez_store_errors".into())]
    );
    assert_eq!(
        (store.stat.as_str(), store.threshold.as_str()),
        ("Sum", "5")
    );
    let throttles = by_name("throttles");
    assert_eq!(throttles.metrics, [(String::new(), "Throttles".into())]);
    assert_eq!(
        (
            throttles.namespace.as_str(),
            throttles.stat.as_str(),
            throttles.threshold.as_str()
        ),
        ("AWS/Lambda", "Sum", "0")
    );
    for alarm in &sam {
        assert_eq!(alarm.period, "300", "{}", alarm.name);
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
            assert_eq!(alarm.namespace, "AWS/Lambda");
        }
    }
}

#[test]
fn sam_and_cdk_define_the_same_dashboard() {
    let template = read("template.yaml");
    let sam = sam_dashboard(&template);
    let cdk = cdk_dashboard(&read(CONSTRUCT));
    assert_eq!(sam, cdk);
    // The four alarms first, then the graphs.
    let alarm_ids: Vec<String> = sam_alarms(&template).into_iter().map(|a| a.id).collect();
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
    let alarms = sam_alarms(&template)
        .into_iter()
        .chain(cdk_alarms(&construct));
    let alarm_metrics = alarms.flat_map(|a| {
        a.metrics
            .into_iter()
            .map(move |(_, m)| (a.namespace.clone(), m))
    });
    let series = sam_dashboard(&template)
        .into_iter()
        .chain(cdk_dashboard(&construct))
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
        (CONSTRUCT, cdk_dashboard(&read(CONSTRUCT))),
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

/// The actions of each IAM statement of a policy block that names `resource`.
fn sam_statements_on(block: &str, resource: &str) -> Vec<Vec<String>> {
    let mut statements: Vec<String> = Vec::new();
    for line in block.lines() {
        if line.trim().starts_with("- Effect:") {
            statements.push(String::new());
        }
        if let Some(statement) = statements.last_mut() {
            statement.push_str(line);
            statement.push('\n');
        }
    }
    statements
        .into_iter()
        .filter(|s| s.contains(resource))
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
            actions
        })
        .collect()
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
