import {
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  defineSignal,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { ConcurrencyActivities } from '../activities/concurrency.js';
import {
  concurrencyWorkflowId,
  PERMIT_GRANTED_SIGNAL,
  RELEASE_PERMIT_SIGNAL,
  REQUEST_PERMIT_SIGNAL,
  type Concurrency,
  type ConcurrencyKeyMemo,
  type ConcurrencyKeyState,
  type PermitGrant,
  type PermitHolder,
  type PermitRelease,
  type PermitRequest,
} from '../domain/concurrency.js';
import { controlTaskQueue } from '../domain/task-queues.js';

export const requestPermitSignal = defineSignal<[PermitRequest]>(REQUEST_PERMIT_SIGNAL);
export const releasePermitSignal = defineSignal<[PermitRelease]>(RELEASE_PERMIT_SIGNAL);
export const permitGrantedSignal = defineSignal<[PermitGrant]>(PERMIT_GRANTED_SIGNAL);

const DEFAULT_CHECK_INTERVAL_SECONDS = 30;
const DEFAULT_IDLE_SECONDS = 300;
const DEFAULT_MAX_HISTORY_EVENTS = 2000;
/** Waiting job ids shown in the memo: enough to read the head of the line. */
const MEMO_WAITERS = 20;

/** Waiters are served by submission time (the job workflow's start), then job id. */
function insertInOrder(waiters: PermitRequest[], request: PermitRequest): void {
  const later = waiters.findIndex(
    (w) => w.submittedAt > request.submittedAt || (w.submittedAt === request.submittedAt && w.jobId > request.jobId),
  );
  if (later === -1) waiters.push(request);
  else waiters.splice(later, 0, request);
}

/**
 * The semaphore of one concurrency key (workflow id `hodei-concurrency-<key>`, started by the
 * first request's signal-with-start): grants at most `limit` permits at once, to waiters in
 * submission order; takes a permit back on release, or when a periodic check finds its holder's
 * workflow closed (terminated, say, so it never released). Continues as new, carrying holders and
 * waiters, before its history grows long; ends after staying idle a while.
 */
export async function concurrencyKey(state: ConcurrencyKeyState): Promise<void> {
  const { key } = state;
  const checkIntervalMs = (state.checkIntervalSeconds ?? DEFAULT_CHECK_INTERVAL_SECONDS) * 1000;
  const idleMs = (state.idleSeconds ?? DEFAULT_IDLE_SECONDS) * 1000;
  const maxHistoryEvents = state.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS;
  let limit = state.limit;
  const holders: PermitHolder[] = [...state.holders];
  const waiters: PermitRequest[] = [...state.waiters];
  // A holder whose grant signal may not have reached it (a repeated request): granted again.
  const regrant = new Set<string>();
  let changed = true;

  setHandler(requestPermitSignal, (request) => {
    changed = true;
    // The latest request's limit applies to the key.
    limit = request.limit;
    if (holders.some((h) => h.jobId === request.jobId)) {
      regrant.add(request.jobId);
      return;
    }
    if (waiters.some((w) => w.jobId === request.jobId)) return;
    insertInOrder(waiters, request);
  });
  setHandler(releasePermitSignal, ({ jobId }) => {
    changed = true;
    drop(jobId);
  });

  function drop(jobId: string): void {
    const h = holders.findIndex((x) => x.jobId === jobId);
    if (h !== -1) holders.splice(h, 1);
    const w = waiters.findIndex((x) => x.jobId === jobId);
    if (w !== -1) waiters.splice(w, 1);
  }

  const { concurrencyHoldersGone } = proxyActivities<ConcurrencyActivities>({
    taskQueue: controlTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 3 },
  });

  /** Signals the grant; a job whose workflow is gone loses the permit at once. */
  async function grant(holder: PermitHolder): Promise<void> {
    try {
      await getExternalWorkflowHandle(holder.jobId, holder.runId).signal(permitGrantedSignal, { key });
    } catch (err) {
      log.info('permit holder gone before its grant', { key, jobId: holder.jobId, error: String(err) });
      drop(holder.jobId);
      changed = true;
    }
  }

  let lastMemo = '';
  function showState(): void {
    const memo: ConcurrencyKeyMemo = {
      key,
      limit,
      running: holders.length,
      holders: holders.map((h) => h.jobId),
      waiting: waiters.slice(0, MEMO_WAITERS).map((w) => w.jobId),
      waitingCount: waiters.length,
    };
    const json = JSON.stringify(memo);
    if (json === lastMemo) return;
    lastMemo = json;
    upsertMemo(memo as unknown as Record<string, unknown>);
  }

  for (;;) {
    while (changed) {
      changed = false;
      for (const jobId of [...regrant]) {
        regrant.delete(jobId);
        const holder = holders.find((h) => h.jobId === jobId);
        if (holder) await grant(holder);
      }
      while (holders.length < limit && waiters.length > 0) {
        const next = waiters.shift()!;
        const holder: PermitHolder = { jobId: next.jobId, runId: next.runId, submittedAt: next.submittedAt };
        holders.push(holder);
        await grant(holder);
      }
      showState();
    }

    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= maxHistoryEvents) {
      // Every signal received so far is in `holders`/`waiters`; one arriving during the
      // continue-as-new fails that workflow task, and the retried task sees it first.
      await condition(allHandlersFinished);
      if (!changed) {
        await continueAsNew<typeof concurrencyKey>({ ...state, limit, holders, waiters });
      }
      continue;
    }

    if (holders.length === 0 && waiters.length === 0) {
      if (!(await condition(() => changed, idleMs))) {
        await condition(allHandlersFinished);
        if (!changed) return;
      }
      continue;
    }

    if (!(await condition(() => changed, checkIntervalMs))) {
      // No news for a while: a holder that ended without releasing (terminated) gives its permit back.
      const gone = await CancellationScope.nonCancellable(() =>
        concurrencyHoldersGone(holders.map((h) => ({ jobId: h.jobId, runId: h.runId }))).catch((err: unknown) => {
          log.warn('could not check permit holders', { key, error: String(err) });
          return [] as string[];
        }),
      );
      for (const jobId of gone) {
        log.warn('permit holder ended without releasing; permit taken back', { key, jobId });
        drop(jobId);
        changed = true;
      }
    }
  }
}

/**
 * Runs `body` holding a permit of the job's concurrency key: asks the key's semaphore (through a
 * light activity on the control queue, so no container slot is taken while waiting), waits for the
 * grant, and releases the permit however the job ends, also when cancelled while waiting.
 * `onWait` tells the job's state while it waits.
 */
export async function withConcurrencyPermit<T>(
  concurrency: Concurrency,
  onWait: () => void,
  onGranted: () => void,
  body: () => Promise<T>,
): Promise<T> {
  const info = workflowInfo();
  const semaphoreId = concurrencyWorkflowId(concurrency.key);
  let granted = false;
  setHandler(permitGrantedSignal, ({ key }) => {
    if (key === concurrency.key) granted = true;
  });
  const { requestConcurrencyPermit } = proxyActivities<ConcurrencyActivities>({
    taskQueue: controlTaskQueue(info.taskQueue),
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
  });
  try {
    onWait();
    // Not cancellable: a request in flight must be known to have landed before the release below.
    await CancellationScope.nonCancellable(() =>
      requestConcurrencyPermit({
        key: concurrency.key,
        taskQueue: info.taskQueue,
        request: {
          jobId: info.workflowId,
          runId: info.runId,
          limit: concurrency.limit,
          submittedAt: info.startTime.toISOString(),
        },
      }),
    );
    await condition(() => granted);
    onGranted();
    return await body();
  } finally {
    await CancellationScope.nonCancellable(async () => {
      try {
        await getExternalWorkflowHandle(semaphoreId).signal(releasePermitSignal, { jobId: info.workflowId });
      } catch (err) {
        // The semaphore is gone (terminated by hand): it holds no permit of ours any more.
        log.warn('could not release concurrency permit', { key: concurrency.key, error: String(err) });
      }
    });
  }
}
