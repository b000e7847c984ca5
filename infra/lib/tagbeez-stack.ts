import { CfnOutput, Fn, Stack, type StackProps } from 'aws-cdk-lib';
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
    // With authType AWS_IAM: the resources of execute-api:Invoke for callers (every route but
    // /shops/*, one ARN per route, comma-separated: IAM patterns cannot exclude a path) and for
    // operators (the /shops/* admin routes), as the SAM template's outputs of the same names.
    new CfnOutput(this, 'CallerExecuteArns', {
      description:
        'Resources for execute-api:Invoke in the IAM policy of callers when authType is AWS_IAM, comma-separated: ' +
        'every route but the /shops/* admin routes',
      value: Fn.join(',', [...this.service.callerExecuteArns]),
    });
    new CfnOutput(this, 'OperatorExecuteArn', {
      description:
        'Resource for execute-api:Invoke in the IAM policy of operators when authType is AWS_IAM: the /shops/* admin ' +
        'routes (shop profiles and experiment reports), and nothing else',
      value: this.service.operatorExecuteArn,
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
    new CfnOutput(this, 'ProfileTableName', {
      description: 'DynamoDB table of shop profiles (PROFILE_TABLE_NAME)',
      value: this.service.profileTable.tableName,
    });
    new CfnOutput(this, 'ExperimentTableName', {
      description: 'DynamoDB table of threshold experiments (EXPERIMENT_TABLE_NAME)',
      value: this.service.experimentTable.tableName,
    });
    new CfnOutput(this, 'DashboardName', {
      description: 'Name of the CloudWatch dashboard',
      value: this.service.dashboard.dashboardName,
    });

    // The options' outputs, as the SAM template's (each only with its option).
    const service = this.service;
    if (service.queue && service.deadLetterQueue) {
      new CfnOutput(this, 'QueueUrl', {
        description: 'URL of the queue of messages to tag; producers need sqs:SendMessage on QueueArn',
        value: service.queue.queueUrl,
      });
      new CfnOutput(this, 'QueueArn', { description: 'ARN of the queue of messages to tag', value: service.queue.queueArn });
      new CfnOutput(this, 'DeadLetterQueueUrl', {
        description: "URL of the queue's dead-letter queue",
        value: service.deadLetterQueue.queueUrl,
      });
      new CfnOutput(this, 'DeadLetterQueueArn', {
        description: "ARN of the queue's dead-letter queue (the source of a redrive back to QueueArn)",
        value: service.deadLetterQueue.queueArn,
      });
    }
    if (service.eventBus) {
      new CfnOutput(this, 'EventBusName', {
        description: 'The bus tagbeez puts events on (EVENT_BUS_NAME), for rules of your own',
        value: service.eventBus.eventBusName,
      });
    }
    if (service.hotBuyerQueue) {
      new CfnOutput(this, 'HotBuyerQueueUrl', {
        description: 'URL of the example queue of Hot-buyer Message tagged events',
        value: service.hotBuyerQueue.queueUrl,
      });
    }
    if (service.bulkStateMachine && service.bulkBucket) {
      new CfnOutput(this, 'BulkStateMachineArn', {
        description: 'ARN of the bulk tagging state machine; start it with {"key": "<JSONL object in the bulk bucket>"}',
        value: service.bulkStateMachine.stateMachineArn,
      });
      new CfnOutput(this, 'BulkBucketName', {
        description: 'The bucket of bulk input files and of results/',
        value: service.bulkBucket.bucketName,
      });
    }
  }
}
