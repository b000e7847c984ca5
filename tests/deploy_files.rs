//! The deployment files agree with the code: the SAM template and the CDK construct expose
//! exactly the router's routes, and pass every setting docs/deploy.md documents for Lambda, so a
//! new route or setting cannot ship half-wired. And they agree with each other on the issue 22
//! options: the queue in (FIFO, redrive, visibility timeout, the event source mapping), events
//! out (PutEvents on the one bus, EVENT_BUS_NAME and EVENT_TAGS) and bulk tagging (the one
//! state machine file, its substitutions and settings, its role), none of which gives a role a
//! wildcard resource. And on issue 23's parts: the profile and experiment tables (keys, billing,
//! encryption, point-in-time recovery, TTL, retention), the function's actions on each, their
//! names and settings in its environment, and the two execute-api outputs that authorise the
//! `/shops/*` admin routes apart from the callers' routes. (Their alarms, dashboard and feedback
//! table are checked in
//! `tests/deploy_monitoring.rs`, the state machine's definition in `tests/bulk_definition.rs`;
//! the parsing they use is in `tests/support/deploy.rs`.)

use std::collections::{BTreeMap, BTreeSet};

use tagbeez::api::ROUTES;

#[path = "support/deploy.rs"]
mod deploy;

use deploy::{
    read, sam_parameter, sam_parameter_range, sam_resource, sam_resources, sam_section,
    sam_statements, sam_statements_on, ts_check_int, ts_strings, unquote, yaml_child, yaml_values,
    CONSTRUCT,
};

/// Settings that only the local server reads: Lambda must not set them. The back-pressure
/// settings are inert in Lambda, which gives an instance one request at a time.
const LOCAL_ONLY: &[&str] = &[
    "HOST",
    "PORT",
    // The greeting is for a person at a terminal; Lambda's stderr never is one.
    "LOG_FORMAT",
    "DYNAMODB_ENDPOINT",
    "INFERENCE_CONCURRENCY",
    "INFERENCE_QUEUE",
    "INFERENCE_QUEUE_TIMEOUT_MS",
    "EVENTS_ENDPOINT",
];

/// `RouteKey: GET /path` lines of the SAM template.
fn template_routes() -> Vec<String> {
    read("template.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RouteKey:"))
        .map(|r| r.trim().trim_matches(['"', '\'']).to_owned())
        .collect()
}

/// The variable names of the settings table in docs/deploy.md (`## Settings`): every `NAME` in
/// a row's first cell (a row may document two related settings).
fn documented_settings() -> Vec<String> {
    let doc = read("docs/deploy.md");
    let table = doc
        .split("\n## Settings\n")
        .nth(1)
        .expect("docs/deploy.md has a `## Settings` section");
    let table = table.split("\n#").next().unwrap();
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|cell| {
            cell.split('`')
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|name| !name.is_empty() && !name.starts_with(','))
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
fn the_settings_table_documents_every_setting_the_code_reads() {
    let documented: BTreeSet<String> = documented_settings().into_iter().collect();
    assert_eq!(documented, config_settings());
    assert!(documented.len() >= 12, "{documented:?}");
}

#[test]
fn sam_and_cdk_pass_every_lambda_setting_and_no_local_one() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    for name in documented_settings() {
        let in_template = template.contains(&format!("{name}:"));
        let in_construct = construct.contains(&format!("{name}:"));
        let lambda = !LOCAL_ONLY.contains(&name.as_str());
        assert_eq!(in_template, lambda, "template.yaml and {name}");
        assert_eq!(in_construct, lambda, "{CONSTRUCT} and {name}");
    }
}

/// Each issue 22 setting: the SAM parameter and the construct's `checkInt` name, with the same
/// default and range.
const OPTION_SETTINGS: &[(&str, &str)] = &[
    ("QueueBatchSize", "queue.batchSize"),
    (
        "QueueBatchingWindowSeconds",
        "queue.maxBatchingWindow (seconds)",
    ),
    ("QueueMaxReceiveCount", "queue.maxReceiveCount"),
    ("EventsTimeoutMs", "eventsTimeout (ms)"),
    ("BulkResultsExpirationDays", "bulk.resultsExpiration (days)"),
    ("BulkMaxConcurrency", "bulk.maxConcurrency"),
    ("BulkMaxItemsPerBatch", "bulk.maxItemsPerBatch"),
    (
        "BulkToleratedFailurePercentage",
        "bulk.toleratedFailurePercentage",
    ),
    ("ProfileCacheSeconds", "profileCache (seconds)"),
    ("ProfileTimeoutMs", "profileTimeout (ms)"),
    ("DriftWindow", "driftWindow"),
];

#[test]
fn sam_and_cdk_options_have_the_same_defaults_and_ranges() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    for (parameter, setting) in OPTION_SETTINGS {
        assert_eq!(
            sam_parameter_range(&template, parameter),
            ts_check_int(&construct, setting),
            "template.yaml {parameter} and {CONSTRUCT} {setting}: [default, min, max]"
        );
    }
    // The switches: all off by default.
    for (parameter, default) in [
        ("QueueIn", "false"),
        ("QueueType", "fifo"),
        ("EventBus", "none"),
        ("EventTags", "Hot-buyer"),
        ("HotBuyerQueue", "false"),
        ("Bulk", "false"),
        ("BulkBucketName", ""),
        ("DriftByShop", "on"),
    ] {
        let block = sam_parameter(&template, parameter);
        assert_eq!(
            yaml_values(&block, "Default")
                .iter()
                .map(|v| unquote(v))
                .collect::<Vec<_>>(),
            [default],
            "{parameter}"
        );
    }
    for needle in [
        "options.type ?? 'fifo'",
        "props.eventBus ?? 'none'",
        "const DEFAULT_EVENT_TAGS = ['Hot-buyer'] as const;",
        "readonly queue?: boolean | TagbeezQueueOptions;",
        "readonly bulk?: boolean | TagbeezBulkOptions;",
        "readonly hotBuyerQueue?: boolean;",
        "DRIFT_BY_SHOP: (settings.driftByShop ?? true) ? 'on' : 'off',",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }
}

/// The `"N": {Seconds: M}` entries of the QueueVisibilityTimeout mapping.
fn visibility_mapping(template: &str) -> Vec<(u32, u32)> {
    let (_, block) = sam_section(template, "Mappings")
        .into_iter()
        .find(|(k, _)| k == "QueueVisibilityTimeout")
        .expect("template.yaml has the QueueVisibilityTimeout mapping");
    block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .map(|l| {
            let (key, value) = l.trim().split_once(':').unwrap();
            let seconds = value
                .trim()
                .strip_prefix("{Seconds:")
                .and_then(|v| v.strip_suffix('}'))
                .unwrap_or_else(|| panic!("not {{Seconds: N}}: {l}"));
            (
                unquote(key).parse().unwrap(),
                seconds.trim().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_queue_is_fifo_with_a_dead_letter_queue_and_six_times_the_function_timeout_in_both_files() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);

    let queue = sam_resource(&template, "MessageQueue");
    let dlq = sam_resource(&template, "DeadLetterQueue");
    for (id, block) in [("MessageQueue", &queue), ("DeadLetterQueue", &dlq)] {
        assert!(block.contains("Type: AWS::SQS::Queue"), "{id}");
        assert_eq!(yaml_values(block, "Condition"), ["QueueEnabled"], "{id}");
        assert_eq!(
            yaml_values(block, "FifoQueue"),
            ["!If [QueueIsFifo, true, !Ref AWS::NoValue]"],
            "{id}"
        );
        assert_eq!(
            yaml_values(block, "ContentBasedDeduplication"),
            ["!If [QueueIsFifo, false, !Ref AWS::NoValue]"],
            "{id}"
        );
        assert_eq!(yaml_values(block, "SqsManagedSseEnabled"), ["true"], "{id}");
    }
    let redrive = yaml_child(&queue, "RedrivePolicy");
    assert_eq!(
        yaml_values(&redrive, "deadLetterTargetArn"),
        ["!GetAtt DeadLetterQueue.Arn"]
    );
    assert_eq!(
        yaml_values(&redrive, "maxReceiveCount"),
        ["!Ref QueueMaxReceiveCount"]
    );
    assert_eq!(yaml_values(&dlq, "MessageRetentionPeriod"), ["1209600"]);
    assert!(template.contains("  QueueIsFifo: !Equals [!Ref QueueType, fifo]\n"));
    // Visibility timeout: 6 x the function's Timeout, for every Timeout the template allows.
    assert_eq!(
        yaml_values(&queue, "VisibilityTimeout"),
        ["!FindInMap [QueueVisibilityTimeout, !Ref Timeout, Seconds]"]
    );
    let [_, min, max] = sam_parameter_range(&template, "Timeout");
    let (min, max): (u32, u32) = (min.parse().unwrap(), max.parse().unwrap());
    let mapping = visibility_mapping(&template);
    assert_eq!(
        mapping.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        (min..=max).collect::<Vec<_>>(),
        "one entry per allowed Timeout"
    );
    for (timeout, visibility) in &mapping {
        assert_eq!(*visibility, 6 * timeout, "Timeout {timeout}");
    }
    for needle in [
        "export const TAGBEEZ_QUEUE_VISIBILITY_FACTOR = 6;",
        "visibilityTimeout: Duration.seconds(functionTimeout.toSeconds() * TAGBEEZ_QUEUE_VISIBILITY_FACTOR)",
        "fifo ? { fifo: true, contentBasedDeduplication: false } : {}",
        "deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP",
        "fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID",
        "encryption: sqs.QueueEncryption.SQS_MANAGED",
        "deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount }",
        "retentionPeriod: Duration.days(14)",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }
    assert_eq!(
        yaml_values(&queue, "DeduplicationScope"),
        ["!If [QueueIsFifo, messageGroup, !Ref AWS::NoValue]"]
    );
    assert_eq!(
        yaml_values(&queue, "FifoThroughputLimit"),
        ["!If [QueueIsFifo, perMessageGroupId, !Ref AWS::NoValue]"]
    );

    // The event source mapping: partial batch responses, the batch size, no window for FIFO.
    let mapping = sam_resource(&template, "QueueEventSourceMapping");
    assert!(mapping.contains("Type: AWS::Lambda::EventSourceMapping"));
    assert_eq!(
        yaml_values(&mapping, "EventSourceArn"),
        ["!GetAtt MessageQueue.Arn"]
    );
    assert_eq!(
        yaml_values(&mapping, "FunctionName"),
        ["!Ref TagbeezFunction"]
    );
    assert_eq!(
        yaml_values(&mapping, "FunctionResponseTypes"),
        ["[ReportBatchItemFailures]"]
    );
    assert_eq!(yaml_values(&mapping, "BatchSize"), ["!Ref QueueBatchSize"]);
    assert_eq!(
        yaml_values(&mapping, "MaximumBatchingWindowInSeconds"),
        ["!If [QueueIsFifo, !Ref AWS::NoValue, !Ref QueueBatchingWindowSeconds]"]
    );
    let [batch_default, _, batch_max] = sam_parameter_range(&template, "QueueBatchSize");
    assert_eq!((batch_default.as_str(), batch_max.as_str()), ("10", "10"));
    for needle in [
        "reportBatchItemFailures: true",
        "maxBatchingWindow: fifo ? undefined : Duration.seconds(windowSeconds)",
        "eventSourceArn: queue.queueArn",
        "target: service.function",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }
}

/// The elements of an exported `[...] as const` array of strings in the construct.
fn ts_string_array(construct: &str, name: &str) -> Vec<String> {
    let start = construct
        .find(&format!("export const {name} = ["))
        .unwrap_or_else(|| panic!("{CONSTRUCT} has no `export const {name} = [`"));
    let rest = &construct[start..];
    let body = &rest[rest.find('[').unwrap()..=rest.find(']').unwrap()];
    ts_strings(&body.replace('\n', " "))
}

/// The resource lines of a statement (`Resource: x`, or the items of a `Resource:` list or
/// `!If`/`!Sub`), joined.
fn statement_resource(statement: &str) -> String {
    statement
        .split("Resource:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Resource in\n{statement}"))
        .split("Condition:")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

/// No resource of a statement is a wildcard: not "*", no service-wide ARN.
fn assert_no_wildcard(what: &str, resource: &str) {
    for bad in ["\"*\"", "'*'", ":::*", ":*:*", "function:*"] {
        assert!(
            !resource.contains(bad),
            "{what}: a wildcard resource ({bad}): {resource}"
        );
    }
    assert_ne!(resource.trim(), "*", "{what}: Resource *");
}

#[test]
fn the_function_role_gets_queue_and_bus_actions_on_those_resources_only() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    let role = sam_resource(&template, "FunctionRole");
    // The permission statements (not the trust policy's).
    let statements: Vec<(Vec<String>, String)> = sam_statements(&role)
        .into_iter()
        .filter(|(actions, _)| actions != &["sts:AssumeRole"])
        .collect();

    let queue_actions = ts_string_array(&construct, "TAGBEEZ_QUEUE_ACTIONS");
    assert_eq!(
        queue_actions,
        [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility"
        ]
    );
    let event_actions = ts_string_array(&construct, "TAGBEEZ_EVENT_ACTIONS");
    assert_eq!(event_actions, ["events:PutEvents"]);

    // SAM: one statement per option, its actions exactly the construct's, on its one resource.
    let on = |prefix: &str| -> Vec<&(Vec<String>, String)> {
        statements
            .iter()
            .filter(|(actions, _)| actions.iter().any(|a| a.starts_with(prefix)))
            .collect()
    };
    let sqs = on("sqs:");
    assert_eq!(sqs.len(), 1, "{sqs:?}");
    assert_eq!(sqs[0].0, queue_actions);
    assert_eq!(statement_resource(&sqs[0].1), "!GetAtt MessageQueue.Arn");
    let bus = on("events:");
    assert_eq!(bus.len(), 1, "{bus:?}");
    assert_eq!(bus[0].0, event_actions);
    let bus_resource = statement_resource(&bus[0].1);
    for part in [
        "- EventBusCreated",
        "- !GetAtt TagbeezEventBus.Arn",
        "- EventBusIsArn",
        "- !Ref EventBus",
        "- !Sub arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBus}",
    ] {
        assert!(bus_resource.contains(part), "the bus policy lacks {part}: {bus_resource}");
    }
    for (actions, statement) in &statements {
        assert_no_wildcard(
            &format!("FunctionRole {actions:?}"),
            &statement_resource(statement),
        );
    }
    // Nothing on the dead-letter queue, the example queue or the bulk bucket.
    for other in [
        "DeadLetterQueue",
        "HotBuyerEventsQueue",
        "BulkBucket",
        "BulkStateMachine",
    ] {
        assert!(!role.contains(other), "FunctionRole refers to {other}");
    }

    // CDK: the same actions on the same resources.
    for needle in [
        "actions: [...TAGBEEZ_QUEUE_ACTIONS],\n      resources: [queue.queueArn],",
        "actions: [...TAGBEEZ_EVENT_ACTIONS],\n          resources: [eventsOut.bus.eventBusArn],",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }
    assert_eq!(construct.matches("...TAGBEEZ_QUEUE_ACTIONS").count(), 1);
    assert_eq!(construct.matches("...TAGBEEZ_EVENT_ACTIONS").count(), 1);
    // No grant* helper, which would add actions (grantConsumeMessages adds sqs:GetQueueUrl,
    // grantPutEventsTo has a wildcard-prone form).
    for call in [
        ".grantConsumeMessages(",
        ".grantPutEventsTo(",
        "new SqsEventSource(",
        "new targets.SqsQueue(",
    ] {
        assert!(!construct.contains(call), "{CONSTRUCT} calls {call}");
    }
}

#[test]
fn sam_and_cdk_give_the_function_the_event_settings_with_the_bus_only() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    let function = sam_resource(&template, "TagbeezFunction");
    let variables = yaml_child(&function, "Variables");
    let bus = yaml_child(&variables, "EVENT_BUS_NAME");
    for part in [
        "- EventsEnabled",
        "- !If [EventBusCreated, !Ref TagbeezEventBus, !Ref EventBus]",
        "- !Ref AWS::NoValue",
    ] {
        assert!(bus.contains(part), "EVENT_BUS_NAME lacks {part}: {bus}");
    }
    assert_eq!(
        yaml_values(&variables, "EVENT_TAGS"),
        ["!If [EventsEnabled, !Ref EventTags, !Ref AWS::NoValue]"]
    );
    assert_eq!(
        yaml_values(&variables, "EVENTS_TIMEOUT_MS"),
        ["!If [EventsEnabled, !Ref EventsTimeoutMs, !Ref AWS::NoValue]"]
    );
    assert!(template.contains("  EventsEnabled: !Not [!Equals [!Ref EventBus, none]]\n"));
    assert!(template.contains("  EventBusCreated: !Equals [!Ref EventBus, create]\n"));
    // The created bus is named after the stack (CDK: alarmNamePrefix, the stack name by default).
    let created = sam_resource(&template, "TagbeezEventBus");
    assert_eq!(yaml_values(&created, "Name"), ["!Ref AWS::StackName"]);
    assert_eq!(yaml_values(&created, "Condition"), ["EventBusCreated"]);
    for needle in [
        "new events.EventBus(scope, 'EventBus', { eventBusName: namePrefix })",
        "const namePrefix = props.alarmNamePrefix ?? Stack.of(this).stackName;",
        "EVENT_BUS_NAME: busForFunction,",
        "EVENT_TAGS: tags.join(','),",
        "EVENTS_TIMEOUT_MS: numberText(timeoutMs),",
        "...eventsOut?.environment,",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }
    // The example rule: the same pattern in both.
    let rule = sam_resource(&template, "HotBuyerRule");
    assert_eq!(yaml_values(&rule, "source"), ["[tagbeez]"]);
    assert_eq!(yaml_values(&rule, "tag"), ["[Hot-buyer]"]);
    assert!(rule.contains("detail-type: [Message tagged]"));
    assert!(construct.contains(
        "export const TAGBEEZ_HOT_BUYER_PATTERN = {\n  source: [TAGBEEZ_EVENT_SOURCE],\n  detailType: ['Message tagged'],\n  detail: { tag: ['Hot-buyer'] },\n}"
    ));
    assert!(construct.contains("export const TAGBEEZ_EVENT_SOURCE = 'tagbeez';"));
    let policy = sam_resource(&template, "HotBuyerEventsQueuePolicy");
    assert_eq!(yaml_values(&policy, "Action"), ["sqs:SendMessage"]);
    assert_eq!(yaml_values(&policy, "Service"), ["events.amazonaws.com"]);
    assert!(policy.contains("\n                aws:SourceArn: !GetAtt HotBuyerRule.Arn\n"));
    assert!(construct.contains("actions: ['sqs:SendMessage'],"));
    assert!(construct.contains("conditions: { ArnEquals: { 'aws:SourceArn': rule.ruleArn } },"));
}

/// The `${Name}` placeholders of a text.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect()
}

#[test]
fn sam_and_cdk_deploy_the_same_state_machine_file_with_the_same_substitutions() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    let definition = read("statemachine/bulk.asl.json");

    let machine = sam_resource(&template, "BulkStateMachine");
    assert!(machine.contains("Type: AWS::Serverless::StateMachine"));
    assert_eq!(yaml_values(&machine, "Condition"), ["BulkEnabled"]);
    assert_eq!(
        yaml_values(&machine, "Type"),
        ["AWS::Serverless::StateMachine", "STANDARD"]
    );
    assert_eq!(
        yaml_values(&machine, "DefinitionUri"),
        ["statemachine/bulk.asl.json"]
    );
    assert_eq!(
        yaml_values(&machine, "Name"),
        ["!Sub ${AWS::StackName}-bulk"]
    );
    assert_eq!(
        yaml_values(&machine, "Role"),
        ["!GetAtt BulkStateMachineRole.Arn"]
    );
    for needle in [
        "return path.join(root, 'statemachine', 'bulk.asl.json');",
        "definitionBody: sfn.DefinitionBody.fromFile(definitionFile),",
        "definitionSubstitutions: substitutions,",
        "stateMachineType: sfn.StateMachineType.STANDARD,",
        "const bulk = createBulk(this, bulkOptions, `${namePrefix}-bulk`);",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }

    // The substitutions: the file's placeholders, the template's keys and the construct's.
    let substitutions = yaml_child(&machine, "DefinitionSubstitutions");
    let sam: BTreeMap<String, String> = substitutions
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    let cdk: BTreeSet<String> = ts_string_array(&construct, "TAGBEEZ_BULK_SUBSTITUTIONS")
        .into_iter()
        .collect();
    assert_eq!(
        sam.keys().cloned().collect::<BTreeSet<_>>(),
        placeholders(&definition)
    );
    assert_eq!(cdk, placeholders(&definition));
    // Each from the same place.
    let expected = [
        (
            "TagbeezFunctionArn",
            "!GetAtt TagbeezFunction.Arn",
            "TagbeezFunctionArn: service.function.functionArn,",
        ),
        (
            "BulkBucketName",
            "!If [BulkBucketCreated, !Ref BulkBucket, !Ref BulkBucketName]",
            "BulkBucketName: bucket.bucketName,",
        ),
        (
            "MaxConcurrency",
            "!Ref BulkMaxConcurrency",
            "MaxConcurrency: numberText(maxConcurrency),",
        ),
        (
            "MaxItemsPerBatch",
            "!Ref BulkMaxItemsPerBatch",
            "MaxItemsPerBatch: numberText(maxItemsPerBatch),",
        ),
        (
            "ToleratedFailurePercentage",
            "!Ref BulkToleratedFailurePercentage",
            "ToleratedFailurePercentage: numberText(toleratedFailurePercentage),",
        ),
    ];
    for (name, sam_value, cdk_line) in expected {
        assert_eq!(sam.get(name).map(String::as_str), Some(sam_value), "{name}");
        assert!(construct.contains(cdk_line), "{CONSTRUCT} lacks {cdk_line}");
    }
    assert_eq!(sam.len(), expected.len());
}

#[test]
fn the_bulk_role_is_the_same_least_privilege_set_in_both_files() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    let role = sam_resource(&template, "BulkStateMachineRole");
    assert!(role.contains("Service: states.amazonaws.com"));
    assert!(role.contains("aws:SourceAccount: !Ref AWS::AccountId"));
    assert!(construct.contains(
        "assumedBy: new iam.ServicePrincipal('states.amazonaws.com', {\n      conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },"
    ));
    assert!(!role.contains("ManagedPolicyArns"));

    let statements: Vec<(Vec<String>, String)> = sam_statements(&role)
        .into_iter()
        .filter(|(actions, _)| actions != &["sts:AssumeRole"])
        .collect();
    let by_actions = |actions: &[&str]| -> String {
        let found: Vec<&(Vec<String>, String)> =
            statements.iter().filter(|(a, _)| a == actions).collect();
        assert_eq!(
            found.len(),
            1,
            "one statement of {actions:?}: {statements:?}"
        );
        statement_resource(&found[0].1)
    };
    let invoke = ts_string_array(&construct, "TAGBEEZ_BULK_INVOKE_ACTIONS");
    let read_objects = ts_string_array(&construct, "TAGBEEZ_BULK_READ_ACTIONS");
    let write = ts_string_array(&construct, "TAGBEEZ_BULK_WRITE_ACTIONS");
    fn as_refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    assert_eq!(invoke, ["lambda:InvokeFunction"]);
    assert_eq!(read_objects, ["s3:GetObject"]);
    assert_eq!(
        write,
        [
            "s3:PutObject",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload"
        ]
    );
    assert_eq!(by_actions(&as_refs(&invoke)), "!GetAtt TagbeezFunction.Arn");
    assert!(by_actions(&as_refs(&read_objects)).contains("arn:${AWS::Partition}:s3:::${Bucket}/*"));
    assert!(by_actions(&as_refs(&write)).contains("arn:${AWS::Partition}:s3:::${Bucket}/results/*"));
    let states = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}";
    assert_eq!(
        by_actions(&["states:StartExecution"]),
        format!("!Sub {states}:stateMachine:${{AWS::StackName}}-bulk")
    );
    assert_eq!(
        by_actions(&["states:DescribeExecution", "states:StopExecution"]),
        format!("!Sub {states}:execution:${{AWS::StackName}}-bulk:*")
    );
    assert_eq!(
        by_actions(&["states:RedriveExecution"]),
        format!("!Sub {states}:execution:${{AWS::StackName}}-bulk/*:*")
    );
    assert_eq!(statements.len(), 6, "{statements:?}");
    for (actions, statement) in &statements {
        assert_no_wildcard(
            &format!("BulkStateMachineRole {actions:?}"),
            &statement_resource(statement),
        );
    }
    for needle in [
        "[[...TAGBEEZ_BULK_INVOKE_ACTIONS], service.function.functionArn],",
        "[[...TAGBEEZ_BULK_READ_ACTIONS], bucket.arnForObjects('*')],",
        "[[...TAGBEEZ_BULK_WRITE_ACTIONS], bucket.arnForObjects('results/*')],",
        "[['states:StartExecution'], stack.formatArn({",
        "resourceName: stateMachineName,",
        "[['states:DescribeExecution', 'states:StopExecution'], stack.formatArn({",
        "resourceName: `${stateMachineName}:*`,",
        "[['states:RedriveExecution'], stack.formatArn({",
        "resourceName: `${stateMachineName}/*:*`,",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }

    // The created bucket: encrypted, private, TLS only, results expire, retained.
    let bucket = sam_resource(&template, "BulkBucket");
    assert!(
        bucket.contains("DeletionPolicy: Retain") && bucket.contains("UpdateReplacePolicy: Retain")
    );
    assert_eq!(yaml_values(&bucket, "SSEAlgorithm"), ["AES256"]);
    for block in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(yaml_values(&bucket, block), ["true"], "{block}");
    }
    assert_eq!(yaml_values(&bucket, "Prefix"), ["results/"]);
    assert_eq!(
        yaml_values(&bucket, "ExpirationInDays"),
        ["!Ref BulkResultsExpirationDays"]
    );
    let policy = sam_resource(&template, "BulkBucketPolicy");
    assert!(policy.contains("\n                aws:SecureTransport: \"false\"\n"));
    assert_eq!(yaml_values(&policy, "Effect"), ["Deny"]);
    for needle in [
        "encryption: s3.BucketEncryption.S3_MANAGED,",
        "blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,",
        "enforceSSL: true,",
        "{ id: 'expire-results', prefix: 'results/', expiration: Duration.days(expirationDays) },",
        "removalPolicy: RemovalPolicy.RETAIN,",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }
}

/// A table of the template and of the construct, as issue 23 added them.
struct TableSpec {
    sam_id: &'static str,
    /// The construct's `this.<field> = new dynamodb.Table(`.
    cdk_field: &'static str,
    /// (attribute, key type), in KeySchema order; every key attribute is a string.
    keys: &'static [(&'static str, &'static str)],
    ttl: Option<&'static str>,
    variable: &'static str,
    /// The function's actions on it: the SAM statement's and the construct's constant.
    actions: &'static [&'static str],
    cdk_actions: &'static str,
}

const SHOP_TABLES: &[TableSpec] = &[
    TableSpec {
        sam_id: "ProfileTable",
        cdk_field: "profileTable",
        keys: &[("shop_id", "HASH")],
        ttl: None,
        variable: "PROFILE_TABLE_NAME",
        actions: &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
        ],
        cdk_actions: "TAGBEEZ_PROFILE_TABLE_ACTIONS",
    },
    TableSpec {
        sam_id: "ExperimentTable",
        cdk_field: "experimentTable",
        keys: &[("pk", "HASH"), ("sk", "RANGE")],
        ttl: Some("expires_at"),
        variable: "EXPERIMENT_TABLE_NAME",
        actions: &["dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:Query"],
        cdk_actions: "TAGBEEZ_EXPERIMENT_TABLE_ACTIONS",
    },
];

#[test]
fn the_profile_and_experiment_tables_are_the_same_in_both_files() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    let role = sam_resource(&template, "FunctionRole");
    let function = sam_resource(&template, "TagbeezFunction");
    let variables = yaml_child(&function, "Variables");
    for spec in SHOP_TABLES {
        let id = spec.sam_id;
        // SAM: on demand, the keys, encrypted, point-in-time recovery on, TTL as given, retained.
        let table = sam_resource(&template, id);
        assert!(table.contains("Type: AWS::DynamoDB::Table"), "{id}");
        assert!(
            table.contains("DeletionPolicy: Retain")
                && table.contains("UpdateReplacePolicy: Retain"),
            "{id}: retained like the other tables"
        );
        assert_eq!(
            yaml_values(&table, "BillingMode"),
            ["PAY_PER_REQUEST"],
            "{id}"
        );
        let keys = yaml_child(&table, "KeySchema");
        let names: Vec<&str> = spec.keys.iter().map(|(name, _)| *name).collect();
        assert_eq!(yaml_values(&keys, "AttributeName"), names, "{id}");
        assert_eq!(
            yaml_values(&keys, "KeyType"),
            spec.keys.iter().map(|(_, kind)| *kind).collect::<Vec<_>>(),
            "{id}"
        );
        let attributes = yaml_child(&table, "AttributeDefinitions");
        assert_eq!(yaml_values(&attributes, "AttributeName"), names, "{id}");
        assert!(yaml_values(&attributes, "AttributeType")
            .iter()
            .all(|t| *t == "S"));
        match spec.ttl {
            Some(attribute) => {
                let ttl = yaml_child(&table, "TimeToLiveSpecification");
                assert_eq!(yaml_values(&ttl, "AttributeName"), [attribute], "{id}");
                assert_eq!(yaml_values(&ttl, "Enabled"), ["true"], "{id}");
            }
            None => assert!(!table.contains("TimeToLiveSpecification"), "{id}: no TTL"),
        }
        assert_eq!(
            yaml_values(&yaml_child(&table, "SSESpecification"), "SSEEnabled"),
            ["true"],
            "{id}"
        );
        assert_eq!(
            yaml_values(
                &yaml_child(&table, "PointInTimeRecoverySpecification"),
                "PointInTimeRecoveryEnabled"
            ),
            ["true"],
            "{id}"
        );
        assert!(!table.contains("GlobalSecondaryIndexes") && !table.contains("TableName:"));
        // Its name is the function's setting.
        assert_eq!(
            yaml_values(&variables, spec.variable),
            [format!("!Ref {id}").as_str()]
        );
        // The function's role: one statement on it, exactly the store's actions.
        assert_eq!(
            sam_statements_on(&role, &format!("!GetAtt {id}.Arn")),
            [spec
                .actions
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()],
            "{id}"
        );
        // No other resource refers to it.
        for (other, block) in sam_resources(&template) {
            if block.contains(id) && other != id {
                assert!(
                    ["FunctionRole", "TagbeezFunction"].contains(&other.as_str()),
                    "{other} refers to {id}"
                );
            }
        }

        // CDK: the same table, the same actions on it alone.
        assert_eq!(ts_string_array(&construct, spec.cdk_actions), spec.actions);
        let field = spec.cdk_field;
        let table = construct
            .split(&format!("this.{field} = new dynamodb.Table("))
            .nth(1)
            .unwrap_or_else(|| panic!("the construct creates this.{field}"))
            .split("});")
            .next()
            .unwrap();
        let key = |(name, _): &(&str, &str)| {
            format!("{{ name: '{name}', type: dynamodb.AttributeType.STRING }}")
        };
        let mut properties = vec![
            format!("partitionKey: {}", key(&spec.keys[0])),
            "billingMode: dynamodb.BillingMode.PAY_PER_REQUEST".to_owned(),
            "encryption: dynamodb.TableEncryption.AWS_MANAGED".to_owned(),
            "pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true }".to_owned(),
            format!("removalPolicy: props.{field}RemovalPolicy ?? RemovalPolicy.RETAIN"),
        ];
        if let Some(sort) = spec.keys.get(1) {
            properties.push(format!("sortKey: {}", key(sort)));
        }
        match spec.ttl {
            Some(attribute) => properties.push(format!("timeToLiveAttribute: '{attribute}'")),
            None => assert!(!table.contains("timeToLiveAttribute"), "{field}: no TTL"),
        }
        assert_eq!(table.matches("Key: ").count(), spec.keys.len(), "{field}");
        for property in properties {
            assert!(
                table.contains(&property),
                "{CONSTRUCT}: {field} lacks {property}"
            );
        }
        let variable = format!("{}: this.{field}.tableName", spec.variable);
        assert!(
            construct.contains(&variable),
            "{CONSTRUCT} lacks {variable}"
        );
        let grant = format!(
            "actions: [...{}],\n        resources: [this.{field}.tableArn],",
            spec.cdk_actions
        );
        assert!(construct.contains(&grant), "{CONSTRUCT} lacks {grant}");
        assert_eq!(
            construct.matches(&format!("this.{field}.tableArn")).count(),
            1
        );
        assert!(!construct.contains(&format!("{field}.grant")));
    }
    // The settings that go with them, from the template's parameters and the construct's props.
    for (variable, parameter, cdk) in [
        (
            "PROFILE_CACHE_SECONDS",
            "ProfileCacheSeconds",
            "numberText(profileCacheSeconds)",
        ),
        (
            "PROFILE_TIMEOUT_MS",
            "ProfileTimeoutMs",
            "numberText(profileTimeoutMs)",
        ),
        ("DRIFT_WINDOW", "DriftWindow", "numberText(driftWindow)"),
        (
            "DRIFT_BY_SHOP",
            "DriftByShop",
            "(settings.driftByShop ?? true) ? 'on' : 'off'",
        ),
    ] {
        assert_eq!(
            yaml_values(&variables, variable),
            [format!("!Ref {parameter}").as_str()]
        );
        let line = format!("{variable}: {cdk},");
        assert!(construct.contains(&line), "{CONSTRUCT} lacks {line}");
    }
    assert_eq!(
        yaml_values(&sam_parameter(&template, "DriftByShop"), "AllowedValues"),
        ["[\"on\", \"off\"]"]
    );
}

/// A route's execute-api resource after `<api id>/`, as the construct's `tagbeezRouteResource`:
/// `$default/<METHOD>/<path without its leading />`, each `{parameter}` a `*`.
fn route_resource(route: &str) -> String {
    let (method, path) = route.split_once(' ').unwrap();
    let mut out = String::new();
    let mut in_parameter = false;
    for c in path[1..].chars() {
        match c {
            '{' => {
                in_parameter = true;
                out.push('*');
            }
            '}' => in_parameter = false,
            _ if in_parameter => {}
            _ => out.push(c),
        }
    }
    format!("$default/{method}/{out}")
}

/// IAM's ARN matching: `*` is any run of characters (`/` included), `?` one character.
fn iam_matches(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

#[test]
fn callers_and_operators_get_apart_execute_api_resources_in_both_files() {
    let template = read("template.yaml");
    let construct = read(CONSTRUCT);
    let outputs: BTreeMap<String, String> = sam_section(&template, "Outputs").into_iter().collect();
    assert!(
        !outputs.contains_key("ApiExecuteArn"),
        "no output for every route"
    );
    let prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/";

    // The callers': one ARN per route but the /shops/* ones, joined with commas.
    let callers = outputs
        .get("CallerExecuteArns")
        .expect("a CallerExecuteArns output");
    let value = yaml_child(callers, "Value");
    assert!(
        callers.contains("Value: !Join\n      - \",\"\n"),
        "{callers}"
    );
    let sam_callers: Vec<String> = value
        .lines()
        .map(|l| l.trim())
        .filter(|l| l.contains("!Sub"))
        .map(|l| {
            let l = l.trim_start_matches("- ");
            let l = l.trim_start_matches("- ");
            l.strip_prefix("!Sub ")
                .and_then(|arn| arn.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("not !Sub {prefix}...: {l}"))
                .to_owned()
        })
        .collect();
    let (admin, caller): (Vec<&str>, Vec<&str>) = ROUTES
        .iter()
        .partition(|r| r.split(' ').nth(1).unwrap().starts_with("/shops/"));
    assert_eq!(
        admin,
        [
            "PUT /shops/{shop_id}/profile",
            "GET /shops/{shop_id}/profile",
            "DELETE /shops/{shop_id}/profile",
            "GET /shops/{shop_id}/experiments/{name}"
        ]
    );
    assert!(caller.contains(&"POST /outcome"));
    assert_eq!(
        sam_callers,
        caller.iter().map(|r| route_resource(r)).collect::<Vec<_>>(),
        "CallerExecuteArns: every non-admin route, in ROUTES' order"
    );
    // The operators': the /shops/* pattern.
    let operators = outputs
        .get("OperatorExecuteArn")
        .expect("an OperatorExecuteArn output");
    let operator = yaml_values(operators, "Value")[0]
        .strip_prefix("!Sub ")
        .and_then(|arn| arn.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("OperatorExecuteArn: {operators}"))
        .to_owned();
    assert_eq!(operator, "$default/*/shops/*");
    // A request's resource, with a concrete value for each path parameter: the callers' ARNs
    // match every caller route and no admin one (not even with a shop id that looks like
    // another route), the operators' every admin route and no caller one.
    for route in ROUTES {
        let is_admin = admin.contains(route);
        for value in ["shop-1", "conversation", "x"] {
            let requested = route_resource(route).replace('*', value);
            assert_eq!(
                sam_callers.iter().any(|p| iam_matches(p, &requested)),
                !is_admin,
                "callers and {requested}"
            );
            assert_eq!(
                iam_matches(&operator, &requested),
                is_admin,
                "operators and {requested}"
            );
        }
    }

    // CDK: the same routes, split the same way, and the same two outputs.
    assert_eq!(ts_string_array(&construct, "TAGBEEZ_ROUTES"), ROUTES);
    for needle in [
        "export const TAGBEEZ_ADMIN_PATH_PREFIX = '/shops/';",
        "route.split(' ')[1].startsWith(TAGBEEZ_ADMIN_PATH_PREFIX),",
        "(route) => !TAGBEEZ_ADMIN_ROUTES.includes(route),",
        "return `$default/${method}/${routePath.slice(1).replace(/\\{[^}]+\\}/g, '*')}`;",
        "export const TAGBEEZ_OPERATOR_RESOURCE = '$default/*/shops/*';",
        "callerExecuteArns: TAGBEEZ_CALLER_ROUTES.map((route) => executeArn(tagbeezRouteResource(route))),",
        "operatorExecuteArn: executeArn(TAGBEEZ_OPERATOR_RESOURCE),",
        "new CfnOutput(this, 'CallerExecuteArns', {",
        "value: Fn.join(',', [...this.service.callerExecuteArns]),",
        "new CfnOutput(this, 'OperatorExecuteArn', {",
        "value: this.service.operatorExecuteArn,",
        "resourceArns: [...this.callerExecuteArns],",
        "resourceArns: [this.operatorExecuteArn],",
    ] {
        assert!(construct.contains(needle), "{CONSTRUCT} lacks {needle}");
    }
    let stack = read("infra/lib/tagbeez-stack.ts");
    assert!(stack.contains("new CfnOutput(this, 'CallerExecuteArns'"));
    // The admin routes are plain routes of the API otherwise: the same authorization type.
    for route in admin {
        let id = template_route_id(&template, route);
        let block = sam_resource(&template, &id);
        assert_eq!(
            yaml_values(&block, "AuthorizationType"),
            ["!Ref AuthType"],
            "{id}"
        );
    }
}

/// The logical id of the template's route with this RouteKey.
fn template_route_id(template: &str, route: &str) -> String {
    sam_resources(template)
        .into_iter()
        .find(|(_, block)| block.contains(&format!("RouteKey: {route}\n")))
        .unwrap_or_else(|| panic!("template.yaml has no route {route}"))
        .0
}
