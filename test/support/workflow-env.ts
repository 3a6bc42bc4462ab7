import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { startDevServer, type DevServer } from './dev-server.js';
import { ROOT } from './stack.js';

export interface WorkflowTestEnv {
  env: TestWorkflowEnvironment;
  /** workflows/index.ts, bundled once for the whole file. */
  bundle: WorkflowBundleWithSourceMap;
  stop(): Promise<void>;
}

/**
 * The workflow tier's set-up: a dev server from the one launcher (its flags and search
 * attributes, as for `npm start`), a test environment on it, and the workflow bundle.
 */
export async function startWorkflowTestEnv(): Promise<WorkflowTestEnv> {
  const server: DevServer = await startDevServer();
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address: server.address });
  const noop = () => undefined;
  const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
  const bundle = await bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'workflows/index.ts'), logger });
  return {
    env,
    bundle,
    stop: async () => {
      await env.teardown();
      await server.stop();
    },
  };
}
