// The service's alarms, as data (TAGBEEZ_ALARMS and TAGBEEZ_DRIFT_ALARMS, which template.yaml
// writes out too and tests/deploy_monitoring.rs compares) and as CloudWatch alarms built from
// that data.
import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

import type { TagbeezMetricName } from './metrics';
import { modelTags } from './repository';

/**
 * One CloudWatch alarm, as data: the construct builds it from this, `template.yaml` writes the
 * same alarm out, and tests/deploy_monitoring.rs compares the two.
 */
export interface TagbeezAlarmSpec {
  /** Construct id (`<id>Alarm`), and the SAM template's logical id `<id>Alarm`. */
  readonly id: string;
  /** The alarm's name after `<alarmNamePrefix>-`. */
  readonly name: string;
  readonly description: string;
  /**
   * `service`: the no-dimension rollup in the service's namespace; `AWS/Lambda`: the function's
   * own metric (FunctionName dimension); `AWS/SQS`: the dead-letter queue's (QueueName).
   */
  readonly namespace: 'service' | 'AWS/Lambda' | 'AWS/SQS';
  /**
   * The option the alarm comes with (`queue`, `eventBus`), as the SAM template's alarm has the
   * condition QueueEnabled or EventsEnabled; without it the alarm is always there.
   */
  readonly option?: 'queue' | 'events';
  /** The metric, for a single-metric alarm. */
  readonly metric?: string;
  /** The metrics by id, for a metric math alarm on `expression`. */
  readonly metrics?: Readonly<Record<string, TagbeezMetricName>>;
  readonly expression?: string;
  /** Label of the expression. */
  readonly label?: string;
  /** Statistic of the metric(s): `Sum`, or a percentile such as `p99`. */
  readonly stat: string;
  /** Seconds. */
  readonly period: number;
  readonly threshold: number;
  readonly comparison: 'GreaterThanThreshold';
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  readonly treatMissingData: 'notBreaching';
}

/**
 * The alarms: the contract's four (error rate, p99 latency, store errors, Lambda throttles),
 * then events lost (with `eventBus`) and dead letters (with `queue`).
 */
export const TAGBEEZ_ALARMS: readonly TagbeezAlarmSpec[] = [
  {
    id: 'ErrorRate',
    name: 'error-rate',
    description: 'tagbeez: more than 1% of requests answered with a 5xx (server errors / requests, over 5 minutes).',
    namespace: 'service',
    metrics: { errors: 'tagbeez_server_errors', requests: 'tagbeez_requests' },
    // FILL: a period with requests and no server error at all is 0 %, not missing.
    expression: '100 * FILL(errors, 0) / requests',
    label: 'error rate (%)',
    stat: 'Sum',
    period: 300,
    threshold: 1,
    comparison: 'GreaterThanThreshold',
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: 'notBreaching',
  },
  {
    id: 'LatencyP99',
    name: 'p99-latency',
    description: 'tagbeez: the 99th percentile of request latency (all routes) above 1000 ms over 5 minutes.',
    namespace: 'service',
    metric: 'tagbeez_request_latency_ms',
    stat: 'p99',
    period: 300,
    threshold: 1000,
    comparison: 'GreaterThanThreshold',
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: 'notBreaching',
  },
  {
    id: 'StoreErrors',
    name: 'store-errors',
    description:
      'tagbeez: more than 5 conversation store errors (unavailable, timeout, contention) in 5 minutes; each is a 503 to a caller.',
    namespace: 'service',
    metric: 'tagbeez_store_errors',
    stat: 'Sum',
    period: 300,
    threshold: 5,
    comparison: 'GreaterThanThreshold',
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: 'notBreaching',
  },
  {
    id: 'Throttles',
    name: 'throttles',
    description: 'tagbeez: Lambda throttled the function (concurrency limit reached) in the last 5 minutes.',
    namespace: 'AWS/Lambda',
    metric: 'Throttles',
    stat: 'Sum',
    period: 300,
    threshold: 0,
    comparison: 'GreaterThanThreshold',
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: 'notBreaching',
  },
  {
    id: 'EventsLost',
    name: 'events-lost',
    description: 'tagbeez: events not delivered to the event bus in the last 5 minutes.',
    option: 'events',
    namespace: 'service',
    metric: 'tagbeez_events_lost',
    stat: 'Sum',
    period: 300,
    threshold: 0,
    comparison: 'GreaterThanThreshold',
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: 'notBreaching',
  },
  {
    id: 'DeadLetterQueue',
    name: 'dead-letters',
    description: 'tagbeez: messages in the dead-letter queue (each failed every receive it was allowed).',
    option: 'queue',
    namespace: 'AWS/SQS',
    metric: 'ApproximateNumberOfMessagesVisible',
    stat: 'Maximum',
    period: 300,
    threshold: 0,
    comparison: 'GreaterThanThreshold',
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: 'notBreaching',
  },
];

/**
 * One drift alarm, as data: a CloudWatch anomaly detection alarm on the average of one of the
 * service's metrics. `template.yaml` writes the same alarms out (per tag, one for each tag of
 * model/labels.json) and tests/deploy_monitoring.rs compares the two.
 */
export interface TagbeezDriftAlarmSpec {
  /**
   * Construct id (`<id><Tag>Alarm` per tag, the tag in PascalCase; `<id>Alarm` otherwise), and
   * the SAM template's logical id.
   */
  readonly id: string;
  /** The alarm's name after `<alarmNamePrefix>-` (then `-<tag>` per tag). */
  readonly name: string;
  /** The description; `{tag}` is replaced by the tag. */
  readonly description: string;
  /** `service`: the service's namespace. */
  readonly namespace: 'service';
  /** One alarm per model tag, on the metric's `[tag]` series (dimension `tag`); else the no-dimension series. */
  readonly perTag: boolean;
  /** The metric, by its id in `expression`. */
  readonly metrics: Readonly<Record<string, TagbeezMetricName>>;
  /** The band: `ANOMALY_DETECTION_BAND(<metric id>, <standard deviations>)`. */
  readonly expression: string;
  /** Id of the band in the alarm's metrics (its ThresholdMetricId). */
  readonly thresholdMetricId: string;
  /** Label of the band. */
  readonly label: string;
  readonly stat: 'Average';
  /** Seconds. */
  readonly period: number;
  readonly comparison: 'LessThanLowerOrGreaterThanUpperThreshold';
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  readonly treatMissingData: 'notBreaching';
}

/**
 * The drift alarms: the hourly selection rate of each tag, and the hourly no-tag rate, outside
 * the band CloudWatch's anomaly detection model expects (2 standard deviations) for 3 hours in
 * a row, either way. Missing data (no traffic) is not a breach.
 */
export const TAGBEEZ_DRIFT_ALARMS: readonly TagbeezDriftAlarmSpec[] = [
  {
    id: 'SelectionRate',
    name: 'selection-rate',
    description:
      'tagbeez drift: the share of messages tagged {tag} (hourly average) outside its expected band (anomaly detection, 2 standard deviations) for 3 hours in a row.',
    namespace: 'service',
    perTag: true,
    metrics: { m1: 'tagbeez_selection_rate' },
    expression: 'ANOMALY_DETECTION_BAND(m1, 2)',
    thresholdMetricId: 'band',
    label: 'expected range',
    stat: 'Average',
    period: 3600,
    comparison: 'LessThanLowerOrGreaterThanUpperThreshold',
    evaluationPeriods: 3,
    datapointsToAlarm: 3,
    treatMissingData: 'notBreaching',
  },
  {
    id: 'NoTagRate',
    name: 'no-tag-rate',
    description:
      'tagbeez drift: the share of messages with no tag selected (hourly average) outside its expected band (anomaly detection, 2 standard deviations) for 3 hours in a row.',
    namespace: 'service',
    perTag: false,
    metrics: { m1: 'tagbeez_no_tag_rate' },
    expression: 'ANOMALY_DETECTION_BAND(m1, 2)',
    thresholdMetricId: 'band',
    label: 'expected range',
    stat: 'Average',
    period: 3600,
    comparison: 'LessThanLowerOrGreaterThanUpperThreshold',
    evaluationPeriods: 3,
    datapointsToAlarm: 3,
    treatMissingData: 'notBreaching',
  },
];

const DRIFT_TAG_PATTERN = /^[A-Za-z0-9_-]+$/;

/**
 * The tags of the drift alarms and the dashboard's drift row: `given` (the `driftTags` prop), or
 * the shipped model's (`model/labels.json`, read at synth time). With the label file at hand,
 * `given` must be tags of the model, each once.
 */
export function checkedDriftTags(given: readonly string[] | undefined): string[] {
  const known = modelTags();
  const tags = given ?? known;
  if (tags === undefined) {
    throw new Error(
      "TagbeezService: driftTags is required where the repository's model/labels.json cannot be read " +
        '(the drift alarms need the model\'s tags)',
    );
  }
  if (tags.length === 0) throw new Error('TagbeezService: driftTags must name at least one tag');
  for (const tag of tags) {
    if (Token.isUnresolved(tag) || !DRIFT_TAG_PATTERN.test(tag)) {
      throw new Error(`TagbeezService: driftTags must be tag names (A-Z a-z 0-9 _ -), not '${tag}'`);
    }
    if (known !== undefined && !known.includes(tag)) {
      throw new Error(`TagbeezService: driftTags names '${tag}', which is not a tag of the model (${known.join(', ')})`);
    }
  }
  if (new Set(tags).size !== tags.length) throw new Error(`TagbeezService: driftTags names a tag twice: ${tags.join(', ')}`);
  return [...tags];
}

/** A tag as part of a construct id: `First-time-visitor` is `FirstTimeVisitor`. */
export function tagbeezPascalCase(tag: string): string {
  return tag
    .split(/[^A-Za-z0-9]+/)
    .filter((part) => part !== '')
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}

const SNS_TOPIC_ARN_PATTERN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$/;

const COMPARISONS: Record<TagbeezAlarmSpec['comparison'], cloudwatch.ComparisonOperator> = {
  GreaterThanThreshold: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
};

const TREAT_MISSING: Record<TagbeezAlarmSpec['treatMissingData'], cloudwatch.TreatMissingData> = {
  notBreaching: cloudwatch.TreatMissingData.NOT_BREACHING,
};

/** Alarm name prefixes in use per stack, with the service that uses each. */
const ALARM_PREFIXES = new WeakMap<Stack, Map<string, string>>();

/**
 * Take `prefix` for the alarms of the service `scope`. Alarm names are per account and region,
 * so a second service of the stack with the same prefix is refused here, by name, rather than
 * by CloudFormation half-way through a deployment.
 */
export function claimAlarmPrefix(scope: Construct, prefix: string): void {
  const stack = Stack.of(scope);
  const prefixes = ALARM_PREFIXES.get(stack) ?? new Map<string, string>();
  ALARM_PREFIXES.set(stack, prefixes);
  const samePrefix = prefixes.get(prefix);
  if (samePrefix !== undefined) {
    throw new Error(
      `TagbeezService: ${scope.node.path} and ${samePrefix} both name their alarms ${prefix}-*; ` +
        'give one of them another alarmNamePrefix',
    );
  }
  prefixes.set(prefix, scope.node.path);
}

/** What the alarms watch, and whom they notify. */
export interface TagbeezAlarmsOptions {
  /** Alarm names are `<prefix>-<name>`. */
  readonly prefix: string;
  /** The service's metrics namespace. */
  readonly namespace: string;
  /** The SNS topic notified on ALARM and OK. @default - none */
  readonly topicArn?: string;
  /** The function, whose AWS/Lambda metrics some alarms read. */
  readonly function: lambda.IFunction;
  /** The queue in's dead-letter queue: without it, no `queue` alarm. */
  readonly deadLetterQueue?: sqs.IQueue;
  /** The bus of events out: without it, no `events` alarm. */
  readonly eventBus?: events.IEventBus;
}

/**
 * The drift alarms of TAGBEEZ_DRIFT_ALARMS, by id (`SelectionRate<Tag>`, `NoTagRate`): L1 alarms,
 * as the anomaly detection band's id and the metric's (`band`, `m1`) are the SAM template's.
 */
export function createDriftAlarms(
  scope: Construct,
  options: TagbeezAlarmsOptions & { readonly tags: readonly string[] },
): Record<string, cloudwatch.CfnAlarm> {
  checkTopicArn(options.topicArn);
  const actions = options.topicArn === undefined ? undefined : [options.topicArn];
  const alarms: Record<string, cloudwatch.CfnAlarm> = {};
  for (const spec of TAGBEEZ_DRIFT_ALARMS) {
    const instances = spec.perTag
      ? options.tags.map((tag) => ({ tag, id: `${spec.id}${tagbeezPascalCase(tag)}`, name: `${spec.name}-${tag}` }))
      : [{ tag: undefined, id: spec.id, name: spec.name }];
    for (const { tag, id, name } of instances) {
      const metrics: cloudwatch.CfnAlarm.MetricDataQueryProperty[] = Object.entries(spec.metrics).map(
        ([metricId, metricName]) => ({
          id: metricId,
          returnData: true,
          metricStat: {
            metric: {
              namespace: options.namespace,
              metricName,
              dimensions: tag === undefined ? undefined : [{ name: 'tag', value: tag }],
            },
            period: spec.period,
            stat: spec.stat,
          },
        }),
      );
      metrics.push({ id: spec.thresholdMetricId, label: spec.label, expression: spec.expression, returnData: true });
      alarms[id] = new cloudwatch.CfnAlarm(scope, `${id}Alarm`, {
        alarmName: `${options.prefix}-${name}`,
        alarmDescription: spec.description.replace('{tag}', tag ?? ''),
        comparisonOperator: spec.comparison,
        thresholdMetricId: spec.thresholdMetricId,
        evaluationPeriods: spec.evaluationPeriods,
        datapointsToAlarm: spec.datapointsToAlarm,
        treatMissingData: spec.treatMissingData,
        alarmActions: actions,
        okActions: actions,
        metrics,
      });
    }
  }
  return alarms;
}

/** The alarms of TAGBEEZ_ALARMS whose option is on, by id. */
export function createAlarms(scope: Construct, options: TagbeezAlarmsOptions): Record<string, cloudwatch.Alarm> {
  const action = alarmAction(scope, options.topicArn);
  const alarms: Record<string, cloudwatch.Alarm> = {};
  for (const spec of TAGBEEZ_ALARMS) {
    if (spec.option === 'queue' && options.deadLetterQueue === undefined) continue;
    if (spec.option === 'events' && options.eventBus === undefined) continue;
    const alarm = new cloudwatch.Alarm(scope, `${spec.id}Alarm`, {
      alarmName: `${options.prefix}-${spec.name}`,
      alarmDescription: spec.description,
      metric: alarmMetric(spec, options),
      threshold: spec.threshold,
      comparisonOperator: COMPARISONS[spec.comparison],
      evaluationPeriods: spec.evaluationPeriods,
      datapointsToAlarm: spec.datapointsToAlarm,
      treatMissingData: TREAT_MISSING[spec.treatMissingData],
    });
    if (action) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
    alarms[spec.id] = alarm;
  }
  return alarms;
}

/** `topicArn`, if it is undefined, a token or the ARN of a standard SNS topic. */
function checkTopicArn(topicArn: string | undefined): void {
  if (topicArn !== undefined && !Token.isUnresolved(topicArn) && !SNS_TOPIC_ARN_PATTERN.test(topicArn)) {
    throw new Error(`TagbeezService: alarmTopicArn must be the ARN of a standard SNS topic, not '${topicArn}'`);
  }
}

/** The action that notifies `topicArn` (a standard SNS topic; CloudWatch cannot notify FIFO ones), if any. */
function alarmAction(scope: Construct, topicArn: string | undefined): cloudwatch.IAlarmAction | undefined {
  checkTopicArn(topicArn);
  return topicArn === undefined
    ? undefined
    : new cloudwatchActions.SnsAction(sns.Topic.fromTopicArn(scope, 'AlarmTopic', topicArn));
}

/** The metric an alarm watches: one metric, or the math `expression` over its `metrics`. */
function alarmMetric(spec: TagbeezAlarmSpec, options: TagbeezAlarmsOptions): cloudwatch.IMetric {
  const period = Duration.seconds(spec.period);
  const single = (metric: string): cloudwatch.IMetric => {
    if (spec.namespace === 'AWS/Lambda') return options.function.metric(metric, { statistic: spec.stat, period });
    if (spec.namespace === 'AWS/SQS') return options.deadLetterQueue!.metric(metric, { statistic: spec.stat, period });
    return new cloudwatch.Metric({ namespace: options.namespace, metricName: metric, statistic: spec.stat, period });
  };
  if (spec.expression === undefined) return single(spec.metric!);
  const usingMetrics: Record<string, cloudwatch.IMetric> = {};
  for (const [id, name] of Object.entries(spec.metrics ?? {})) usingMetrics[id] = single(name);
  return new cloudwatch.MathExpression({ expression: spec.expression, usingMetrics, period, label: spec.label });
}
