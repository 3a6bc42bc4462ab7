/**
 * A job's artifacts over HTTP: the list, one file's bytes (ranges, ETag), and all of them as one
 * tar. Every file is found through the job's manifest, by its exact path: a request's path never
 * names anything in a file system or a bucket, so nothing but that job's artifacts can be served.
 * Bytes are served as downloads (`application/octet-stream`, `attachment`, `nosniff`, a sandbox
 * CSP), never rendered from the API's origin.
 */
import { Readable } from 'node:stream';
import { createRoute, z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import type { Context } from 'hono';
import { pack } from 'tar-stream';
import { safeArtifactPath, type ArtifactEntry } from '../domain/artifacts.js';
import type { ArtifactStore, ByteRange } from '../artifact-store/artifact-store.js';
import { errorBody, errorResponse } from './errors.js';
import { JobIdParams } from './job-view.js';
import { createRouter, findJob } from './router.js';

export interface ArtifactsDeps {
  client: Client;
  artifactStore: ArtifactStore;
}

export const ArtifactSchema = z
  .object({
    path: z.string().describe('relative to the working directory (/work)'),
    size: z.number().int(),
    sha256: z.string(),
    mode: z.number().int().describe('permission bits, e.g. 420 (0644)'),
  })
  .openapi('Artifact');

export const ArtifactListSchema = z
  .object({
    artifacts: z.array(ArtifactSchema),
    truncated: z.boolean().describe('files were left out (over maxBytes, or names that cannot be served)'),
  })
  .openapi('ArtifactList');

const listArtifacts = createRoute({
  method: 'get',
  path: '/{id}/artifacts',
  summary: "The job's artifacts (empty until they are collected)",
  request: { params: JobIdParams },
  responses: {
    200: { content: { 'application/json': { schema: ArtifactListSchema } }, description: 'The artifacts' },
    404: errorResponse('No such job'),
  },
});

const tarArtifacts = createRoute({
  method: 'get',
  path: '/{id}/artifacts.tar',
  summary: "All of the job's artifacts as one tar archive, streamed",
  request: { params: JobIdParams },
  responses: {
    200: {
      content: { 'application/x-tar': { schema: z.string().openapi({ format: 'binary' }) } },
      description: 'A tar',
    },
    404: errorResponse('No such job'),
  },
});

const getArtifact = createRoute({
  method: 'get',
  path: '/{id}/artifacts/{path}',
  summary: 'One artifact\'s bytes (a path with "/" in it too: `/jobs/ID/artifacts/out/report.xml`)',
  description:
    'Streamed, with `Content-Length`, `ETag` (the sha256) and single byte ranges (`Range: bytes=a-b`). ' +
    'Served as a download (`application/octet-stream`, `Content-Disposition: attachment`).',
  request: {
    params: JobIdParams.extend({ path: z.string().describe('the artifact path, each segment URL-encoded') }),
  },
  responses: {
    200: {
      content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
      description: 'The bytes',
    },
    206: {
      content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
      description: 'A range of them',
    },
    304: { description: 'Not modified (If-None-Match)' },
    400: errorResponse('A path that cannot name an artifact (`..`, encoded slashes, control characters)'),
    404: errorResponse('No such job or artifact'),
    416: errorResponse('Range not satisfiable'),
  },
});

/** Headers that make a response a download the browser never renders. */
function downloadHeaders(filename: string): Record<string, string> {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return {
    'Content-Disposition': `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`,
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "sandbox; default-src 'none'",
    'Cache-Control': 'private, no-cache',
  };
}

/** The artifact path of a request (`…/artifacts/<path>`), decoded; undefined when it cannot name one. */
export function requestedArtifactPath(rawPath: string): string | undefined {
  const encoded = /^\/jobs\/[^/]+\/artifacts\/(.*)$/.exec(rawPath)?.[1];
  if (encoded === undefined) return undefined;
  // An encoded slash or backslash would let one segment pose as several.
  if (/%(2f|5c)/i.test(encoded)) return undefined;
  let decoded: string;
  try {
    decoded = encoded
      .split('/')
      .map((segment) => decodeURIComponent(segment))
      .join('/');
  } catch {
    return undefined;
  }
  return safeArtifactPath(decoded) ? decoded : undefined;
}

/** A single `bytes=` range of a blob of `size` bytes: undefined for none, 'bad' for one that cannot be served. */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined | 'bad' {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return 'bad';
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'bad';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || start > end) return 'bad';
  return { start, end };
}

export function artifactsApp(deps: ArtifactsDeps) {
  const app = createRouter();
  const { artifactStore } = deps;

  const manifestOf = async (id: string) => {
    await findJob(deps.client, id, { runStart: false });
    return artifactStore.readManifest(id);
  };

  app.openapi(listArtifacts, async (c) => {
    const { id } = c.req.valid('param');
    const manifest = await manifestOf(id);
    return c.json({ artifacts: manifest?.artifacts ?? [], truncated: manifest?.truncated ?? false }, 200);
  });

  app.openapi(tarArtifacts, async (c) => {
    const { id } = c.req.valid('param');
    const manifest = await manifestOf(id);
    const archive = pack();
    // One file after the other, each streamed from the store: memory stays bounded.
    void (async () => {
      for (const artifact of manifest?.artifacts ?? []) {
        const body = await artifactStore.openBlob(id, artifact.sha256);
        if (!body) continue;
        await new Promise<void>((resolve, reject) => {
          const entry = archive.entry(
            { name: artifact.path, size: artifact.size, mode: artifact.mode, mtime: new Date() },
            (err) => (err ? reject(err) : resolve()),
          );
          body.on('error', reject);
          body.pipe(entry as unknown as NodeJS.WritableStream);
        });
      }
      archive.finalize();
    })().catch((err: unknown) => archive.destroy(err as Error));
    return new Response(Readable.toWeb(Readable.from(archive)) as ReadableStream, {
      status: 200,
      headers: { 'Content-Type': 'application/x-tar', ...downloadHeaders(`${id}-artifacts.tar`) },
    }) as never;
  });

  // Registered for the OpenAPI description; a path with slashes is answered by the wildcard below.
  app.openAPIRegistry.registerPath(getArtifact);
  app.get('/:id/artifacts/*', (c) => serveArtifact(c, deps, manifestOf));
  return app;
}

async function serveArtifact(
  c: Context,
  deps: ArtifactsDeps,
  manifestOf: (id: string) => Promise<{ artifacts: ArtifactEntry[] } | undefined>,
): Promise<Response> {
  const id = c.req.param('id')!;
  const parsed = JobIdParams.safeParse({ id });
  if (!parsed.success) return c.json(errorBody('invalid_request', 'id: invalid job id'), 400);
  const raw = new URL(c.req.url).pathname;
  const path = requestedArtifactPath(raw);
  if (path === undefined) return c.json(errorBody('invalid_request', 'path: not an artifact path'), 400);
  const manifest = await manifestOf(id);
  const artifact = manifest?.artifacts.find((a) => a.path === path);
  if (!artifact) return c.json(errorBody('not_found', `job ${id} has no artifact ${JSON.stringify(path)}`), 404);
  const etag = `"${artifact.sha256}"`;
  const headers: Record<string, string> = {
    'Content-Type': 'application/octet-stream',
    ETag: etag,
    'Accept-Ranges': 'bytes',
    ...downloadHeaders(path.slice(path.lastIndexOf('/') + 1)),
  };
  if (
    c.req
      .header('If-None-Match')
      ?.split(',')
      .some((tag) => tag.trim() === etag)
  )
    return new Response(null, { status: 304, headers });
  const range = parseRange(c.req.header('Range'), artifact.size);
  if (range === 'bad') {
    return new Response(JSON.stringify(errorBody('range_not_satisfiable', 'range not satisfiable')), {
      status: 416,
      headers: { 'Content-Type': 'application/json', 'Content-Range': `bytes */${artifact.size}` },
    });
  }
  // An empty file has no bytes to read (and no range to ask for).
  const body = artifact.size === 0 ? Readable.from([]) : await deps.artifactStore.openBlob(id, artifact.sha256, range);
  if (!body) return c.json(errorBody('not_found', `job ${id} has no artifact ${JSON.stringify(path)}`), 404);
  const length = range ? range.end - range.start + 1 : artifact.size;
  headers['Content-Length'] = String(length);
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${artifact.size}`;
  return new Response(Readable.toWeb(body) as ReadableStream, { status: range ? 206 : 200, headers });
}
