// Bulk tagging: a STANDARD state machine whose Distributed Map reads a JSON Lines object from
// the bulk bucket and has the function tag it in batches, with a role that may do exactly that.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ArnFormat, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';

import { checkInt, numberText } from './checks';
import type { TagbeezFunctionScope } from './function';
import { defaultBulkDefinitionFile } from './repository';

/**
 * Bulk tagging (the SAM template's Bulk and Bulk* parameters): a STANDARD state machine whose
 * Distributed Map reads one JSON Lines object from S3 and hands the function batches of messages
 * in EXPRESS child executions, results to `results/` in the bulk bucket. The definition is the
 * repository's `statemachine/bulk.asl.json`, the file the SAM template deploys.
 */
export interface TagbeezBulkOptions {
  /**
   * An existing bucket, used as it is.
   *
   * @default - a bucket of its own: encrypted (S3-managed keys), no public access, TLS only,
   * objects under `results/` expiring after `resultsExpiration`, retained when the stack goes
   */
  readonly bucketName?: string;
  /** How long the created bucket keeps the objects under `results/`, whole days, 1 to 3650. @default Duration.days(30) */
  readonly resultsExpiration?: Duration;
  /** Child executions (batches, so function instances) running at once, 1 to 10000. @default 10 */
  readonly maxConcurrency?: number;
  /** Messages (JSON lines) per batch, one invocation each, 1 to 1000; a batch is also kept under 240 KiB. @default 64 */
  readonly maxItemsPerBatch?: number;
  /** Percentage of failed batches a run tolerates before it fails, 0 to 100. @default 0 */
  readonly toleratedFailurePercentage?: number;
  /**
   * The state machine definition.
   *
   * @default - the repository's statemachine/bulk.asl.json
   */
  readonly definitionFile?: string;
}

/** What the bulk state machine's role may do with the function: invoke it, nothing more. */
export const TAGBEEZ_BULK_INVOKE_ACTIONS = ['lambda:InvokeFunction'] as const;
/** What it may do with the bucket's objects: read them (the ItemReader). */
export const TAGBEEZ_BULK_READ_ACTIONS = ['s3:GetObject'] as const;
/** What it may do under `results/` (the ResultWriter's multipart uploads). */
export const TAGBEEZ_BULK_WRITE_ACTIONS = [
  's3:PutObject',
  's3:ListMultipartUploadParts',
  's3:AbortMultipartUpload',
] as const;

/**
 * The bulk state machine's ${...} placeholders (its DefinitionSubstitutions), as in template.yaml.
 */
export const TAGBEEZ_BULK_SUBSTITUTIONS = [
  'TagbeezFunctionArn',
  'BulkBucketName',
  'MaxConcurrency',
  'MaxItemsPerBatch',
  'ToleratedFailurePercentage',
] as const;

const BUCKET_NAME_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Bulk tagging's resources. */
export interface TagbeezBulk {
  readonly bucket: s3.IBucket;
  readonly role: iam.Role;
  readonly stateMachine: sfn.StateMachine;
}

/**
 * The bulk bucket (unless given), the state machine's role and the STANDARD state machine of
 * statemachine/bulk.asl.json, as the SAM template's BulkBucket, BulkStateMachineRole and
 * BulkStateMachine.
 */
export function createBulk(
  service: TagbeezFunctionScope,
  options: TagbeezBulkOptions,
  stateMachineName: string,
): TagbeezBulk {
  const maxConcurrency = checkInt('bulk.maxConcurrency', options.maxConcurrency ?? 10, 1, 10_000);
  const maxItemsPerBatch = checkInt('bulk.maxItemsPerBatch', options.maxItemsPerBatch ?? 64, 1, 1000);
  const toleratedFailurePercentage = checkInt(
    'bulk.toleratedFailurePercentage',
    options.toleratedFailurePercentage ?? 0,
    0,
    100,
  );
  const definitionFile = path.resolve(options.definitionFile ?? defaultBulkDefinitionFile());
  if (!fs.existsSync(definitionFile)) {
    throw new Error(`TagbeezService: no bulk state machine definition at ${definitionFile}`);
  }

  const bucket = bulkBucket(service, options);
  const role = createBulkRole(service, bucket, stateMachineName);
  const substitutions: Record<(typeof TAGBEEZ_BULK_SUBSTITUTIONS)[number], string> = {
    TagbeezFunctionArn: service.function.functionArn,
    BulkBucketName: bucket.bucketName,
    MaxConcurrency: numberText(maxConcurrency),
    MaxItemsPerBatch: numberText(maxItemsPerBatch),
    ToleratedFailurePercentage: numberText(toleratedFailurePercentage),
  };
  const stateMachine = new sfn.StateMachine(service, 'BulkStateMachine', {
    stateMachineName,
    stateMachineType: sfn.StateMachineType.STANDARD,
    definitionBody: sfn.DefinitionBody.fromFile(definitionFile),
    definitionSubstitutions: substitutions,
    role,
  });
  return { bucket, role, stateMachine };
}

/** The bucket of `bucketName`, used as it is, or else a bucket of bulk tagging's own. */
function bulkBucket(scope: Construct, options: TagbeezBulkOptions): s3.IBucket {
  if (options.bucketName !== undefined) {
    if (options.resultsExpiration !== undefined) {
      throw new Error('TagbeezService: bulk.resultsExpiration applies to the created bucket, not to bulk.bucketName');
    }
    if (!Token.isUnresolved(options.bucketName) && !BUCKET_NAME_PATTERN.test(options.bucketName)) {
      throw new Error(`TagbeezService: bulk.bucketName must be an S3 bucket name, not '${options.bucketName}'`);
    }
    return s3.Bucket.fromBucketName(scope, 'BulkBucket', options.bucketName);
  }
  const expirationDays = checkInt(
    'bulk.resultsExpiration (days)',
    (options.resultsExpiration ?? Duration.days(30)).toDays({ integral: false }),
    1,
    3650,
  );
  // Customer messages and their tags: encrypted, private, TLS only, retained with the stack
  // (a non-empty bucket could not be deleted anyway); results expire.
  return new s3.Bucket(scope, 'BulkBucket', {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    lifecycleRules: [
      { id: 'expire-results', prefix: 'results/', expiration: Duration.days(expirationDays) },
      { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
    ],
    removalPolicy: RemovalPolicy.RETAIN,
  });
}

/**
 * The state machine's role: Step Functions of this account only, allowed to invoke the
 * function, read the bucket's objects, write under `results/`, and run its own child executions.
 */
function createBulkRole(service: TagbeezFunctionScope, bucket: s3.IBucket, stateMachineName: string): iam.Role {
  const stack = Stack.of(service);
  const role = new iam.Role(service, 'BulkStateMachineRole', {
    description: 'tagbeez bulk tagging state machine role',
    assumedBy: new iam.ServicePrincipal('states.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
    }),
  });
  const statements: Array<[string[], string]> = [
    // The function, and nothing else, is invoked.
    [[...TAGBEEZ_BULK_INVOKE_ACTIONS], service.function.functionArn],
    // ItemReader: the input object (s3:getObject, JSONL).
    [[...TAGBEEZ_BULK_READ_ACTIONS], bucket.arnForObjects('*')],
    // ResultWriter: the results, multipart uploads included, under results/ only.
    [[...TAGBEEZ_BULK_WRITE_ACTIONS], bucket.arnForObjects('results/*')],
    // A Distributed Map starts its child executions on its own state machine, describes and
    // stops them; RedriveExecution lets a failed map run be redriven. The ARNs are built from
    // the name: the state machine refers to this role, so the role cannot refer to it.
    [['states:StartExecution'], stack.formatArn({
      service: 'states', resource: 'stateMachine', resourceName: stateMachineName, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    })],
    [['states:DescribeExecution', 'states:StopExecution'], stack.formatArn({
      service: 'states', resource: 'execution', resourceName: `${stateMachineName}:*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    })],
    [['states:RedriveExecution'], stack.formatArn({
      service: 'states', resource: 'execution', resourceName: `${stateMachineName}/*:*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    })],
  ];
  for (const [actions, resource] of statements) {
    role.addToPolicy(new iam.PolicyStatement({ effect: iam.Effect.ALLOW, actions, resources: [resource] }));
  }
  return role;
}
