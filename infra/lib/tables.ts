// The service's DynamoDB tables (conversations, feedback, shop profiles, experiments), and the
// function's access to them: exactly the item operations it performs, on those tables alone (no
// grant* helper, which would add more).
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';

import type { TagbeezServiceProps } from './service-props';

/** The DynamoDB actions the function uses, and the only ones it is granted. */
export const TAGBEEZ_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:DeleteItem',
] as const;

/**
 * The only DynamoDB action the function has on the feedback table: it adds feedback and never
 * reads it back (`tagbeez export-feedback` runs with an operator's own credentials), so the
 * function can neither read nor scan the stored messages.
 */
export const TAGBEEZ_FEEDBACK_TABLE_ACTIONS = ['dynamodb:PutItem'] as const;

/**
 * The DynamoDB actions the function has on the profile table: the profile store reads, writes
 * whole and deletes one shop's item by its key (no Query, Scan or UpdateItem).
 */
export const TAGBEEZ_PROFILE_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:DeleteItem',
] as const;

/**
 * The DynamoDB actions the function has on the experiment table: counters (UpdateItem), new items
 * (PutItem) and one experiment's items (Query on the table's key; it has no index). No GetItem,
 * Scan or DeleteItem.
 */
export const TAGBEEZ_EXPERIMENT_TABLE_ACTIONS = [
  'dynamodb:UpdateItem',
  'dynamodb:PutItem',
  'dynamodb:Query',
] as const;

/** The service's props that shape its tables. */
export type TagbeezTablesProps = Pick<
  TagbeezServiceProps,
  | 'pointInTimeRecovery'
  | 'tableRemovalPolicy'
  | 'feedbackTableRemovalPolicy'
  | 'profileTableRemovalPolicy'
  | 'experimentTableRemovalPolicy'
>;

/**
 * The conversation, feedback, profile and experiment tables, created as children of `scope` (the
 * service), so their logical ids are the service's own.
 */
export class TagbeezTables {
  /** The conversation table (partition key `conversation_id`, TTL attribute `expires_at`). */
  public readonly table: dynamodb.Table;
  /** The feedback table (partition key `feedback_id`, TTL attribute `expires_at`). */
  public readonly feedbackTable: dynamodb.Table;
  /** The shop profile table (partition key `shop_id`, no TTL). */
  public readonly profileTable: dynamodb.Table;
  /** The experiment table (partition key `pk`, sort key `sk`, TTL attribute `expires_at`). */
  public readonly experimentTable: dynamodb.Table;

  constructor(scope: Construct, props: TagbeezTablesProps) {
    this.table = new dynamodb.Table(scope, 'Conversations', {
      partitionKey: { name: 'conversation_id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: {
        pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true,
      },
      removalPolicy: props.tableRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // Feedback: labelled messages with their full text (retraining needs it; nowhere else does
    // the service keep full text), exported by `tagbeez export-feedback`. Retained by default:
    // it is training data. TTL (feedbackTtl) bounds how long any message is kept.
    this.feedbackTable = new dynamodb.Table(scope, 'Feedback', {
      partitionKey: { name: 'feedback_id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.feedbackTableRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // Shop profiles (PUT, GET and DELETE /shops/{shop_id}/profile, the admin routes): an
    // operator's configuration, not traffic, so no TTL. Retained by default: no other copy.
    this.profileTable = new dynamodb.Table(scope, 'Profiles', {
      partitionKey: { name: 'shop_id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.profileTableRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // Threshold experiments: exposures and outcomes (POST /outcome), read back by Query for
    // GET /shops/{shop_id}/experiments/{name}. Items expire through TTL on expires_at.
    this.experimentTable = new dynamodb.Table(scope, 'Experiments', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.experimentTableRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /**
   * Let the function's `role` use the conversation table's items, add feedback items, and use the
   * profile and experiment tables as their stores do.
   */
  public grantFunction(role: iam.Role): void {
    // Exactly the item operations the store performs; grantReadWriteData would add queries,
    // scans, batch and update operations, and the table's indexes.
    role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        actions: [...TAGBEEZ_TABLE_ACTIONS],
        resources: [this.table.tableArn],
      }),
    );
    // Feedback is only ever added: PutItem and nothing else (no grantWriteData, which adds
    // UpdateItem, DeleteItem and BatchWriteItem).
    role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        actions: [...TAGBEEZ_FEEDBACK_TABLE_ACTIONS],
        resources: [this.feedbackTable.tableArn],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        actions: [...TAGBEEZ_PROFILE_TABLE_ACTIONS],
        resources: [this.profileTable.tableArn],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.ALLOW,
        actions: [...TAGBEEZ_EXPERIMENT_TABLE_ACTIONS],
        resources: [this.experimentTable.tableArn],
      }),
    );
  }
}
