#!/usr/bin/env node
// The CDK app: one stack, configured from cdk.json context (or `-c key=value`).
import * as cdk from 'aws-cdk-lib';
import { SocraticStack } from '../lib/socratic-stack';

const app = new cdk.App();
const list = (key: string): string[] => {
  const value = app.node.tryGetContext(key);
  return Array.isArray(value) ? value : String(value ?? '').split(',').filter((s) => s.length > 0);
};
new SocraticStack(app, 'SocraticBenchmarks', {
  lambdaDir: app.node.tryGetContext('lambdaDir') ?? '../target/lambda',
  tutorModels: list('tutorModels'),
  judgeModels: list('judgeModels'),
  tracing: String(app.node.tryGetContext('tracing') ?? 'false') === 'true',
});
