// The queue in: an SQS queue of messages to tag (FIFO by default), its dead-letter queue, the
// event source mapping that hands the function batches of them, and the function's permission
// to consume that one queue.
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

import { checkInt } from './checks';
import type { TagbeezFunctionScope } from './function';

/** The kind of the queue in: `fifo` keeps a conversation's messages in order; `standard` does not. */
export type TagbeezQueueType = 'fifo' | 'standard';

/**
 * The queue in (the SAM template's QueueIn, QueueType, QueueBatchSize,
 * QueueBatchingWindowSeconds and QueueMaxReceiveCount): an SQS queue of messages to tag, its
 * dead-letter queue, the event source mapping to the function (partial batch responses) and an
 * alarm on the dead-letter queue.
 */
export interface TagbeezQueueOptions {
  /**
   * `fifo`: producers set MessageGroupId to the conversation id and a MessageDeduplicationId,
   * and a conversation's messages are tagged in order, exactly once. `standard`: at least once,
   * unordered, and `maxBatchingWindow` applies.
   *
   * @default 'fifo'
   */
  readonly type?: TagbeezQueueType;
  /** Queue records per invocation, 1 to 10 (a FIFO event source mapping takes at most 10). @default 10 */
  readonly batchSize?: number;
  /**
   * How long Lambda may wait to fill a batch, 0 to 300 s. Standard queues only: FIFO event source
   * mappings do not support a batching window, so a FIFO queue with a window is refused.
   *
   * @default Duration.seconds(0)
   */
  readonly maxBatchingWindow?: Duration;
  /** Receives of a message (its first try included) before SQS moves it to the dead-letter queue, 1 to 1000. @default 5 */
  readonly maxReceiveCount?: number;
}

/**
 * The SQS actions the function's role has on the queue in, and on nothing else: what the event
 * source mapping's pollers do with it. None on the dead-letter queue (SQS moves messages there).
 */
export const TAGBEEZ_QUEUE_ACTIONS = [
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:GetQueueAttributes',
  'sqs:ChangeMessageVisibility',
] as const;

/**
 * The queue's visibility timeout is this many times the function's timeout: AWS's guidance for
 * a queue that feeds a Lambda event source mapping (template.yaml's QueueVisibilityTimeout).
 */
export const TAGBEEZ_QUEUE_VISIBILITY_FACTOR = 6;

/** The queue in's resources. */
export interface TagbeezQueueIn {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly eventSource: lambda.EventSourceMapping;
}

/** The options, checked, with their defaults. */
interface QueueSettings {
  readonly fifo: boolean;
  readonly batchSize: number;
  readonly maxReceiveCount: number;
  readonly windowSeconds: number;
}

/**
 * The queue in (FIFO unless asked otherwise) and its dead-letter queue, both with
 * SQS-managed encryption, the event source mapping with partial batch responses, and the
 * function's role allowed TAGBEEZ_QUEUE_ACTIONS on the queue alone.
 */
export function createQueueIn(
  service: TagbeezFunctionScope,
  options: TagbeezQueueOptions,
  functionTimeout: Duration,
): TagbeezQueueIn {
  const settings = checkedQueueOptions(options, functionTimeout);
  const { queue, deadLetterQueue } = createQueues(service, settings, functionTimeout);
  // Exactly what the pollers need (queue.grantConsumeMessages would add sqs:GetQueueUrl).
  service.role.addToPolicy(
    new iam.PolicyStatement({
      effect: iam.Effect.ALLOW,
      actions: [...TAGBEEZ_QUEUE_ACTIONS],
      resources: [queue.queueArn],
    }),
  );
  const { fifo, batchSize, windowSeconds } = settings;
  const eventSource = new lambda.EventSourceMapping(service, 'QueueEventSource', {
    target: service.function,
    eventSourceArn: queue.queueArn,
    batchSize,
    // FIFO event source mappings do not support a batching window.
    maxBatchingWindow: fifo ? undefined : Duration.seconds(windowSeconds),
    reportBatchItemFailures: true,
  });
  // Lambda checks the role's access to the queue when the mapping is created.
  eventSource.node.addDependency(service.role);
  return { queue, deadLetterQueue, eventSource };
}

/**
 * The options with their defaults, checked against what SQS and Lambda accept. The queue's
 * visibility timeout is a multiple of the function's timeout, which must therefore be known.
 */
function checkedQueueOptions(options: TagbeezQueueOptions, functionTimeout: Duration): QueueSettings {
  const type = options.type ?? 'fifo';
  if (type !== 'fifo' && type !== 'standard') {
    throw new Error(`TagbeezService: queue.type must be 'fifo' or 'standard', not '${String(type)}'`);
  }
  const fifo = type === 'fifo';
  const batchSize = checkInt('queue.batchSize', options.batchSize ?? 10, 1, 10);
  const maxReceiveCount = checkInt('queue.maxReceiveCount', options.maxReceiveCount ?? 5, 1, 1000);
  const windowSeconds = checkInt(
    'queue.maxBatchingWindow (seconds)',
    (options.maxBatchingWindow ?? Duration.seconds(0)).toSeconds(),
    0,
    300,
  );
  if (fifo && options.maxBatchingWindow !== undefined) {
    throw new Error(
      "TagbeezService: queue.maxBatchingWindow needs queue.type 'standard': FIFO event source mappings do not support a batching window",
    );
  }
  if (functionTimeout.isUnresolved()) {
    throw new Error('TagbeezService: with queue, timeout must be known at synth time (the queue waits 6 times as long)');
  }
  return { fifo, batchSize, maxReceiveCount, windowSeconds };
}

/** The queue and its dead-letter queue, which keeps a message for SQS's longest, 14 days. */
function createQueues(
  scope: Construct,
  { fifo, maxReceiveCount }: QueueSettings,
  functionTimeout: Duration,
): { queue: sqs.Queue; deadLetterQueue: sqs.Queue } {
  // The producer sets a MessageDeduplicationId; high-throughput FIFO (order and deduplication
  // per message group, that is per conversation), as in the SAM template.
  const fifoProps: Partial<sqs.QueueProps> = fifo ? { fifo: true, contentBasedDeduplication: false } : {};
  const deadLetterQueue = new sqs.Queue(scope, 'DeadLetterQueue', {
    ...fifoProps,
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    retentionPeriod: Duration.days(14),
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const queue = new sqs.Queue(scope, 'Queue', {
    ...fifoProps,
    ...(fifo
      ? {
          deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
          fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
        }
      : {}),
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    visibilityTimeout: Duration.seconds(functionTimeout.toSeconds() * TAGBEEZ_QUEUE_VISIBILITY_FACTOR),
    deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount },
    removalPolicy: RemovalPolicy.DESTROY,
  });
  return { queue, deadLetterQueue };
}
