// The service's own settings: the environment variables the binary reads (docs/deploy.md,
// "Settings", lists them), each with the binary's default and checked against the range it
// accepts.
import { Duration, Token } from 'aws-cdk-lib';

import { checkInt, numberText } from './checks';

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
  /**
   * `PROFILE_CACHE_SECONDS`: how long an instance uses a shop's profile before reading it again,
   * in whole seconds, 0 to 3600 (0 reads it on every request). @default Duration.seconds(60)
   */
  readonly profileCache?: Duration;
  /**
   * `PROFILE_TIMEOUT_MS`: the longest a request waits for its shop's profile, 10 ms to 60 s; past
   * it the last known profile (or the model's defaults) is used. @default Duration.millis(300)
   */
  readonly profileTimeout?: Duration;
  /**
   * `DRIFT_WINDOW`: messages in the sliding window the population stability index is computed
   * over, 100 to 100000. @default 1000
   */
  readonly driftWindow?: number;
  /**
   * `DRIFT_BY_SHOP`: the drift metrics also carry a `shop_id` dimension when a request names a
   * shop (`on`; one more series per shop and metric) or not (`off`). @default true
   */
  readonly driftByShop?: boolean;
}

/** `METRICS_NAMESPACE` when none is given; the alarms and the dashboard read the same default. */
export const DEFAULT_METRICS_NAMESPACE = 'tagbeez';
const METRICS_NAMESPACE_PATTERN = /^(?!AWS\/)[A-Za-z0-9._/#:-]{1,255}$/;

/**
 * The service's environment variables, each with its value or the service's default. The groups
 * are checked in this order, so the first bad setting is the one reported.
 */
export function serviceEnvironment(settings: TagbeezSettings): Record<string, string> {
  return {
    ...conversationEnvironment(settings),
    ...storeEnvironment(settings),
    ...operationsEnvironment(settings),
    ...inferenceEnvironment(settings),
    ...shopsEnvironment(settings),
  };
}

/** The conversation window and what is kept of each message. */
function conversationEnvironment(settings: TagbeezSettings): Record<string, string> {
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
  return {
    WINDOW_SIZE: numberText(windowSize),
    WINDOW_DECAY: numberText(windowDecay),
    CONVERSATION_TTL_SECONDS: numberText(ttlSeconds),
    MAX_MESSAGE_CHARS: numberText(maxMessageChars),
    SNIPPET_CHARS: numberText(snippetChars),
  };
}

/** The DynamoDB client's timeouts and the conversation write's deadline. */
function storeEnvironment(settings: TagbeezSettings): Record<string, string> {
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
  return {
    DYNAMODB_CONNECT_TIMEOUT_MS: numberText(connectMs),
    DYNAMODB_OPERATION_TIMEOUT_MS: numberText(operationMs),
    STORE_DEADLINE_MS: numberText(storeDeadlineMs),
  };
}

/** Logs, feedback retention, metrics and the demo page. */
function operationsEnvironment(settings: TagbeezSettings): Record<string, string> {
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
  return {
    LOG_LEVEL: logLevel,
    FEEDBACK_TTL_DAYS: numberText(feedbackTtlDays),
    // EMF: metrics are JSON log lines that CloudWatch turns into metrics, with no API call and
    // no cloudwatch:PutMetricData permission.
    METRICS: 'emf',
    METRICS_NAMESPACE: metricsNamespace,
    DEMO_PAGE: settings.demoPage ? 'on' : 'off',
  };
}

/** How the model runs: explanations, threads and the arithmetic form. */
function inferenceEnvironment(settings: TagbeezSettings): Record<string, string> {
  const explainMaxWords = checkInt('explainMaxWords', settings.explainMaxWords ?? 32, 1, 128);
  const inferenceThreads = checkInt('inferenceThreads', settings.inferenceThreads ?? 1, 1, 16);
  const inferenceForm = settings.inferenceForm ?? 'auto';
  if (!['auto', 'f32', 'int8'].includes(inferenceForm)) {
    throw new Error(`TagbeezService: inferenceForm must be auto, f32 or int8, not '${inferenceForm}'`);
  }
  return {
    EXPLAIN_MAX_WORDS: numberText(explainMaxWords),
    INFERENCE_THREADS: numberText(inferenceThreads),
    INFERENCE_FORM: inferenceForm,
  };
}

/** Shop profiles (how long one is cached, how long a request waits for it) and drift. */
function shopsEnvironment(settings: TagbeezSettings): Record<string, string> {
  const profileCacheSeconds = checkInt(
    'profileCache (seconds)',
    (settings.profileCache ?? Duration.seconds(60)).toSeconds(),
    0,
    3600,
  );
  const profileTimeoutMs = checkInt(
    'profileTimeout (ms)',
    (settings.profileTimeout ?? Duration.millis(300)).toMilliseconds(),
    10,
    60_000,
  );
  const driftWindow = checkInt('driftWindow', settings.driftWindow ?? 1000, 100, 100_000);
  return {
    PROFILE_CACHE_SECONDS: numberText(profileCacheSeconds),
    PROFILE_TIMEOUT_MS: numberText(profileTimeoutMs),
    DRIFT_WINDOW: numberText(driftWindow),
    DRIFT_BY_SHOP: (settings.driftByShop ?? true) ? 'on' : 'off',
  };
}
