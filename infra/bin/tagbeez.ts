#!/usr/bin/env node
// The CDK app. Optional context (cdk.json, or `-c key=value` on the command line):
//   stackName         the stack's name (default Tagbeez)
//   authType          AWS_IAM (default) or NONE
//   corsAllowOrigins  comma-separated origins allowed by CORS (default: none)
//   accessLogging     true (default) or false: API access log group /aws/apigateway/<stack name>
//   bootstrapDir      folder holding the Lambda `bootstrap` (default: ../target/lambda/tagbeez)
//   alarmTopicArn     SNS topic ARN the alarms notify (default: none, no alarm actions)
//   metricsNamespace  CloudWatch namespace of the service's metrics (default tagbeez)
//   demoPage          on or off (default): serve GET /demo from the function
//   queue             true or false (default): the SQS queue in, its dead-letter queue and mapping
//   queueType         fifo (default) or standard
//   eventBus          none (default), create, or an existing bus's name or ARN: events out
//   eventTags         comma-separated tags that put `Message tagged` events (default Hot-buyer)
//   hotBuyerQueue     true or false (default): with eventBus=create, the example rule and queue
//   bulk              true or false (default): the bulk tagging state machine (Step Functions)
//   bulkBucketName    an existing bucket for bulk (default: the stack creates one)
// The stack is environment-agnostic: `cdk deploy` targets the CLI's account and region.
import * as path from 'node:path';

import { App } from 'aws-cdk-lib';

import type { TagbeezAuthType } from '../lib/tagbeez-service';
import { TagbeezStack } from '../lib/tagbeez-stack';

const app = new App();

function context(key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') {
    return undefined;
  }
  return String(value);
}

function main(): void {
  const authType = context('authType') ?? 'AWS_IAM';
  if (authType !== 'AWS_IAM' && authType !== 'NONE') {
    throw new Error(`context authType must be AWS_IAM or NONE, not ${authType}`);
  }
  const corsAllowOrigins = context('corsAllowOrigins')
    ?.split(',')
    .map((origin) => origin.trim())
    .filter((origin) => origin !== '');
  const accessLogging = context('accessLogging') ?? 'true';
  if (accessLogging !== 'true' && accessLogging !== 'false') {
    throw new Error(`context accessLogging must be true or false, not ${accessLogging}`);
  }
  const bootstrapDir = context('bootstrapDir');
  const demoPage = context('demoPage') ?? 'off';
  if (demoPage !== 'on' && demoPage !== 'off') {
    throw new Error(`context demoPage must be on or off, not ${demoPage}`);
  }
  const flag = (key: string): boolean => {
    const value = context(key) ?? 'false';
    if (value !== 'true' && value !== 'false') {
      throw new Error(`context ${key} must be true or false, not ${value}`);
    }
    return value === 'true';
  };
  const queueType = context('queueType') ?? 'fifo';
  if (queueType !== 'fifo' && queueType !== 'standard') {
    throw new Error(`context queueType must be fifo or standard, not ${queueType}`);
  }
  const eventTags = context('eventTags')
    ?.split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '');
  const eventBus = context('eventBus') ?? 'none';
  const bulkBucketName = context('bulkBucketName');

  new TagbeezStack(app, 'Tagbeez', {
    stackName: context('stackName'),
    description: 'tagbeez: intent tags for e-commerce chat messages (Lambda, HTTP API, DynamoDB)',
    service: {
      authType: authType as TagbeezAuthType,
      corsAllowOrigins,
      accessLogging: accessLogging === 'true',
      // Relative paths are taken from where cdk runs (infra/).
      bootstrapDir: bootstrapDir === undefined ? undefined : path.resolve(bootstrapDir),
      alarmTopicArn: context('alarmTopicArn'),
      metricsNamespace: context('metricsNamespace'),
      demoPage: demoPage === 'on',
      queue: flag('queue') ? { type: queueType } : false,
      eventBus,
      eventTags: eventBus === 'none' ? undefined : eventTags,
      hotBuyerQueue: flag('hotBuyerQueue'),
      bulk: flag('bulk') ? { bucketName: bulkBucketName } : false,
    },
  });
}

try {
  main();
} catch (error) {
  // A configuration mistake (no build yet, a bad context value): the message, not a stack trace.
  console.error(`tagbeez: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
