import type { TestProject } from 'vitest/node';
import { startStack, type StackInfo } from '../support/stack.js';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

/** One shared stack (Temporal, worker, API) for every integration test file. */
export default async function setup(project: TestProject) {
  const stack = await startStack();
  project.provide('stack', stack.info);
  // Stops it and leaves no container of this test installation behind, whatever the tests did.
  return () => stack.stop();
}
