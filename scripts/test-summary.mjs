// Prints the closing line of `npm test` from vitest's JSON reports (the paths given, one per
// vitest run), one line that any CI can read: `tests: N passed, N failed[, N skipped]`. A test that
// did not run because its file failed (a beforeAll threw) counts as failed, not skipped, and so
// does a file that did not load; each test really skipped (`.skip`, `.todo`) is named, and each
// failed one is named with the first lines of its error, just above the closing line (the part of a
// long log that a CI shows). Exits non-zero when anything failed or a report is missing.
import { readFileSync } from 'node:fs';
import path from 'node:path';

const reports = [];
let missing = 0;
for (const file of process.argv.slice(2)) {
  try {
    reports.push(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    console.log(`tests: no report in ${file} (its vitest run stopped before reporting, see above): failed`);
    missing += 1;
  }
}
let passed = 0;
let failed = 0;
const skipped = [];
const failures = [];
// The first lines of an error, without colour codes.
const excerpt = (message = '') =>
  message
    .replace(/\u001b\[[0-9;]*m/g, '')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(0, 4)
    .map((line) => `    ${line.slice(0, 300)}`)
    .join('\n');
for (const result of reports.flatMap((report) => report.testResults)) {
  const name = path.relative(process.cwd(), result.name);
  const fileFailed = result.status === 'failed';
  if (fileFailed && result.assertionResults.length === 0) {
    failed += 1; // did not load
    failures.push(`failed: ${name} (the file did not load)\n${excerpt(result.message)}`);
  }
  for (const test of result.assertionResults) {
    if (test.status === 'passed') passed += 1;
    else if (test.status === 'failed' || fileFailed) {
      failed += 1;
      const why = test.failureMessages?.[0] ?? result.message;
      failures.push(`failed: ${name} > ${test.fullName}\n${excerpt(why)}`);
    } else skipped.push(`${name} > ${test.fullName}`);
  }
}
for (const test of skipped) console.log(`skipped: ${test}`);
for (const failure of failures) console.log(failure);
console.log(`tests: ${passed} passed, ${failed} failed` + (skipped.length ? `, ${skipped.length} skipped` : ''));
const unsuccessful = reports.some((report) => report.success === false);
process.exit(failed > 0 || missing > 0 || unsuccessful || reports.length === 0 ? 1 : 0);
