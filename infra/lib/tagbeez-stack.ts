import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';

import { TagbeezService, type TagbeezServiceProps } from './tagbeez-service';

export interface TagbeezStackProps extends StackProps {
  /** Passed to the TagbeezService construct. */
  readonly service?: TagbeezServiceProps;
}

/** A stack with one TagbeezService and the outputs a caller needs. */
export class TagbeezStack extends Stack {
  public readonly service: TagbeezService;

  constructor(scope: Construct, id: string, props: TagbeezStackProps = {}) {
    super(scope, id, props);

    this.service = new TagbeezService(this, 'Tagbeez', props.service);

    new CfnOutput(this, 'ApiUrl', {
      description: 'Base URL of the HTTP API ($default stage)',
      value: this.service.url,
    });
    new CfnOutput(this, 'FunctionArn', {
      description: 'ARN of the tagbeez function, for direct invocation (lambda:InvokeFunction)',
      value: this.service.function.functionArn,
    });
    new CfnOutput(this, 'FunctionName', {
      description: 'Name of the tagbeez function',
      value: this.service.function.functionName,
    });
    new CfnOutput(this, 'TableName', {
      description: 'DynamoDB table of conversation windows',
      value: this.service.table.tableName,
    });
    new CfnOutput(this, 'FeedbackTableName', {
      description: 'DynamoDB table of feedback (FEEDBACK_TABLE_NAME), for tagbeez export-feedback',
      value: this.service.feedbackTable.tableName,
    });
    new CfnOutput(this, 'DashboardName', {
      description: 'Name of the CloudWatch dashboard',
      value: this.service.dashboard.dashboardName,
    });
  }
}
