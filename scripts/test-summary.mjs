// Prints the closing line of `npm test` from vitest's JSON report (the path given), one line
// that any CI can read: `tests: N passed, N failed[, N skipped]`. A test that did not run
// because its file failed (a beforeAll threw) counts as failed, not skipped, and so does a file
// that did not load; each test really skipped (`.skip`, `.todo`) is named. Exits non-zero when
// anything failed or there is no report.
import { readFileSync } from 'node:fs';
import path from 'node:path';

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch {
  console.log(`tests: no report in ${file} (vitest stopped before reporting, see above): failed`);
  process.exit(1);
}
let passed = 0;
let failed = 0;
const skipped = [];
for (const result of report.testResults) {
  const name = path.relative(process.cwd(), result.name);
  const fileFailed = result.status === 'failed';
  if (fileFailed && result.assertionResults.length === 0) failed += 1; // did not load
  for (const test of result.assertionResults) {
    if (test.status === 'passed') passed += 1;
    else if (test.status === 'failed' || fileFailed) failed += 1;
    else skipped.push(`${name} > ${test.fullName}`);
  }
}
for (const test of skipped) console.log(`skipped: ${test}`);
console.log(`tests: ${passed} passed, ${failed} failed` + (skipped.length ? `, ${skipped.length} skipped` : ''));
process.exit(failed > 0 || report.success === false ? 1 : 0);
