import type { TestProject } from 'vitest/node';
import Docker from 'dockerode';
import { LABEL_INSTANCE } from '../../domain/names.js';
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
  return async () => {
    await stack.stop();
    // Leave no container of this test installation behind, whatever the tests did.
    const docker = new Docker();
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${stack.info.instanceId}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  };
}
