// The props of TagbeezService: the service's settings, and how the parts around the function
// (tables, HTTP API, monitoring, queue in, events out, bulk) are made. Each part takes the
// props it needs from here.
import type { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as logs from 'aws-cdk-lib/aws-logs';

import type { TagbeezBulkOptions } from './bulk';
import type { TagbeezAuthType, TagbeezThrottling } from './http-api';
import type { TagbeezQueueOptions } from './queue-in';
import type { TagbeezSettings } from './settings';

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
   * What happens to the shop profile table when it leaves the stack. The default keeps it: the
   * profiles are operators' configuration, with no other copy.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly profileTableRemovalPolicy?: RemovalPolicy;

  /**
   * What happens to the experiment table (threshold experiments' exposures and outcomes) when it
   * leaves the stack. The default keeps it, like the other tables; TTL empties a retained table.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly experimentTableRemovalPolicy?: RemovalPolicy;

  /**
   * ARN of an SNS topic that the alarms (the four, the options' and the drift alarms) notify
   * when they go into ALARM and back to OK (a standard topic; CloudWatch cannot notify FIFO
   * topics).
   *
   * @default - no alarm actions: the alarms only change state
   */
  readonly alarmTopicArn?: string;

  /**
   * The model's tags, for the drift alarms (one anomaly detection alarm on
   * `tagbeez_selection_rate` per tag) and the dashboard's drift row. Each must be a tag of the
   * shipped model when `model/labels.json` can be read.
   *
   * @default - the `tags` of the repository's `model/labels.json`, read at synth time (outside
   * the repository, where there is none, this prop is required)
   */
  readonly driftTags?: string[];

  /**
   * Prefix of the alarms' names (`<prefix>-error-rate`, ...) and of the dashboard's
   * (`<prefix>-<region>`): as in `template.yaml`, where it is the stack name. Two services in
   * one stack need different prefixes. It also names the created event bus (`<prefix>`) and the
   * bulk state machine (`<prefix>-bulk`).
   *
   * @default - the stack name
   */
  readonly alarmNamePrefix?: string;

  /**
   * The queue in: `true` for the defaults, or its options. Off by default.
   *
   * @default - no queue
   */
  readonly queue?: boolean | TagbeezQueueOptions;

  /**
   * Events out (`EVENT_BUS_NAME`): `none`; `create`, a bus named `alarmNamePrefix` (the stack
   * name by default); the name or ARN of an existing bus; or a bus of this app. The function may
   * only call `events:PutEvents` on that bus.
   *
   * @default 'none'
   */
  readonly eventBus?: 'none' | 'create' | string | events.IEventBus;

  /**
   * `EVENT_TAGS`: the tags whose selection puts a `Message tagged` event (with `eventBus` only).
   *
   * @default ['Hot-buyer']
   */
  readonly eventTags?: string[];

  /**
   * `EVENTS_TIMEOUT_MS`: the longest one PutEvents call takes, retries included, 10 ms to 60 s
   * (with `eventBus` only).
   *
   * @default Duration.seconds(2)
   */
  readonly eventsTimeout?: Duration;

  /**
   * With `eventBus: 'create'`: the example rule of docs/deploy.md, deployed, sending
   * `Message tagged` events for Hot-buyer to an SQS queue of their own that only this rule may
   * send to.
   *
   * @default false
   */
  readonly hotBuyerQueue?: boolean;

  /**
   * Bulk tagging: `true` for the defaults, or its options. Off by default.
   *
   * @default - no state machine, no bucket
   */
  readonly bulk?: boolean | TagbeezBulkOptions;
}
