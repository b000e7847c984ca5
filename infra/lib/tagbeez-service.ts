import * as fs from 'node:fs';
import * as path from 'node:path';

import { Annotations, ArnFormat, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/**
 * The HTTP routes of the service, in API Gateway RouteKey form.
 *
 * Mirrors the Rust `tagbeez::api::ROUTES` (src/api/mod.rs), which is the source of truth; the
 * infra tests fail when the two (or the SAM template's RouteKeys) drift apart.
 */
export const TAGBEEZ_ROUTES = [
  'POST /classify-message',
  'POST /classify-batch',
  'POST /classify-conversation',
  'GET /conversation/{id}',
  'DELETE /conversation/{id}',
  'POST /feedback',
  'GET /health',
  'GET /metrics',
  'GET /demo',
  'GET /',
  'GET /openapi.json',
] as const;

export type TagbeezRouteKey = (typeof TAGBEEZ_ROUTES)[number];

/** How callers of the HTTP API authenticate. */
export type TagbeezAuthType = 'AWS_IAM' | 'NONE';

/** Steady-state and burst request limits of the API's default stage. */
export interface TagbeezThrottling {
  /** Requests per second, averaged over time. */
  readonly rateLimit: number;
  /** Requests that may arrive at once, above the rate. */
  readonly burstLimit: number;
}

/**
 * The service's own settings, passed to the function as environment variables. Each one left
 * out keeps the service's default; values are checked at synth time against the ranges the
 * binary accepts, so a bad one fails `cdk synth` instead of the function's cold start.
 */
export interface TagbeezSettings {
  /** `WINDOW_SIZE`: messages kept per conversation, 1 to 50. @default 3 */
  readonly windowSize?: number;
  /** `WINDOW_DECAY`: weight of each older message relative to the next, 0 < d <= 1. @default 1 */
  readonly windowDecay?: number;
  /** `CONVERSATION_TTL_SECONDS`: a conversation expires this long after its last message (>= 60 s). @default Duration.days(1) */
  readonly conversationTtl?: Duration;
  /** `MAX_MESSAGE_CHARS`: longer messages are refused, 1 to 100000. @default 5000 */
  readonly maxMessageChars?: number;
  /** `SNIPPET_CHARS`: characters of each message kept as evidence, 0 to 500 (0 keeps no customer text). @default 50 */
  readonly snippetChars?: number;
  /** `DYNAMODB_CONNECT_TIMEOUT_MS`, 10 ms to 60 s. @default Duration.seconds(1) */
  readonly dynamodbConnectTimeout?: Duration;
  /** `DYNAMODB_OPERATION_TIMEOUT_MS`: one DynamoDB operation, retries included, 10 ms to 60 s. @default Duration.seconds(3) */
  readonly dynamodbOperationTimeout?: Duration;
  /** `STORE_DEADLINE_MS`: the longest one conversation write spends on the store, retries included, 10 ms to 60 s. @default Duration.seconds(5) */
  readonly storeDeadline?: Duration;
  /** `LOG_LEVEL`: a tracing filter such as `info` or `tagbeez=debug`. @default 'info' */
  readonly logLevel?: string;
  /** `FEEDBACK_TTL_DAYS`: how long a feedback item is kept, in whole days, 1 to 3650. @default Duration.days(365) */
  readonly feedbackTtl?: Duration;
  /**
   * `METRICS_NAMESPACE`: the CloudWatch namespace of the service's metrics (1-255 of
   * `A-Z a-z 0-9 . _ / # : -`, not starting with `AWS/`). The alarms and the dashboard read it.
   * @default 'tagbeez'
   */
  readonly metricsNamespace?: string;
  /** `DEMO_PAGE`: serve the demo page on GET /demo (`on`) or not (`off`). @default false */
  readonly demoPage?: boolean;
  /** `EXPLAIN_MAX_WORDS`: words of a message explained by occlusion, 1 to 128. @default 32 */
  readonly explainMaxWords?: number;
  /** `INFERENCE_THREADS`: cores one inference spreads over, 1 to 16 (2 from 1,769 MB). @default 1 */
  readonly inferenceThreads?: number;
  /**
   * `INFERENCE_FORM`: `auto` runs int8 products where the CPU has fast int8 dot products (every
   * Graviton has dotprod) and f32 elsewhere; `f32` or `int8` forces one. @default 'auto'
   */
  readonly inferenceForm?: 'auto' | 'f32' | 'int8';
}

export interface TagbeezServiceProps extends TagbeezSettings {
  /**
   * The folder that holds the Lambda `bootstrap` binary (arm64). Only `bootstrap` is packaged;
   * anything else there (cargo-lambda's `bootstrap.zip`) is left out.
   *
   * @default - the repository's `target/lambda/tagbeez`, the output of `make build`
   */
  readonly bootstrapDir?: string;

  /**
   * Function memory. 1769 MB is exactly one vCPU; inference is single-threaded, so less memory
   * is proportionally slower at about the same cost per request, and more adds an idle vCPU.
   *
   * @default 1769
   */
  readonly memorySize?: number;

  /**
   * Function timeout. The longest request (a batch) takes about 1.5 s at one vCPU; a
   * conversation write may wait out DynamoDB's 3 s operation timeout plus retries. HTTP API
   * integrations stop at 30 s whatever this says.
   *
   * @default Duration.seconds(10)
   */
  readonly timeout?: Duration;

  /**
   * Authentication of the HTTP API routes: `AWS_IAM` (SigV4-signed requests from principals
   * allowed `execute-api:Invoke`) or `NONE` (public).
   *
   * @default 'AWS_IAM'
   */
  readonly authType?: TagbeezAuthType;

  /**
   * Browser origins allowed by CORS, e.g. `['https://shop.example.com']`.
   *
   * @default - no CORS configuration (browsers on other origins are refused)
   */
  readonly corsAllowOrigins?: string[];

  /**
   * Throttling of the API's default stage (all routes).
   *
   * @default { rateLimit: 100, burstLimit: 200 }
   */
  readonly throttling?: TagbeezThrottling;

  /**
   * Retention of the function's log group (and of the API's access log group).
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Write one JSON access log line per API request (route, status, latency, caller; never a
   * body or query string) to a log group named `/aws/apigateway/<stack name>`, with
   * `logRetention`. As the name is per stack, a stack can hold only one TagbeezService with
   * access logging on.
   *
   * @default true
   */
  readonly accessLogging?: boolean;

  /**
   * Point-in-time recovery of the conversation table.
   *
   * @default true
   */
  readonly pointInTimeRecovery?: boolean;

  /**
   * What happens to the conversation table when it leaves the stack (stack deletion, or a
   * change of this construct's id).
   *
   * The default keeps it: the table holds the live conversation windows, and CloudFormation
   * would otherwise delete them with no way back (point-in-time recovery backups go with the
   * table). Deleting the data is then a deliberate step. Use `RemovalPolicy.DESTROY` for
   * short-lived test stacks.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly tableRemovalPolicy?: RemovalPolicy;

  /**
   * What happens to the feedback table when it leaves the stack. The default keeps it: feedback
   * is training data (labelled messages, full text), the only copy of what callers corrected.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly feedbackTableRemovalPolicy?: RemovalPolicy;

  /**
   * ARN of an SNS topic that the four alarms notify when they go into ALARM and back to OK
   * (a standard topic; CloudWatch cannot notify FIFO topics).
   *
   * @default - no alarm actions: the alarms only change state
   */
  readonly alarmTopicArn?: string;

  /**
   * Prefix of the alarms' names (`<prefix>-error-rate`, ...) and of the dashboard's
   * (`<prefix>-<region>`): as in `template.yaml`, where it is the stack name. Two services in
   * one stack need different prefixes.
   *
   * @default - the stack name
   */
  readonly alarmNamePrefix?: string;
}

/** The DynamoDB actions the function uses, and the only ones it is granted. */
export const TAGBEEZ_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:DeleteItem',
] as const;

/**
 * The only DynamoDB action the function has on the feedback table: it adds feedback and never
 * reads it back (`tagbeez export-feedback` runs with an operator's own credentials), so the
 * function can neither read nor scan the stored messages.
 */
export const TAGBEEZ_FEEDBACK_TABLE_ACTIONS = ['dynamodb:PutItem'] as const;

/**
 * The CloudWatch Logs actions the function's role has, on its own log group only (which exists
 * already, so no logs:CreateLogGroup).
 */
export const TAGBEEZ_LOG_ACTIONS = ['logs:CreateLogStream', 'logs:PutLogEvents'] as const;

/**
 * The API's access log line (the SAM template's ApiStage format): no bodies and no query
 * strings, so no customer text; the path does carry conversation ids.
 */
export const TAGBEEZ_ACCESS_LOG_FORMAT =
  '{"requestId":"$context.requestId","time":"$context.requestTime", ' +
  '"ip":"$context.identity.sourceIp","caller":"$context.identity.userArn", ' +
  '"routeKey":"$context.routeKey","path":"$context.path","status":"$context.status", ' +
  '"responseLength":"$context.responseLength","latencyMs":"$context.responseLatency", ' +
  '"integrationStatus":"$context.integrationStatus", ' +
  '"integrationLatencyMs":"$context.integrationLatency", ' +
  '"integrationError":"$context.integrationErrorMessage", ' +
  '"error":"$context.error.message"}';

/**
 * The service's metric names (the issue 11 contract; the Rust `tagbeez::telemetry::names::ALL`).
 * They are CloudWatch Embedded Metric Format lines in the function's log, in the
 * `metricsNamespace` namespace, with the dimensions shown in TAGBEEZ_DASHBOARD's SEARCH
 * expressions.
 */
export const TAGBEEZ_METRICS = [
  'tagbeez_requests',
  'tagbeez_server_errors',
  'tagbeez_request_latency_ms',
  'tagbeez_tokenize_ms',
  'tagbeez_inference_ms',
  'tagbeez_store_ms',
  'tagbeez_batch_size',
  'tagbeez_tags_selected',
  'tagbeez_conversation_switches',
  'tagbeez_store_errors',
  'tagbeez_store_retries',
  'tagbeez_overload_rejections',
  'tagbeez_cold_starts',
  'tagbeez_init_ms',
  'tagbeez_feedback',
] as const;

export type TagbeezMetricName = (typeof TAGBEEZ_METRICS)[number];

/**
 * The metrics that are also written with no dimensions at all (a rollup over every route and
 * model version): what the alarms read.
 */
export const TAGBEEZ_ROLLUP_METRICS: readonly TagbeezMetricName[] = [
  'tagbeez_requests',
  'tagbeez_server_errors',
  'tagbeez_request_latency_ms',
  'tagbeez_store_errors',
  'tagbeez_overload_rejections',
];

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
   * own metric (FunctionName dimension).
   */
  readonly namespace: 'service' | 'AWS/Lambda';
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

/** The four alarms (the contract's): error rate, p99 latency, store errors, Lambda throttles. */
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
];

/** One line (or, with `search`, one line per dimension value) of a dashboard graph. */
export interface TagbeezSeriesSpec {
  readonly metric: string;
  readonly stat: string;
  /**
   * Draw it with a SEARCH over exactly these dimension names, one line per value; without it,
   * the no-dimension rollup.
   */
  readonly search?: readonly string[];
  /** `AWS/Lambda`: the function's own metric (FunctionName dimension). @default - the service's namespace */
  readonly namespace?: 'AWS/Lambda';
  /** The line's label (rollups and Lambda metrics; SEARCH lines are labelled by CloudWatch). */
  readonly label?: string;
  /** On the right axis. */
  readonly right?: boolean;
}

/** One dashboard widget: an alarm's graph, or a graph of series. */
export interface TagbeezWidgetSpec {
  readonly title: string;
  /** The TAGBEEZ_ALARMS id of an alarm widget (6 wide); graphs are 8 wide. */
  readonly alarm?: string;
  readonly series?: readonly TagbeezSeriesSpec[];
}

/**
 * The dashboard, in order: the four alarms, then three graphs a row (as `template.yaml`'s
 * Dashboard, which tests/deploy_monitoring.rs compares with this).
 */
export const TAGBEEZ_DASHBOARD: readonly TagbeezWidgetSpec[] = [
  { title: 'Error rate (%) > 1 over 5 min', alarm: 'ErrorRate' },
  { title: 'p99 latency (ms) > 1000 over 5 min', alarm: 'LatencyP99' },
  { title: 'Store errors > 5 in 5 min', alarm: 'StoreErrors' },
  { title: 'Lambda throttles > 0 in 5 min', alarm: 'Throttles' },
  {
    title: 'Requests (left) and server errors (right), Sum per 5 min',
    series: [
      { metric: 'tagbeez_requests', stat: 'Sum', label: 'requests' },
      { metric: 'tagbeez_server_errors', stat: 'Sum', label: 'server errors (5xx)', right: true },
    ],
  },
  {
    title: 'Request latency, ms (p50, p99)',
    series: [
      { metric: 'tagbeez_request_latency_ms', stat: 'p50', label: 'p50' },
      { metric: 'tagbeez_request_latency_ms', stat: 'p99', label: 'p99' },
    ],
  },
  {
    title: 'Time split by route, average ms: tokenize, inference, store',
    series: [
      { metric: 'tagbeez_tokenize_ms', stat: 'Average', search: ['model_version', 'route'] },
      { metric: 'tagbeez_inference_ms', stat: 'Average', search: ['model_version', 'route'] },
      { metric: 'tagbeez_store_ms', stat: 'Average', search: ['model_version', 'route'] },
    ],
  },
  {
    title: 'Tags selected, by tag (Sum)',
    series: [
      { metric: 'tagbeez_tags_selected', stat: 'Sum', search: ['model_version', 'tag'] },
    ],
  },
  {
    title: 'Conversation tag switches (Sum)',
    series: [
      { metric: 'tagbeez_conversation_switches', stat: 'Sum', search: ['model_version'] },
    ],
  },
  {
    title: 'Batch size, messages per inference (average)',
    series: [
      { metric: 'tagbeez_batch_size', stat: 'Average', search: ['model_version'] },
    ],
  },
  {
    title: 'Store errors by kind, and store retries (Sum)',
    series: [
      { metric: 'tagbeez_store_errors', stat: 'Sum', search: ['kind', 'model_version'] },
      { metric: 'tagbeez_store_retries', stat: 'Sum', search: ['model_version'] },
    ],
  },
  {
    title: 'Overload rejections, 503 overloaded (Sum)',
    series: [
      { metric: 'tagbeez_overload_rejections', stat: 'Sum', label: 'overload rejections' },
    ],
  },
  {
    title: 'Cold starts (left, Sum) and init time (right, ms)',
    series: [
      { metric: 'tagbeez_cold_starts', stat: 'Sum', search: ['model_version'] },
      { metric: 'tagbeez_init_ms', stat: 'Average', search: ['model_version'], right: true },
    ],
  },
  {
    title: 'Feedback received (Sum)',
    series: [
      { metric: 'tagbeez_feedback', stat: 'Sum', search: ['model_version'] },
    ],
  },
  {
    title: 'Lambda throttles (Sum)',
    series: [
      { metric: 'Throttles', stat: 'Sum', namespace: 'AWS/Lambda', label: 'throttles' },
    ],
  },
];

/**
 * A SEARCH expression over the service's metric `metric` with exactly the dimensions `dims`.
 * The namespace and dimension names are quoted, as CloudWatch needs for names with characters
 * other than letters and digits.
 */
export function tagbeezSearchExpression(namespace: string, metric: string, dims: readonly string[], stat: string, periodSeconds = 300): string {
  const schema = [namespace, ...dims].map((name) => `"${name}"`).join(',');
  return `SEARCH('{${schema}} MetricName="${metric}"', '${stat}', ${periodSeconds})`;
}

const DEFAULT_METRICS_NAMESPACE = 'tagbeez';
const METRICS_NAMESPACE_PATTERN = /^(?!AWS\/)[A-Za-z0-9._/#:-]{1,255}$/;
const SNS_TOPIC_ARN_PATTERN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$/;
const DEFAULT_MEMORY_MB = 1769;
const DEFAULT_TIMEOUT = Duration.seconds(10);
const DEFAULT_THROTTLING: TagbeezThrottling = { rateLimit: 100, burstLimit: 200 };
const HTTP_API_INTEGRATION_LIMIT = Duration.seconds(30);

/** Stacks with a TagbeezService that logs API access: the log group name is per stack. */
const ACCESS_LOGGING_SERVICES = new WeakMap<Stack, string>();

/** Alarm name prefixes in use per stack, with the service that uses each. */
const ALARM_PREFIXES = new WeakMap<Stack, Map<string, string>>();

/**
 * The tagbeez service: the Rust Lambda (arm64, provided.al2023) with its own execution role,
 * its DynamoDB conversation and feedback tables, its log group, an HTTP API with the service's
 * routes (and, by default, an access log group), four CloudWatch alarms and a dashboard.
 */
export class TagbeezService extends Construct {
  /** The conversation table (partition key `conversation_id`, TTL attribute `expires_at`). */
  public readonly table: dynamodb.Table;
  /**
   * The feedback table (partition key `feedback_id`, TTL attribute `expires_at`, encrypted,
   * point-in-time recovery on). The function may only PutItem on it.
   */
  public readonly feedbackTable: dynamodb.Table;
  /** The four alarms, by TAGBEEZ_ALARMS id (`ErrorRate`, `LatencyP99`, `StoreErrors`, `Throttles`). */
  public readonly alarms: Readonly<Record<string, cloudwatch.Alarm>>;
  /** The CloudWatch dashboard (`<alarmNamePrefix>-<region>`). */
  public readonly dashboard: cloudwatch.Dashboard;
  /** The tagbeez function. Invoke it directly with `{"operation": ...}` payloads. */
  public readonly function: lambda.Function;
  /** The function's log group. */
  public readonly logGroup: logs.LogGroup;
  /**
   * The function's execution role: only the item operations on the conversation table, PutItem
   * on the feedback table and writes to its own log group (no AWSLambdaBasicExecutionRole, which
   * allows logs on every log group).
   */
  public readonly role: iam.Role;
  /** The API's access log group (`/aws/apigateway/<stack name>`), unless `accessLogging` is false. */
  public readonly accessLogGroup?: logs.LogGroup;
  /**
   * The HTTP API. Its `$default` stage is `stage` (created here, with throttling), so use
   * `url` rather than `httpApi.url`.
   */
  public readonly httpApi: apigwv2.HttpApi;
  /** The API's `$default` stage. */
  public readonly stage: apigwv2.HttpStage;
  /** The API's base URL, ending in `/`. */
  public readonly url: string;
  /** How the API's routes authenticate. */
  public readonly authType: TagbeezAuthType;

  constructor(scope: Construct, id: string, props: TagbeezServiceProps = {}) {
    super(scope, id);

    const bootstrapDir = path.resolve(props.bootstrapDir ?? defaultBootstrapDir());
    assertBootstrap(bootstrapDir);

    const authType = props.authType ?? 'AWS_IAM';
    if (authType !== 'AWS_IAM' && authType !== 'NONE') {
      throw new Error(`TagbeezService: authType must be 'AWS_IAM' or 'NONE', not '${String(authType)}'`);
    }
    this.authType = authType;

    const timeout = props.timeout ?? DEFAULT_TIMEOUT;
    if (!timeout.isUnresolved() &&
        timeout.toMilliseconds() > HTTP_API_INTEGRATION_LIMIT.toMilliseconds()) {
      Annotations.of(this).addWarningV2(
        'tagbeez:timeoutOverHttpApiLimit',
        `timeout ${timeout.toHumanString()} is longer than the 30 s after which HTTP API integrations stop; ` +
          'only direct invocations can use the extra time',
      );
    }

    this.table = new dynamodb.Table(this, 'Conversations', {
      partitionKey: { name: 'conversation_id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: {
        pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true,
      },
      removalPolicy: props.tableRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // Feedback: labelled messages with their full text (retraining needs it; nowhere else does
    // the service keep full text), exported by `tagbeez export-feedback`. Retained by default:
    // it is training data. TTL (feedbackTtl) bounds how long any message is kept.
    this.feedbackTable = new dynamodb.Table(this, 'Feedback', {
      partitionKey: { name: 'feedback_id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.feedbackTableRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // Operational logs only (the service never logs message text): they go with the stack.
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // An explicit role, as in the SAM template: the one lambda.Function would create carries
    // AWSLambdaBasicExecutionRole (logs on every log group in the account). This one has no
    // managed policies, and may only write its own log group, use the conversation table's items
    // and add feedback items.
    this.role = new iam.Role(this, 'FunctionRole', {
      description: 'tagbeez Lambda execution role',
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    // Exactly the item operations the store performs; grantReadWriteData would add queries,
    // scans, batch and update operations, and the table's indexes.
    this.role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        actions: [...TAGBEEZ_TABLE_ACTIONS],
        resources: [this.table.tableArn],
      }),
    );
    // Feedback is only ever added: PutItem and nothing else (no grantWriteData, which adds
    // UpdateItem, DeleteItem and BatchWriteItem).
    this.role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        actions: [...TAGBEEZ_FEEDBACK_TABLE_ACTIONS],
        resources: [this.feedbackTable.tableArn],
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        actions: [...TAGBEEZ_LOG_ACTIONS],
        resources: [this.logGroup.logGroupArn],
      }),
    );

    this.function = new lambda.Function(this, 'Function', {
      description: 'tagbeez: intent tags for e-commerce chat messages',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(bootstrapDir, {
        // Package the binary alone: cargo-lambda leaves bootstrap.zip beside it.
        exclude: ['*', '!bootstrap'],
      }),
      memorySize: props.memorySize ?? DEFAULT_MEMORY_MB,
      timeout,
      role: this.role,
      logGroup: this.logGroup,
      environment: {
        ...serviceEnvironment(props),
        TABLE_NAME: this.table.tableName,
        FEEDBACK_TABLE_NAME: this.feedbackTable.tableName,
      },
    });

    const throttling = props.throttling ?? DEFAULT_THROTTLING;
    this.httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      description: 'tagbeez HTTP API',
      // The $default stage is added below, with throttling (HttpApiProps has no stage options).
      createDefaultStage: false,
      corsPreflight: props.corsAllowOrigins?.length
        ? {
            allowOrigins: props.corsAllowOrigins,
            // API Gateway answers preflight OPTIONS itself, before authorization.
            allowMethods: [
              apigwv2.CorsHttpMethod.GET,
              apigwv2.CorsHttpMethod.POST,
              apigwv2.CorsHttpMethod.DELETE,
            ],
            // content-type for JSON bodies; the rest are what SigV4-signed browser calls send.
            allowHeaders: [
              'content-type',
              'authorization',
              'x-amz-date',
              'x-amz-security-token',
              'x-amz-content-sha256',
            ],
            // A 503 carries Retry-After, which browsers only show scripts when exposed.
            exposeHeaders: ['retry-after'],
            maxAge: Duration.minutes(10),
          }
        : undefined,
    });
    if (props.accessLogging ?? true) {
      const stack = Stack.of(this);
      const other = ACCESS_LOGGING_SERVICES.get(stack);
      if (other !== undefined) {
        throw new Error(
          `TagbeezService: ${this.node.path} and ${other} both log API access to ` +
            `/aws/apigateway/${stack.stackName}; set accessLogging: false on one of them`,
        );
      }
      ACCESS_LOGGING_SERVICES.set(stack, this.node.path);
      this.accessLogGroup = new logs.LogGroup(this, 'ApiAccessLogs', {
        logGroupName: `/aws/apigateway/${stack.stackName}`,
        retention: logRetention,
        removalPolicy: RemovalPolicy.DESTROY,
      });
    }
    const accessLogGroup = this.accessLogGroup;
    this.stage = this.httpApi.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: throttling.rateLimit, burstLimit: throttling.burstLimit },
      accessLogSettings: accessLogGroup && {
        // The group's ARN without the ":*" of its Arn attribute, as in the SAM template.
        destination: {
          bind: () => ({
            destinationArn: Stack.of(this).formatArn({
              service: 'logs',
              resource: 'log-group',
              resourceName: accessLogGroup.logGroupName,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          }),
        },
        format: AccessLogFormat.custom(TAGBEEZ_ACCESS_LOG_FORMAT),
      },
    });
    this.url = this.stage.url;

    const integration = new HttpLambdaIntegration('Integration', this.function, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    const authorizer: apigwv2.IHttpRouteAuthorizer =
      authType === 'AWS_IAM' ? new HttpIamAuthorizer() : new apigwv2.HttpNoneAuthorizer();
    for (const routeKey of TAGBEEZ_ROUTES) {
      const [method, routePath] = routeKey.split(' ') as [keyof typeof apigwv2.HttpMethod, string];
      this.httpApi.addRoutes({
        path: routePath,
        methods: [apigwv2.HttpMethod[method]],
        integration,
        authorizer,
      });
    }

    // Alarms and dashboard, as in template.yaml.
    const alarmPrefix = props.alarmNamePrefix ?? Stack.of(this).stackName;
    const stack = Stack.of(this);
    const prefixes = ALARM_PREFIXES.get(stack) ?? new Map<string, string>();
    ALARM_PREFIXES.set(stack, prefixes);
    const samePrefix = prefixes.get(alarmPrefix);
    if (samePrefix !== undefined) {
      throw new Error(
        `TagbeezService: ${this.node.path} and ${samePrefix} both name their alarms ${alarmPrefix}-*; ` +
          'give one of them another alarmNamePrefix',
      );
    }
    prefixes.set(alarmPrefix, this.node.path);
    const namespace = props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE;
    this.alarms = this.createAlarms(alarmPrefix, namespace, props.alarmTopicArn);
    this.dashboard = this.createDashboard(`${alarmPrefix}-${stack.region}`, namespace);
  }

  private createAlarms(prefix: string, namespace: string, topicArn?: string): Record<string, cloudwatch.Alarm> {
    if (topicArn !== undefined && !Token.isUnresolved(topicArn) && !SNS_TOPIC_ARN_PATTERN.test(topicArn)) {
      throw new Error(`TagbeezService: alarmTopicArn must be the ARN of a standard SNS topic, not '${topicArn}'`);
    }
    const action = topicArn === undefined
      ? undefined
      : new cloudwatchActions.SnsAction(sns.Topic.fromTopicArn(this, 'AlarmTopic', topicArn));
    const alarms: Record<string, cloudwatch.Alarm> = {};
    for (const spec of TAGBEEZ_ALARMS) {
      const period = Duration.seconds(spec.period);
      const single = (metric: string): cloudwatch.IMetric =>
        spec.namespace === 'AWS/Lambda'
          ? this.function.metric(metric, { statistic: spec.stat, period })
          : new cloudwatch.Metric({ namespace, metricName: metric, statistic: spec.stat, period });
      let metric: cloudwatch.IMetric;
      if (spec.expression !== undefined) {
        const usingMetrics: Record<string, cloudwatch.IMetric> = {};
        for (const [id, name] of Object.entries(spec.metrics ?? {})) usingMetrics[id] = single(name);
        metric = new cloudwatch.MathExpression({ expression: spec.expression, usingMetrics, period, label: spec.label });
      } else {
        metric = single(spec.metric!);
      }
      const alarm = new cloudwatch.Alarm(this, `${spec.id}Alarm`, {
        alarmName: `${prefix}-${spec.name}`,
        alarmDescription: spec.description,
        metric,
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

  private createDashboard(name: string, namespace: string): cloudwatch.Dashboard {
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: name });
    const period = Duration.minutes(5);
    const series = (s: TagbeezSeriesSpec): cloudwatch.IMetric => {
      if (s.search !== undefined) {
        return new cloudwatch.SearchExpression({
          expression: tagbeezSearchExpression(namespace, s.metric, s.search, s.stat, period.toSeconds()),
          // No label: CloudWatch labels each line of a SEARCH by its dimension values ('' keeps
          // CDK from using the whole expression as the label).
          label: '',
          period,
        });
      }
      if (s.namespace === 'AWS/Lambda') {
        return this.function.metric(s.metric, { statistic: s.stat, label: s.label, period });
      }
      return new cloudwatch.Metric({ namespace, metricName: s.metric, statistic: s.stat, label: s.label, period });
    };
    const alarmWidgets: cloudwatch.IWidget[] = [];
    const graphs: cloudwatch.IWidget[] = [];
    for (const widget of TAGBEEZ_DASHBOARD) {
      if (widget.alarm !== undefined) {
        const alarm = this.alarms[widget.alarm];
        if (!alarm) throw new Error(`TagbeezService: the dashboard names an unknown alarm ${widget.alarm}`);
        alarmWidgets.push(new cloudwatch.AlarmWidget({ title: widget.title, alarm, width: 6, height: 6 }));
      } else {
        const all = widget.series ?? [];
        graphs.push(
          new cloudwatch.GraphWidget({
            title: widget.title,
            width: 8,
            height: 6,
            period,
            stacked: false,
            left: all.filter((s) => !s.right).map(series),
            right: all.filter((s) => s.right).map(series),
          }),
        );
      }
    }
    dashboard.addWidgets(...alarmWidgets);
    for (let i = 0; i < graphs.length; i += 3) dashboard.addWidgets(...graphs.slice(i, i + 3));
    return dashboard;
  }

  /**
   * Allow `grantee` to call every route of the API (needed when `authType` is `AWS_IAM`).
   */
  public grantInvokeApi(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:Invoke'],
      resourceArns: [this.httpApi.arnForExecuteApi()],
    });
  }
}

/**
 * `target/lambda/tagbeez` of the repository that holds this module: the nearest ancestor folder
 * with a Cargo.toml (works from `lib/` under ts-node and from the compiled `dist/lib/`).
 */
export function defaultBootstrapDir(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'Cargo.toml'))) {
      return path.join(dir, 'target', 'lambda', 'tagbeez');
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      // Not inside the repository: the layout of infra/dist/lib/ is the best guess.
      return path.resolve(__dirname, '..', '..', '..', 'target', 'lambda', 'tagbeez');
    }
    dir = parent;
  }
}

function assertBootstrap(dir: string): void {
  const file = path.join(dir, 'bootstrap');
  let ok = false;
  try {
    ok = fs.statSync(file).isFile();
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new Error(
      `TagbeezService: no Lambda binary at ${file}. Run \`make build\` first at the repository ` +
        'root (it writes target/lambda/tagbeez/bootstrap), or pass bootstrapDir with the folder ' +
        'that holds `bootstrap`.',
    );
  }
}

/** The service's environment variables, each with its value or the service's default. */
export function serviceEnvironment(settings: TagbeezSettings): Record<string, string> {
  const windowSize = checkInt('windowSize', settings.windowSize ?? 3, 1, 50);
  const windowDecay = settings.windowDecay ?? 1;
  if (!Token.isUnresolved(windowDecay) && !(windowDecay > 0 && windowDecay <= 1)) {
    throw new Error(`TagbeezService: windowDecay must be 0 < d <= 1, not ${windowDecay}`);
  }
  const ttlSeconds = checkInt(
    'conversationTtl (seconds)',
    (settings.conversationTtl ?? Duration.days(1)).toSeconds(),
    60,
    Number.MAX_SAFE_INTEGER,
  );
  const maxMessageChars = checkInt('maxMessageChars', settings.maxMessageChars ?? 5000, 1, 100_000);
  const snippetChars = checkInt('snippetChars', settings.snippetChars ?? 50, 0, 500);
  const connectMs = checkInt(
    'dynamodbConnectTimeout (ms)',
    (settings.dynamodbConnectTimeout ?? Duration.seconds(1)).toMilliseconds(),
    10,
    60_000,
  );
  const operationMs = checkInt(
    'dynamodbOperationTimeout (ms)',
    (settings.dynamodbOperationTimeout ?? Duration.seconds(3)).toMilliseconds(),
    10,
    60_000,
  );
  const storeDeadlineMs = checkInt(
    'storeDeadline (ms)',
    (settings.storeDeadline ?? Duration.seconds(5)).toMilliseconds(),
    10,
    60_000,
  );
  const logLevel = settings.logLevel ?? 'info';
  if (!Token.isUnresolved(logLevel) && logLevel.trim() === '') {
    throw new Error('TagbeezService: logLevel must not be empty');
  }
  const feedbackTtlDays = checkInt(
    'feedbackTtl (days)',
    (settings.feedbackTtl ?? Duration.days(365)).toDays({ integral: false }),
    1,
    3650,
  );
  const metricsNamespace = settings.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE;
  if (!Token.isUnresolved(metricsNamespace) && !METRICS_NAMESPACE_PATTERN.test(metricsNamespace)) {
    throw new Error(
      'TagbeezService: metricsNamespace must be 1-255 of A-Z a-z 0-9 . _ / # : - and must not start with AWS/, ' +
        `not '${metricsNamespace}'`,
    );
  }
  const explainMaxWords = checkInt('explainMaxWords', settings.explainMaxWords ?? 32, 1, 128);
  const inferenceThreads = checkInt('inferenceThreads', settings.inferenceThreads ?? 1, 1, 16);
  const inferenceForm = settings.inferenceForm ?? 'auto';
  if (!['auto', 'f32', 'int8'].includes(inferenceForm)) {
    throw new Error(`TagbeezService: inferenceForm must be auto, f32 or int8, not '${inferenceForm}'`);
  }
  return {
    WINDOW_SIZE: numberText(windowSize),
    WINDOW_DECAY: numberText(windowDecay),
    CONVERSATION_TTL_SECONDS: numberText(ttlSeconds),
    MAX_MESSAGE_CHARS: numberText(maxMessageChars),
    SNIPPET_CHARS: numberText(snippetChars),
    DYNAMODB_CONNECT_TIMEOUT_MS: numberText(connectMs),
    DYNAMODB_OPERATION_TIMEOUT_MS: numberText(operationMs),
    STORE_DEADLINE_MS: numberText(storeDeadlineMs),
    LOG_LEVEL: logLevel,
    FEEDBACK_TTL_DAYS: numberText(feedbackTtlDays),
    // EMF: metrics are JSON log lines that CloudWatch turns into metrics, with no API call and
    // no cloudwatch:PutMetricData permission.
    METRICS: 'emf',
    METRICS_NAMESPACE: metricsNamespace,
    DEMO_PAGE: settings.demoPage ? 'on' : 'off',
    EXPLAIN_MAX_WORDS: numberText(explainMaxWords),
    INFERENCE_THREADS: numberText(inferenceThreads),
    INFERENCE_FORM: inferenceForm,
  };
}

/** A number as environment text; a token (e.g. a CfnParameter's value) stays a token. */
const COMPARISONS: Record<TagbeezAlarmSpec['comparison'], cloudwatch.ComparisonOperator> = {
  GreaterThanThreshold: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
};

const TREAT_MISSING: Record<TagbeezAlarmSpec['treatMissingData'], cloudwatch.TreatMissingData> = {
  notBreaching: cloudwatch.TreatMissingData.NOT_BREACHING,
};

function numberText(value: number): string {
  return Token.isUnresolved(value) ? Token.asString(value) : String(value);
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (Token.isUnresolved(value)) {
    return value;
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min} to ${max}`;
    throw new Error(`TagbeezService: ${name} must be a whole number ${range}, not ${value}`);
  }
  return value;
}
