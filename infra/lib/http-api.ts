// The HTTP API in front of the function: the service's routes, each with the chosen
// authorization, a throttled `$default` stage and (by default) an access log group; and the
// execute-api resources of the two kinds of principal that call it, callers and operators.
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

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
  'POST /feedback',
  'POST /outcome',
  'PUT /shops/{shop_id}/profile',
  'GET /shops/{shop_id}/profile',
  'DELETE /shops/{shop_id}/profile',
  'GET /shops/{shop_id}/experiments/{name}',
  'GET /health',
  'GET /metrics',
  'GET /demo',
  'GET /',
  'GET /openapi.json',
] as const;

export type TagbeezRouteKey = (typeof TAGBEEZ_ROUTES)[number];

/** The path prefix of the admin routes: shop profiles and experiment reports. */
export const TAGBEEZ_ADMIN_PATH_PREFIX = '/shops/';

/**
 * The admin routes (TAGBEEZ_ROUTES under `/shops/`): operators' routes, authorised apart from the
 * callers' (with `AWS_IAM`, execute-api:Invoke on `operatorExecuteArn` rather than
 * `callerExecuteArns`), so that a shop's backend allowed the callers' routes cannot rewrite
 * profiles.
 */
export const TAGBEEZ_ADMIN_ROUTES: readonly TagbeezRouteKey[] = TAGBEEZ_ROUTES.filter((route) =>
  route.split(' ')[1].startsWith(TAGBEEZ_ADMIN_PATH_PREFIX),
);

/** The callers' routes: every route but the admin ones. */
export const TAGBEEZ_CALLER_ROUTES: readonly TagbeezRouteKey[] = TAGBEEZ_ROUTES.filter(
  (route) => !TAGBEEZ_ADMIN_ROUTES.includes(route),
);

/**
 * The execute-api resource path of a route on the `$default` stage, after `<api id>/`:
 * `$default/<METHOD>/<path without its leading />`, each path parameter a `*`
 * (`GET /conversation/{id}` is `$default/GET/conversation/*`, `GET /` is `$default/GET/`).
 */
export function tagbeezRouteResource(route: string): string {
  const [method, routePath] = route.split(' ');
  return `$default/${method}/${routePath.slice(1).replace(/\{[^}]+\}/g, '*')}`;
}

/**
 * The operators' execute-api resource path after `<api id>/`: every method of every path under
 * `/shops/` on the `$default` stage.
 */
export const TAGBEEZ_OPERATOR_RESOURCE = '$default/*/shops/*';

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

const DEFAULT_THROTTLING: TagbeezThrottling = { rateLimit: 100, burstLimit: 200 };

/** Stacks with a TagbeezService that logs API access: the log group name is per stack. */
const ACCESS_LOGGING_SERVICES = new WeakMap<Stack, string>();

/** `authType`, `AWS_IAM` by default; anything else (from untyped callers) is refused. */
export function checkedAuthType(given?: TagbeezAuthType): TagbeezAuthType {
  const authType = given ?? 'AWS_IAM';
  if (authType !== 'AWS_IAM' && authType !== 'NONE') {
    throw new Error(`TagbeezService: authType must be 'AWS_IAM' or 'NONE', not '${String(authType)}'`);
  }
  return authType;
}

/** What the API is made of (the service's props of the same names). */
export interface TagbeezHttpApiOptions {
  /** The function every route integrates with. */
  readonly function: lambda.IFunction;
  readonly authType: TagbeezAuthType;
  readonly corsAllowOrigins?: string[];
  readonly throttling?: TagbeezThrottling;
  /** @default true */
  readonly accessLogging?: boolean;
  /** Retention of the access log group. */
  readonly logRetention: logs.RetentionDays;
}

/** The API, its `$default` stage and its access log group (unless access logging is off). */
export interface TagbeezHttpApi {
  readonly httpApi: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly accessLogGroup?: logs.LogGroup;
  /** The execute-api ARNs of TAGBEEZ_CALLER_ROUTES, one per route. */
  readonly callerExecuteArns: string[];
  /** The execute-api ARN pattern of the admin routes (TAGBEEZ_OPERATOR_RESOURCE). */
  readonly operatorExecuteArn: string;
}

/** The HTTP API of the service `scope`, with TAGBEEZ_ROUTES to `options.function`. */
export function createHttpApi(scope: Construct, options: TagbeezHttpApiOptions): TagbeezHttpApi {
  const throttling = options.throttling ?? DEFAULT_THROTTLING;
  const httpApi = new apigwv2.HttpApi(scope, 'HttpApi', {
    description: 'tagbeez HTTP API',
    // The $default stage is added below, with throttling (HttpApiProps has no stage options).
    createDefaultStage: false,
    corsPreflight: options.corsAllowOrigins?.length ? corsPreflight(options.corsAllowOrigins) : undefined,
  });
  const accessLogGroup = (options.accessLogging ?? true)
    ? createAccessLogGroup(scope, options.logRetention)
    : undefined;
  const stage = addDefaultStage(scope, httpApi, throttling, accessLogGroup);
  addRoutes(httpApi, options.function, options.authType);
  const executeArn = (resource: string): string =>
    Stack.of(scope).formatArn({
      service: 'execute-api',
      resource: httpApi.apiId,
      resourceName: resource,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  return {
    httpApi,
    stage,
    accessLogGroup,
    callerExecuteArns: TAGBEEZ_CALLER_ROUTES.map((route) => executeArn(tagbeezRouteResource(route))),
    operatorExecuteArn: executeArn(TAGBEEZ_OPERATOR_RESOURCE),
  };
}

/** CORS for browsers on `allowOrigins`, with what SigV4-signed calls send. */
function corsPreflight(allowOrigins: string[]): apigwv2.CorsPreflightOptions {
  return {
    allowOrigins,
    // API Gateway answers preflight OPTIONS itself, before authorization.
    allowMethods: [
      apigwv2.CorsHttpMethod.GET,
      apigwv2.CorsHttpMethod.POST,
      apigwv2.CorsHttpMethod.PUT,
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
  };
}

/**
 * The access log group `/aws/apigateway/<stack name>`, as in the SAM template. The name is per
 * stack, so a second service in the same stack that logs access is refused here, by name,
 * rather than by CloudFormation half-way through a deployment.
 */
function createAccessLogGroup(scope: Construct, retention: logs.RetentionDays): logs.LogGroup {
  const stack = Stack.of(scope);
  const other = ACCESS_LOGGING_SERVICES.get(stack);
  if (other !== undefined) {
    throw new Error(
      `TagbeezService: ${scope.node.path} and ${other} both log API access to ` +
        `/aws/apigateway/${stack.stackName}; set accessLogging: false on one of them`,
    );
  }
  ACCESS_LOGGING_SERVICES.set(stack, scope.node.path);
  return new logs.LogGroup(scope, 'ApiAccessLogs', {
    logGroupName: `/aws/apigateway/${stack.stackName}`,
    retention,
    removalPolicy: RemovalPolicy.DESTROY,
  });
}

/** The throttled `$default` stage, logging each request to `accessLogGroup` if there is one. */
function addDefaultStage(
  scope: Construct,
  httpApi: apigwv2.HttpApi,
  throttling: TagbeezThrottling,
  accessLogGroup: logs.LogGroup | undefined,
): apigwv2.HttpStage {
  return httpApi.addStage('DefaultStage', {
    stageName: '$default',
    autoDeploy: true,
    throttle: { rateLimit: throttling.rateLimit, burstLimit: throttling.burstLimit },
    accessLogSettings: accessLogGroup && {
      // The group's ARN without the ":*" of its Arn attribute, as in the SAM template.
      destination: {
        bind: () => ({
          destinationArn: Stack.of(scope).formatArn({
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
}

/** Every route of TAGBEEZ_ROUTES, to the function through one integration. */
function addRoutes(httpApi: apigwv2.HttpApi, fn: lambda.IFunction, authType: TagbeezAuthType): void {
  const integration = new HttpLambdaIntegration('Integration', fn, {
    payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
  });
  const authorizer: apigwv2.IHttpRouteAuthorizer =
    authType === 'AWS_IAM' ? new HttpIamAuthorizer() : new apigwv2.HttpNoneAuthorizer();
  for (const routeKey of TAGBEEZ_ROUTES) {
    const [method, routePath] = routeKey.split(' ') as [keyof typeof apigwv2.HttpMethod, string];
    httpApi.addRoutes({
      path: routePath,
      methods: [apigwv2.HttpMethod[method]],
      integration,
      authorizer,
    });
  }
}
