import type { TestProject } from 'vitest/node';
import { startStack, type StackInfo } from '../support/stack.js';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

/** One shared stack (Temporal, worker, API) for every integration test file. */
export default async function setup(project: TestProject) {
  // With the warm pool on, so every file of this tier also runs jobs in claimed containers
  // (HODEI_WARM_POOL is off by default: docs/capacity.md#warm-containers).
  const stack = await startStack({ env: { HODEI_WARM_POOL: '2' } });
  project.provide('stack', stack.info);
  // Stops it and leaves no container of this test installation behind, whatever the tests did.
  return () => stack.stop();
}
