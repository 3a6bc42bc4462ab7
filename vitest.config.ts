import { defineConfig } from 'vitest/config';

// One project per tier, by what its tests need (`npx vitest run --project <tier>`).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          // Nothing outside the process: no Temporal binary, no Docker, no browser. `npm run test:unit`
          // runs it with --no-isolate: these files mock nothing and share no state, so each worker
          // loads the modules once for all its files (half the CPU of isolated files).
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          // Workflow code: on the real Temporal dev server with mocked activities, and replays of recorded histories.
          name: 'workflow',
          include: ['test/workflow/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          // The deployment files (docker-compose.yml, Dockerfile.app), checked with Debian's docker-compose.
          name: 'deployment',
          include: ['test/deployment/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // One shared stack (Temporal dev server, worker, API) for every integration file.
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          // Files that start what they need themselves (a stack, an engine, a server of their own)
          // and kill or restart parts of it: they never touch the shared stack, so they run beside
          // the integration tier (scripts/test.sh runs the two lanes at once).
          name: 'standalone',
          include: ['test/standalone/**/*.test.ts'],
          // Their waits include restarts of a worker or an engine (up to 180 s each on a loaded
          // machine): the limit only catches a hang.
          testTimeout: 300_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'postgres',
          include: ['test/postgres/**/*.test.ts'],
          // A PostgreSQL server of the run's own; a test that needs a whole stack starts its own.
          globalSetup: ['test/postgres/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          // `npm run cluster`'s topology (real Temporal server on PostgreSQL, two hosts in network
          // namespaces, two API replicas), started once per run; its faults change shared state, so
          // its tests run one after the other.
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['test/cluster/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
