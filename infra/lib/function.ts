// The tagbeez function: the Rust binary on arm64 `provided.al2023`, its log group, and an
// execution role of its own that starts with no permissions (the parts add theirs).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Annotations, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

import { defaultBootstrapDir } from './repository';
import type { TagbeezTables } from './tables';

/**
 * The CloudWatch Logs actions the function's role has, on its own log group only (which exists
 * already, so no logs:CreateLogGroup).
 */
export const TAGBEEZ_LOG_ACTIONS = ['logs:CreateLogStream', 'logs:PutLogEvents'] as const;

const DEFAULT_MEMORY_MB = 1769;
const DEFAULT_TIMEOUT = Duration.seconds(10);
const HTTP_API_INTEGRATION_LIMIT = Duration.seconds(30);

/**
 * The service as the parts that build on its function see it: their scope (so what they create
 * keeps the logical ids it has as the service's own child), the function, and its role.
 */
export type TagbeezFunctionScope = Construct & {
  readonly function: lambda.Function;
  readonly role: iam.Role;
};

/** The folder of the Lambda `bootstrap` (`bootstrapDir`, or the repository's build output), which must hold it. */
export function checkedBootstrapDir(bootstrapDir?: string): string {
  const dir = path.resolve(bootstrapDir ?? defaultBootstrapDir());
  assertBootstrap(dir);
  return dir;
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

/**
 * The function's timeout (`timeout`, 10 s by default). One longer than the HTTP API's 30 s is
 * allowed, for direct invocations, but gets a warning on `scope`: API requests stop at 30 s.
 */
export function functionTimeout(scope: Construct, given?: Duration): Duration {
  const timeout = given ?? DEFAULT_TIMEOUT;
  if (!timeout.isUnresolved() &&
      timeout.toMilliseconds() > HTTP_API_INTEGRATION_LIMIT.toMilliseconds()) {
    Annotations.of(scope).addWarningV2(
      'tagbeez:timeoutOverHttpApiLimit',
      `timeout ${timeout.toHumanString()} is longer than the 30 s after which HTTP API integrations stop; ` +
        'only direct invocations can use the extra time',
    );
  }
  return timeout;
}

/** The function's log group: operational logs only (the service never logs message text), so they go with the stack. */
export function createFunctionLogGroup(scope: Construct, retention: logs.RetentionDays): logs.LogGroup {
  return new logs.LogGroup(scope, 'Logs', {
    retention,
    removalPolicy: RemovalPolicy.DESTROY,
  });
}

/**
 * The function's execution role, allowed the tables' item operations and writes to `logGroup`.
 *
 * An explicit role, as in the SAM template: the one lambda.Function would create carries
 * AWSLambdaBasicExecutionRole (logs on every log group in the account). This one has no managed
 * policies, and may only write its own log group, use the conversation table's items, add
 * feedback items and use the profile and experiment tables as their stores do (the queue and the
 * event bus add theirs when they are on).
 */
export function createFunctionRole(scope: Construct, tables: TagbeezTables, logGroup: logs.LogGroup): iam.Role {
  const role = new iam.Role(scope, 'FunctionRole', {
    description: 'tagbeez Lambda execution role',
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
  });
  tables.grantFunction(role);
  role.addToPolicy(
    new iam.PolicyStatement({
      effect: iam.Effect.ALLOW,
      actions: [...TAGBEEZ_LOG_ACTIONS],
      resources: [logGroup.logGroupArn],
    }),
  );
  return role;
}

/** What the function is made of; the rest (runtime, architecture, handler) is fixed. */
export interface TagbeezFunctionOptions {
  /** The folder that holds `bootstrap` (checkedBootstrapDir). */
  readonly bootstrapDir: string;
  /** @default 1769 (one vCPU) */
  readonly memorySize?: number;
  readonly timeout: Duration;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  /** Every environment variable: the settings, the tables' names and, when on, the event settings. */
  readonly environment: Record<string, string>;
}

/** The tagbeez function. */
export function createFunction(scope: Construct, options: TagbeezFunctionOptions): lambda.Function {
  return new lambda.Function(scope, 'Function', {
    description: 'tagbeez: intent tags for e-commerce chat messages',
    runtime: lambda.Runtime.PROVIDED_AL2023,
    architecture: lambda.Architecture.ARM_64,
    handler: 'bootstrap',
    code: lambda.Code.fromAsset(options.bootstrapDir, {
      // Package the binary alone: cargo-lambda leaves bootstrap.zip beside it.
      exclude: ['*', '!bootstrap'],
    }),
    memorySize: options.memorySize ?? DEFAULT_MEMORY_MB,
    timeout: options.timeout,
    role: options.role,
    logGroup: options.logGroup,
    environment: options.environment,
  });
}
