import type { TestProject } from 'vitest/node';
import { startStack, type StackInfo } from '../support/stack.js';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

/** One shared stack (Temporal, worker, API) for every integration test file. */
export default async function setup(project: TestProject) {
  // With the warm pool on (HODEI_WARM_POOL=2, the default, said here so this tier keeps it: every
  // file also runs jobs in claimed containers; docs/capacity.md#warm-containers).
  const stack = await startStack({ env: { HODEI_WARM_POOL: '2' } });
  project.provide('stack', stack.info);
  // Stops it and leaves no container of this test installation behind, whatever the tests did.
  return () => stack.stop();
}
