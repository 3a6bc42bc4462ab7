import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { S3ArtifactStore } from '../../artifact-store/s3-artifact-store.js';
import { describeArtifactStoreContract } from '../support/artifact-store-contract.js';
import { startVersitygw, type S3Server } from '../support/versitygw.js';

// The same contract on real S3: versitygw (scripts/versitygw.sh), a fresh bucket and prefix per test.
let server: S3Server;
beforeAll(async () => {
  server = await startVersitygw();
});
afterAll(async () => {
  await server?.stop();
});

describeArtifactStoreContract('S3ArtifactStore (versitygw)', async () => {
  const bucket = `hodei-${randomUUID().slice(0, 8)}`;
  await server.createBucket(bucket);
  const open = async () =>
    new S3ArtifactStore({
      bucket,
      prefix: 'some/prefix',
      client: {
        endpoint: server.endpoint,
        region: server.region,
        forcePathStyle: true,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      },
    });
  return { open, destroy: async () => undefined };
});
