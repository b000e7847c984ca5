// The service's two DynamoDB tables, and the function's access to them: exactly the item
// operations it performs, on those tables alone (no grant* helper, which would add more).
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

/** The service's props that shape its tables. */
export type TagbeezTablesProps = Pick<
  TagbeezServiceProps,
  'pointInTimeRecovery' | 'tableRemovalPolicy' | 'feedbackTableRemovalPolicy'
>;

/**
 * The conversation table and the feedback table, created as children of `scope` (the service),
 * so their logical ids are the service's own.
 */
export class TagbeezTables {
  /** The conversation table (partition key `conversation_id`, TTL attribute `expires_at`). */
  public readonly table: dynamodb.Table;
  /** The feedback table (partition key `feedback_id`, TTL attribute `expires_at`). */
  public readonly feedbackTable: dynamodb.Table;

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
  }

  /** Let the function's `role` use the conversation table's items and add feedback items. */
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
  }
}
