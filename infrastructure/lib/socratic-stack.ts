// The AWS deployment of socratic: one DynamoDB table with five sparse indexes, one versioned
// encrypted bucket, SQS queues with dead-letter queues, an EventBridge bus and rule, five
// Rust Lambda functions (provided.al2023, arm64 not assumed: x86_64), and an API Gateway REST
// API with an API key and usage plan. IAM is least privilege per function.
import * as path from 'path';
import * as cdk from 'aws-cdk-lib';
import { Construct } from 'constructs';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secrets from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import permissions from '../permissions.json';

export interface SocraticStackProps extends cdk.StackProps {
  /** Where the `bootstrap` binaries are: `<lambdaDir>/<function>/bootstrap` (cargo lambda's layout). */
  readonly lambdaDir: string;
  /**
   * Bedrock models the dialogue function may invoke (tutors and students), as the catalog's
   * `provider_model_id`s: a foundation model id, a cross-region inference profile id (`us.…`,
   * `eu.…`, `apac.…`), or a full ARN.
   */
  readonly tutorModels: string[];
  /** Bedrock models the judge function may invoke, written the same way. */
  readonly judgeModels: string[];
  /** X-Ray active tracing on the functions and the API stage; off unless asked for. */
  readonly tracing?: boolean;
  /** How long the functions' logs are kept; a month unless said. */
  readonly logRetention?: logs.RetentionDays;
  /**
   * A benchmark on a schedule: the planner is sent `request` (a manifest request) at each
   * `expression` (`cron(0 6 ? * MON *)`, `rate(7 days)`). The firing time is appended to its
   * label, so each firing is a new manifest rather than the same one found again.
   */
  readonly schedule?: { expression: string; request: Record<string, unknown> };
}

/** The CloudWatch namespace of the embedded metrics the functions write (socratic_aws::metrics). */
export const METRICS_NAMESPACE = 'Socratic';

/**
 * The regions each geography's cross-region inference profiles route requests to. Invoking a
 * profile needs the profile's ARN and the foundation model's ARN in every region it may pick.
 */
export const PROFILE_REGIONS: Record<string, string[]> = {
  us: ['us-east-1', 'us-east-2', 'us-west-2'],
  eu: ['eu-central-1', 'eu-north-1', 'eu-south-1', 'eu-south-2', 'eu-west-1', 'eu-west-3'],
  apac: ['ap-northeast-1', 'ap-northeast-2', 'ap-northeast-3', 'ap-south-1', 'ap-south-2', 'ap-southeast-1', 'ap-southeast-2', 'ap-southeast-4'],
};

/** The ARNs invoking `model` needs: a profile and its routed foundation models, or the model. */
export function bedrockArns(model: string): string[] {
  if (model.startsWith('arn:')) {
    return [model];
  }
  const [geography, ...rest] = model.split('.');
  const regions = PROFILE_REGIONS[geography];
  if (regions && rest.length > 0) {
    const base = rest.join('.');
    return [
      `arn:${cdk.Aws.PARTITION}:bedrock:${cdk.Aws.REGION}:${cdk.Aws.ACCOUNT_ID}:inference-profile/${model}`,
      ...regions.map((region) => `arn:${cdk.Aws.PARTITION}:bedrock:${region}::foundation-model/${base}`),
    ];
  }
  return [`arn:${cdk.Aws.PARTITION}:bedrock:${cdk.Aws.REGION}::foundation-model/${model}`];
}

/** Index names and key attributes, as `socratic_core::store::Index` defines them. */
const INDEXES = ['by_type', 'by_model', 'by_manifest', 'by_vector', 'by_status'];

/**
 * Deliveries of a job before its queue dead-letters it. The dialogue and judge functions are
 * told it (SOCRATIC_MAX_RECEIVE_COUNT): on that delivery a failing job marks its run failed with
 * the stage and reason, so the manifest still finishes.
 */
export const MAX_RECEIVE_COUNT = 5;

/**
 * Concurrent invocations each SQS event source may drive: bounds the load on the model
 * providers' quotas and on the table, whatever the queue depth.
 */
export const DIALOGUE_MAX_CONCURRENCY = 20;
export const JUDGE_MAX_CONCURRENCY = 10;

/**
 * Function timeouts; queue visibility is at least six times the consumer's timeout. A judge job
 * judges a whole run, a few calls at a time; one that times out has stored the judgments it
 * made, and its redelivery makes only the rest.
 */
const DIALOGUE_TIMEOUT = cdk.Duration.minutes(10);
const JUDGE_TIMEOUT = cdk.Duration.minutes(10);

export class SocraticStack extends cdk.Stack {
  constructor(scope: Construct, id: string, props: SocraticStackProps) {
    super(scope, id, props);

    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'PK', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'SK', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });
    for (const index of INDEXES) {
      table.addGlobalSecondaryIndex({
        indexName: index,
        partitionKey: { name: `${index}_pk`, type: dynamodb.AttributeType.STRING },
        sortKey: { name: `${index}_sk`, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }

    const bucket = new s3.Bucket(this, 'Bucket', {
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
      lifecycleRules: [
        // Raw request/response artifacts are for audits and replays; curated results stay.
        { prefix: 'raw/', transitions: [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: cdk.Duration.days(30) }] },
        { prefix: 'cache/', expiration: cdk.Duration.days(90) },
        { noncurrentVersionExpiration: cdk.Duration.days(30) },
      ],
    });

    const queue = (name: string, consumerTimeout: cdk.Duration) => {
      const deadLetters = new sqs.Queue(this, `${name}Dlq`, {
        retentionPeriod: cdk.Duration.days(14),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
      });
      const main = new sqs.Queue(this, name, {
        visibilityTimeout: cdk.Duration.seconds(consumerTimeout.toSeconds() * 6),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        deadLetterQueue: { queue: deadLetters, maxReceiveCount: MAX_RECEIVE_COUNT },
      });
      new cloudwatch.Alarm(this, `${name}DlqAlarm`, {
        metric: deadLetters.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(5) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        alarmDescription: `Messages in the ${name} dead-letter queue: a run failed for good; see its failure reason.`,
      });
      return { main, deadLetters };
    };
    const dialogueJobs = queue('DialogueJobs', DIALOGUE_TIMEOUT);
    const judgeJobs = queue('JudgeJobs', JUDGE_TIMEOUT);

    const bus = new events.EventBus(this, 'Bus', { eventBusName: 'socratic-events' });
    const curatorDlq = new sqs.Queue(this, 'CuratorDlq', { retentionPeriod: cdk.Duration.days(14), encryption: sqs.QueueEncryption.SQS_MANAGED });
    new cloudwatch.Alarm(this, 'CuratorDlqAlarm', {
      metric: curatorDlq.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(5) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      alarmDescription: 'run-judged events the curator could not process.',
    });

    const apiKeySecret = new secrets.Secret(this, 'ApiKey', {
      description: 'The x-api-key clients send to the admin API',
      generateSecretString: { excludePunctuation: true, passwordLength: 40 },
    });

    // Pagination cursors are signed with a secret of their own, not one derived from the API
    // key: rotating or leaking the key neither voids nor forges cursors.
    const cursorSecret = new secrets.Secret(this, 'CursorSecret', {
      description: 'Signs the admin API\'s pagination cursors',
      generateSecretString: { excludePunctuation: true, passwordLength: 48 },
    });

    const environment = {
      SOCRATIC_TABLE: table.tableName,
      SOCRATIC_BUCKET: bucket.bucketName,
      SOCRATIC_DIALOGUE_QUEUE_URL: dialogueJobs.main.queueUrl,
      SOCRATIC_JUDGE_QUEUE_URL: judgeJobs.main.queueUrl,
      SOCRATIC_EVENT_BUS: bus.eventBusName,
      RUST_LOG: 'info',
    };
    const fn = (name: string, memorySize: number, timeout: cdk.Duration, extra: Record<string, string> = {}) =>
      new lambda.Function(this, name, {
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.X86_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(path.join(props.lambdaDir, name.toLowerCase())),
        memorySize,
        timeout,
        environment: { ...environment, ...extra },
        logGroup: new logs.LogGroup(this, `${name}Logs`, {
          retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
          removalPolicy: cdk.RemovalPolicy.DESTROY,
        }),
        tracing: props.tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
      });

    // The function reads the key from the secret at cold start (and again after a rotation);
    // the key itself is never in its environment. Its read grant is in permissions.json.
    const api = fn('Api', 256, cdk.Duration.seconds(29), {
      SOCRATIC_API_KEY_SECRET: apiKeySecret.secretArn,
      SOCRATIC_CURSOR_SECRET: cursorSecret.secretArn,
    });
    const planner = fn('Planner', 256, cdk.Duration.minutes(1));
    const jobs = { SOCRATIC_MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT) };
    const dialogue = fn('Dialogue', 256, DIALOGUE_TIMEOUT, jobs);
    const judge = fn('Judge', 256, JUDGE_TIMEOUT, jobs);
    const curator = fn('Curator', 256, cdk.Duration.minutes(5));

    // Least privilege from one table (permissions.json): what each function's code calls, on
    // what. The emulator test records every call the handlers make and checks it against the
    // same table, so a call the code starts making cannot go ungranted.
    const resource = (symbol: string): string[] => {
      if (symbol === 'table') return [table.tableArn];
      if (symbol === 'table/index/*') return [`${table.tableArn}/index/*`];
      if (symbol.startsWith('bucket/')) return [bucket.arnForObjects(symbol.slice('bucket/'.length))];
      if (symbol === 'queue/dialogue') return [dialogueJobs.main.queueArn];
      if (symbol === 'queue/judge') return [judgeJobs.main.queueArn];
      if (symbol === 'bus') return [bus.eventBusArn];
      if (symbol === 'secret/api-key') return [apiKeySecret.secretArn];
      if (symbol === 'secret/cursor') return [cursorSecret.secretArn];
      if (symbol === 'models/tutor') return props.tutorModels.flatMap(bedrockArns);
      if (symbol === 'models/judge') return props.judgeModels.flatMap(bedrockArns);
      throw new Error(`permissions.json: unknown resource ${symbol}`);
    };
    const functions: Record<string, lambda.Function> = { api, planner, dialogue, judge, curator };
    for (const [name, statements] of Object.entries(permissions.functions)) {
      const f = functions[name];
      if (!f) {
        throw new Error(`permissions.json: unknown function ${name}`);
      }
      for (const statement of statements) {
        const resources = statement.resources.flatMap(resource);
        if (resources.length > 0) {
          f.addToRolePolicy(new iam.PolicyStatement({ actions: statement.actions, resources }));
        }
      }
    }

    dialogue.addEventSource(new sources.SqsEventSource(dialogueJobs.main, {
      batchSize: 1,
      reportBatchItemFailures: true,
      maxConcurrency: DIALOGUE_MAX_CONCURRENCY,
    }));
    judge.addEventSource(new sources.SqsEventSource(judgeJobs.main, {
      batchSize: 5,
      reportBatchItemFailures: true,
      maxConcurrency: JUDGE_MAX_CONCURRENCY,
    }));
    new events.Rule(this, 'RunJudged', {
      eventBus: bus,
      eventPattern: { source: ['socratic.pipeline'], detailType: ['run-judged'] },
      targets: [new targets.LambdaFunction(curator, { deadLetterQueue: curatorDlq, retryAttempts: 4 })],
    });

    if (props.schedule) {
      const { label, ...request } = props.schedule.request;
      new events.Rule(this, 'ScheduledBenchmark', {
        schedule: events.Schedule.expression(props.schedule.expression),
        description: 'Sends the stored manifest request to the planner',
        targets: [
          new targets.LambdaFunction(planner, {
            event: events.RuleTargetInput.fromObject({
              ...request,
              label: `${typeof label === 'string' ? label : 'Scheduled benchmark'} (${events.EventField.time})`,
            }),
            retryAttempts: 2,
          }),
        ],
      });
    }

    const rest = new apigateway.LambdaRestApi(this, 'AdminApi', {
      handler: api,
      proxy: true,
      deployOptions: { stageName: 'v1', throttlingRateLimit: 10, throttlingBurstLimit: 20, tracingEnabled: props.tracing ?? false },
      defaultMethodOptions: { apiKeyRequired: true },
    });
    const key = rest.addApiKey('AdminKey', { value: apiKeySecret.secretValue.unsafeUnwrap() });
    const plan = rest.addUsagePlan('AdminPlan', {
      throttle: { rateLimit: 10, burstLimit: 20 },
      quota: { limit: 10_000, period: apigateway.Period.DAY },
    });
    plan.addApiKey(key);
    plan.addApiStage({ stage: rest.deploymentStage });

    // The seed guide's operations view: runs and manifests, the functions, the queues and the
    // models' tokens and cost (the last from the functions' embedded metrics).
    const period = cdk.Duration.minutes(5);
    const search = (metric: string, dimensions: string, label: string) =>
      new cloudwatch.MathExpression({
        expression: `SEARCH('{${METRICS_NAMESPACE},${dimensions}} MetricName="${metric}"', 'Sum', 300)`,
        label,
        period,
      });
    const all = [api, planner, dialogue, judge, curator];
    new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${cdk.Aws.STACK_NAME}-operations`,
      widgets: [
        [
          new cloudwatch.GraphWidget({ title: 'Runs finished, by status', left: [search('RunsFinished', 'Status', '')], width: 8 }),
          new cloudwatch.GraphWidget({
            title: 'Manifests summarised',
            left: [new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: 'ManifestsSummarised', statistic: 'Sum', period })],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Queue depth',
            left: [dialogueJobs, judgeJobs].map((q) => q.main.metricApproximateNumberOfMessagesVisible({ period })),
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Lambda errors', left: all.map((f) => f.metricErrors({ period })), width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Lambda duration (p90)', left: all.map((f) => f.metricDuration({ period, statistic: 'p90' })), width: 8 }),
          new cloudwatch.GraphWidget({
            title: 'Dead-letter queue depth',
            left: [dialogueJobs.deadLetters, judgeJobs.deadLetters, curatorDlq].map((q) => q.metricApproximateNumberOfMessagesVisible({ period })),
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Model tokens, by model and role',
            left: [search('InputTokens', 'Model,Role', 'input'), search('OutputTokens', 'Model,Role', 'output')],
            width: 12,
          }),
          new cloudwatch.GraphWidget({ title: 'Model cost (USD), by model and role', left: [search('CostUsd', 'Model,Role', '')], width: 12 }),
        ],
      ],
    });

    new cdk.CfnOutput(this, 'TableName', { value: table.tableName });
    new cdk.CfnOutput(this, 'BucketName', { value: bucket.bucketName });
    new cdk.CfnOutput(this, 'ApiUrl', { value: rest.url });
    new cdk.CfnOutput(this, 'ApiKeySecret', { value: apiKeySecret.secretName });
    new cdk.CfnOutput(this, 'PlannerFunction', { value: planner.functionName });
    new cdk.CfnOutput(this, 'DialogueQueueUrl', { value: dialogueJobs.main.queueUrl });
    new cdk.CfnOutput(this, 'JudgeQueueUrl', { value: judgeJobs.main.queueUrl });
    new cdk.CfnOutput(this, 'DialogueDeadLetterQueueUrl', { value: dialogueJobs.deadLetters.queueUrl });
    new cdk.CfnOutput(this, 'JudgeDeadLetterQueueUrl', { value: judgeJobs.deadLetters.queueUrl });
    new cdk.CfnOutput(this, 'CuratorDeadLetterQueueUrl', { value: curatorDlq.queueUrl });
  }
}
