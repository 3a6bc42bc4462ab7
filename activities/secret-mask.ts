import { LABEL_SECRET_NAMES } from '../domain/container-labels.js';

/** What a secret value becomes in the stored output. */
export const MASK = '***';

/**
 * Values shorter than this are delivered but not masked: masking `1`, `on` or `yes` would blank
 * out ordinary output everywhere while hiding next to nothing (such a value is guessed anyway).
 */
export const MIN_MASKED_LENGTH = 4;

/**
 * A function that replaces every occurrence of the secrets in a line of output with `***`. A
 * multi-line secret (a PEM key) is masked line by line, since output is stored a line at a time.
 * Longer values go first, so a secret that contains another is masked whole. Identity when there
 * is nothing to mask, so jobs without secrets pay nothing.
 */
export function secretMasker(values: Iterable<string>): (line: string) => string {
  const needles = new Set<string>();
  for (const value of values) {
    for (const piece of value.split('\n')) {
      const trimmed = piece.replace(/\r$/, '');
      if (trimmed.length >= MIN_MASKED_LENGTH) needles.add(trimmed);
    }
  }
  if (needles.size === 0) return (line) => line;
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  return (line) => {
    let masked = line;
    for (const needle of ordered) if (masked.includes(needle)) masked = masked.split(needle).join(MASK);
    return masked;
  };
}

/**
 * The secret values of a job's container: the provision activity names its secret variables in a
 * label, and the values are in the container's environment. So the run activity (and a retry of
 * it on a restarted worker) masks without the secrets passing through Temporal a second time.
 */
export function containerSecrets(config: { Env?: string[] | null; Labels?: Record<string, string> | null }): string[] {
  const names = new Set((config.Labels?.[LABEL_SECRET_NAMES] ?? '').split(',').filter(Boolean));
  if (names.size === 0) return [];
  const values: string[] = [];
  for (const entry of config.Env ?? []) {
    const at = entry.indexOf('=');
    if (at > 0 && names.has(entry.slice(0, at))) values.push(entry.slice(at + 1));
  }
  return values;
}
