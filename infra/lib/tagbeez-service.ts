// The TagbeezService construct: it composes the service's parts, each in a module of its own
// (the function, its tables, the HTTP API, alarms and dashboard, and the optional queue in,
// events out and bulk tagging). The parts create their resources directly in this construct,
// not in constructs of their own, so every logical id is what it was when this was one file.
import { Stack } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

import { checkedDriftTags, claimAlarmPrefix, createAlarms, createDriftAlarms } from './alarms';
import { createBulk } from './bulk';
import { createDashboard } from './dashboard';
import { TAGBEEZ_EVENT_ACTIONS, createHotBuyerExample, resolveEventBus } from './events-out';
import {
  checkedBootstrapDir,
  createFunction,
  createFunctionLogGroup,
  createFunctionRole,
  functionTimeout,
} from './function';
import { type TagbeezAuthType, checkedAuthType, createHttpApi } from './http-api';
import { createQueueIn } from './queue-in';
import type { TagbeezServiceProps } from './service-props';
import { DEFAULT_METRICS_NAMESPACE, serviceEnvironment } from './settings';
import { TagbeezTables } from './tables';

// The public API, as it was when all of it was in this file (index.ts exports this module).
export {
  TAGBEEZ_ALARMS,
  TAGBEEZ_DRIFT_ALARMS,
  type TagbeezAlarmSpec,
  type TagbeezDriftAlarmSpec,
  tagbeezPascalCase,
} from './alarms';
export {
  TAGBEEZ_BULK_INVOKE_ACTIONS,
  TAGBEEZ_BULK_READ_ACTIONS,
  TAGBEEZ_BULK_SUBSTITUTIONS,
  TAGBEEZ_BULK_WRITE_ACTIONS,
  type TagbeezBulkOptions,
} from './bulk';
export { TAGBEEZ_DASHBOARD, type TagbeezSeriesSpec, type TagbeezWidgetSpec } from './dashboard';
export {
  TAGBEEZ_EVENT_ACTIONS,
  TAGBEEZ_EVENT_DETAIL_TYPES,
  TAGBEEZ_EVENT_SOURCE,
  TAGBEEZ_HOT_BUYER_PATTERN,
} from './events-out';
export { TAGBEEZ_LOG_ACTIONS } from './function';
export {
  TAGBEEZ_ACCESS_LOG_FORMAT,
  TAGBEEZ_ADMIN_PATH_PREFIX,
  TAGBEEZ_ADMIN_ROUTES,
  TAGBEEZ_CALLER_ROUTES,
  TAGBEEZ_OPERATOR_RESOURCE,
  TAGBEEZ_ROUTES,
  tagbeezRouteResource,
  type TagbeezAuthType,
  type TagbeezRouteKey,
  type TagbeezThrottling,
} from './http-api';
export {
  TAGBEEZ_METRICS,
  TAGBEEZ_ROLLUP_METRICS,
  TAGBEEZ_TAG_ROLLUP_METRICS,
  type TagbeezMetricName,
  tagbeezSearchExpression,
} from './metrics';
export {
  TAGBEEZ_QUEUE_ACTIONS,
  TAGBEEZ_QUEUE_VISIBILITY_FACTOR,
  type TagbeezQueueOptions,
  type TagbeezQueueType,
} from './queue-in';
export { defaultBootstrapDir, defaultBulkDefinitionFile } from './repository';
export type { TagbeezServiceProps } from './service-props';
export { type TagbeezSettings, serviceEnvironment } from './settings';
export { modelTags } from './repository';
export {
  TAGBEEZ_EXPERIMENT_TABLE_ACTIONS,
  TAGBEEZ_FEEDBACK_TABLE_ACTIONS,
  TAGBEEZ_PROFILE_TABLE_ACTIONS,
  TAGBEEZ_TABLE_ACTIONS,
} from './tables';

/**
 * The tagbeez service: the Rust Lambda (arm64, provided.al2023) with its own execution role,
 * its DynamoDB conversation, feedback, shop profile and experiment tables, its log group, an HTTP
 * API with the service's routes (and, by default, an access log group), four CloudWatch alarms,
 * the drift alarms (anomaly detection, one per model tag and one on the no-tag rate) and a
 * dashboard.
 */
export class TagbeezService extends Construct {
  /** The conversation table (partition key `conversation_id`, TTL attribute `expires_at`). */
  public readonly table: dynamodb.Table;
  /**
   * The feedback table (partition key `feedback_id`, TTL attribute `expires_at`, encrypted,
   * point-in-time recovery on). The function may only PutItem on it.
   */
  public readonly feedbackTable: dynamodb.Table;
  /**
   * The shop profile table (partition key `shop_id`, encrypted, point-in-time recovery on, no
   * TTL). The function may GetItem, PutItem and DeleteItem on it.
   */
  public readonly profileTable: dynamodb.Table;
  /**
   * The experiment table (partition key `pk`, sort key `sk`, TTL attribute `expires_at`,
   * encrypted, point-in-time recovery on). The function may UpdateItem, PutItem and Query on it.
   */
  public readonly experimentTable: dynamodb.Table;
  /** The four alarms, by TAGBEEZ_ALARMS id (`ErrorRate`, `LatencyP99`, `StoreErrors`, `Throttles`). */
  public readonly alarms: Readonly<Record<string, cloudwatch.Alarm>>;
  /**
   * The drift alarms (anomaly detection), by id: `SelectionRate<Tag>` for each of `driftTags`
   * (`SelectionRateHotBuyer`, ...) and `NoTagRate`.
   */
  public readonly driftAlarms: Readonly<Record<string, cloudwatch.CfnAlarm>>;
  /** The model's tags the drift alarms and the dashboard's drift row name. */
  public readonly driftTags: readonly string[];
  /** The CloudWatch dashboard (`<alarmNamePrefix>-<region>`). */
  public readonly dashboard: cloudwatch.Dashboard;
  /** The tagbeez function. Invoke it directly with `{"operation": ...}` payloads. */
  public readonly function: lambda.Function;
  /** The function's log group. */
  public readonly logGroup: logs.LogGroup;
  /**
   * The function's execution role: only the item operations on the conversation table, PutItem
   * on the feedback table, the profile and experiment stores' actions on their tables, and writes
   * to its own log group (no AWSLambdaBasicExecutionRole, which allows logs on every log group).
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
  /**
   * The execute-api ARNs of the callers' routes (every route but the `/shops/*` admin routes),
   * one per route: the resources of execute-api:Invoke for a shop's backend with `AWS_IAM`.
   */
  public readonly callerExecuteArns: readonly string[];
  /** The execute-api ARN pattern of the admin routes (`/shops/*`), for operators with `AWS_IAM`. */
  public readonly operatorExecuteArn: string;
  /** The queue in (`queue`): FIFO unless `type: 'standard'`, SQS-managed encryption. */
  public readonly queue?: sqs.Queue;
  /** The queue's dead-letter queue (`queue`). */
  public readonly deadLetterQueue?: sqs.Queue;
  /** The event source mapping from the queue to the function (`queue`). */
  public readonly queueEventSource?: lambda.EventSourceMapping;
  /** The bus events go to (`eventBus`), created or imported. */
  public readonly eventBus?: events.IEventBus;
  /** The example queue of Hot-buyer `Message tagged` events (`hotBuyerQueue`). */
  public readonly hotBuyerQueue?: sqs.Queue;
  /** The bucket of bulk input files and results (`bulk`), created or imported. */
  public readonly bulkBucket?: s3.IBucket;
  /** The bulk tagging state machine (`bulk`). */
  public readonly bulkStateMachine?: sfn.StateMachine;
  /** The bulk state machine's role (`bulk`). */
  public readonly bulkRole?: iam.Role;

  constructor(scope: Construct, id: string, props: TagbeezServiceProps = {}) {
    super(scope, id);

    // The order below is the order of the template's resources and of the checks: keep it.
    const bootstrapDir = checkedBootstrapDir(props.bootstrapDir);
    this.authType = checkedAuthType(props.authType);
    const timeout = functionTimeout(this, props.timeout);
    this.driftTags = checkedDriftTags(props.driftTags);

    const tables = new TagbeezTables(this, props);
    this.table = tables.table;
    this.feedbackTable = tables.feedbackTable;
    this.profileTable = tables.profileTable;
    this.experimentTable = tables.experimentTable;

    // Operational logs only (the service never logs message text): they go with the stack.
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.logGroup = createFunctionLogGroup(this, logRetention);
    this.role = createFunctionRole(this, tables, this.logGroup);

    // Names of the per-service resources (the SAM template uses the stack name): alarms, the
    // dashboard, a created event bus, the bulk state machine.
    const namePrefix = props.alarmNamePrefix ?? Stack.of(this).stackName;

    // Events out: the bus, PutEvents on it alone, and the function's EVENT_* settings.
    const eventsOut = resolveEventBus(this, props, namePrefix);
    this.eventBus = eventsOut?.bus;
    if (eventsOut) {
      this.role.addToPolicy(
        new iam.PolicyStatement({
          effect: iam.Effect.ALLOW,
          actions: [...TAGBEEZ_EVENT_ACTIONS],
          resources: [eventsOut.bus.eventBusArn],
        }),
      );
    }

    this.function = createFunction(this, {
      bootstrapDir,
      memorySize: props.memorySize,
      timeout,
      role: this.role,
      logGroup: this.logGroup,
      environment: {
        ...serviceEnvironment(props),
        TABLE_NAME: this.table.tableName,
        FEEDBACK_TABLE_NAME: this.feedbackTable.tableName,
        PROFILE_TABLE_NAME: this.profileTable.tableName,
        EXPERIMENT_TABLE_NAME: this.experimentTable.tableName,
        ...eventsOut?.environment,
      },
    });

    if (props.hotBuyerQueue) {
      this.hotBuyerQueue = createHotBuyerExample(this, eventsOut);
    }

    // Queue in: the queue, its dead-letter queue, the event source mapping, and the function's
    // role may consume that one queue.
    const queueOptions = props.queue === true ? {} : props.queue || undefined;
    if (queueOptions) {
      const queueIn = createQueueIn(this, queueOptions, timeout);
      this.queue = queueIn.queue;
      this.deadLetterQueue = queueIn.deadLetterQueue;
      this.queueEventSource = queueIn.eventSource;
    }

    // Bulk tagging: the bucket, the state machine's role and the state machine.
    const bulkOptions = props.bulk === true ? {} : props.bulk || undefined;
    if (bulkOptions) {
      const bulk = createBulk(this, bulkOptions, `${namePrefix}-bulk`);
      this.bulkBucket = bulk.bucket;
      this.bulkRole = bulk.role;
      this.bulkStateMachine = bulk.stateMachine;
    }

    const api = createHttpApi(this, {
      function: this.function,
      authType: this.authType,
      corsAllowOrigins: props.corsAllowOrigins,
      throttling: props.throttling,
      accessLogging: props.accessLogging,
      logRetention,
    });
    this.httpApi = api.httpApi;
    this.stage = api.stage;
    this.accessLogGroup = api.accessLogGroup;
    this.url = this.stage.url;
    this.callerExecuteArns = api.callerExecuteArns;
    this.operatorExecuteArn = api.operatorExecuteArn;

    // Alarms and dashboard, as in template.yaml.
    claimAlarmPrefix(this, namePrefix);
    const namespace = props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE;
    this.alarms = createAlarms(this, {
      prefix: namePrefix,
      namespace,
      topicArn: props.alarmTopicArn,
      function: this.function,
      deadLetterQueue: this.deadLetterQueue,
      eventBus: this.eventBus,
    });
    this.driftAlarms = createDriftAlarms(this, {
      prefix: namePrefix,
      namespace,
      topicArn: props.alarmTopicArn,
      function: this.function,
      tags: this.driftTags,
    });
    this.dashboard = createDashboard(this, {
      name: `${namePrefix}-${Stack.of(this).region}`,
      namespace,
      function: this.function,
      alarms: this.alarms,
      tags: this.driftTags,
    });
  }

  /**
   * Allow `grantee`, a caller such as a shop's backend, to call every route of the API but the
   * `/shops/*` admin routes (needed when `authType` is `AWS_IAM`): `callerExecuteArns`.
   */
  public grantInvokeApi(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:Invoke'],
      resourceArns: [...this.callerExecuteArns],
    });
  }

  /**
   * Allow `grantee`, an operator, to call the `/shops/*` admin routes (shop profiles and
   * experiment reports) and nothing else: `operatorExecuteArn`.
   */
  public grantInvokeAdminApi(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:Invoke'],
      resourceArns: [this.operatorExecuteArn],
    });
  }
}
