// Tests of the TagbeezService construct and TagbeezStack, on synthesized CloudFormation.
// They use a temporary folder with a dummy `bootstrap`, so they need no Rust build.
// Run with `npm test` (tsc, then Node's built-in test runner on dist/test/).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';

import {
  TAGBEEZ_ACCESS_LOG_FORMAT,
  TAGBEEZ_ADMIN_ROUTES,
  TAGBEEZ_ALARMS,
  TAGBEEZ_BULK_INVOKE_ACTIONS,
  TAGBEEZ_BULK_READ_ACTIONS,
  TAGBEEZ_BULK_SUBSTITUTIONS,
  TAGBEEZ_BULK_WRITE_ACTIONS,
  TAGBEEZ_CALLER_ROUTES,
  TAGBEEZ_DASHBOARD,
  TAGBEEZ_DRIFT_ALARMS,
  TAGBEEZ_EVENT_ACTIONS,
  TAGBEEZ_EVENT_DETAIL_TYPES,
  TAGBEEZ_EVENT_SOURCE,
  TAGBEEZ_EXPERIMENT_TABLE_ACTIONS,
  TAGBEEZ_FEEDBACK_TABLE_ACTIONS,
  TAGBEEZ_LOG_ACTIONS,
  TAGBEEZ_METRICS,
  TAGBEEZ_OPERATOR_RESOURCE,
  TAGBEEZ_PROFILE_TABLE_ACTIONS,
  TAGBEEZ_QUEUE_ACTIONS,
  TAGBEEZ_QUEUE_VISIBILITY_FACTOR,
  TAGBEEZ_ROLLUP_METRICS,
  TAGBEEZ_ROUTES,
  TAGBEEZ_TABLE_ACTIONS,
  TAGBEEZ_TAG_ROLLUP_METRICS,
  type TagbeezAlarmSpec,
  TagbeezService,
  type TagbeezServiceProps,
  defaultBootstrapDir,
  defaultBulkDefinitionFile,
  modelTags,
  tagbeezPascalCase,
  tagbeezRouteResource,
  tagbeezSearchExpression,
} from '../lib/tagbeez-service';
import { TagbeezStack } from '../lib/tagbeez-stack';

// ---------------------------------------------------------------------------------------------
// Fixtures

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tagbeez-infra-test-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A folder laid out like cargo-lambda's output: a dummy `bootstrap` and a `bootstrap.zip`. */
function fakeBootstrapDir(): string {
  const dir = fs.mkdtempSync(path.join(scratch, 'lambda-'));
  fs.writeFileSync(path.join(dir, 'bootstrap'), '#!/bin/sh\necho not the real binary\n', { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'bootstrap.zip'), 'not a zip');
  return dir;
}

const bootstrapDir = fakeBootstrapDir();

/** An app that synthesizes into the scratch folder (removed after the tests). */
function newApp(): App {
  return new App({ outdir: fs.mkdtempSync(path.join(scratch, 'cdk.out-')) });
}

function synth(service: TagbeezServiceProps = {}): { stack: TagbeezStack; template: Template } {
  const app = newApp();
  const stack = new TagbeezStack(app, 'TagbeezTest', { service: { bootstrapDir, ...service } });
  return { stack, template: Template.fromStack(stack) };
}

// Synthesized once each and shared by the tests that only read them.
const defaults = synth();
const customized = synth({
  authType: 'NONE',
  pointInTimeRecovery: false,
  logRetention: logs.RetentionDays.ONE_WEEK,
  memorySize: 1024,
  timeout: Duration.seconds(20),
  corsAllowOrigins: ['https://shop.example.com'],
  throttling: { rateLimit: 7, burstLimit: 11 },
  tableRemovalPolicy: RemovalPolicy.DESTROY,
  windowSize: 5,
  windowDecay: 0.5,
  conversationTtl: Duration.hours(2),
  maxMessageChars: 2000,
  snippetChars: 0,
  dynamodbConnectTimeout: Duration.millis(500),
  dynamodbOperationTimeout: Duration.seconds(2),
  storeDeadline: Duration.seconds(4),
  logLevel: 'tagbeez=debug',
  accessLogging: false,
  feedbackTtl: Duration.days(30),
  metricsNamespace: 'shop/tagbeez',
  demoPage: true,
  explainMaxWords: 16,
  inferenceThreads: 2,
  inferenceForm: 'f32',
  profileCache: Duration.minutes(5),
  profileTimeout: Duration.millis(150),
  driftWindow: 5000,
  driftByShop: false,
  feedbackTableRemovalPolicy: RemovalPolicy.DESTROY,
  profileTableRemovalPolicy: RemovalPolicy.DESTROY,
  experimentTableRemovalPolicy: RemovalPolicy.DESTROY,
  alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:ops-alerts',
  alarmNamePrefix: 'shop-tagbeez',
});
// The options, each on its own and all at once.
const withQueue = synth({ queue: true });
const withStandardQueue = synth({
  queue: { type: 'standard', batchSize: 5, maxBatchingWindow: Duration.seconds(20), maxReceiveCount: 3 },
  timeout: Duration.seconds(20),
});
const withEvents = synth({ eventBus: 'create', hotBuyerQueue: true });
const withBulk = synth({ bulk: true });
const everything = synth({
  queue: true,
  eventBus: 'create',
  eventTags: ['Hot-buyer', 'Deal-seeker'],
  hotBuyerQueue: true,
  bulk: { maxConcurrency: 50, maxItemsPerBatch: 32, toleratedFailurePercentage: 5, resultsExpiration: Duration.days(7) },
  alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:ops-alerts',
  alarmNamePrefix: 'all',
});

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

function onlyResource(template: Template, type: string): { id: string; resource: Json } {
  const found = Object.entries(template.findResources(type));
  assert.equal(found.length, 1, `expected exactly one ${type}, found ${found.length}`);
  const [id, resource] = found[0];
  return { id, resource };
}

function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function sorted(values: readonly string[]): string[] {
  return [...values].sort();
}

/** The DynamoDB table whose partition key is `key`. */
function tableByKey(template: Template, key: string): { id: string; resource: Json } {
  const found = Object.entries(template.findResources('AWS::DynamoDB::Table')).filter(
    ([, table]) => (table as Json).Properties.KeySchema?.[0]?.AttributeName === key,
  );
  assert.equal(found.length, 1, `expected exactly one table keyed by ${key}, found ${found.length}`);
  return { id: found[0][0], resource: found[0][1] };
}

/** The conversation table (partition key conversation_id). */
function conversationTable(template: Template): { id: string; resource: Json } {
  return tableByKey(template, 'conversation_id');
}

/** The feedback table (partition key feedback_id). */
function feedbackTable(template: Template): { id: string; resource: Json } {
  return tableByKey(template, 'feedback_id');
}

/** The shop profile table (partition key shop_id). */
function profileTable(template: Template): { id: string; resource: Json } {
  return tableByKey(template, 'shop_id');
}

/** The experiment table (partition key pk). */
function experimentTable(template: Template): { id: string; resource: Json } {
  return tableByKey(template, 'pk');
}

/** The queue in: the SQS queue with a RedrivePolicy. */
function messageQueue(template: Template): { id: string; resource: Json } {
  const found = Object.entries(template.findResources('AWS::SQS::Queue')).filter(
    ([, q]) => (q as Json).Properties?.RedrivePolicy !== undefined,
  );
  assert.equal(found.length, 1, `expected one queue with a RedrivePolicy, found ${found.length}`);
  return { id: found[0][0], resource: found[0][1] };
}

/** The queue's dead-letter queue: the target of its RedrivePolicy. */
function deadLetterQueue(template: Template): { id: string; resource: Json } {
  const target = messageQueue(template).resource.Properties.RedrivePolicy.deadLetterTargetArn;
  assert.equal(target?.['Fn::GetAtt']?.[1], 'Arn', JSON.stringify(target));
  const id: string = target['Fn::GetAtt'][0];
  return { id, resource: (template.findResources('AWS::SQS::Queue') as Json)[id] };
}

/** `<action> on <resource JSON>` for each action, as checkLeastPrivilege lists grants. */
function grantsOf(actions: readonly string[], resource: Json): string[] {
  return actions.map((a) => `${a} on ${JSON.stringify(resource)}`);
}

/** The nearest ancestor of this file with a Cargo.toml: the repository root, if there is one. */
function repoRoot(): string | undefined {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'Cargo.toml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

const SERVICE_ENV_DEFAULTS: Record<string, string> = {
  WINDOW_SIZE: '3',
  WINDOW_DECAY: '1',
  CONVERSATION_TTL_SECONDS: '86400',
  MAX_MESSAGE_CHARS: '5000',
  SNIPPET_CHARS: '50',
  DYNAMODB_CONNECT_TIMEOUT_MS: '1000',
  DYNAMODB_OPERATION_TIMEOUT_MS: '3000',
  STORE_DEADLINE_MS: '5000',
  LOG_LEVEL: 'info',
  FEEDBACK_TTL_DAYS: '365',
  METRICS: 'emf',
  METRICS_NAMESPACE: 'tagbeez',
  DEMO_PAGE: 'off',
  EXPLAIN_MAX_WORDS: '32',
  INFERENCE_THREADS: '1',
  INFERENCE_FORM: 'auto',
  PROFILE_CACHE_SECONDS: '60',
  PROFILE_TIMEOUT_MS: '300',
  DRIFT_WINDOW: '1000',
  DRIFT_BY_SHOP: 'on',
};

/** The tags of the repository's model/labels.json (the drift alarms' by default). */
function labelTags(): string[] {
  const root = repoRoot();
  assert.ok(root, 'the tests run inside the repository');
  const labels = JSON.parse(fs.readFileSync(path.join(root, 'model', 'labels.json'), 'utf8')) as { tags: string[] };
  assert.ok(labels.tags.length > 0);
  return labels.tags;
}

// ---------------------------------------------------------------------------------------------
// 1. The function

describe('function', () => {
  it('is arm64 provided.al2023 with handler bootstrap, 1769 MB and 10 s by default', () => {
    defaults.template.resourceCountIs('AWS::Lambda::Function', 1);
    defaults.template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Architectures: ['arm64'],
      Handler: 'bootstrap',
      MemorySize: 1769,
      Timeout: 10,
    });
  });

  it('gets every service setting, and the four table names from the tables, and nothing local-only', () => {
    const table = conversationTable(defaults.template);
    const feedback = feedbackTable(defaults.template);
    const fn = onlyResource(defaults.template, 'AWS::Lambda::Function');
    const vars: Record<string, Json> = fn.resource.Properties.Environment.Variables;
    assert.deepEqual(vars, {
      ...SERVICE_ENV_DEFAULTS,
      TABLE_NAME: { Ref: table.id },
      FEEDBACK_TABLE_NAME: { Ref: feedback.id },
      PROFILE_TABLE_NAME: { Ref: profileTable(defaults.template).id },
      EXPERIMENT_TABLE_NAME: { Ref: experimentTable(defaults.template).id },
    });
    for (const localOnly of [
      'HOST',
      'PORT',
      'DYNAMODB_ENDPOINT',
      'INFERENCE_CONCURRENCY',
      'INFERENCE_QUEUE',
      'INFERENCE_QUEUE_TIMEOUT_MS',
    ]) {
      assert.ok(!(localOnly in vars), `${localOnly} must not be set in Lambda`);
    }
  });

  it('takes overridden settings, memory and timeout', () => {
    const table = conversationTable(customized.template);
    const feedback = feedbackTable(customized.template);
    customized.template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 1024,
      Timeout: 20,
      Environment: {
        Variables: Match.exact({
          WINDOW_SIZE: '5',
          WINDOW_DECAY: '0.5',
          CONVERSATION_TTL_SECONDS: '7200',
          MAX_MESSAGE_CHARS: '2000',
          SNIPPET_CHARS: '0',
          DYNAMODB_CONNECT_TIMEOUT_MS: '500',
          DYNAMODB_OPERATION_TIMEOUT_MS: '2000',
          STORE_DEADLINE_MS: '4000',
          LOG_LEVEL: 'tagbeez=debug',
          FEEDBACK_TTL_DAYS: '30',
          METRICS: 'emf',
          METRICS_NAMESPACE: 'shop/tagbeez',
          DEMO_PAGE: 'on',
          EXPLAIN_MAX_WORDS: '16',
          INFERENCE_THREADS: '2',
          INFERENCE_FORM: 'f32',
          PROFILE_CACHE_SECONDS: '300',
          PROFILE_TIMEOUT_MS: '150',
          DRIFT_WINDOW: '5000',
          DRIFT_BY_SHOP: 'off',
          TABLE_NAME: { Ref: table.id },
          FEEDBACK_TABLE_NAME: { Ref: feedback.id },
          PROFILE_TABLE_NAME: { Ref: profileTable(customized.template).id },
          EXPERIMENT_TABLE_NAME: { Ref: experimentTable(customized.template).id },
        }),
      },
    });
  });

  it('warns when the timeout passes the 30 s HTTP API limit', () => {
    const stack = new Stack(newApp(), 'LongTimeout');
    new TagbeezService(stack, 'Tagbeez', { bootstrapDir, timeout: Duration.seconds(45) });
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('HTTP API integrations stop'));
    Annotations.fromStack(defaults.stack).hasNoWarning('*', Match.anyValue());
  });

  it('refuses settings the binary would refuse at start-up', () => {
    const bad: Array<[TagbeezServiceProps, RegExp]> = [
      [{ windowSize: 0 }, /windowSize/],
      [{ windowSize: 51 }, /windowSize/],
      [{ windowDecay: 0 }, /windowDecay/],
      [{ windowDecay: 1.5 }, /windowDecay/],
      [{ conversationTtl: Duration.seconds(59) }, /conversationTtl/],
      [{ maxMessageChars: 0 }, /maxMessageChars/],
      [{ snippetChars: 501 }, /snippetChars/],
      [{ dynamodbConnectTimeout: Duration.millis(5) }, /dynamodbConnectTimeout/],
      [{ dynamodbOperationTimeout: Duration.minutes(2) }, /dynamodbOperationTimeout/],
      [{ storeDeadline: Duration.millis(5) }, /storeDeadline/],
      [{ logLevel: ' ' }, /logLevel/],
      [{ feedbackTtl: Duration.hours(12) }, /feedbackTtl/],
      [{ feedbackTtl: Duration.hours(36) }, /feedbackTtl/],
      [{ feedbackTtl: Duration.days(3651) }, /feedbackTtl/],
      [{ metricsNamespace: '' }, /metricsNamespace/],
      [{ metricsNamespace: 'AWS/Lambda' }, /metricsNamespace/],
      [{ metricsNamespace: 'has space' }, /metricsNamespace/],
      [{ metricsNamespace: 'quo"te' }, /metricsNamespace/],
      [{ explainMaxWords: 0 }, /explainMaxWords/],
      [{ explainMaxWords: 129 }, /explainMaxWords/],
      [{ inferenceThreads: 0 }, /inferenceThreads/],
      [{ inferenceThreads: 17 }, /inferenceThreads/],
      [{ inferenceForm: 'fp16' as 'auto' }, /inferenceForm/],
      [{ profileCache: Duration.seconds(3601) }, /profileCache/],
      [{ profileTimeout: Duration.millis(5) }, /profileTimeout/],
      [{ profileTimeout: Duration.minutes(2) }, /profileTimeout/],
      [{ driftWindow: 99 }, /driftWindow/],
      [{ driftWindow: 100_001 }, /driftWindow/],
      [{ driftTags: [] }, /driftTags/],
      [{ driftTags: ['Impulse-buyer'] }, /driftTags names 'Impulse-buyer', which is not a tag of the model/],
      [{ driftTags: ['Hot-buyer', 'Hot-buyer'] }, /driftTags/],
      [{ driftTags: ['has space'] }, /driftTags/],
      [{ alarmTopicArn: 'ops-alerts' }, /alarmTopicArn/],
      [{ alarmTopicArn: 'arn:aws:sqs:eu-west-1:123456789012:queue' }, /alarmTopicArn/],
    ];
    for (const [props, message] of bad) {
      const stack = new Stack(newApp(), 'Bad');
      assert.throws(() => new TagbeezService(stack, 'Tagbeez', { bootstrapDir, ...props }), message);
    }
  });

  it('packages bootstrap alone (not cargo-lambda\'s bootstrap.zip)', () => {
    const outdir = fs.mkdtempSync(path.join(scratch, 'cdk.out-'));
    const app = new App({ outdir });
    new TagbeezStack(app, 'AssetCheck', { service: { bootstrapDir } });
    app.synth();
    const assetDirs = fs
      .readdirSync(outdir)
      .filter((name) => name.startsWith('asset.') && fs.statSync(path.join(outdir, name)).isDirectory());
    assert.equal(assetDirs.length, 1, `expected one asset folder, found ${assetDirs.join(', ')}`);
    assert.deepEqual(fs.readdirSync(path.join(outdir, assetDirs[0])), ['bootstrap']);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The HTTP API

function routesOf(template: Template): Array<{ routeKey: string; authorizationType: string }> {
  return Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((route: Json) => ({
    routeKey: route.Properties.RouteKey,
    authorizationType: route.Properties.AuthorizationType,
  }));
}

describe('HTTP API', () => {
  it('has exactly the service routes, each with AWS_IAM authorization by default', () => {
    const routes = routesOf(defaults.template);
    assert.deepEqual(sorted(routes.map((r) => r.routeKey)), sorted(TAGBEEZ_ROUTES));
    assert.equal(routes.length, 16);
    for (const route of routes) {
      assert.equal(route.authorizationType, 'AWS_IAM', `${route.routeKey} must use AWS_IAM`);
    }
  });

  it('splits the routes into the admin routes (/shops/*) and the callers\' (every other one)', () => {
    assert.deepEqual(sorted(TAGBEEZ_ADMIN_ROUTES), [
      'DELETE /shops/{shop_id}/profile',
      'GET /shops/{shop_id}/experiments/{name}',
      'GET /shops/{shop_id}/profile',
      'PUT /shops/{shop_id}/profile',
    ]);
    assert.deepEqual(sorted([...TAGBEEZ_ADMIN_ROUTES, ...TAGBEEZ_CALLER_ROUTES]), sorted(TAGBEEZ_ROUTES));
    assert.ok(TAGBEEZ_CALLER_ROUTES.includes('POST /outcome'));
    for (const route of TAGBEEZ_CALLER_ROUTES) assert.ok(!route.includes(' /shops'), route);
    assert.equal(tagbeezRouteResource('GET /conversation/{id}'), '$default/GET/conversation/*');
    assert.equal(tagbeezRouteResource('GET /'), '$default/GET/');
    assert.equal(tagbeezRouteResource('PUT /shops/{shop_id}/profile'), '$default/PUT/shops/*/profile');
    assert.equal(TAGBEEZ_OPERATOR_RESOURCE, '$default/*/shops/*');
  });

  it('has execute-api resources for callers that match no admin route, and one for operators that matches each', () => {
    // IAM's wildcards: * is any run of characters (slashes included), ? one character.
    const matches = (pattern: string, resource: string): boolean =>
      new RegExp(`^${pattern.replace(/[.+^$()|[\]\\{}]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(resource);
    // A request's resource: the path with each parameter a concrete value, here one with a slash-free id.
    const requested = (route: string): string => tagbeezRouteResource(route).replace(/\*/g, 'x1');
    const callers = TAGBEEZ_CALLER_ROUTES.map(tagbeezRouteResource);
    for (const route of TAGBEEZ_ROUTES) {
      const admin = TAGBEEZ_ADMIN_ROUTES.includes(route);
      assert.equal(callers.some((p) => matches(p, requested(route))), !admin, `callers and ${route}`);
      assert.equal(matches(TAGBEEZ_OPERATOR_RESOURCE, requested(route)), admin, `operators and ${route}`);
      // Nor a shop id that looks like something else.
      if (admin) {
        const tricky = tagbeezRouteResource(route).replace('*', 'conversation');
        assert.ok(!callers.some((p) => matches(p, tricky)), tricky);
      }
    }
  });

  it('has NONE authorization on every route when authType is NONE', () => {
    const routes = routesOf(customized.template);
    assert.deepEqual(sorted(routes.map((r) => r.routeKey)), sorted(TAGBEEZ_ROUTES));
    for (const route of routes) {
      assert.equal(route.authorizationType, 'NONE', `${route.routeKey} must be public`);
    }
  });

  it('sends every route to the function through one Lambda proxy integration, payload 2.0', () => {
    const fn = onlyResource(defaults.template, 'AWS::Lambda::Function');
    const integration = onlyResource(defaults.template, 'AWS::ApiGatewayV2::Integration');
    assert.equal(integration.resource.Properties.IntegrationType, 'AWS_PROXY');
    assert.equal(integration.resource.Properties.PayloadFormatVersion, '2.0');
    assert.deepEqual(integration.resource.Properties.IntegrationUri, { 'Fn::GetAtt': [fn.id, 'Arn'] });
    for (const route of Object.values(defaults.template.findResources('AWS::ApiGatewayV2::Route'))) {
      assert.deepEqual((route as Json).Properties.Target, {
        'Fn::Join': ['', ['integrations/', { Ref: integration.id }]],
      });
    }
    // API Gateway may invoke the function, once per route, and nothing else may.
    const permissions = Object.values(defaults.template.findResources('AWS::Lambda::Permission'));
    assert.equal(permissions.length, TAGBEEZ_ROUTES.length);
    for (const permission of permissions as Json[]) {
      assert.equal(permission.Properties.Principal, 'apigateway.amazonaws.com');
      assert.equal(permission.Properties.Action, 'lambda:InvokeFunction');
    }
  });

  it('throttles the $default stage (auto-deployed)', () => {
    defaults.template.resourceCountIs('AWS::ApiGatewayV2::Stage', 1);
    defaults.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
    });
    customized.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      DefaultRouteSettings: { ThrottlingRateLimit: 7, ThrottlingBurstLimit: 11 },
    });
  });

  it('has no CORS by default, and the given origins when asked', () => {
    const api = onlyResource(defaults.template, 'AWS::ApiGatewayV2::Api');
    assert.equal(api.resource.Properties.CorsConfiguration, undefined);
    customized.template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      CorsConfiguration: Match.objectLike({
        AllowOrigins: ['https://shop.example.com'],
        AllowMethods: Match.arrayWith(['GET', 'POST', 'PUT', 'DELETE']),
        AllowHeaders: Match.arrayWith(['content-type', 'authorization', 'x-amz-date']),
        ExposeHeaders: ['retry-after'],
      }),
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 3. The table

describe('table', () => {
  it('is on-demand, keyed by conversation_id (S), TTL on expires_at, encrypted, PITR on', () => {
    defaults.template.resourceCountIs('AWS::DynamoDB::Table', 4);
    defaults.template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'conversation_id', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'conversation_id', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
      SSESpecification: { SSEEnabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('has no secondary indexes (no table has)', () => {
    for (const table of [
      conversationTable(defaults.template),
      feedbackTable(defaults.template),
      profileTable(defaults.template),
      experimentTable(defaults.template),
    ]) {
      assert.equal(table.resource.Properties.GlobalSecondaryIndexes, undefined);
      assert.equal(table.resource.Properties.LocalSecondaryIndexes, undefined);
    }
  });

  it('has PITR off when asked', () => {
    assert.deepEqual(conversationTable(customized.template).resource.Properties.PointInTimeRecoverySpecification, {
      PointInTimeRecoveryEnabled: false,
    });
  });

  it('is retained by default, destroyed when asked', () => {
    const kept = conversationTable(defaults.template).resource;
    assert.equal(kept.DeletionPolicy, 'Retain');
    assert.equal(kept.UpdateReplacePolicy, 'Retain');
    const dropped = conversationTable(customized.template).resource;
    assert.equal(dropped.DeletionPolicy, 'Delete');
    assert.equal(dropped.UpdateReplacePolicy, 'Delete');
  });
});

// ---------------------------------------------------------------------------------------------
// 3b. The feedback table (template.yaml's FeedbackTable)

describe('feedback table', () => {
  it('is its own table: on-demand, keyed by feedback_id (S), TTL on expires_at, encrypted, PITR on', () => {
    const table = feedbackTable(defaults.template);
    assert.notEqual(table.id, conversationTable(defaults.template).id);
    assert.deepEqual(table.resource.Properties, {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'feedback_id', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'feedback_id', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
      SSESpecification: { SSEEnabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('keeps PITR on when the conversation table has it off', () => {
    assert.deepEqual(feedbackTable(customized.template).resource.Properties.PointInTimeRecoverySpecification, {
      PointInTimeRecoveryEnabled: true,
    });
  });

  it('is retained by default (training data), destroyed when asked', () => {
    const kept = feedbackTable(defaults.template).resource;
    assert.equal(kept.DeletionPolicy, 'Retain');
    assert.equal(kept.UpdateReplacePolicy, 'Retain');
    const dropped = feedbackTable(customized.template).resource;
    assert.equal(dropped.DeletionPolicy, 'Delete');
    assert.equal(dropped.UpdateReplacePolicy, 'Delete');
    // tableRemovalPolicy alone does not drop the feedback.
    const { template } = synth({ tableRemovalPolicy: RemovalPolicy.DESTROY });
    assert.equal(feedbackTable(template).resource.DeletionPolicy, 'Retain');
  });

  it('allows the function exactly one action on it, dynamodb:PutItem', () => {
    assert.deepEqual([...TAGBEEZ_FEEDBACK_TABLE_ACTIONS], ['dynamodb:PutItem']);
    for (const template of [defaults.template, customized.template]) {
      const arn = JSON.stringify({ 'Fn::GetAtt': [feedbackTable(template).id, 'Arn'] });
      const onFeedback = allStatements(template).filter((s) => JSON.stringify(s.statement.Resource ?? null).includes(feedbackTable(template).id));
      assert.equal(onFeedback.length, 1, JSON.stringify(onFeedback));
      assert.deepEqual(actionsOf(onFeedback[0].statement), ['dynamodb:PutItem']);
      assert.equal(JSON.stringify(onFeedback[0].statement.Resource), arn);
      assert.deepEqual(onFeedback[0].roles, [functionRole(template).id]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 3c. The profile and experiment tables (template.yaml's ProfileTable, ExperimentTable)

describe('profile and experiment tables', () => {
  it('profiles: on-demand, keyed by shop_id (S), no TTL, encrypted, PITR on', () => {
    assert.deepEqual(profileTable(defaults.template).resource.Properties, {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'shop_id', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'shop_id', AttributeType: 'S' }],
      SSESpecification: { SSEEnabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('experiments: on-demand, keyed by pk (S) and sk (S), TTL on expires_at, encrypted, PITR on', () => {
    assert.deepEqual(experimentTable(defaults.template).resource.Properties, {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
      SSESpecification: { SSEEnabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('keep PITR on when the conversation table has it off', () => {
    for (const table of [profileTable(customized.template), experimentTable(customized.template)]) {
      assert.deepEqual(table.resource.Properties.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
    }
  });

  it('are retained by default, destroyed when asked (each by its own prop)', () => {
    for (const table of [profileTable(defaults.template), experimentTable(defaults.template)]) {
      assert.equal(table.resource.DeletionPolicy, 'Retain');
      assert.equal(table.resource.UpdateReplacePolicy, 'Retain');
    }
    for (const table of [profileTable(customized.template), experimentTable(customized.template)]) {
      assert.equal(table.resource.DeletionPolicy, 'Delete');
      assert.equal(table.resource.UpdateReplacePolicy, 'Delete');
    }
    const { template } = synth({ tableRemovalPolicy: RemovalPolicy.DESTROY, profileTableRemovalPolicy: RemovalPolicy.DESTROY });
    assert.equal(profileTable(template).resource.DeletionPolicy, 'Delete');
    assert.equal(experimentTable(template).resource.DeletionPolicy, 'Retain');
    assert.equal(feedbackTable(template).resource.DeletionPolicy, 'Retain');
  });

  it('allow the function exactly its stores\' actions, each on its own table', () => {
    assert.deepEqual([...TAGBEEZ_PROFILE_TABLE_ACTIONS], ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem']);
    assert.deepEqual([...TAGBEEZ_EXPERIMENT_TABLE_ACTIONS], ['dynamodb:UpdateItem', 'dynamodb:PutItem', 'dynamodb:Query']);
    for (const template of [defaults.template, customized.template]) {
      for (const [table, actions] of [
        [profileTable(template), TAGBEEZ_PROFILE_TABLE_ACTIONS],
        [experimentTable(template), TAGBEEZ_EXPERIMENT_TABLE_ACTIONS],
      ] as const) {
        const on = allStatements(template).filter((s) => JSON.stringify(s.statement.Resource ?? null).includes(table.id));
        assert.equal(on.length, 1, JSON.stringify(on));
        assert.deepEqual(actionsOf(on[0].statement), [...actions]);
        assert.deepEqual(on[0].statement.Resource, { 'Fn::GetAtt': [table.id, 'Arn'] });
        assert.deepEqual(on[0].roles, [functionRole(template).id]);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 4. IAM: least privilege

interface FoundStatement {
  source: string;
  statement: Json;
  /** The logical ids of the roles it applies to, when it applies to roles only. */
  roles?: string[];
}

/** Every permission statement in the template: IAM policies, managed policies, inline policies. */
function allStatements(template: Template): FoundStatement[] {
  const found: FoundStatement[] = [];
  const add = (source: string, document: Json, roles?: string[]) => {
    for (const statement of asArray(document?.Statement)) found.push({ source, statement, roles });
  };
  for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) {
    for (const [id, resource] of Object.entries(template.findResources(type))) {
      const props = (resource as Json).Properties;
      const roleRefs = asArray<Json>(props.Roles);
      const rolesOnly =
        asArray(props.Users).length === 0 &&
        asArray(props.Groups).length === 0 &&
        roleRefs.every((r) => typeof r?.Ref === 'string');
      add(`${type} ${id}`, props.PolicyDocument, rolesOnly ? roleRefs.map((r) => r.Ref as string) : undefined);
    }
  }
  for (const type of ['AWS::IAM::Role', 'AWS::IAM::User', 'AWS::IAM::Group']) {
    for (const [id, resource] of Object.entries(template.findResources(type))) {
      for (const policy of asArray((resource as Json).Properties?.Policies)) {
        add(
          `${type} ${id} inline ${(policy as Json).PolicyName}`,
          (policy as Json).PolicyDocument,
          type === 'AWS::IAM::Role' ? [id] : undefined,
        );
      }
    }
  }
  return found;
}

function actionsOf(statement: Json): string[] {
  return asArray<string>(statement.Action);
}

/** The function's role: its logical id and resource. */
function functionRole(template: Template): { id: string; resource: Json } {
  const fn = onlyResource(template, 'AWS::Lambda::Function');
  const roleRef = fn.resource.Properties.Role;
  assert.ok(roleRef?.['Fn::GetAtt']?.[1] === 'Arn', `unexpected Role: ${JSON.stringify(roleRef)}`);
  const id: string = roleRef['Fn::GetAtt'][0];
  const resource = (template.findResources('AWS::IAM::Role') as Json)[id];
  assert.ok(resource, `role ${id} not found`);
  return { id, resource };
}

/** The function's own log group (its LoggingConfig), by logical id. */
function functionLogGroupId(template: Template): string {
  const fn = onlyResource(template, 'AWS::Lambda::Function');
  const id = fn.resource.Properties.LoggingConfig?.LogGroup?.Ref;
  assert.equal(typeof id, 'string', `LoggingConfig: ${JSON.stringify(fn.resource.Properties.LoggingConfig)}`);
  assert.equal(template.findResources('AWS::Logs::LogGroup')[id]?.Type, 'AWS::Logs::LogGroup');
  return id;
}

/**
 * The template grants exactly what the SAM template's FunctionRole does, and nothing else:
 * GetItem, PutItem and DeleteItem on the table, CreateLogStream and PutLogEvents on the
 * function's own log group, on a role with no managed policies; plus `extra` (`<action> on
 * <JSON of the resource>`, what an option adds). Statements of `otherRoles` only (roles a test
 * added itself, or the bulk state machine's) are left out.
 */
function checkLeastPrivilege(template: Template, otherRoles: string[] = [], extra: string[] = []): void {
  // The constants themselves must not widen.
  assert.deepEqual(sorted(TAGBEEZ_TABLE_ACTIONS), ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem']);
  assert.deepEqual(sorted(TAGBEEZ_LOG_ACTIONS), ['logs:CreateLogStream', 'logs:PutLogEvents']);

  assert.deepEqual([...TAGBEEZ_FEEDBACK_TABLE_ACTIONS], ['dynamodb:PutItem']);
  assert.deepEqual(sorted(TAGBEEZ_PROFILE_TABLE_ACTIONS), ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem']);
  assert.deepEqual(sorted(TAGBEEZ_EXPERIMENT_TABLE_ACTIONS), ['dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem']);

  const table = conversationTable(template);
  const tableArn = { 'Fn::GetAtt': [table.id, 'Arn'] };
  const feedbackArn = { 'Fn::GetAtt': [feedbackTable(template).id, 'Arn'] };
  const profileArn = { 'Fn::GetAtt': [profileTable(template).id, 'Arn'] };
  const experimentArn = { 'Fn::GetAtt': [experimentTable(template).id, 'Arn'] };
  const logGroupArn = { 'Fn::GetAtt': [functionLogGroupId(template), 'Arn'] };

  // No managed policy at all (AWSLambdaBasicExecutionRole allows logs on every log group), no
  // permissions boundary standing in for one, no inline policies.
  const role = functionRole(template);
  assert.ok(!otherRoles.includes(role.id));
  assert.deepEqual(
    asArray(role.resource.Properties.ManagedPolicyArns),
    [],
    `the function role must have no managed policies: ${JSON.stringify(role.resource.Properties.ManagedPolicyArns)}`,
  );
  assert.deepEqual(asArray(role.resource.Properties.Policies), [], 'the function role must have no inline policies');
  assert.deepEqual(role.resource.Properties.AssumeRolePolicyDocument.Statement, [
    { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
  ]);
  for (const [id, other] of Object.entries(template.findResources('AWS::IAM::Role')) as Array<[string, Json]>) {
    if (id !== role.id) assert.ok(otherRoles.includes(id), `unexpected role ${id}: ${JSON.stringify(other)}`);
  }

  // Every action of every statement, with the resource it applies to.
  const grants: string[] = [];
  for (const { source, statement, roles } of allStatements(template)) {
    if (roles !== undefined && roles.length > 0 && roles.every((r) => otherRoles.includes(r))) continue;
    const where = `${source}: ${JSON.stringify(statement)}`;
    assert.equal(statement.Effect, 'Allow', where);
    assert.equal(statement.NotAction, undefined, `NotAction in ${where}`);
    assert.equal(statement.NotResource, undefined, `NotResource in ${where}`);
    assert.equal(statement.NotPrincipal, undefined, `NotPrincipal in ${where}`);
    const resources = asArray<Json>(statement.Resource);
    assert.ok(resources.length > 0, `no Resource in ${where}`);
    for (const action of actionsOf(statement)) {
      for (const resource of resources) grants.push(`${action} on ${JSON.stringify(resource)}`);
    }
  }
  const expected = [
    ...TAGBEEZ_TABLE_ACTIONS.map((a) => `${a} on ${JSON.stringify(tableArn)}`),
    ...TAGBEEZ_FEEDBACK_TABLE_ACTIONS.map((a) => `${a} on ${JSON.stringify(feedbackArn)}`),
    ...TAGBEEZ_PROFILE_TABLE_ACTIONS.map((a) => `${a} on ${JSON.stringify(profileArn)}`),
    ...TAGBEEZ_EXPERIMENT_TABLE_ACTIONS.map((a) => `${a} on ${JSON.stringify(experimentArn)}`),
    ...TAGBEEZ_LOG_ACTIONS.map((a) => `${a} on ${JSON.stringify(logGroupArn)}`),
  ];
  assert.equal(expected.length, 12);
  assert.deepEqual(
    sorted(grants),
    sorted([...expected, ...extra]),
    'the only permissions must be the 3 item operations on the conversation table, PutItem on the feedback ' +
      'table, the profile and experiment stores\' 3 actions each on their tables and the 2 log writes on the ' +
      'function\'s log group (and what an option adds)',
  );
  for (const grant of grants) assert.ok(!/ on "\*"$/.test(grant), `a wildcard resource: ${grant}`);
}

describe('IAM', () => {
  it('grants only the item operations of each table\'s store on that table and log writes on the function\'s log group', () => {
    checkLeastPrivilege(defaults.template);
  });

  it('stays least-privilege with every option changed', () => {
    checkLeastPrivilege(customized.template);
  });

  it('has one role, assumable by Lambda only, with no managed policies', () => {
    const role = onlyResource(defaults.template, 'AWS::IAM::Role');
    assert.equal(role.id, functionRole(defaults.template).id);
    assert.deepEqual(role.resource.Properties.AssumeRolePolicyDocument.Statement, [
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
    assert.equal(role.resource.Properties.ManagedPolicyArns, undefined);
    assert.equal(JSON.stringify(defaults.template.toJSON()).includes('AWSLambdaBasicExecutionRole'), false);
  });

  it('puts the logs statement on the function\'s log group, not on log groups in general', () => {
    const policies = allStatements(defaults.template).filter((s) =>
      actionsOf(s.statement).some((a) => a.startsWith('logs:')),
    );
    assert.equal(policies.length, 1);
    assert.deepEqual(policies[0].statement.Resource, {
      'Fn::GetAtt': [functionLogGroupId(defaults.template), 'Arn'],
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Logs

describe('logs', () => {
  it('has a log group with a one-month retention, used by the function', () => {
    const id = functionLogGroupId(defaults.template);
    const group = (defaults.template.findResources('AWS::Logs::LogGroup') as Json)[id];
    assert.equal(group.Properties.RetentionInDays, 30);
    assert.equal(group.Properties.LogGroupName, undefined);
    assert.equal(group.DeletionPolicy, 'Delete');
  });

  it('takes the retention prop', () => {
    const group = onlyResource(customized.template, 'AWS::Logs::LogGroup');
    assert.equal(group.resource.Properties.RetentionInDays, 7);
    customized.template.hasResourceProperties('AWS::Lambda::Function', {
      LoggingConfig: { LogGroup: { Ref: group.id } },
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 5b. API access logs (the SAM template's AccessLogging parameter, ApiAccessLogGroup, ApiStage)

/** The access log group: the one that is not the function's. */
function accessLogGroup(template: Template): { id: string; resource: Json } {
  const fnGroup = functionLogGroupId(template);
  const others = Object.entries(template.findResources('AWS::Logs::LogGroup')).filter(([id]) => id !== fnGroup);
  assert.equal(others.length, 1, `expected one log group besides the function's, found ${others.length}`);
  return { id: others[0][0], resource: others[0][1] };
}

/** The `Format: >-` folded block of ApiStage in template.yaml, folded as YAML does. */
function samAccessLogFormat(text: string): string | undefined {
  const lines = text.split(/\r?\n/);
  const stage = lines.findIndex((line) => /^ {2}ApiStage:\s*$/.test(line));
  if (stage < 0) return undefined;
  for (let i = stage + 1; i < lines.length && !/^ {2}\S/.test(lines[i]); i++) {
    const head = /^(\s*)Format:\s*>-\s*$/.exec(lines[i]);
    if (!head) continue;
    const body: string[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const indent = /^(\s*)/.exec(lines[j])![1].length;
      if (lines[j].trim() === '' || indent <= head[1].length) break;
      body.push(lines[j].trim());
    }
    return body.join(' ');
  }
  return undefined;
}

describe('API access logs', () => {
  it('are on by default: /aws/apigateway/<stack name>, one-month retention, deleted with the stack', () => {
    const group = accessLogGroup(defaults.template);
    assert.equal(group.resource.Properties.LogGroupName, '/aws/apigateway/TagbeezTest');
    assert.equal(group.resource.Properties.RetentionInDays, 30);
    assert.equal(group.resource.DeletionPolicy, 'Delete');
    assert.equal(group.resource.UpdateReplacePolicy, 'Delete');
    assert.ok(defaults.stack.service.accessLogGroup);
  });

  it('go from the $default stage to that group, in the SAM template\'s JSON format', () => {
    const group = accessLogGroup(defaults.template);
    const stage = onlyResource(defaults.template, 'AWS::ApiGatewayV2::Stage');
    assert.equal(stage.resource.Properties.StageName, '$default');
    assert.deepEqual(stage.resource.Properties.AccessLogSettings, {
      // As in the SAM template: the group's ARN without the ":*" of its Arn attribute.
      DestinationArn: {
        'Fn::Join': [
          '',
          [
            'arn:', { Ref: 'AWS::Partition' }, ':logs:', { Ref: 'AWS::Region' }, ':',
            { Ref: 'AWS::AccountId' }, ':log-group:', { Ref: group.id },
          ],
        ],
      },
      Format: TAGBEEZ_ACCESS_LOG_FORMAT,
    });
    // One JSON object per line, with the request id, and no body or query string.
    const fields = JSON.parse(TAGBEEZ_ACCESS_LOG_FORMAT);
    assert.equal(fields.requestId, '$context.requestId');
    assert.deepEqual(Object.keys(fields), [
      'requestId', 'time', 'ip', 'caller', 'routeKey', 'path', 'status', 'responseLength',
      'latencyMs', 'integrationStatus', 'integrationLatencyMs', 'integrationError', 'error',
    ]);
    assert.ok(!/body|querystring|queryString/i.test(TAGBEEZ_ACCESS_LOG_FORMAT));
  });

  const root = repoRoot();
  const template = root && path.join(root, 'template.yaml');
  it(
    'use exactly the format of the SAM template\'s ApiStage (../template.yaml)',
    { skip: template && fs.existsSync(template) ? false : 'no template.yaml at the repository root yet' },
    () => {
      const format = samAccessLogFormat(fs.readFileSync(template!, 'utf8'));
      assert.ok(format, `no "Format: >-" block under ApiStage in ${template}`);
      assert.equal(TAGBEEZ_ACCESS_LOG_FORMAT, format);
    },
  );

  it('keep the logRetention of the function\'s group', () => {
    const { template } = synth({ logRetention: logs.RetentionDays.TWO_WEEKS });
    assert.equal(accessLogGroup(template).resource.Properties.RetentionInDays, 14);
    const fnGroup = (template.findResources('AWS::Logs::LogGroup') as Json)[functionLogGroupId(template)];
    assert.equal(fnGroup.Properties.RetentionInDays, 14);
  });

  it('are off with accessLogging: false (no group, no AccessLogSettings)', () => {
    customized.template.resourceCountIs('AWS::Logs::LogGroup', 1);
    const stage = onlyResource(customized.template, 'AWS::ApiGatewayV2::Stage');
    assert.equal(stage.resource.Properties.AccessLogSettings, undefined);
    assert.equal(customized.stack.service.accessLogGroup, undefined);
  });

  it('refuse two services logging to the same /aws/apigateway/<stack name> group', () => {
    const stack = new Stack(newApp(), 'Two');
    new TagbeezService(stack, 'First', { bootstrapDir });
    assert.throws(
      () => new TagbeezService(stack, 'Second', { bootstrapDir }),
      /Two\/Second and Two\/First both log API access to \/aws\/apigateway\/Two; set accessLogging: false/,
    );
    new TagbeezService(stack, 'Third', { bootstrapDir, accessLogging: false, alarmNamePrefix: 'third' });
  });
});

// ---------------------------------------------------------------------------------------------
// 6. The routes agree with the SAM template and the Rust source

describe('routes', () => {
  const root = repoRoot();

  it('TAGBEEZ_ROUTES has 16 distinct METHOD /path keys', () => {
    assert.equal(new Set(TAGBEEZ_ROUTES).size, 16);
    for (const key of TAGBEEZ_ROUTES) assert.match(key, /^(GET|POST|PUT|DELETE) \/\S*$/);
  });

  const template = root && path.join(root, 'template.yaml');
  it(
    'equal the RouteKeys of the SAM template (../template.yaml)',
    { skip: template && fs.existsSync(template) ? false : 'no template.yaml at the repository root yet' },
    () => {
      const text = fs.readFileSync(template!, 'utf8');
      const keys = [...text.matchAll(/^\s*-?\s*RouteKey:\s*(["']?)([A-Z]+ \/\S*?)\1\s*(?:#.*)?$/gm)].map((m) => m[2]);
      assert.ok(keys.length > 0, `no "RouteKey: <METHOD> <path>" lines in ${template}`);
      assert.deepEqual(sorted(keys), sorted(TAGBEEZ_ROUTES));
    },
  );

  const rust = root && path.join(root, 'src', 'api', 'mod.rs');
  it(
    'equal tagbeez::api::ROUTES (src/api/mod.rs)',
    { skip: rust && fs.existsSync(rust) ? false : 'no src/api/mod.rs (not inside the repository)' },
    () => {
      const text = fs.readFileSync(rust!, 'utf8');
      const block = /pub const ROUTES:[^=]*=\s*&\[([\s\S]*?)\];/.exec(text);
      assert.ok(block, `no "pub const ROUTES" in ${rust}: update this test with the routes' new home`);
      const keys = [...block[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
      assert.deepEqual(keys, [...TAGBEEZ_ROUTES]);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 7. The bootstrap folder

describe('bootstrap folder', () => {
  it('defaults to the repository\'s target/lambda/tagbeez', () => {
    const root = repoRoot();
    if (root) {
      assert.equal(defaultBootstrapDir(), path.join(root, 'target', 'lambda', 'tagbeez'));
    } else {
      assert.match(defaultBootstrapDir(), /target[\\/]lambda[\\/]tagbeez$/);
    }
  });

  it('gives a clear error when the folder is missing', () => {
    const missing = path.join(scratch, 'no-such-folder');
    const stack = new Stack(newApp(), 'Missing');
    assert.throws(
      () => new TagbeezService(stack, 'Tagbeez', { bootstrapDir: missing }),
      (error: Error) => {
        assert.match(error.message, /run `make build` first/i);
        assert.ok(error.message.includes(path.join(missing, 'bootstrap')), error.message);
        return true;
      },
    );
  });

  it('gives the same error when the folder has no bootstrap file', () => {
    const empty = fs.mkdtempSync(path.join(scratch, 'empty-'));
    fs.writeFileSync(path.join(empty, 'bootstrap.zip'), 'zip only');
    const stack = new Stack(newApp(), 'Empty');
    assert.throws(() => new TagbeezService(stack, 'Tagbeez', { bootstrapDir: empty }), /make build/);
  });
});

// ---------------------------------------------------------------------------------------------
// 8. Alarms (template.yaml's ErrorRateAlarm, LatencyP99Alarm, StoreErrorsAlarm, ThrottlesAlarm)

const PERCENTILE = /^p\d+(\.\d+)?$/;

/** The alarms of a template by AlarmName. */
function alarmsByName(template: Template): Record<string, { id: string; resource: Json }> {
  const out: Record<string, { id: string; resource: Json }> = {};
  for (const [id, resource] of Object.entries(template.findResources('AWS::CloudWatch::Alarm'))) {
    out[(resource as Json).Properties.AlarmName] = { id, resource };
  }
  return out;
}

/** The alarms of TAGBEEZ_ALARMS a service has with these options on. */
function alarmSpecs(options: { queue?: boolean; events?: boolean } = {}): TagbeezAlarmSpec[] {
  return TAGBEEZ_ALARMS.filter((a) => a.option === undefined || options[a.option] === true);
}

/**
 * Checks that `template` has exactly the TAGBEEZ_ALARMS of its `options`, named
 * `<prefix>-<name>`, on `namespace`.
 */
function checkAlarms(
  template: Template,
  prefix: string,
  namespace: string,
  topicArn?: string,
  options: { queue?: boolean; events?: boolean } = {},
): void {
  const fn = onlyResource(template, 'AWS::Lambda::Function');
  const alarms = alarmsByName(template);
  const specs = alarmSpecs(options);
  const drift = new Set(driftAlarmNames(prefix));
  assert.deepEqual(
    sorted(Object.keys(alarms).filter((name) => !drift.has(name))),
    sorted(specs.map((a) => `${prefix}-${a.name}`)),
  );
  for (const spec of specs) {
    const props = alarms[`${prefix}-${spec.name}`].resource.Properties;
    const where = `${spec.name}: ${JSON.stringify(props)}`;
    assert.equal(props.ComparisonOperator, spec.comparison, where);
    assert.equal(props.Threshold, spec.threshold, where);
    assert.equal(props.EvaluationPeriods, spec.evaluationPeriods, where);
    assert.equal(props.DatapointsToAlarm, spec.datapointsToAlarm, where);
    assert.equal(props.TreatMissingData, spec.treatMissingData, where);
    assert.equal(props.AlarmDescription, spec.description, where);
    assert.deepEqual(props.AlarmActions, topicArn === undefined ? undefined : [topicArn], where);
    assert.deepEqual(props.OKActions, topicArn === undefined ? undefined : [topicArn], where);
    if (spec.expression !== undefined) {
      const usingMetrics = Object.entries(spec.metrics ?? {});
      assert.ok(usingMetrics.length > 0, where);
      assert.equal(props.MetricName, undefined, where);
      const expressions = props.Metrics.filter((m: Json) => m.Expression !== undefined);
      assert.deepEqual(expressions.map((m: Json) => [m.Expression, m.ReturnData, m.Label]), [[spec.expression, true, spec.label]], where);
      const stats = props.Metrics.filter((m: Json) => m.Expression === undefined);
      assert.deepEqual(
        sorted(stats.map((m: Json) => JSON.stringify(m))),
        sorted(
          usingMetrics.map(([id, metricName]) =>
            JSON.stringify({
              Id: id,
              MetricStat: { Metric: { MetricName: metricName, Namespace: namespace }, Period: spec.period, Stat: spec.stat },
              ReturnData: false,
            }),
          ),
        ),
        where,
      );
    } else {
      assert.equal(props.Metrics, undefined, where);
      assert.equal(props.MetricName, spec.metric, where);
      assert.equal(props.Period, spec.period, where);
      if (PERCENTILE.test(spec.stat)) {
        assert.equal(props.ExtendedStatistic, spec.stat, where);
        assert.equal(props.Statistic, undefined, where);
      } else {
        assert.equal(props.Statistic, spec.stat, where);
        assert.equal(props.ExtendedStatistic, undefined, where);
      }
      if (spec.namespace === 'AWS/Lambda') {
        assert.equal(props.Namespace, 'AWS/Lambda', where);
        assert.deepEqual(props.Dimensions, [{ Name: 'FunctionName', Value: { Ref: fn.id } }], where);
      } else if (spec.namespace === 'AWS/SQS') {
        assert.equal(props.Namespace, 'AWS/SQS', where);
        assert.deepEqual(props.Dimensions, [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [deadLetterQueue(template).id, 'QueueName'] } }], where);
      } else {
        assert.equal(props.Namespace, namespace, where);
        assert.equal(props.Dimensions, undefined, `${where}: the alarms read the no-dimension rollups`);
      }
    }
  }
}

/** The names of the drift alarms of a service with `tags`: `<prefix>-selection-rate-<tag>` and `<prefix>-no-tag-rate`. */
function driftAlarmNames(prefix: string, tags: readonly string[] = labelTags()): string[] {
  return TAGBEEZ_DRIFT_ALARMS.flatMap((spec) =>
    spec.perTag ? tags.map((tag) => `${prefix}-${spec.name}-${tag}`) : [`${prefix}-${spec.name}`],
  );
}

/**
 * Checks that `template` has exactly the drift alarms of TAGBEEZ_DRIFT_ALARMS for `tags`:
 * anomaly detection on the metric's `[tag]` (or no-dimension) series, as the SAM template's.
 */
function checkDriftAlarms(
  template: Template,
  prefix: string,
  namespace: string,
  topicArn?: string,
  tags: readonly string[] = labelTags(),
): void {
  const alarms = alarmsByName(template);
  for (const name of driftAlarmNames(prefix, tags)) assert.ok(alarms[name], `no alarm ${name}`);
  for (const spec of TAGBEEZ_DRIFT_ALARMS) {
    for (const tag of spec.perTag ? tags : [undefined]) {
      const name = tag === undefined ? `${prefix}-${spec.name}` : `${prefix}-${spec.name}-${tag}`;
      const { id, resource } = alarms[name];
      const props = resource.Properties;
      const where = `${name}: ${JSON.stringify(props)}`;
      assert.ok(id.startsWith(`Tagbeez${spec.id}${tag === undefined ? '' : tagbeezPascalCase(tag)}Alarm`), `${where}: logical id ${id}`);
      assert.equal(props.AlarmDescription, spec.description.replace('{tag}', tag ?? ''), where);
      assert.equal(props.ComparisonOperator, 'LessThanLowerOrGreaterThanUpperThreshold', where);
      assert.equal(props.ThresholdMetricId, spec.thresholdMetricId, where);
      assert.equal(props.Threshold, undefined, where);
      assert.equal(props.EvaluationPeriods, spec.evaluationPeriods, where);
      assert.equal(props.DatapointsToAlarm, spec.datapointsToAlarm, where);
      assert.equal(props.TreatMissingData, spec.treatMissingData, where);
      assert.deepEqual(props.AlarmActions, topicArn === undefined ? undefined : [topicArn], where);
      assert.deepEqual(props.OKActions, topicArn === undefined ? undefined : [topicArn], where);
      const [metricId, metricName] = Object.entries(spec.metrics)[0];
      assert.deepEqual(
        props.Metrics,
        [
          {
            Id: metricId,
            ReturnData: true,
            MetricStat: {
              Metric: {
                Namespace: namespace,
                MetricName: metricName,
                ...(tag === undefined ? {} : { Dimensions: [{ Name: 'tag', Value: tag }] }),
              },
              Period: spec.period,
              Stat: spec.stat,
            },
          },
          { Id: spec.thresholdMetricId, Label: spec.label, Expression: spec.expression, ReturnData: true },
        ],
        where,
      );
    }
  }
}

describe('alarms', () => {
  it('are the contract\'s four: error rate > 1 %, p99 latency > 1000 ms, store errors > 5, throttles > 0, per 5 min', () => {
    const byName = Object.fromEntries(TAGBEEZ_ALARMS.map((a) => [a.name, a]));
    assert.deepEqual(
      sorted(alarmSpecs().map((a) => a.name)),
      ['error-rate', 'p99-latency', 'store-errors', 'throttles'],
    );
    assert.deepEqual(
      [byName['error-rate'].expression, byName['error-rate'].metrics, byName['error-rate'].stat, byName['error-rate'].threshold],
      ['100 * FILL(errors, 0) / requests', { errors: 'tagbeez_server_errors', requests: 'tagbeez_requests' }, 'Sum', 1],
    );
    assert.deepEqual(
      [byName['p99-latency'].metric, byName['p99-latency'].stat, byName['p99-latency'].threshold],
      ['tagbeez_request_latency_ms', 'p99', 1000],
    );
    assert.deepEqual(
      [byName['store-errors'].metric, byName['store-errors'].stat, byName['store-errors'].threshold],
      ['tagbeez_store_errors', 'Sum', 5],
    );
    assert.deepEqual(
      [byName.throttles.namespace, byName.throttles.metric, byName.throttles.stat, byName.throttles.threshold],
      ['AWS/Lambda', 'Throttles', 'Sum', 0],
    );
    for (const spec of TAGBEEZ_ALARMS) {
      assert.equal(spec.period, 300, spec.name);
      assert.equal(spec.threshold >= 0, true, spec.name);
      assert.equal(spec.comparison, 'GreaterThanThreshold', spec.name);
      assert.equal(spec.treatMissingData, 'notBreaching', spec.name);
      if (spec.namespace === 'service') {
        for (const metric of [spec.metric, ...Object.values(spec.metrics ?? {})].filter((m) => m !== undefined)) {
          assert.ok((TAGBEEZ_ROLLUP_METRICS as readonly string[]).includes(metric!), `${spec.name}: ${metric} is not a rollup`);
        }
      }
    }
  });

  it('and two more with options: events lost > 0 (eventBus), dead letters > 0 (queue)', () => {
    const byName = Object.fromEntries(TAGBEEZ_ALARMS.map((a) => [a.name, a]));
    assert.deepEqual(sorted(Object.keys(byName)).filter((n) => byName[n].option), ['dead-letters', 'events-lost']);
    const lost = byName['events-lost'];
    assert.deepEqual(
      [lost.option, lost.namespace, lost.metric, lost.stat, lost.threshold],
      ['events', 'service', 'tagbeez_events_lost', 'Sum', 0],
    );
    const dead = byName['dead-letters'];
    assert.deepEqual(
      [dead.option, dead.namespace, dead.metric, dead.stat, dead.threshold],
      ['queue', 'AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'Maximum', 0],
    );
  });

  it('are in the synthesized template, named <stack name>-<name>, with no actions by default', () => {
    defaults.template.resourceCountIs('AWS::CloudWatch::Alarm', 4 + labelTags().length + 1);
    checkAlarms(defaults.template, 'TagbeezTest', 'tagbeez');
  });

  it('take the namespace, name prefix and SNS topic (alarm and OK actions) props', () => {
    checkAlarms(customized.template, 'shop-tagbeez', 'shop/tagbeez', 'arn:aws:sns:eu-west-1:123456789012:ops-alerts');
  });

  it('have drift alarms: anomaly detection on each model tag\'s selection rate and on the no-tag rate, hourly, 3 of 3', () => {
    assert.deepEqual(TAGBEEZ_DRIFT_ALARMS.map((a) => [a.name, a.perTag, Object.values(a.metrics)]), [
      ['selection-rate', true, ['tagbeez_selection_rate']],
      ['no-tag-rate', false, ['tagbeez_no_tag_rate']],
    ]);
    for (const spec of TAGBEEZ_DRIFT_ALARMS) {
      assert.equal(spec.expression, `ANOMALY_DETECTION_BAND(${Object.keys(spec.metrics)[0]}, 2)`, spec.name);
      assert.deepEqual([spec.stat, spec.period, spec.evaluationPeriods, spec.datapointsToAlarm], ['Average', 3600, 3, 3]);
      const [metric] = Object.values(spec.metrics);
      const series = spec.perTag ? TAGBEEZ_TAG_ROLLUP_METRICS : TAGBEEZ_ROLLUP_METRICS;
      assert.ok((series as readonly string[]).includes(metric), `${spec.name}: ${metric} has no series of exactly that dimension set`);
    }
    checkDriftAlarms(defaults.template, 'TagbeezTest', 'tagbeez');
    checkDriftAlarms(customized.template, 'shop-tagbeez', 'shop/tagbeez', 'arn:aws:sns:eu-west-1:123456789012:ops-alerts');
    checkDriftAlarms(everything.template, 'all', 'tagbeez', 'arn:aws:sns:eu-west-1:123456789012:ops-alerts');
  });

  it('name the tags of model/labels.json, read at synth time, and no other (unless driftTags says)', () => {
    assert.deepEqual(modelTags(), labelTags());
    assert.deepEqual(defaults.stack.service.driftTags, labelTags());
    const tagged = Object.values(defaults.template.findResources('AWS::CloudWatch::Alarm'))
      .flatMap((a: Json) => asArray<Json>(a.Properties.Metrics))
      .flatMap((m: Json) => asArray<Json>(m.MetricStat?.Metric?.Dimensions))
      .filter((d: Json) => d.Name === 'tag')
      .map((d: Json) => d.Value as string);
    assert.deepEqual(sorted(tagged), sorted(labelTags()));
    const { stack, template } = synth({ driftTags: ['Hot-buyer'] });
    assert.deepEqual(stack.service.driftTags, ['Hot-buyer']);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 4 + 1 + 1);
    checkDriftAlarms(template, 'TagbeezTest', 'tagbeez', undefined, ['Hot-buyer']);
  });

  it('add events lost with eventBus and dead letters with queue, with the same actions', () => {
    checkAlarms(withEvents.template, 'TagbeezTest', 'tagbeez', undefined, { events: true });
    checkAlarms(withQueue.template, 'TagbeezTest', 'tagbeez', undefined, { queue: true });
    checkAlarms(everything.template, 'all', 'tagbeez', 'arn:aws:sns:eu-west-1:123456789012:ops-alerts', { queue: true, events: true });
  });

  it('refuse two services with the same alarm name prefix in one stack', () => {
    const stack = new Stack(newApp(), 'Alarms');
    new TagbeezService(stack, 'First', { bootstrapDir });
    assert.throws(
      () => new TagbeezService(stack, 'Second', { bootstrapDir, accessLogging: false }),
      /Alarms\/Second and Alarms\/First both name their alarms Alarms-\*; give one of them another alarmNamePrefix/,
    );
    new TagbeezService(stack, 'Third', { bootstrapDir, accessLogging: false, alarmNamePrefix: 'third' });
  });

  it('add no IAM permission (EMF metrics are log lines, no cloudwatch:PutMetricData)', () => {
    for (const { statement } of allStatements(defaults.template)) {
      assert.ok(!actionsOf(statement).some((a) => a.startsWith('cloudwatch:')), JSON.stringify(statement));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 9. Dashboard (template.yaml's Dashboard)

/**
 * A DashboardBody as JSON, its references replaced by plain markers: `REGION`, `FUNCTION` (the
 * function's name) and `ALARM:<TAGBEEZ_ALARMS id>` (an alarm's ARN).
 */
function dashboardBody(template: Template): Json {
  const dashboard = onlyResource(template, 'AWS::CloudWatch::Dashboard');
  const fn = onlyResource(template, 'AWS::Lambda::Function');
  const alarmIds: Record<string, string> = {};
  for (const spec of TAGBEEZ_ALARMS) {
    const found = Object.entries(template.findResources('AWS::CloudWatch::Alarm')).find(([, a]) =>
      ((a as Json).Properties.AlarmName as string).endsWith(`-${spec.name}`),
    );
    if (found) alarmIds[found[0]] = spec.id;
  }
  const body = dashboard.resource.Properties.DashboardBody;
  const parts: Json[] = typeof body === 'string' ? [body] : body['Fn::Join'][1];
  const text = parts
    .map((part) => {
      if (typeof part === 'string') return part;
      if (part.Ref === 'AWS::Region') return 'REGION';
      if (part.Ref === fn.id) return 'FUNCTION';
      const att = part['Fn::GetAtt'];
      if (att && att[1] === 'Arn' && alarmIds[att[0]]) return `ALARM:${alarmIds[att[0]]}`;
      throw new Error(`unexpected reference in DashboardBody: ${JSON.stringify(part)}`);
    })
    .join('');
  return JSON.parse(text);
}

/** The dashboard's widgets as TAGBEEZ_DASHBOARD describes them, in the body's rendering. */
function expectedWidgets(namespace: string, tags: readonly string[] = labelTags()): Json[] {
  return TAGBEEZ_DASHBOARD.map((widget) => {
    if (widget.alarm !== undefined) {
      return { title: widget.title, width: 6, alarms: [`ALARM:${widget.alarm}`], metrics: undefined };
    }
    const all = widget.series ?? [];
    const ordered = [...all.filter((s) => !s.right), ...all.filter((s) => s.right)];
    const metrics = ordered.flatMap((s): Json[] => {
      const axis = s.right ? { yAxis: 'right' } : {};
      // Average is the dashboard's default statistic: CDK leaves it out, and so does template.yaml.
      const stat = s.stat === 'Average' ? {} : { stat: s.stat };
      if (s.perTag) return tags.map((tag) => [namespace, s.metric, 'tag', tag, { label: tag, ...stat, ...axis }]);
      if (s.search) return [[{ expression: tagbeezSearchExpression(namespace, s.metric, s.search, s.stat), ...axis }]];
      const opts = { label: s.label, ...stat, ...axis };
      if (s.namespace === 'AWS/Lambda') return [['AWS/Lambda', s.metric, 'FunctionName', 'FUNCTION', opts]];
      return [[namespace, s.metric, opts]];
    });
    return { title: widget.title, width: 8, alarms: undefined, metrics };
  });
}

function renderedWidgets(body: Json): Json[] {
  return body.widgets.map((w: Json) => ({
    title: w.properties.title,
    width: w.width,
    alarms: w.properties.annotations?.alarms,
    metrics: w.properties.metrics,
  }));
}

/** Every `tagbeez_*` metric name in a text. */
function metricNamesIn(text: string): Set<string> {
  return new Set([...text.matchAll(/\btagbeez_[a-z0-9_]+/g)].map((m) => m[0]));
}

/** template.yaml's Dashboard body with its Fn::Sub references replaced by dashboardBody's markers. */
function samDashboardBody(text: string, namespace: string): Json {
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((line) => /^ {6}DashboardBody: !Sub \|\s*$/.test(line));
  if (start < 0) return undefined;
  const body: string[] = [];
  for (let i = start + 1; i < lines.length && (lines[i].startsWith('        ') || lines[i].trim() === ''); i++) {
    body.push(lines[i]);
  }
  const substituted = body.join('\n').replace(/\$\{([^}]+)\}/g, (_, name: string) => {
    if (name === 'MetricsNamespace') return namespace;
    if (name === 'AWS::Region') return 'REGION';
    if (name === 'TagbeezFunction') return 'FUNCTION';
    const alarm = /^(\w+)Alarm\.Arn$/.exec(name);
    if (alarm) return `ALARM:${alarm[1]}`;
    throw new Error(`unexpected \${${name}} in template.yaml's DashboardBody`);
  });
  return JSON.parse(substituted);
}

describe('dashboard', () => {
  it('is named <stack name>-<region> (dashboard names are per account)', () => {
    defaults.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const dashboard = onlyResource(defaults.template, 'AWS::CloudWatch::Dashboard');
    assert.deepEqual(dashboard.resource.Properties.DashboardName, {
      'Fn::Join': ['', ['TagbeezTest-', { Ref: 'AWS::Region' }]],
    });
    const custom = onlyResource(customized.template, 'AWS::CloudWatch::Dashboard');
    assert.deepEqual(custom.resource.Properties.DashboardName, {
      'Fn::Join': ['', ['shop-tagbeez-', { Ref: 'AWS::Region' }]],
    });
  });

  it('has the widgets of TAGBEEZ_DASHBOARD, in order: the four alarms, then the graphs', () => {
    const body = dashboardBody(defaults.template);
    assert.deepEqual(renderedWidgets(body), expectedWidgets('tagbeez'));
    // Every alarm that is always there, and none that comes with an option.
    assert.deepEqual(
      TAGBEEZ_DASHBOARD.filter((w) => w.alarm).map((w) => w.alarm),
      alarmSpecs().map((a) => a.id),
    );
    // With every option on, the dashboard is the same.
    assert.deepEqual(renderedWidgets(dashboardBody(everything.template)), expectedWidgets('tagbeez'));
    for (const widget of body.widgets) {
      assert.equal(widget.properties.region, 'REGION');
      assert.equal(widget.height, 6);
    }
  });

  it('shows every metric of the contract, and no other tagbeez_* name', () => {
    assert.equal(new Set(TAGBEEZ_METRICS).size, 28);
    const text = JSON.stringify(dashboardBody(defaults.template));
    assert.deepEqual(sorted([...metricNamesIn(text)]), sorted(TAGBEEZ_METRICS));
  });

  it('draws dimensioned metrics with SEARCH over their exact dimensions, in the namespace prop', () => {
    assert.equal(
      tagbeezSearchExpression('tagbeez', 'tagbeez_inference_ms', ['model_version', 'route'], 'Average'),
      'SEARCH(\'{"tagbeez","model_version","route"} MetricName="tagbeez_inference_ms"\', \'Average\', 300)',
    );
    assert.deepEqual(renderedWidgets(dashboardBody(customized.template)), expectedWidgets('shop/tagbeez'));
    for (const widget of TAGBEEZ_DASHBOARD) {
      for (const series of widget.series ?? []) {
        const rollup = (TAGBEEZ_ROLLUP_METRICS as readonly string[]).includes(series.metric);
        const tagRollup = (TAGBEEZ_TAG_ROLLUP_METRICS as readonly string[]).includes(series.metric);
        if (series.perTag) {
          assert.ok(tagRollup, `${series.metric} has no [tag] series to draw per tag`);
          assert.equal(series.search, undefined, series.metric);
        } else if (series.namespace === undefined && !rollup) {
          assert.ok(series.search, `${series.metric} has dimensions only: it needs a SEARCH`);
        }
      }
    }
  });

  it('has a drift row: the selection rate and PSI of each model tag (named), and the no-tag rate', () => {
    const body = dashboardBody(defaults.template);
    const row = body.widgets.filter((w: Json) => /^Drift: /.test(w.properties.title));
    assert.equal(row.length, 3);
    assert.deepEqual(row.map((w: Json) => [w.x, w.y]), [[0, row[0].y], [8, row[0].y], [16, row[0].y]]);
    assert.equal(Math.max(...body.widgets.map((w: Json) => w.y)), row[0].y, 'the drift row is the last');
    const perTag = (metric: string): string[] =>
      body.widgets
        .flatMap((w: Json) => asArray<Json>(w.properties.metrics))
        .filter((m: Json) => m[1] === metric)
        .map((m: Json) => {
          assert.equal(m[2], 'tag', JSON.stringify(m));
          return m[3] as string;
        });
    assert.deepEqual(perTag('tagbeez_selection_rate'), labelTags());
    assert.deepEqual(perTag('tagbeez_psi'), labelTags());
    const { template } = synth({ driftTags: ['Deal-seeker', 'Hot-buyer'] });
    assert.deepEqual(renderedWidgets(dashboardBody(template)), expectedWidgets('tagbeez', ['Deal-seeker', 'Hot-buyer']));
  });

  const root = repoRoot();
  const template = root && path.join(root, 'template.yaml');
  it(
    'is laid out exactly as the SAM template\'s Dashboard (../template.yaml)',
    { skip: template && fs.existsSync(template) ? false : 'no template.yaml at the repository root yet' },
    () => {
      const sam = samDashboardBody(fs.readFileSync(template!, 'utf8'), 'tagbeez');
      assert.ok(sam, 'no "DashboardBody: !Sub |" block in template.yaml');
      const cdk = dashboardBody(defaults.template);
      const layout = (body: Json) =>
        body.widgets.map((w: Json) => ({
          type: w.type,
          x: w.x,
          y: w.y,
          width: w.width,
          height: w.height,
          title: w.properties.title,
          view: w.properties.view,
          region: w.properties.region,
          period: w.properties.period,
          alarms: w.properties.annotations?.alarms,
          metrics: w.properties.metrics,
        }));
      assert.deepEqual(layout(cdk), layout(sam));
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 10. Options: every one off by default

describe('options', () => {
  it('are all off by default: no queue, bus, rule, bucket, state machine or event settings', () => {
    for (const type of [
      'AWS::SQS::Queue',
      'AWS::SQS::QueuePolicy',
      'AWS::Lambda::EventSourceMapping',
      'AWS::Events::EventBus',
      'AWS::Events::Rule',
      'AWS::S3::Bucket',
      'AWS::StepFunctions::StateMachine',
    ]) {
      defaults.template.resourceCountIs(type, 0);
      customized.template.resourceCountIs(type, 0);
    }
    const vars = onlyResource(defaults.template, 'AWS::Lambda::Function').resource.Properties.Environment.Variables;
    for (const name of ['EVENT_BUS_NAME', 'EVENT_TAGS', 'EVENTS_TIMEOUT_MS']) assert.ok(!(name in vars), name);
    assert.equal(defaults.stack.service.queue, undefined);
    assert.equal(defaults.stack.service.eventBus, undefined);
    assert.equal(defaults.stack.service.bulkStateMachine, undefined);
  });

  it('stay least-privilege all at once: queue and bus actions on those two resources alone', () => {
    const queueArn = { 'Fn::GetAtt': [messageQueue(everything.template).id, 'Arn'] };
    const busArn = { 'Fn::GetAtt': [onlyResource(everything.template, 'AWS::Events::EventBus').id, 'Arn'] };
    const bulkRole = everything.stack.getLogicalId(everything.stack.service.bulkRole!.node.defaultChild as iam.CfnRole);
    checkLeastPrivilege(everything.template, [bulkRole], [
      ...grantsOf(TAGBEEZ_QUEUE_ACTIONS, queueArn),
      ...grantsOf(TAGBEEZ_EVENT_ACTIONS, busArn),
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// 11. Queue in (template.yaml's MessageQueue, DeadLetterQueue, QueueEventSourceMapping)

describe('queue in', () => {
  it('is a FIFO queue: no content-based deduplication, per-conversation throughput, SQS-managed encryption', () => {
    const queue = messageQueue(withQueue.template).resource;
    assert.deepEqual(queue.Properties, {
      FifoQueue: true,
      ContentBasedDeduplication: false,
      DeduplicationScope: 'messageGroup',
      FifoThroughputLimit: 'perMessageGroupId',
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 10 * TAGBEEZ_QUEUE_VISIBILITY_FACTOR,
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [deadLetterQueue(withQueue.template).id, 'Arn'] },
        maxReceiveCount: 5,
      },
    });
    assert.equal(TAGBEEZ_QUEUE_VISIBILITY_FACTOR, 6);
    assert.equal(queue.DeletionPolicy, 'Delete');
  });

  it('has a FIFO dead-letter queue that keeps messages 14 days', () => {
    assert.deepEqual(deadLetterQueue(withQueue.template).resource.Properties, {
      FifoQueue: true,
      ContentBasedDeduplication: false,
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    withQueue.template.resourceCountIs('AWS::SQS::Queue', 2);
  });

  it('feeds the function through a mapping with partial batch responses, batches of 10 and no window', () => {
    const fn = onlyResource(withQueue.template, 'AWS::Lambda::Function');
    const mapping = onlyResource(withQueue.template, 'AWS::Lambda::EventSourceMapping').resource;
    assert.deepEqual(mapping.Properties, {
      EventSourceArn: { 'Fn::GetAtt': [messageQueue(withQueue.template).id, 'Arn'] },
      FunctionName: { Ref: fn.id },
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    // Created after the role's policy, which Lambda checks when it creates the mapping.
    const policy = Object.keys(withQueue.template.findResources('AWS::IAM::Policy'));
    assert.ok(asArray<string>(mapping.DependsOn).some((d) => policy.includes(d)), JSON.stringify(mapping.DependsOn));
  });

  it('is a standard queue with a batching window when asked, its timeout 6 x the function\'s', () => {
    const queue = messageQueue(withStandardQueue.template).resource.Properties;
    assert.equal(queue.FifoQueue, undefined);
    assert.equal(queue.ContentBasedDeduplication, undefined);
    assert.equal(queue.VisibilityTimeout, 120);
    assert.equal(queue.RedrivePolicy.maxReceiveCount, 3);
    assert.equal(deadLetterQueue(withStandardQueue.template).resource.Properties.FifoQueue, undefined);
    const mapping = onlyResource(withStandardQueue.template, 'AWS::Lambda::EventSourceMapping').resource.Properties;
    assert.equal(mapping.BatchSize, 5);
    assert.equal(mapping.MaximumBatchingWindowInSeconds, 20);
    assert.deepEqual(mapping.FunctionResponseTypes, ['ReportBatchItemFailures']);
  });

  it('lets the function role consume that queue only: four actions, nothing on the dead-letter queue', () => {
    assert.deepEqual(sorted(TAGBEEZ_QUEUE_ACTIONS), [
      'sqs:ChangeMessageVisibility',
      'sqs:DeleteMessage',
      'sqs:GetQueueAttributes',
      'sqs:ReceiveMessage',
    ]);
    for (const template of [withQueue.template, withStandardQueue.template]) {
      const queueArn = { 'Fn::GetAtt': [messageQueue(template).id, 'Arn'] };
      checkLeastPrivilege(template, [], grantsOf(TAGBEEZ_QUEUE_ACTIONS, queueArn));
      const dlq = deadLetterQueue(template).id;
      for (const { statement } of allStatements(template)) {
        assert.ok(!JSON.stringify(statement).includes(dlq), JSON.stringify(statement));
      }
    }
  });

  it('outputs the queue and dead-letter queue URLs and ARNs', () => {
    const queue = messageQueue(withQueue.template).id;
    const dlq = deadLetterQueue(withQueue.template).id;
    withQueue.template.hasOutput('QueueUrl', { Value: { Ref: queue } });
    withQueue.template.hasOutput('QueueArn', { Value: { 'Fn::GetAtt': [queue, 'Arn'] } });
    withQueue.template.hasOutput('DeadLetterQueueUrl', { Value: { Ref: dlq } });
    withQueue.template.hasOutput('DeadLetterQueueArn', { Value: { 'Fn::GetAtt': [dlq, 'Arn'] } });
    assert.equal(defaults.template.findOutputs('QueueUrl').QueueUrl, undefined);
  });

  it('refuses options the queue or its mapping would refuse', () => {
    const bad: Array<[TagbeezServiceProps, RegExp]> = [
      [{ queue: { batchSize: 0 } }, /queue.batchSize/],
      [{ queue: { batchSize: 11 } }, /queue.batchSize/],
      [{ queue: { maxReceiveCount: 0 } }, /queue.maxReceiveCount/],
      [{ queue: { type: 'standard', maxBatchingWindow: Duration.seconds(301) } }, /queue.maxBatchingWindow/],
      [{ queue: { maxBatchingWindow: Duration.seconds(5) } }, /FIFO event source mappings do not support a batching window/],
      [{ queue: { type: 'lifo' as 'fifo' } }, /queue.type/],
    ];
    for (const [props, message] of bad) {
      const stack = new Stack(newApp(), 'Bad');
      assert.throws(() => new TagbeezService(stack, 'Tagbeez', { bootstrapDir, ...props }), message);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 12. Events out (template.yaml's EventBus parameter, TagbeezEventBus, the event-bus policy)

/** The function's environment variables. */
function functionVars(template: Template): Record<string, Json> {
  return onlyResource(template, 'AWS::Lambda::Function').resource.Properties.Environment.Variables;
}

/** The statements that grant an events: action. */
function eventStatements(template: Template): Json[] {
  return allStatements(template)
    .map((s) => s.statement)
    .filter((s) => actionsOf(s).some((a) => a.startsWith('events:')));
}

describe('events out', () => {
  it('with eventBus create: a bus named after the stack, EVENT_BUS_NAME, EVENT_TAGS and PutEvents on it alone', () => {
    const bus = onlyResource(withEvents.template, 'AWS::Events::EventBus');
    assert.deepEqual(bus.resource.Properties, { Name: 'TagbeezTest' });
    const vars = functionVars(withEvents.template);
    assert.deepEqual(
      [vars.EVENT_BUS_NAME, vars.EVENT_TAGS, vars.EVENTS_TIMEOUT_MS],
      [{ Ref: bus.id }, 'Hot-buyer', '2000'],
    );
    assert.deepEqual([...TAGBEEZ_EVENT_ACTIONS], ['events:PutEvents']);
    checkLeastPrivilege(
      withEvents.template,
      [],
      grantsOf(TAGBEEZ_EVENT_ACTIONS, { 'Fn::GetAtt': [bus.id, 'Arn'] }),
    );
    withEvents.template.hasOutput('EventBusName', { Value: { Ref: bus.id } });
  });

  it('with an existing bus name: no bus created, PutEvents on that bus\'s ARN in this account and region', () => {
    const { template } = synth({ eventBus: 'orders', eventTags: ['Hot-buyer', 'Deal-seeker'], eventsTimeout: Duration.millis(500) });
    template.resourceCountIs('AWS::Events::EventBus', 0);
    const vars = functionVars(template);
    assert.deepEqual([vars.EVENT_BUS_NAME, vars.EVENT_TAGS, vars.EVENTS_TIMEOUT_MS], ['orders', 'Hot-buyer,Deal-seeker', '500']);
    const arn = {
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':events:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':event-bus/orders']],
    };
    checkLeastPrivilege(template, [], grantsOf(TAGBEEZ_EVENT_ACTIONS, arn));
  });

  it('with an existing bus ARN (another account\'s bus): EVENT_BUS_NAME and the policy name that ARN', () => {
    const arn = 'arn:aws:events:eu-west-1:210987654321:event-bus/shared';
    for (const eventBus of [arn, events.EventBus.fromEventBusArn(new Stack(newApp(), 'Elsewhere'), 'Bus', arn)]) {
      const { template } = synth({ eventBus });
      template.resourceCountIs('AWS::Events::EventBus', 0);
      assert.equal(functionVars(template).EVENT_BUS_NAME, arn);
      checkLeastPrivilege(template, [], grantsOf(TAGBEEZ_EVENT_ACTIONS, arn));
    }
  });

  it('add events:PutEvents nowhere else, and only with a bus', () => {
    assert.deepEqual(eventStatements(defaults.template), []);
    assert.deepEqual(eventStatements(withQueue.template), []);
    assert.deepEqual(eventStatements(withBulk.template), []);
    assert.equal(eventStatements(everything.template).length, 1);
    assert.equal(functionVars(everything.template).EVENT_TAGS, 'Hot-buyer,Deal-seeker');
  });

  it('refuse settings the function would refuse, and event settings without a bus', () => {
    const bad: Array<[TagbeezServiceProps, RegExp]> = [
      [{ eventBus: 'create', eventTags: [] }, /eventTags must name at least one tag/],
      [{ eventBus: 'create', eventTags: ['Big spender'] }, /eventTags must be tag names/],
      [{ eventBus: 'create', eventTags: ['Big-spender'] }, /not a tag of the model/],
      [{ eventBus: 'create', eventsTimeout: Duration.millis(5) }, /eventsTimeout/],
      [{ eventBus: 'bus with spaces' }, /eventBus must be/],
      [{ eventTags: ['Hot-buyer'] }, /need an eventBus/],
      [{ eventBus: 'orders', hotBuyerQueue: true }, /hotBuyerQueue needs eventBus: 'create'/],
      [{ hotBuyerQueue: true }, /hotBuyerQueue needs eventBus: 'create'/],
    ];
    for (const [props, message] of bad) {
      const stack = new Stack(newApp(), 'Bad');
      assert.throws(() => new TagbeezService(stack, 'Tagbeez', { bootstrapDir, ...props }), message);
    }
    assert.equal(TAGBEEZ_EVENT_SOURCE, 'tagbeez');
    assert.deepEqual([...TAGBEEZ_EVENT_DETAIL_TYPES], ['Conversation tag changed', 'Message tagged']);
  });
});

// ---------------------------------------------------------------------------------------------
// 13. The Hot-buyer example (template.yaml's HotBuyerRule, HotBuyerEventsQueue and its policy)

describe('hot buyer example', () => {
  it('is a rule on the created bus: Message tagged events for Hot-buyer, to an encrypted queue', () => {
    const bus = onlyResource(withEvents.template, 'AWS::Events::EventBus');
    const rule = onlyResource(withEvents.template, 'AWS::Events::Rule').resource.Properties;
    const queue = onlyResource(withEvents.template, 'AWS::SQS::Queue');
    assert.deepEqual(rule.EventBusName, { Ref: bus.id });
    assert.deepEqual(rule.EventPattern, {
      source: ['tagbeez'],
      'detail-type': ['Message tagged'],
      detail: { tag: ['Hot-buyer'] },
    });
    assert.equal(rule.State, 'ENABLED');
    assert.deepEqual(rule.Targets.map((t: Json) => t.Arn), [{ 'Fn::GetAtt': [queue.id, 'Arn'] }]);
    assert.deepEqual(queue.resource.Properties, { SqsManagedSseEnabled: true });
    withEvents.template.hasOutput('HotBuyerQueueUrl', { Value: { Ref: queue.id } });
  });

  it('lets events.amazonaws.com send to the queue from that rule only', () => {
    const rule = onlyResource(withEvents.template, 'AWS::Events::Rule');
    const queue = onlyResource(withEvents.template, 'AWS::SQS::Queue');
    const policy = onlyResource(withEvents.template, 'AWS::SQS::QueuePolicy').resource.Properties;
    assert.deepEqual(policy.Queues, [{ Ref: queue.id }]);
    assert.deepEqual(policy.PolicyDocument.Statement, [
      {
        Action: 'sqs:SendMessage',
        Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [rule.id, 'Arn'] } } },
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Resource: { 'Fn::GetAtt': [queue.id, 'Arn'] },
      },
    ]);
  });

  it('is not there without hotBuyerQueue', () => {
    const { template } = synth({ eventBus: 'create' });
    template.resourceCountIs('AWS::Events::Rule', 0);
    template.resourceCountIs('AWS::SQS::Queue', 0);
  });
});

// ---------------------------------------------------------------------------------------------
// 14. Bulk tagging (template.yaml's BulkBucket, BulkBucketPolicy, BulkStateMachineRole and
// BulkStateMachine; statemachine/bulk.asl.json)

// asl-validator has no type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator = require('asl-validator') as (definition: unknown) => { isValid: boolean; errors: unknown[] };

/** The definition file's text with sample values for its ${...} placeholders. */
function substitutedDefinition(text: string): Json {
  const samples: Record<string, string> = {
    TagbeezFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:tagbeez',
    BulkBucketName: 'tagbeez-bulk',
    MaxConcurrency: '10',
    MaxItemsPerBatch: '64',
    ToleratedFailurePercentage: '0',
  };
  return JSON.parse(text.replace(/\$\{(\w+)\}/g, (_, name: string) => {
    assert.ok(name in samples, `unknown placeholder \${${name}}`);
    return samples[name];
  }));
}

/** The bulk role's statements as `<action> on <resource JSON>`. */
function bulkGrants(template: Template, roleId: string): string[] {
  const grants: string[] = [];
  for (const { statement, roles } of allStatements(template)) {
    if (!roles?.includes(roleId)) continue;
    assert.equal(statement.Effect, 'Allow');
    for (const action of actionsOf(statement)) {
      for (const resource of asArray<Json>(statement.Resource)) grants.push(`${action} on ${JSON.stringify(resource)}`);
    }
  }
  return grants;
}

/** `arn:<partition>:states:<region>:<account>:<rest>` as CDK renders it. */
function statesArn(rest: string): Json {
  return {
    'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':states:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:${rest}`]],
  };
}

describe('bulk', () => {
  const definitionFile = defaultBulkDefinitionFile();
  const definitionText = fs.readFileSync(definitionFile, 'utf8');

  it('deploys statemachine/bulk.asl.json, the SAM template\'s file, as a STANDARD state machine', () => {
    const root = repoRoot();
    if (root) assert.equal(definitionFile, path.join(root, 'statemachine', 'bulk.asl.json'));
    const app = newApp();
    const stack = new TagbeezStack(app, 'BulkAsset', { service: { bootstrapDir, bulk: true } });
    const assembly = app.synth();
    const template = Template.fromStack(stack);
    const machine = onlyResource(template, 'AWS::StepFunctions::StateMachine').resource.Properties;
    assert.equal(machine.StateMachineType, 'STANDARD');
    assert.equal(machine.StateMachineName, 'BulkAsset-bulk');
    const key: string = machine.DefinitionS3Location.Key;
    const asset = fs.readFileSync(path.join(assembly.directory, `asset.${key}`), 'utf8');
    assert.equal(asset, definitionText, 'the deployed definition is the file, byte for byte');
  });

  it('substitutes the function, the bucket and the map settings, and every placeholder of the file', () => {
    const fn = onlyResource(withBulk.template, 'AWS::Lambda::Function');
    const bucket = onlyResource(withBulk.template, 'AWS::S3::Bucket');
    const machine = onlyResource(withBulk.template, 'AWS::StepFunctions::StateMachine').resource.Properties;
    assert.deepEqual(machine.DefinitionSubstitutions, {
      TagbeezFunctionArn: { 'Fn::GetAtt': [fn.id, 'Arn'] },
      BulkBucketName: { Ref: bucket.id },
      MaxConcurrency: '10',
      MaxItemsPerBatch: '64',
      ToleratedFailurePercentage: '0',
    });
    const placeholders = new Set([...definitionText.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]));
    assert.deepEqual(sorted([...placeholders]), sorted(TAGBEEZ_BULK_SUBSTITUTIONS));
    const custom = onlyResource(everything.template, 'AWS::StepFunctions::StateMachine').resource.Properties;
    assert.deepEqual(
      [custom.DefinitionSubstitutions.MaxConcurrency, custom.DefinitionSubstitutions.MaxItemsPerBatch, custom.DefinitionSubstitutions.ToleratedFailurePercentage],
      ['50', '32', '5'],
    );
    assert.equal(custom.StateMachineName, 'all-bulk');
  });

  it('is a valid Distributed Map definition (asl-validator) reading JSONL, batching, writing results/', () => {
    const definition = substitutedDefinition(definitionText);
    const result = aslValidator(definition);
    assert.ok(result.isValid, JSON.stringify(result.errors, null, 1));
    const map = Object.values(definition.States as Record<string, Json>).find((s) => s.Type === 'Map');
    assert.deepEqual(map.ItemProcessor.ProcessorConfig, { Mode: 'DISTRIBUTED', ExecutionType: 'EXPRESS' });
    assert.equal(map.ItemReader.Resource, 'arn:aws:states:::s3:getObject');
    assert.deepEqual(map.ItemReader.ReaderConfig, { InputType: 'JSONL' });
    assert.equal(map.ResultWriter.Resource, 'arn:aws:states:::s3:putObject');
    assert.deepEqual(map.ResultWriter.Parameters, { Bucket: 'tagbeez-bulk', Prefix: 'results/' });
    const task = Object.values(map.ItemProcessor.States as Record<string, Json>)[0];
    assert.equal(task.Resource, 'arn:aws:states:::lambda:invoke');
    assert.deepEqual(task.Parameters, { FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:tagbeez', 'Payload.$': '$' });
    assert.deepEqual(sorted(task.Retry.flatMap((r: Json) => r.ErrorEquals)), sorted([
      'store_unavailable', 'store_contention', 'overloaded', 'events_unavailable',
      'Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException',
    ]));
    // The validator does catch a broken definition.
    const broken = substitutedDefinition(definitionText);
    broken.States[broken.StartAt].Next = 'Nowhere';
    assert.equal(aslValidator(broken).isValid, false);
  });

  it('creates a private, encrypted, TLS-only bucket whose results expire, retained with the stack', () => {
    const bucket = onlyResource(withBulk.template, 'AWS::S3::Bucket');
    assert.equal(bucket.resource.DeletionPolicy, 'Retain');
    assert.equal(bucket.resource.UpdateReplacePolicy, 'Retain');
    assert.deepEqual(bucket.resource.Properties, {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      LifecycleConfiguration: {
        Rules: [
          { Id: 'expire-results', Prefix: 'results/', ExpirationInDays: 30, Status: 'Enabled' },
          { Id: 'abort-incomplete-multipart-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
        ],
      },
    });
    const policy = onlyResource(withBulk.template, 'AWS::S3::BucketPolicy').resource.Properties;
    assert.deepEqual(policy.PolicyDocument.Statement, [
      {
        Action: 's3:*',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Resource: [
          { 'Fn::GetAtt': [bucket.id, 'Arn'] },
          { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket.id, 'Arn'] }, '/*']] },
        ],
      },
    ]);
    const expiry = onlyResource(everything.template, 'AWS::S3::Bucket').resource.Properties.LifecycleConfiguration.Rules[0];
    assert.equal(expiry.ExpirationInDays, 7);
  });

  it('gives the state machine a role of its own: invoke the function, read the bucket, write results/, run its map', () => {
    const fn = onlyResource(withBulk.template, 'AWS::Lambda::Function');
    const bucket = onlyResource(withBulk.template, 'AWS::S3::Bucket');
    const machine = onlyResource(withBulk.template, 'AWS::StepFunctions::StateMachine').resource.Properties;
    const roleId: string = machine.RoleArn['Fn::GetAtt'][0];
    const role = (withBulk.template.findResources('AWS::IAM::Role') as Json)[roleId];
    assert.deepEqual(role.Properties.AssumeRolePolicyDocument.Statement, [
      {
        Action: 'sts:AssumeRole',
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
        Effect: 'Allow',
        Principal: { Service: 'states.amazonaws.com' },
      },
    ]);
    assert.equal(role.Properties.ManagedPolicyArns, undefined);
    const objects = (suffix: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket.id, 'Arn'] }, suffix]] });
    assert.deepEqual(sorted(bulkGrants(withBulk.template, roleId)), sorted([
      ...grantsOf(TAGBEEZ_BULK_INVOKE_ACTIONS, { 'Fn::GetAtt': [fn.id, 'Arn'] }),
      ...grantsOf(TAGBEEZ_BULK_READ_ACTIONS, objects('/*')),
      ...grantsOf(TAGBEEZ_BULK_WRITE_ACTIONS, objects('/results/*')),
      ...grantsOf(['states:StartExecution'], statesArn('stateMachine:TagbeezTest-bulk')),
      ...grantsOf(['states:DescribeExecution', 'states:StopExecution'], statesArn('execution:TagbeezTest-bulk:*')),
      ...grantsOf(['states:RedriveExecution'], statesArn('execution:TagbeezTest-bulk/*:*')),
    ]));
    assert.deepEqual([...TAGBEEZ_BULK_INVOKE_ACTIONS], ['lambda:InvokeFunction']);
    assert.deepEqual([...TAGBEEZ_BULK_READ_ACTIONS], ['s3:GetObject']);
    assert.deepEqual(sorted(TAGBEEZ_BULK_WRITE_ACTIONS), ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:PutObject']);
    // The function's own role gains nothing.
    checkLeastPrivilege(withBulk.template, [roleId]);
    withBulk.template.hasOutput('BulkBucketName', { Value: { Ref: bucket.id } });
    withBulk.template.hasOutput('BulkStateMachineArn', { Value: { Ref: onlyResource(withBulk.template, 'AWS::StepFunctions::StateMachine').id } });
  });

  it('uses an existing bucket as it is, with the same grants on its objects', () => {
    const { template } = synth({ bulk: { bucketName: 'shop-chat-logs' } });
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.resourceCountIs('AWS::S3::BucketPolicy', 0);
    const machine = onlyResource(template, 'AWS::StepFunctions::StateMachine').resource.Properties;
    assert.equal(machine.DefinitionSubstitutions.BulkBucketName, 'shop-chat-logs');
    const objects = (suffix: string) => ({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:s3:::shop-chat-logs${suffix}`]],
    });
    const grants = bulkGrants(template, machine.RoleArn['Fn::GetAtt'][0]);
    for (const grant of [...grantsOf(TAGBEEZ_BULK_READ_ACTIONS, objects('/*')), ...grantsOf(TAGBEEZ_BULK_WRITE_ACTIONS, objects('/results/*'))]) {
      assert.ok(grants.includes(grant), `${grant} not in ${JSON.stringify(grants)}`);
    }
  });

  it('refuses settings the map would refuse', () => {
    const bad: Array<[TagbeezServiceProps, RegExp]> = [
      [{ bulk: { maxConcurrency: 0 } }, /bulk.maxConcurrency/],
      [{ bulk: { maxConcurrency: 10_001 } }, /bulk.maxConcurrency/],
      [{ bulk: { maxItemsPerBatch: 0 } }, /bulk.maxItemsPerBatch/],
      [{ bulk: { toleratedFailurePercentage: 101 } }, /bulk.toleratedFailurePercentage/],
      [{ bulk: { resultsExpiration: Duration.hours(12) } }, /bulk.resultsExpiration/],
      [{ bulk: { bucketName: 'shop', resultsExpiration: Duration.days(7) } }, /applies to the created bucket/],
      [{ bulk: { bucketName: 'Shop_Logs' } }, /bulk.bucketName/],
      [{ bulk: { definitionFile: path.join(scratch, 'missing.asl.json') } }, /no bulk state machine definition/],
    ];
    for (const [props, message] of bad) {
      const stack = new Stack(newApp(), 'Bad');
      assert.throws(() => new TagbeezService(stack, 'Tagbeez', { bootstrapDir, ...props }), message);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The stack's outputs

describe('stack', () => {
  it('outputs the API URL, function ARN and name, the table names and the dashboard name', () => {
    const fn = onlyResource(defaults.template, 'AWS::Lambda::Function');
    const table = conversationTable(defaults.template);
    const feedback = feedbackTable(defaults.template);
    const dashboard = onlyResource(defaults.template, 'AWS::CloudWatch::Dashboard');
    const api = onlyResource(defaults.template, 'AWS::ApiGatewayV2::Api');
    defaults.template.hasOutput('FunctionArn', { Value: { 'Fn::GetAtt': [fn.id, 'Arn'] } });
    defaults.template.hasOutput('FunctionName', { Value: { Ref: fn.id } });
    defaults.template.hasOutput('TableName', { Value: { Ref: table.id } });
    defaults.template.hasOutput('FeedbackTableName', { Value: { Ref: feedback.id } });
    defaults.template.hasOutput('ProfileTableName', { Value: { Ref: profileTable(defaults.template).id } });
    defaults.template.hasOutput('ExperimentTableName', { Value: { Ref: experimentTable(defaults.template).id } });
    defaults.template.hasOutput('DashboardName', { Value: { Ref: dashboard.id } });
    defaults.template.hasOutput('ApiUrl', {
      Value: { 'Fn::Join': ['', Match.arrayWith(['https://', { Ref: api.id }])] },
    });
  });

  it('outputs the callers\' execute-api ARNs (every route but /shops/*, comma-separated) and the operators\' pattern', () => {
    const api = onlyResource(defaults.template, 'AWS::ApiGatewayV2::Api');
    const arn = (resource: string): Json => ({
      'Fn::Join': [
        '',
        [
          'arn:', { Ref: 'AWS::Partition' }, ':execute-api:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' },
          ':', { Ref: api.id }, `/${resource}`,
        ],
      ],
    });
    const outputs = defaults.template.toJSON().Outputs as Json;
    assert.deepEqual(outputs.CallerExecuteArns.Value, {
      'Fn::Join': [',', TAGBEEZ_CALLER_ROUTES.map((route) => arn(tagbeezRouteResource(route)))],
    });
    assert.deepEqual(outputs.OperatorExecuteArn.Value, arn('$default/*/shops/*'));
    assert.equal(outputs.ApiExecuteArn, undefined, 'no output for every route');
    assert.deepEqual(defaults.stack.service.callerExecuteArns.length, TAGBEEZ_CALLER_ROUTES.length);
  });

  it('outputs exactly the SAM template\'s CallerExecuteArns and OperatorExecuteArn resources (../template.yaml)', () => {
    const text = fs.readFileSync(path.join(repoRoot()!, 'template.yaml'), 'utf8');
    const prefix = '!Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/';
    const outputs = text.split(/^Outputs:$/m)[1];
    const block = (name: string): string => {
      const match = new RegExp(`^  ${name}:\\n((?: {4,}.*\\n|\\s*\\n)*)`, 'm').exec(outputs);
      assert.ok(match, `template.yaml has no output ${name}`);
      return match[1];
    };
    const callers = [...block('CallerExecuteArns').matchAll(/^\s*(?:- )+!Sub (.*)$/gm)].map((m) => `!Sub ${m[1]}`);
    assert.deepEqual(callers, TAGBEEZ_CALLER_ROUTES.map((route) => prefix + tagbeezRouteResource(route)));
    assert.match(block('CallerExecuteArns'), /Value: !Join\n\s*- ","\n/);
    assert.match(block('OperatorExecuteArn'), new RegExp(`Value: ${(prefix + TAGBEEZ_OPERATOR_RESOURCE).replace(/[$*{}/.:]/g, '\\$&')}\n`));
  });

  it('grantInvokeApi allows execute-api:Invoke on the callers\' routes of this API only; grantInvokeAdminApi on /shops/*', () => {
    const stack = new Stack(newApp(), 'Caller');
    const service = new TagbeezService(stack, 'Tagbeez', { bootstrapDir });
    const caller = new iam.Role(stack, 'Caller', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    service.grantInvokeApi(caller);
    const operator = new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });
    service.grantInvokeAdminApi(operator);
    const template = Template.fromStack(stack);
    const api = onlyResource(template, 'AWS::ApiGatewayV2::Api');
    const statements = allStatements(template).filter((s) => actionsOf(s.statement).includes('execute-api:Invoke'));
    assert.equal(statements.length, 2);
    const roleId = (role: iam.Role): string => stack.getLogicalId(role.node.defaultChild as iam.CfnRole);
    const of = (role: iam.Role): Json[] => {
      const found = statements.filter((s) => s.roles?.includes(roleId(role)));
      assert.equal(found.length, 1);
      assert.deepEqual(actionsOf(found[0].statement), ['execute-api:Invoke']);
      return asArray<Json>(found[0].statement.Resource);
    };
    const tail = (resource: Json): string => {
      const parts = resource['Fn::Join'][1];
      assert.deepEqual(parts[parts.length - 2], { Ref: api.id });
      return parts[parts.length - 1];
    };
    assert.deepEqual(of(caller).map(tail), TAGBEEZ_CALLER_ROUTES.map((route) => `/${tagbeezRouteResource(route)}`));
    assert.deepEqual(of(operator).map(tail), ['/$default/*/shops/*']);
    // Still least-privilege for the service itself.
    checkLeastPrivilege(template, [roleId(caller), roleId(operator)]);
  });
});
