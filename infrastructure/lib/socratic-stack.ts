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
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secrets from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { IConstruct } from 'constructs';
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
  /**
   * One customer-managed KMS key (rotated yearly) for the table, the secrets, the queues, the
   * log groups and the functions' environments, instead of AWS-owned and AWS-managed keys. Off
   * unless asked for: the key costs $1 a month plus $0.03 per 10,000 requests, and every queue
   * message and secret read is such a request.
   */
  readonly customerManagedKey?: boolean;
  /**
   * Reserve each function's concurrency, sized from the stack's settings (the event sources'
   * maximum concurrency, the API's rate limit). Off unless asked for: an account must keep 100
   * unreserved, so a new account whose quota is still 10 cannot deploy with it.
   */
  readonly reservedConcurrency?: boolean;
  /**
   * Create API Gateway's account-wide CloudWatch role, which access logging needs (on unless
   * turned off). It is retained when the stack is deleted, so logging keeps working for the
   * region's other REST APIs. Turn it off when the account already has one.
   */
  readonly apiGatewayCloudWatchRole?: boolean;
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

/** Reserved concurrency per function when `reservedConcurrency` is asked for. */
export const RESERVED_CONCURRENCY: Record<string, number> = {
  api: 10,
  planner: 2,
  dialogue: DIALOGUE_MAX_CONCURRENCY,
  judge: JUDGE_MAX_CONCURRENCY,
  curator: 5,
};

/**
 * Records on `scope`'s CloudFormation resource why a checkov check does not apply, as checkov
 * reads it (`Metadata.checkov.skip`). Earlier skips and other metadata are kept; a skip needs
 * its reason.
 */
export function skipCheck(scope: IConstruct, id: string, comment: string): void {
  const resource = scope instanceof cdk.CfnResource ? scope : scope.node.defaultChild;
  if (!(resource instanceof cdk.CfnResource)) {
    throw new Error(`${scope.node.path}: no CloudFormation resource to skip ${id} on`);
  }
  if (comment.trim().length === 0) {
    throw new Error(`${scope.node.path}: skipping ${id} needs a reason`);
  }
  const existing = (resource.getMetadata('checkov') ?? {}) as { skip?: { id: string; comment: string }[] };
  resource.addMetadata('checkov', { ...existing, skip: [...(existing.skip ?? []), { id, comment }] });
}

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

    // Without the customer-managed key option, data is encrypted at rest under AWS-owned or
    // AWS-managed keys, which checkov's customer-managed-key checks do not accept.
    const key = props.customerManagedKey
      ? new kms.Key(this, 'Key', {
          description: 'Encrypts the socratic table, secrets, queues, logs and function environments',
          enableKeyRotation: true,
          removalPolicy: cdk.RemovalPolicy.RETAIN,
        })
      : undefined;
    const withoutKey = (scope: IConstruct, id: string, what: string) =>
      skipCheck(scope, id, `${what}; a customer-managed key is the customerManagedKey option, at $1 a month plus $0.03 per 10,000 requests.`);

    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'PK', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'SK', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: cdk.RemovalPolicy.RETAIN,
      ...(key ? { encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: key } : {}),
    });
    if (!key) {
      withoutKey(table, 'CKV_AWS_119', 'DynamoDB encrypts the table at rest with an AWS-owned key');
    }
    for (const index of INDEXES) {
      table.addGlobalSecondaryIndex({
        indexName: index,
        partitionKey: { name: `${index}_pk`, type: dynamodb.AttributeType.STRING },
        sortKey: { name: `${index}_sk`, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }

    // The bucket's server access logs. S3 delivers them only to SSE-S3 buckets, and this bucket
    // does not log itself.
    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
      lifecycleRules: [{ expiration: cdk.Duration.days(365) }, { noncurrentVersionExpiration: cdk.Duration.days(30) }],
    });
    skipCheck(accessLogs, 'CKV_AWS_18', 'This is the access-log bucket: logging its own accesses would log every log delivery, without end.');

    const bucket = new s3.Bucket(this, 'Bucket', {
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'bucket/',
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

    // Queues are encrypted with SQS's AWS-managed KMS key (or the customer-managed key), which
    // checkov reads from KmsMasterKeyId; SSE-SQS would encrypt as well but fails CKV_AWS_27.
    const queueEncryption = key
      ? { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key }
      : { encryption: sqs.QueueEncryption.KMS_MANAGED };
    const alarmOn = (name: string, deadLetters: sqs.Queue, description: string) =>
      new cloudwatch.Alarm(this, `${name}Alarm`, {
        metric: deadLetters.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(5) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        alarmDescription: description,
      });
    const queue = (name: string, consumerTimeout: cdk.Duration) => {
      const deadLetters = new sqs.Queue(this, `${name}Dlq`, { retentionPeriod: cdk.Duration.days(14), ...queueEncryption });
      const main = new sqs.Queue(this, name, {
        visibilityTimeout: cdk.Duration.seconds(consumerTimeout.toSeconds() * 6),
        ...queueEncryption,
        deadLetterQueue: { queue: deadLetters, maxReceiveCount: MAX_RECEIVE_COUNT },
      });
      alarmOn(`${name}Dlq`, deadLetters, `Messages in the ${name} dead-letter queue: a run failed for good; see its failure reason.`);
      return { main, deadLetters };
    };
    const dialogueJobs = queue('DialogueJobs', DIALOGUE_TIMEOUT);
    const judgeJobs = queue('JudgeJobs', JUDGE_TIMEOUT);

    const bus = new events.EventBus(this, 'Bus', { eventBusName: 'socratic-events' });
    // EventBridge delivers here (events it could not hand to the curator) and so does Lambda
    // (invocations that failed every retry). EventBridge is a service principal, and the
    // AWS-managed key's policy admits only the account's own principals: without a
    // customer-managed key this queue keeps SSE-SQS.
    const curatorDlq = new sqs.Queue(this, 'CuratorDlq', {
      retentionPeriod: cdk.Duration.days(14),
      ...(key ? { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key } : { encryption: sqs.QueueEncryption.SQS_MANAGED }),
    });
    if (key) {
      key.grant(new iam.ServicePrincipal('events.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey');
    } else {
      skipCheck(curatorDlq, 'CKV_AWS_27', 'Encrypted with SSE-SQS, which checkov does not read. EventBridge delivers to this queue, and the AWS-managed key aws/sqs admits only the account\'s own principals; with the customerManagedKey option it uses that key.');
    }
    alarmOn('CuratorDlq', curatorDlq, 'run-judged events or curator invocations that failed for good.');
    // The planner is invoked asynchronously by the schedule: what fails every retry lands here.
    const plannerDlq = new sqs.Queue(this, 'PlannerDlq', { retentionPeriod: cdk.Duration.days(14), ...queueEncryption });
    alarmOn('PlannerDlq', plannerDlq, 'Planner invocations (scheduled benchmarks) that failed every retry.');

    const apiKeySecret = new secrets.Secret(this, 'ApiKey', {
      description: 'The x-api-key clients send to the admin API',
      generateSecretString: { excludePunctuation: true, passwordLength: 40 },
      encryptionKey: key,
    });

    // Pagination cursors are signed with a secret of their own, not one derived from the API
    // key: rotating or leaking the key neither voids nor forges cursors.
    const cursorSecret = new secrets.Secret(this, 'CursorSecret', {
      description: 'Signs the admin API\'s pagination cursors',
      generateSecretString: { excludePunctuation: true, passwordLength: 48 },
      encryptionKey: key,
    });
    if (!key) {
      for (const secret of [apiKeySecret, cursorSecret]) {
        withoutKey(secret, 'CKV_AWS_149', 'Secrets Manager encrypts the secret with its AWS-managed key aws/secretsmanager');
      }
    }
    if (key) {
      // CloudWatch Logs encrypts the log groups with the key only if its policy lets it.
      key.grantEncryptDecrypt(new iam.ServicePrincipal(`logs.${cdk.Aws.REGION}.amazonaws.com`));
    }

    const environment = {
      SOCRATIC_TABLE: table.tableName,
      SOCRATIC_BUCKET: bucket.bucketName,
      SOCRATIC_DIALOGUE_QUEUE_URL: dialogueJobs.main.queueUrl,
      SOCRATIC_JUDGE_QUEUE_URL: judgeJobs.main.queueUrl,
      SOCRATIC_EVENT_BUS: bus.eventBusName,
      RUST_LOG: 'info',
    };
    const logGroup = (id: string) => {
      const group = new logs.LogGroup(this, id, {
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: cdk.RemovalPolicy.DESTROY,
        encryptionKey: key,
      });
      if (!key) {
        withoutKey(group, 'CKV_AWS_158', 'CloudWatch Logs encrypts log data at rest with its own keys');
      }
      return group;
    };
    /**
     * A function. `invokedBy` says how it is invoked, for the checks that do not fit it;
     * `deadLetters` is where Lambda puts an asynchronous invocation that failed every retry.
     */
    const fn = (name: string, memorySize: number, timeout: cdk.Duration, invokedBy: string, extra: Record<string, string> = {}, deadLetters?: sqs.IQueue) => {
      const f = new lambda.Function(this, name, {
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.X86_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(path.join(props.lambdaDir, name.toLowerCase())),
        memorySize,
        timeout,
        environment: { ...environment, ...extra },
        environmentEncryption: key,
        logGroup: logGroup(`${name}Logs`),
        tracing: props.tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
        deadLetterQueue: deadLetters,
        reservedConcurrentExecutions: props.reservedConcurrency ? RESERVED_CONCURRENCY[name.toLowerCase()] : undefined,
      });
      if (!deadLetters) {
        skipCheck(f, 'CKV_AWS_116', `Invoked ${invokedBy}: a Lambda dead-letter queue only receives failed asynchronous invocations.`);
      }
      skipCheck(f, 'CKV_AWS_117', 'Calls only AWS APIs and model providers, over TLS and signed with its role; a VPC would protect no private resource and would add NAT gateways (about $32 a month each) or interface endpoints.');
      if (!props.reservedConcurrency) {
        skipCheck(f, 'CKV_AWS_115', 'Reserved concurrency is the reservedConcurrency option: an account must keep 100 executions unreserved, so a new account with a quota of 10 could not deploy with it. The event sources\' maximum concurrency bounds the job functions either way.');
      }
      if (!key) {
        withoutKey(f, 'CKV_AWS_173', 'The environment holds resource names only (the API key and cursor secret are read from Secrets Manager), and Lambda encrypts it at rest with its AWS-managed key');
      }
      if (key) {
        // Queue messages and secrets under the key: sending needs a data key, reading decrypts.
        key.grant(f, 'kms:Decrypt', 'kms:GenerateDataKey');
      }
      return f;
    };

    // The function reads the key from the secret at cold start (and again after a rotation);
    // the key itself is never in its environment. Its read grant is in permissions.json.
    const api = fn('Api', 256, cdk.Duration.seconds(29), 'synchronously by API Gateway', {
      SOCRATIC_API_KEY_SECRET: apiKeySecret.secretArn,
      SOCRATIC_CURSOR_SECRET: cursorSecret.secretArn,
    });
    const planner = fn('Planner', 256, cdk.Duration.minutes(1), 'by the schedule', {}, plannerDlq);
    const jobs = { SOCRATIC_MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT) };
    const sqsSource = 'synchronously by its SQS event source; failed jobs go to the queue\'s own dead-letter queue';
    const dialogue = fn('Dialogue', 256, DIALOGUE_TIMEOUT, sqsSource, jobs);
    const judge = fn('Judge', 256, JUDGE_TIMEOUT, sqsSource, jobs);
    const curator = fn('Curator', 256, cdk.Duration.minutes(5), 'by the run-judged rule', {}, curatorDlq);

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

    // Access logs need the region's account-wide API Gateway CloudWatch role. The stack creates
    // it unless told the account has one, and retains it on deletion: deleting it would stop
    // logging for every REST API in the region.
    const cloudWatchRole = props.apiGatewayCloudWatchRole ?? true;
    const rest = new apigateway.LambdaRestApi(this, 'AdminApi', {
      handler: api,
      proxy: true,
      cloudWatchRole,
      cloudWatchRoleRemovalPolicy: cloudWatchRole ? cdk.RemovalPolicy.RETAIN : undefined,
      deployOptions: {
        stageName: 'v1',
        throttlingRateLimit: 10,
        throttlingBurstLimit: 20,
        tracingEnabled: props.tracing ?? false,
        accessLogDestination: new apigateway.LogGroupLogDestination(logGroup('AdminApiAccessLogs')),
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields(),
      },
      defaultMethodOptions: { apiKeyRequired: true },
    });
    const stage = rest.deploymentStage;
    skipCheck(stage, 'CKV_AWS_120', 'An admin API whose answers change with every finished run; a cache would serve stale progress and costs from $0.02 an hour.');
    if (!props.tracing) {
      skipCheck(stage, 'CKV_AWS_73', 'X-Ray tracing is the tracing option (on the API stage and the functions), billed per trace.');
    }
    const apiKey = rest.addApiKey('AdminKey', { value: apiKeySecret.secretValue.unsafeUnwrap() });
    const plan = rest.addUsagePlan('AdminPlan', {
      throttle: { rateLimit: 10, burstLimit: 20 },
      quota: { limit: 10_000, period: apigateway.Period.DAY },
    });
    plan.addApiKey(apiKey);
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
