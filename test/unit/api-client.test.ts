import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { clientFiles, DOCUMENT_FILE, TYPES_FILE } from '../../api-client/generate.js';

describe('the generated API client', () => {
  it('is generated from what the app serves at /openapi.json now (else run `npm run generate:client`)', async () => {
    const { document, types } = await clientFiles();
    expect(await readFile(DOCUMENT_FILE, 'utf8'), 'api-client/openapi.json is stale').toBe(document);
    expect(await readFile(TYPES_FILE, 'utf8'), 'api-client/schema.d.ts is stale').toBe(types);
  });
});
