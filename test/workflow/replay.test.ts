import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root.js';
import {
  bundleWorkflowCode,
  DefaultLogger,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixtureDataConverter } from '../support/fixture-codec.js';
import { ROOT } from '../support/stack.js';

// Histories recorded from earlier versions of the workflow code (scripts/record-histories.ts),
// one directory per version of workflows/.
const FIXTURES = path.join(ROOT, 'test/fixtures/histories');
const fixtures = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(path.join(FIXTURES, d.name))
      .filter((f) => f.endsWith('.json'))
      .map((f) => ({ name: `${d.name}/${f}`, file: path.join(FIXTURES, d.name, f) })),
  );

// The proto3 JSON of `temporal workflow show --output json`, read with the protobufjs copy that
// @temporalio/proto's types belong to. (`historyFromJSON` of @temporalio/common 1.24 mixes two
// copies of protobufjs in this install and throws "type must be a Type".)
const { fromJson } = createRequire(createRequire(import.meta.url).resolve('@temporalio/proto'))(
  'protobufjs/ext/protojson',
) as {
  fromJson: (
    type: unknown,
    json: unknown,
    options: { ignoreUnknownFields: boolean },
  ) => proto.temporal.api.history.v1.History | null;
};
const HISTORY_TYPE = (
  patchProtobufRoot(proto as unknown as Record<string, unknown>) as unknown as { lookupType(name: string): unknown }
).lookupType('temporal.api.history.v1.History');
const load = (file: string) =>
  fromJson(HISTORY_TYPE, JSON.parse(readFileSync(file, 'utf8')), { ignoreUnknownFields: true })!;

let current: WorkflowBundleWithSourceMap;
let broken: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  // The deliberate nondeterminism below makes the SDK core warn: keep the output to errors.
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
  });
  const logger = new DefaultLogger('ERROR');
  [current, broken] = await Promise.all([
    bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'workflows/index.ts'), logger }),
    bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'test/fixtures/replay-broken-workflow.ts'), logger }),
  ]);
});

describe('replay: jobs in flight survive a deploy of new workflow code', () => {
  it('has recorded histories to replay', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(5);
  });

  // Histories recorded since payloads are encrypted need the codec to replay; older ones pass through it.
  it.each(fixtures)('the current workflow code replays $name', async ({ file }) => {
    const history = load(file);
    // Under the workflow id it ran with: a pipeline's step ids are derived from it.
    const recordedId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowId;
    await Worker.runReplayHistory(
      { workflowBundle: current, dataConverter: fixtureDataConverter() },
      history,
      recordedId || path.basename(file, '.json'),
    );
  });

  it('needs the codec for histories recorded with encrypted payloads', async () => {
    const encrypted = fixtures.find((f) => f.name.endsWith('/succeeded-with-secret.json'));
    expect(encrypted, 'a recorded history with a secret').toBeDefined();
    expect(readFileSync(encrypted!.file, 'utf8')).not.toContain('fixture-secret');
    await expect(
      Worker.runReplayHistory({ workflowBundle: current }, load(encrypted!.file), 'no-codec'),
    ).rejects.toThrow(/Unknown encoding: binary\/encrypted/);
  });

  it('fails on a workflow change that breaks determinism', async () => {
    const { file } = fixtures.find((f) => f.name.endsWith('/succeeded.json'))!;
    await expect(
      Worker.runReplayHistory({ workflowBundle: broken, dataConverter: fixtureDataConverter() }, load(file), 'broken'),
    ).rejects.toThrow(/[Nn]ondetermin/);
  });
});

describe('the workflow bundle', () => {
  // Each workflow evaluates the bundle's modules again in its sandbox (only the SDK's own are
  // shared): zod's schemas cost ~12 ms of CPU per job there, so workflows import none.
  it('holds no validation code: workflows import nothing that loads zod or picomatch', () => {
    const packages = new Set(
      [...current.code.matchAll(/"\.\/node_modules\/((?:@[^/"]+\/)?[^/"]+)\//g)].map((m) => m[1]),
    );
    expect(packages.size).toBeGreaterThan(0);
    expect([...packages].filter((p) => p === 'zod' || p === 'picomatch')).toEqual([]);
  });
});
