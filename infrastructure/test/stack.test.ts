// Synthesizes the stack and asserts the properties the deployment relies on.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as cdk from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { MAX_RECEIVE_COUNT, PROFILE_REGIONS, RESERVED_CONCURRENCY, SocraticStack, SocraticStackProps, skipCheck } from '../lib/socratic-stack';
import permissions from '../permissions.json';

const FUNCTIONS = ['api', 'planner', 'dialogue', 'judge', 'curator'];
/** An example file of `examples/aws-admin/`, from `test/` as TypeScript or from `dist/test/`. */
function example(name: string): any {
  const root = path.join(__dirname, '..', '..', ...(__dirname.includes('dist') ? ['..'] : []));
  return JSON.parse(fs.readFileSync(path.join(root, 'examples/aws-admin', name), 'utf8'));
}

/** The example catalog's Bedrock models: tutors and students for the dialogue, judges. */
const CATALOG: { provider_model_id: string; tags: string[] }[] = example('models.example.json');
const TUTOR_MODELS = CATALOG.filter((m) => m.tags.some((t) => t === 'tutor' || t === 'student')).map((m) => m.provider_model_id);
const JUDGE_MODELS = CATALOG.filter((m) => m.tags.includes('judge')).map((m) => m.provider_model_id);

/** The stack over the example catalog, with `extra` props. */
function synth(name = 'Test', extra: Partial<SocraticStackProps> = {}): Template {
  // Placeholder binaries: synthesis only needs the asset directories to exist.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'socratic-lambda-'));
  for (const name of FUNCTIONS) {
    fs.mkdirSync(path.join(dir, name));
    fs.writeFileSync(path.join(dir, name, 'bootstrap'), '#!/bin/sh\n');
  }
  const app = new cdk.App();
  const stack = new SocraticStack(app, name, { lambdaDir: dir, tutorModels: TUTOR_MODELS, judgeModels: JUDGE_MODELS, ...extra });
  return Template.fromStack(stack);
}

const template = synth();

function resourcesOf(type: string): Record<string, any> {
  return template.findResources(type);
}

function functionLogicalId(name: string): string {
  const match = Object.entries(resourcesOf('AWS::Lambda::Function')).find(([id]) => id.startsWith(name));
  assert.ok(match, `function ${name}`);
  return match[0];
}

function policiesOf(functionName: string): any[] {
  const roleRef = resourcesOf('AWS::Lambda::Function')[functionLogicalId(functionName)].Properties.Role['Fn::GetAtt'][0];
  return Object.values(resourcesOf('AWS::IAM::Policy'))
    .filter((p: any) => p.Properties.Roles.some((r: any) => r.Ref === roleRef))
    .flatMap((p: any) => p.Properties.PolicyDocument.Statement);
}

function actionsOf(functionName: string): string[] {
  return policiesOf(functionName).flatMap((s: any) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
}

test('one table with string keys and five sparse indexes', () => {
  template.resourceCountIs('AWS::DynamoDB::Table', 1);
  const table: any = Object.values(resourcesOf('AWS::DynamoDB::Table'))[0];
  assert.deepEqual(table.Properties.KeySchema, [
    { AttributeName: 'PK', KeyType: 'HASH' },
    { AttributeName: 'SK', KeyType: 'RANGE' },
  ]);
  assert.equal(table.Properties.BillingMode, 'PAY_PER_REQUEST');
  const indexes = table.Properties.GlobalSecondaryIndexes.map((i: any) => i.IndexName).sort();
  assert.deepEqual(indexes, ['by_manifest', 'by_model', 'by_status', 'by_type', 'by_vector']);
  for (const index of table.Properties.GlobalSecondaryIndexes) {
    assert.deepEqual(index.KeySchema, [
      { AttributeName: `${index.IndexName}_pk`, KeyType: 'HASH' },
      { AttributeName: `${index.IndexName}_sk`, KeyType: 'RANGE' },
    ]);
    assert.equal(index.Projection.ProjectionType, 'ALL');
  }
});

test('a versioned, encrypted bucket with lifecycle rules', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    VersioningConfiguration: { Status: 'Enabled' },
    BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    LifecycleConfiguration: { Rules: Match.arrayWith([Match.objectLike({ Prefix: 'raw/' })]) },
    PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
  });
});

test('job queues dead-letter after MAX_RECEIVE_COUNT receives, which their consumers are told, with bounded concurrency and visibility at least six times the consumer timeout', () => {
  const functions = resourcesOf('AWS::Lambda::Function');
  const timeoutOf = (name: string) => functions[functionLogicalId(name)].Properties.Timeout;
  const queues = resourcesOf('AWS::SQS::Queue');
  const mappings = Object.values(resourcesOf('AWS::Lambda::EventSourceMapping')) as any[];
  assert.equal(mappings.length, 2);
  for (const name of ['Dialogue', 'Judge']) {
    const mapping = mappings.find((m) => m.Properties.FunctionName.Ref === functionLogicalId(name));
    assert.ok(mapping, `${name} has an SQS event source`);
    assert.deepEqual(mapping.Properties.FunctionResponseTypes, ['ReportBatchItemFailures']);
    const queueId = mapping.Properties.EventSourceArn['Fn::GetAtt'][0];
    const queue = queues[queueId].Properties;
    assert.ok(queue.VisibilityTimeout >= 6 * timeoutOf(name), `${name}: ${queue.VisibilityTimeout} vs ${timeoutOf(name)}`);
    assert.equal(queue.RedrivePolicy.maxReceiveCount, MAX_RECEIVE_COUNT);
    const env = functions[functionLogicalId(name)].Properties.Environment.Variables;
    assert.equal(env.SOCRATIC_MAX_RECEIVE_COUNT, String(queue.RedrivePolicy.maxReceiveCount), `${name} knows its last attempt`);
    const concurrency = mapping.Properties.ScalingConfig?.MaximumConcurrency;
    assert.ok(concurrency >= 2 && concurrency <= 50, `${name}: maximum concurrency ${concurrency}`);
  }
});

test('five functions on provided.al2023 with 128-256 MB', () => {
  const functions = Object.values(resourcesOf('AWS::Lambda::Function')).filter((f: any) => f.Properties.Runtime === 'provided.al2023') as any[];
  assert.equal(functions.length, 5);
  for (const f of functions) {
    assert.ok(f.Properties.MemorySize >= 128 && f.Properties.MemorySize <= 256);
    assert.equal(f.Properties.Handler, 'bootstrap');
    assert.deepEqual(f.Properties.Architectures, ['x86_64']);
  }
});

test('a bus and a run-judged rule targeting the curator', () => {
  template.resourceCountIs('AWS::Events::EventBus', 1);
  template.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { source: ['socratic.pipeline'], 'detail-type': ['run-judged'] },
    Targets: Match.arrayWith([Match.objectLike({ Arn: { 'Fn::GetAtt': [functionLogicalId('Curator'), 'Arn'] } })]),
  });
});

test('the API needs a key and has a usage plan', () => {
  const methods = Object.values(resourcesOf('AWS::ApiGateway::Method')) as any[];
  assert.ok(methods.length > 0);
  for (const method of methods.filter((m) => m.Properties.HttpMethod !== 'OPTIONS')) {
    assert.equal(method.Properties.ApiKeyRequired, true);
  }
  template.resourceCountIs('AWS::ApiGateway::ApiKey', 1);
  template.resourceCountIs('AWS::ApiGateway::UsagePlan', 1);
  template.resourceCountIs('AWS::ApiGateway::UsagePlanKey', 1);
});

test('Bedrock grants cover every catalog model: an inference profile and the foundation model in each region it routes to', () => {
  const invoke = (name: string) =>
    policiesOf(name).filter((s: any) => ([] as string[]).concat(s.Action).some((a: string) => a.startsWith('bedrock:')));
  assert.ok(TUTOR_MODELS.length >= 3 && JUDGE_MODELS.length >= 1, 'the example catalog is read');
  for (const [name, models] of [['Dialogue', TUTOR_MODELS], ['Judge', JUDGE_MODELS]] as [string, string[]][]) {
    const resources = JSON.stringify(invoke(name).map((s: any) => s.Resource));
    for (const model of models) {
      const [geography, ...rest] = model.split('.');
      assert.ok(resources.includes(`:inference-profile/${model}"`), `${name}: the profile ${model}`);
      for (const region of PROFILE_REGIONS[geography]) {
        assert.ok(resources.includes(`:bedrock:${region}::foundation-model/${rest.join('.')}"`), `${name}: ${model} in ${region}`);
      }
    }
  }
  assert.ok(!JSON.stringify(invoke('Judge')).includes('llama3'), 'the judge cannot call tutor-only models');
  for (const name of ['Api', 'Planner', 'Curator']) {
    assert.equal(invoke(name).length, 0, `${name} cannot call models`);
  }
  for (const name of ['Api', 'Planner', 'Dialogue', 'Judge', 'Curator']) {
    const actions = actionsOf(name);
    assert.ok(!actions.includes('*') && !actions.some((a) => a.endsWith(':*')), `${name}: no wildcard actions: ${actions}`);
    assert.ok(!actions.includes('dynamodb:Scan'), `${name} never scans`);
  }
});

test('each role is permissions.json, plus what its SQS event source and its own dead-letter queue need', () => {
  const eventSource = ['sqs:ReceiveMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'];
  const functions = resourcesOf('AWS::Lambda::Function');
  for (const name of FUNCTIONS) {
    const logicalName = name.charAt(0).toUpperCase() + name.slice(1);
    const table = new Set((permissions.functions as Record<string, { actions: string[] }[]>)[name].flatMap((s) => s.actions));
    const role = new Set(actionsOf(logicalName));
    for (const action of table) {
      assert.ok(role.has(action), `${name} lacks ${action}`);
    }
    for (const action of role) {
      assert.ok(table.has(action) || eventSource.includes(action) || action === 'sqs:SendMessage', `${name} has ${action}, which permissions.json does not list`);
    }
    // Lambda itself sends a failed asynchronous invocation to the function's dead-letter queue,
    // with the function's role: that send, and no other the code does not make.
    const deadLetters = functions[functionLogicalId(logicalName)].Properties.DeadLetterConfig?.TargetArn;
    const sends = policiesOf(logicalName)
      .filter((s: any) => ([] as string[]).concat(s.Action).includes('sqs:SendMessage'))
      .flatMap((s: any) => ([] as any[]).concat(s.Resource));
    const granted = permissions.functions[name as keyof typeof permissions.functions].filter((s) => s.actions.includes('sqs:SendMessage')).length;
    assert.equal(sends.length, granted + (deadLetters ? 1 : 0), `${name}: ${JSON.stringify(sends)}`);
    if (deadLetters) {
      assert.ok(sends.some((r: any) => JSON.stringify(r) === JSON.stringify(deadLetters)), `${name} may send to its dead-letter queue`);
    }
  }
});

test('the API key and the cursor secret are read from Secrets Manager, never placed in a function environment', () => {
  const functions = resourcesOf('AWS::Lambda::Function');
  const all = Object.keys(resourcesOf('AWS::SecretsManager::Secret'));
  assert.equal(all.length, 2);
  const cursor = all.filter((id) => id.startsWith('CursorSecret'));
  const secrets = all.filter((id) => !id.startsWith('CursorSecret'));
  assert.equal(cursor.length, 1);
  for (const [id, f] of Object.entries(functions) as [string, any][]) {
    const env = JSON.stringify(f.Properties.Environment ?? {});
    assert.ok(!env.includes('resolve:secretsmanager'), `${id} has the secret's value in its environment`);
    assert.ok(!env.includes('SOCRATIC_API_KEY"'), `${id} has SOCRATIC_API_KEY`);
  }
  const api = functions[functionLogicalId('Api')].Properties.Environment.Variables;
  assert.deepEqual(api.SOCRATIC_API_KEY_SECRET, { Ref: secrets[0] });
  // Cursors are signed with their own secret, not one derived from the API key.
  assert.deepEqual(api.SOCRATIC_CURSOR_SECRET, { Ref: cursor[0] });
  const reads = policiesOf('Api').filter((s: any) => ([] as string[]).concat(s.Action).includes('secretsmanager:GetSecretValue'));
  assert.deepEqual(reads.map((s: any) => s.Resource), [[{ Ref: secrets[0] }, { Ref: cursor[0] }]]);
  for (const name of ['Planner', 'Dialogue', 'Judge', 'Curator']) {
    assert.ok(!actionsOf(name).some((a) => a.startsWith('secretsmanager:')), `${name} cannot read the key`);
  }
});

test('an operations dashboard, log retention on every function, and X-Ray only when asked', () => {
  const dashboards = Object.values(resourcesOf('AWS::CloudWatch::Dashboard')) as any[];
  assert.equal(dashboards.length, 1);
  const body = JSON.stringify(dashboards[0].Properties.DashboardBody);
  for (const title of ['Runs finished, by status', 'Manifests summarised', 'Queue depth', 'Lambda errors', 'Lambda duration', 'Dead-letter queue depth', 'Model tokens', 'Model cost']) {
    assert.ok(body.includes(title), `the dashboard shows ${title}`);
  }
  for (const metric of ['RunsFinished', 'InputTokens', 'CostUsd', 'ApproximateNumberOfMessagesVisible', 'Errors', 'Duration']) {
    assert.ok(body.includes(metric), `the dashboard graphs ${metric}`);
  }
  const groups = resourcesOf('AWS::Logs::LogGroup');
  const functions = resourcesOf('AWS::Lambda::Function');
  for (const [id, f] of Object.entries(functions) as [string, any][]) {
    const group = f.Properties.LoggingConfig?.LogGroup?.Ref;
    assert.ok(group && groups[group], `${id} logs to a group of its own`);
    assert.equal(groups[group].Properties.RetentionInDays, 30, `${id}: a month of logs`);
    assert.equal(f.Properties.TracingConfig?.Mode ?? 'PassThrough', 'PassThrough', `${id}: no X-Ray unless asked`);
  }

  const traced = synth('Traced', { tracing: true });
  for (const f of Object.values(traced.findResources('AWS::Lambda::Function')) as any[]) {
    assert.equal(f.Properties.TracingConfig.Mode, 'Active');
  }
  traced.hasResourceProperties('AWS::ApiGateway::Stage', { TracingEnabled: true });
});

test('a scheduled benchmark only when asked, sending the stored request with the firing time in its label', () => {
  const scheduled = (t: Template) =>
    Object.values(t.findResources('AWS::Events::Rule')).filter((r: any) => r.Properties.ScheduleExpression) as any[];
  assert.equal(scheduled(template).length, 0);

  const request = example('manifest.example.json');
  const t = synth('Scheduled', { schedule: { expression: 'cron(0 6 ? * MON *)', request } });
  const [rule] = scheduled(t);
  assert.equal(rule.Properties.ScheduleExpression, 'cron(0 6 ? * MON *)');
  const target = rule.Properties.Targets[0];
  const planner = Object.keys(t.findResources('AWS::Lambda::Function')).find((id) => id.startsWith('Planner'));
  assert.deepEqual(target.Arn, { 'Fn::GetAtt': [planner, 'Arn'] });
  const input: string = target.InputTransformer.InputTemplate;
  assert.deepEqual(target.InputTransformer.InputPathsMap, { time: '$.time' });
  const sent = JSON.parse(input.replace('<time>', '2026-11-30T06:00:00Z'));
  assert.equal(sent.label, `${request.label} (2026-11-30T06:00:00Z)`);
  assert.deepEqual(sent.tutors, request.tutors);
  assert.deepEqual(sent.scenarios, request.scenarios);
});

test('an alarm on every dead-letter queue', () => {
  const alarms = Object.values(resourcesOf('AWS::CloudWatch::Alarm')) as any[];
  const queues = Object.keys(resourcesOf('AWS::SQS::Queue')).filter((id) => id.includes('Dlq'));
  assert.deepEqual(queues.length, 4);
  assert.equal(alarms.length, queues.length);
  for (const alarm of alarms) {
    assert.equal(alarm.Properties.MetricName, 'ApproximateNumberOfMessagesVisible');
    assert.equal(alarm.Properties.Threshold, 1);
  }
  const alarmed = alarms.map((a) => a.Properties.Dimensions[0].Value['Fn::GetAtt'][0]).sort();
  assert.deepEqual(alarmed, [...queues].sort());
});

test('the functions invoked asynchronously (planner, curator) have a dead-letter queue', () => {
  const functions = resourcesOf('AWS::Lambda::Function');
  for (const name of ['Planner', 'Curator']) {
    const target = functions[functionLogicalId(name)].Properties.DeadLetterConfig?.TargetArn;
    assert.ok(target, `${name} has a dead-letter queue`);
    assert.ok(target['Fn::GetAtt'][0].startsWith(`${name}Dlq`), `${name}: ${JSON.stringify(target)}`);
  }
});

/** The checkov skips on every resource of `t`: logical id, check id, reason. */
function skipsOf(t: Template): { resource: string; id: string; comment: string }[] {
  return Object.entries(t.toJSON().Resources as Record<string, any>).flatMap(([resource, r]) =>
    ((r.Metadata?.checkov?.skip ?? []) as { id: string; comment: string }[]).map((s) => ({ resource, ...s })),
  );
}

test('every checkov skip has its reason; skipCheck keeps earlier skips and other metadata, and refuses an empty reason', () => {
  const skips = skipsOf(template);
  assert.ok(skips.length > 0);
  for (const skip of skips) {
    assert.match(skip.id, /^CKV2?_AWS_[0-9]+$/, JSON.stringify(skip));
    assert.ok(skip.comment.trim().length >= 20, `${skip.resource} skips ${skip.id} with the reason '${skip.comment}'`);
  }
  const api = template.toJSON().Resources[functionLogicalId('Api')];
  assert.deepEqual(api.Metadata.checkov.skip.map((s: any) => s.id).sort(), ['CKV_AWS_115', 'CKV_AWS_116', 'CKV_AWS_117', 'CKV_AWS_173']);

  const stack = new cdk.Stack(new cdk.App(), 'Skips');
  const resource = new cdk.CfnResource(stack, 'R', { type: 'AWS::SQS::Queue' });
  resource.addMetadata('owner', 'benchmarks');
  skipCheck(resource, 'CKV_AWS_1', 'the first reason');
  skipCheck(resource, 'CKV_AWS_2', 'the second reason');
  assert.equal(resource.getMetadata('owner'), 'benchmarks');
  assert.deepEqual(resource.getMetadata('checkov'), {
    skip: [
      { id: 'CKV_AWS_1', comment: 'the first reason' },
      { id: 'CKV_AWS_2', comment: 'the second reason' },
    ],
  });
  assert.throws(() => skipCheck(resource, 'CKV_AWS_3', '  '), /needs a reason/);
});

test('queues are KMS-encrypted, but for the one EventBridge delivers to, which keeps SSE-SQS', () => {
  for (const [id, q] of Object.entries(resourcesOf('AWS::SQS::Queue')) as [string, any][]) {
    if (id.startsWith('CuratorDlq')) {
      assert.equal(q.Properties.SqsManagedSseEnabled, true, id);
      assert.equal(q.Properties.KmsMasterKeyId, undefined, id);
    } else {
      assert.equal(q.Properties.KmsMasterKeyId, 'alias/aws/sqs', id);
    }
  }
});

test('access logs: the bucket to a log bucket, the API stage to a log group, the account role retained', () => {
  const buckets = resourcesOf('AWS::S3::Bucket');
  const logs = Object.keys(buckets).find((id) => id.startsWith('AccessLogs'));
  const data = Object.entries(buckets).find(([id]) => id.startsWith('Bucket'))?.[1] as any;
  assert.ok(logs && data);
  assert.deepEqual(data.Properties.LoggingConfiguration.DestinationBucketName, { Ref: logs });
  const stage: any = Object.values(resourcesOf('AWS::ApiGateway::Stage'))[0];
  const group = stage.Properties.AccessLogSetting.DestinationArn['Fn::GetAtt'][0];
  assert.ok(resourcesOf('AWS::Logs::LogGroup')[group], 'the stage logs to a group of the stack');
  assert.ok(stage.Properties.AccessLogSetting.Format.includes('requestId'));
  // Deleting the stack must not take the region's API Gateway logging role with it.
  const account = Object.values(template.toJSON().Resources as Record<string, any>).filter((r) => r.Type === 'AWS::ApiGateway::Account');
  assert.equal(account.length, 1);
  assert.equal(account[0].DeletionPolicy, 'Retain');
  const role = template.toJSON().Resources[account[0].Properties.CloudWatchRoleArn['Fn::GetAtt'][0]];
  assert.equal(role.DeletionPolicy, 'Retain');

  const existing = synth('ExistingRole', { apiGatewayCloudWatchRole: false });
  existing.resourceCountIs('AWS::ApiGateway::Account', 0);
  existing.hasResourceProperties('AWS::ApiGateway::Stage', { AccessLogSetting: Match.anyValue() });
});

test('the hardening options: one customer-managed key everywhere, and reserved concurrency sized from the settings', () => {
  const hardened = synth('Hardened', { customerManagedKey: true, reservedConcurrency: true, tracing: true });
  const resources = hardened.toJSON().Resources as Record<string, any>;
  const keys = Object.keys(hardened.findResources('AWS::KMS::Key'));
  assert.equal(keys.length, 1);
  const key = { 'Fn::GetAtt': [keys[0], 'Arn'] };
  assert.equal(resources[keys[0]].Properties.EnableKeyRotation, true);
  const of = (type: string) => Object.entries(hardened.findResources(type)) as [string, any][];
  for (const [id, t] of of('AWS::DynamoDB::Table')) {
    assert.deepEqual(t.Properties.SSESpecification, { KMSMasterKeyId: key, SSEEnabled: true, SSEType: 'KMS' }, id);
  }
  for (const [id, s] of of('AWS::SecretsManager::Secret')) {
    assert.deepEqual(s.Properties.KmsKeyId, key, id);
  }
  for (const [id, q] of of('AWS::SQS::Queue')) {
    assert.deepEqual(q.Properties.KmsMasterKeyId, key, id);
  }
  for (const [id, g] of of('AWS::Logs::LogGroup')) {
    assert.deepEqual(g.Properties.KmsKeyId, key, id);
  }
  const functions = of('AWS::Lambda::Function');
  for (const [id, f] of functions) {
    assert.deepEqual(f.Properties.KmsKeyArn, key, id);
    const name = id.replace(/[A-F0-9]{8}$/, '').toLowerCase();
    assert.equal(f.Properties.ReservedConcurrentExecutions, RESERVED_CONCURRENCY[name], id);
  }
  // The key's policy admits the services that write under it: CloudWatch Logs and EventBridge.
  const policy = JSON.stringify(resources[keys[0]].Properties.KeyPolicy);
  assert.ok(policy.includes('logs.') && policy.includes('events.amazonaws.com'), policy);
  // Reserved concurrency never throttles what an event source may drive.
  for (const mapping of Object.values(hardened.findResources('AWS::Lambda::EventSourceMapping')) as any[]) {
    const [, f] = functions.find(([id]) => id === mapping.Properties.FunctionName.Ref)!;
    assert.ok(f.Properties.ReservedConcurrentExecutions >= mapping.Properties.ScalingConfig.MaximumConcurrency);
  }
  // Only the checks no option fixes stay skipped.
  const skipped = new Set(skipsOf(hardened).map((s) => s.id));
  assert.deepEqual([...skipped].sort(), ['CKV_AWS_116', 'CKV_AWS_117', 'CKV_AWS_120', 'CKV_AWS_18']);
});
