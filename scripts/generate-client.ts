/**
 * Regenerates the typed API client's files (api-client/openapi.json and api-client/schema.d.ts)
 * from the app's routes, in-process. Run after changing a route or a schema that crosses HTTP:
 *
 *   npm run generate:client
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { clientFiles, DOCUMENT_FILE, TYPES_FILE } from '../api-client/generate.js';

const { document, types } = await clientFiles();
await writeFile(DOCUMENT_FILE, document);
await writeFile(TYPES_FILE, types);
for (const file of [DOCUMENT_FILE, TYPES_FILE]) console.log(`wrote ${path.relative(process.cwd(), file)}`);
