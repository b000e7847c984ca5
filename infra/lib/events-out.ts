// Events out: the bus the function puts `Conversation tag changed` and `Message tagged` events
// on (created, or an existing one), the function's EVENT_* settings, and the optional example
// rule that sends Hot-buyer events to a queue of their own.
import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

import { checkInt, numberText } from './checks';
import { modelTags } from './repository';
import type { TagbeezServiceProps } from './service-props';

/** The only EventBridge action the function's role has, on its one bus. */
export const TAGBEEZ_EVENT_ACTIONS = ['events:PutEvents'] as const;

/** The `source` of the events tagbeez puts, and their `detail-type`s. */
export const TAGBEEZ_EVENT_SOURCE = 'tagbeez';
export const TAGBEEZ_EVENT_DETAIL_TYPES = ['Conversation tag changed', 'Message tagged'] as const;

/** The example rule's pattern (hotBuyerQueue; template.yaml's HotBuyerRule). */
export const TAGBEEZ_HOT_BUYER_PATTERN = {
  source: [TAGBEEZ_EVENT_SOURCE],
  detailType: ['Message tagged'],
  detail: { tag: ['Hot-buyer'] },
} as const;

const DEFAULT_EVENT_TAGS = ['Hot-buyer'] as const;
const EVENT_TAG_PATTERN = /^[A-Za-z0-9_-]+$/;
const EVENT_BUS_NAME_PATTERN = /^[A-Za-z0-9._/-]{1,256}$/;
const EVENT_BUS_ARN_PATTERN = /^arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus\/[A-Za-z0-9._/-]{1,256}$/;

/** The service's props that shape events out. */
export type TagbeezEventsProps = Pick<TagbeezServiceProps, 'eventBus' | 'eventTags' | 'eventsTimeout'>;

/** The bus of `eventBus`, whether this service created it, and the function's settings for it. */
export interface TagbeezEventsOut {
  readonly bus: events.IEventBus;
  readonly created: boolean;
  readonly environment: Record<string, string>;
}

/**
 * The bus of `eventBus` and the function's settings for it: `EVENT_BUS_NAME` is the created
 * bus's name, the name or ARN given, or an imported bus's ARN (PutEvents takes either, and only
 * an ARN reaches another account's bus). Undefined with `eventBus: 'none'`.
 */
export function resolveEventBus(
  scope: Construct,
  props: TagbeezEventsProps,
  namePrefix: string,
): TagbeezEventsOut | undefined {
  const given = props.eventBus ?? 'none';
  if (given === 'none') {
    if (props.eventTags !== undefined || props.eventsTimeout !== undefined) {
      throw new Error("TagbeezService: eventTags and eventsTimeout need an eventBus other than 'none'");
    }
    return undefined;
  }
  const { bus, busForFunction, created } = eventBusOf(scope, given, namePrefix);
  const tags = checkedEventTags(props.eventTags ?? [...DEFAULT_EVENT_TAGS]);
  const timeoutMs = checkInt(
    'eventsTimeout (ms)',
    (props.eventsTimeout ?? Duration.seconds(2)).toMilliseconds(),
    10,
    60_000,
  );
  return {
    bus,
    created,
    environment: {
      EVENT_BUS_NAME: busForFunction,
      EVENT_TAGS: tags.join(','),
      EVENTS_TIMEOUT_MS: numberText(timeoutMs),
    },
  };
}

/** The bus itself (created with `create`, else imported or given), and how the function names it. */
function eventBusOf(
  scope: Construct,
  given: string | events.IEventBus,
  namePrefix: string,
): { bus: events.IEventBus; busForFunction: string; created: boolean } {
  if (given === 'create') {
    const bus = new events.EventBus(scope, 'EventBus', { eventBusName: namePrefix });
    return { bus, busForFunction: bus.eventBusName, created: true };
  }
  if (typeof given !== 'string') {
    return { bus: given, busForFunction: given.eventBusArn, created: false };
  }
  return { bus: importEventBus(scope, given), busForFunction: given, created: false };
}

/** An existing bus, by name or ARN (a token is taken for a name). */
function importEventBus(scope: Construct, given: string): events.IEventBus {
  if (Token.isUnresolved(given)) {
    return events.EventBus.fromEventBusName(scope, 'EventBus', given);
  }
  if (EVENT_BUS_ARN_PATTERN.test(given)) {
    return events.EventBus.fromEventBusArn(scope, 'EventBus', given);
  }
  if (EVENT_BUS_NAME_PATTERN.test(given)) {
    return events.EventBus.fromEventBusName(scope, 'EventBus', given);
  }
  throw new Error(`TagbeezService: eventBus must be 'none', 'create', an event bus name or ARN, not '${given}'`);
}

/**
 * `tags`, if there is at least one and each is a tag name; with the repository at hand, each
 * must also be a tag of the shipped model, as an unknown tag would never put an event.
 */
function checkedEventTags(tags: string[]): string[] {
  if (tags.length === 0) throw new Error('TagbeezService: eventTags must name at least one tag');
  const known = modelTags();
  for (const tag of tags) {
    if (Token.isUnresolved(tag)) continue;
    if (!EVENT_TAG_PATTERN.test(tag)) {
      throw new Error(`TagbeezService: eventTags must be tag names (A-Z a-z 0-9 _ -), not '${tag}'`);
    }
    if (known !== undefined && !known.includes(tag)) {
      throw new Error(`TagbeezService: eventTags names '${tag}', which is not a tag of the model (${known.join(', ')})`);
    }
  }
  return tags;
}

/**
 * The example rule on the created bus: `Message tagged` events for Hot-buyer to a queue of
 * their own, which only this rule may send to (sqs:SendMessage alone; the SqsQueue target
 * would also allow GetQueueAttributes and GetQueueUrl). The rule needs a bus of this stack.
 */
export function createHotBuyerExample(scope: Construct, eventsOut: TagbeezEventsOut | undefined): sqs.Queue {
  if (!(eventsOut?.created)) {
    throw new Error("TagbeezService: hotBuyerQueue needs eventBus: 'create' (the example rule goes on the created bus)");
  }
  const queue = new sqs.Queue(scope, 'HotBuyerQueue', {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const rule = new events.Rule(scope, 'HotBuyerRule', {
    eventBus: eventsOut.bus,
    description: 'tagbeez example rule, Message tagged events for Hot-buyer to an SQS queue',
    eventPattern: {
      source: [...TAGBEEZ_HOT_BUYER_PATTERN.source],
      detailType: [...TAGBEEZ_HOT_BUYER_PATTERN.detailType],
      detail: { tag: [...TAGBEEZ_HOT_BUYER_PATTERN.detail.tag] },
    },
  });
  rule.addTarget({ bind: () => ({ arn: queue.queueArn }) });
  queue.addToResourcePolicy(
    new iam.PolicyStatement({
      effect: iam.Effect.ALLOW,
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['sqs:SendMessage'],
      resources: [queue.queueArn],
      conditions: { ArnEquals: { 'aws:SourceArn': rule.ruleArn } },
    }),
  );
  return queue;
}
