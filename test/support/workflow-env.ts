import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../activities/index.js';
import type { JobInput } from '../../domain/job-spec.js';
import { startDevServer } from './dev-server.js';
import { ROOT } from './stack.js';

/** A job's workflow input as the API would resolve it, for workflow-tier tests with mocked activities. */
export const TEST_JOB_INPUT: JobInput = {
  script: 'echo hi',
  name: 'test',
  image: 'hodei-worker:latest',
  env: {},
  timeoutSeconds: 30,
  cancelGraceSeconds: 0,
  labels: {},
  resources: { memoryMb: 256, cpus: 1, pidsLimit: 64, scratchMb: 64 },
  retries: 0,
  infraRetries: 0,
  hostLossSeconds: 30,
  cleanupDeadlineSeconds: 3,
};

export interface WorkflowTestEnv {
  env: TestWorkflowEnvironment;
  /** The workflows (workflows/index.ts), bundled once for the whole file. */
  bundle: WorkflowBundleWithSourceMap;
  stop(): Promise<void>;
}

/** The dev server from the one launcher (its flags and search attributes, as for `npm start`), and the workflow bundle. */
export async function startWorkflowTestEnv(): Promise<WorkflowTestEnv> {
  const server = await startDevServer();
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address: server.address });
  const noop = () => undefined;
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(ROOT, 'workflows/index.ts'),
    logger: { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop },
  });
  return {
    env,
    bundle,
    async stop() {
      await env.teardown();
      await server.stop();
    },
  };
}

/** The artifact activities of a mocked host, for workflow tests of jobs that declare no artifacts. */
/** The host's stop at a cancel, as a no-op: the mocked runs hear a cancel with their heartbeats. */
export const NO_HOST_STOP: Pick<Activities, 'stopRun'> = {
  async stopRun() {},
};

export const NO_ARTIFACT_ACTIVITIES: Pick<Activities, 'collectArtifacts' | 'stopHeldScript'> = {
  async collectArtifacts() {
    throw new Error('collectArtifacts called for a job without artifacts');
  },
  async stopHeldScript() {
    throw new Error('stopHeldScript called for a job without artifacts');
  },
};
