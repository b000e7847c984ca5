import * as fs from 'node:fs';
import * as path from 'node:path';

import { Annotations, ArnFormat, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
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
  'GET /health',
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
}

/** The DynamoDB actions the function uses, and the only ones it is granted. */
export const TAGBEEZ_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:DeleteItem',
] as const;

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

const DEFAULT_MEMORY_MB = 1769;
const DEFAULT_TIMEOUT = Duration.seconds(10);
const DEFAULT_THROTTLING: TagbeezThrottling = { rateLimit: 100, burstLimit: 200 };
const HTTP_API_INTEGRATION_LIMIT = Duration.seconds(30);

/** Stacks with a TagbeezService that logs API access: the log group name is per stack. */
const ACCESS_LOGGING_SERVICES = new WeakMap<Stack, string>();

/**
 * The tagbeez service: the Rust Lambda (arm64, provided.al2023) with its own execution role,
 * its DynamoDB conversation table, its log group, and an HTTP API with the service's routes
 * (and, by default, an access log group).
 */
export class TagbeezService extends Construct {
  /** The conversation table (partition key `conversation_id`, TTL attribute `expires_at`). */
  public readonly table: dynamodb.Table;
  /** The tagbeez function. Invoke it directly with `{"operation": ...}` payloads. */
  public readonly function: lambda.Function;
  /** The function's log group. */
  public readonly logGroup: logs.LogGroup;
  /**
   * The function's execution role: only the item operations on the table and writes to its own
   * log group (no AWSLambdaBasicExecutionRole, which allows logs on every log group).
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

    // Operational logs only (the service never logs message text): they go with the stack.
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // An explicit role, as in the SAM template: the one lambda.Function would create carries
    // AWSLambdaBasicExecutionRole (logs on every log group in the account). This one has no
    // managed policies, and may only write its own log group and use the table's items.
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
  };
}

/** A number as environment text; a token (e.g. a CfnParameter's value) stays a token. */
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
