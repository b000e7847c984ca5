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
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';

import {
  TAGBEEZ_ACCESS_LOG_FORMAT,
  TAGBEEZ_LOG_ACTIONS,
  TAGBEEZ_ROUTES,
  TAGBEEZ_TABLE_ACTIONS,
  TagbeezService,
  type TagbeezServiceProps,
  defaultBootstrapDir,
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
};

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

  it('gets every service setting, TABLE_NAME from the table, and nothing local-only', () => {
    const table = onlyResource(defaults.template, 'AWS::DynamoDB::Table');
    const fn = onlyResource(defaults.template, 'AWS::Lambda::Function');
    const vars: Record<string, Json> = fn.resource.Properties.Environment.Variables;
    assert.deepEqual(vars, { ...SERVICE_ENV_DEFAULTS, TABLE_NAME: { Ref: table.id } });
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
    const table = onlyResource(customized.template, 'AWS::DynamoDB::Table');
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
          TABLE_NAME: { Ref: table.id },
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
    assert.equal(routes.length, 8);
    for (const route of routes) {
      assert.equal(route.authorizationType, 'AWS_IAM', `${route.routeKey} must use AWS_IAM`);
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
        AllowMethods: Match.arrayWith(['GET', 'POST', 'DELETE']),
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
    defaults.template.resourceCountIs('AWS::DynamoDB::Table', 1);
    defaults.template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'conversation_id', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'conversation_id', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
      SSESpecification: { SSEEnabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('has no secondary indexes', () => {
    const table = onlyResource(defaults.template, 'AWS::DynamoDB::Table');
    assert.equal(table.resource.Properties.GlobalSecondaryIndexes, undefined);
    assert.equal(table.resource.Properties.LocalSecondaryIndexes, undefined);
  });

  it('has PITR off when asked', () => {
    customized.template.hasResourceProperties('AWS::DynamoDB::Table', {
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: false },
    });
  });

  it('is retained by default, destroyed when asked', () => {
    defaults.template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    customized.template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
    });
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
 * function's own log group, on a role with no managed policies. Statements of `otherRoles`
 * only (roles a test added itself) are left out.
 */
function checkLeastPrivilege(template: Template, otherRoles: string[] = []): void {
  // The constants themselves must not widen.
  assert.deepEqual(sorted(TAGBEEZ_TABLE_ACTIONS), ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem']);
  assert.deepEqual(sorted(TAGBEEZ_LOG_ACTIONS), ['logs:CreateLogStream', 'logs:PutLogEvents']);

  const table = onlyResource(template, 'AWS::DynamoDB::Table');
  const tableArn = { 'Fn::GetAtt': [table.id, 'Arn'] };
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
    ...TAGBEEZ_LOG_ACTIONS.map((a) => `${a} on ${JSON.stringify(logGroupArn)}`),
  ];
  assert.equal(expected.length, 5);
  assert.deepEqual(
    sorted(grants),
    sorted(expected),
    'the only permissions must be the 3 item operations on the table and the 2 log writes on the function\'s log group',
  );
}

describe('IAM', () => {
  it('grants only GetItem, PutItem, DeleteItem on the table and log writes on the function\'s log group', () => {
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
    new TagbeezService(stack, 'Third', { bootstrapDir, accessLogging: false });
  });
});

// ---------------------------------------------------------------------------------------------
// 6. The routes agree with the SAM template and the Rust source

describe('routes', () => {
  const root = repoRoot();

  it('TAGBEEZ_ROUTES has 8 distinct METHOD /path keys', () => {
    assert.equal(new Set(TAGBEEZ_ROUTES).size, 8);
    for (const key of TAGBEEZ_ROUTES) assert.match(key, /^(GET|POST|DELETE) \/\S*$/);
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
// The stack's outputs

describe('stack', () => {
  it('outputs the API URL, function ARN and name, and table name', () => {
    const fn = onlyResource(defaults.template, 'AWS::Lambda::Function');
    const table = onlyResource(defaults.template, 'AWS::DynamoDB::Table');
    const api = onlyResource(defaults.template, 'AWS::ApiGatewayV2::Api');
    defaults.template.hasOutput('FunctionArn', { Value: { 'Fn::GetAtt': [fn.id, 'Arn'] } });
    defaults.template.hasOutput('FunctionName', { Value: { Ref: fn.id } });
    defaults.template.hasOutput('TableName', { Value: { Ref: table.id } });
    defaults.template.hasOutput('ApiUrl', {
      Value: { 'Fn::Join': ['', Match.arrayWith(['https://', { Ref: api.id }])] },
    });
  });

  it('grantInvokeApi allows execute-api:Invoke on this API only', () => {
    const stack = new Stack(newApp(), 'Caller');
    const service = new TagbeezService(stack, 'Tagbeez', { bootstrapDir });
    const caller = new iam.Role(stack, 'Caller', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    service.grantInvokeApi(caller);
    const template = Template.fromStack(stack);
    const api = onlyResource(template, 'AWS::ApiGatewayV2::Api');
    const statements = allStatements(template).filter((s) => actionsOf(s.statement).includes('execute-api:Invoke'));
    assert.equal(statements.length, 1);
    assert.match(JSON.stringify(statements[0].statement.Resource), new RegExp(`"Ref":"${api.id}"`));
    // Still least-privilege for the service itself.
    const callerRole = (stack.node.findChild('Caller') as iam.Role).node.defaultChild as iam.CfnRole;
    checkLeastPrivilege(template, [stack.getLogicalId(callerRole)]);
  });
});
