// A deliberately changed `runJob`: it waits before doing anything else, so its first command is
// a timer where recorded histories have an activity. Replaying them against it must fail: the
// replay test's proof that it catches a change that breaks determinism.
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';

const { provisionContainer } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute' });

export async function runJob(input: Parameters<Activities['provisionContainer']>[0]): Promise<void> {
  await sleep('1 second');
  await provisionContainer(input);
}
