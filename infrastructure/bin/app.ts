#!/usr/bin/env node
// The CDK app: one stack, configured from cdk.json context (or `-c key=value`).
import * as fs from 'fs';
import * as cdk from 'aws-cdk-lib';
import { SocraticStack } from '../lib/socratic-stack';

const app = new cdk.App();
const list = (key: string): string[] => {
  const value = app.node.tryGetContext(key);
  return Array.isArray(value) ? value : String(value ?? '').split(',').filter((s) => s.length > 0);
};
/** A true/false context value (`-c name=true`). */
const flag = (key: string, otherwise: boolean): boolean => String(app.node.tryGetContext(key) ?? otherwise) === 'true';
new SocraticStack(app, 'SocraticBenchmarks', {
  lambdaDir: app.node.tryGetContext('lambdaDir') ?? '../target/lambda',
  tutorModels: list('tutorModels'),
  judgeModels: list('judgeModels'),
  tracing: flag('tracing', false),
  customerManagedKey: flag('customerManagedKey', false),
  reservedConcurrency: flag('reservedConcurrency', false),
  apiGatewayCloudWatchRole: flag('apiGatewayCloudWatchRole', true),
  // -c schedule='cron(0 6 ? * MON *)' [-c scheduleRequest=path/to/manifest.json]
  schedule: app.node.tryGetContext('schedule')
    ? {
        expression: String(app.node.tryGetContext('schedule')),
        request: JSON.parse(
          fs.readFileSync(app.node.tryGetContext('scheduleRequest') ?? '../examples/aws-admin/manifest.example.json', 'utf8'),
        ),
      }
    : undefined,
});
