/** The `hodei` command's entry (cli/hodei.mjs runs it): parses the arguments and runs the CLI. */
import { ApiError } from './client.js';
import { buildProgram } from './program.js';

// Built outside the try, as before the split: a bad setting (HODEI_URL, …) ends it with zod's report.
const program = buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`hodei: ${err instanceof ApiError ? err.message : ((err as Error).stack ?? String(err))}\n`);
  process.exitCode = 2;
}
