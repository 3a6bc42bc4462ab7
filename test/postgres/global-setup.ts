import type { TestProject } from 'vitest/node';
import { startPostgres } from '../support/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The test run's PostgreSQL server (its `postgres` database, superuser). */
    postgresUrl: string;
  }
}

/** One PostgreSQL server (Debian's package, on loopback) for the PostgreSQL test files. */
export default async function setup(project: TestProject) {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}
