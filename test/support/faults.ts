import type Docker from 'dockerode';
import { api, installationJobContainers, type ApiTarget } from './api-client.js';

/** A job script printing `line 1` … `line <count>`, one every `pauseSeconds`. */
export function numberedScript(count: number, pauseSeconds: number): string {
  return `for i in $(seq 1 ${count}); do echo "line $i"; sleep ${pauseSeconds}; done`;
}

/** What a fault did to a job's numbered lines (see `numberedScript`). */
export interface LineReport {
  /** Numbers 1…count that never arrived. */
  lost: number;
  /** Lines that arrived more than once (each extra copy counts). */
  duplicated: number;
  /** Whether they arrived in order (ignoring duplicates). */
  inOrder: boolean;
  /** Lines that are no numbered line at all. */
  foreign: number;
}

/** Compares received lines with `line 1` … `line <count>`. */
export function lineReport(lines: readonly string[], count: number): LineReport {
  const seen = new Map<number, number>();
  let foreign = 0;
  let last = 0;
  let inOrder = true;
  for (const line of lines) {
    const match = /^line (\d+)$/.exec(line);
    const n = match ? Number(match[1]) : NaN;
    if (!(n >= 1 && n <= count)) {
      foreign += 1;
      continue;
    }
    seen.set(n, (seen.get(n) ?? 0) + 1);
    if (n < last) inOrder = false;
    last = Math.max(last, n);
  }
  let lost = 0;
  let duplicated = 0;
  for (let n = 1; n <= count; n += 1) {
    const times = seen.get(n) ?? 0;
    if (times === 0) lost += 1;
    else duplicated += times - 1;
  }
  return { lost, duplicated, inOrder, foreign };
}

/** The job's stored stdout lines, as the API serves them. */
export async function stdoutLines(target: ApiTarget, jobId: string): Promise<string[]> {
  const res = await api(`/jobs/${jobId}/logs?stream=stdout`, {}, target);
  if (res.status !== 200) throw new Error(`GET /jobs/${jobId}/logs answered ${res.status}: ${await res.text()}`);
  const text = await res.text();
  return text === '' ? [] : text.replace(/\n$/, '').split('\n');
}

/** How many job containers of the installation an engine still holds, in any state (idle pool ones are none). */
export async function containersLeft(docker: Docker, instanceId: string): Promise<number> {
  return (await installationJobContainers(instanceId, docker)).length;
}
