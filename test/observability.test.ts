import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';

import pino from 'pino';

import { buildApp } from '../src/server/app';
import { FsStore } from '../src/store';
import { ADMIN_KEY, makeDataDir, startTestServer, type TestServer } from './helpers/server';

/** A pino logger whose lines the test can read back. */
function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** An fs store that fails its reads while `failing` is set. */
class FlakyStore extends FsStore {
  failing = false;
  override async get(key: string) {
    if (this.failing) throw new Error('EIO: disk on fire at /secret/volume');
    return super.get(key);
  }
}

describe('logs', () => {
  it('carry the request id on every line of a request, and never the admin key', async () => {
    const dataDir = makeDataDir();
    const { logger, lines } = memoryLogger();
    const store = new FlakyStore(dataDir);
    const app = buildApp({
      env: { FLASH_ADMIN_KEY: ADMIN_KEY },
      config: { env: 'test', host: '127.0.0.1', port: 0, dataDir },
      store,
      logger,
    });
    const { url } = await app.start();
    try {
      store.failing = true;
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-request-id': 'req-1234',
          authorization: `Bearer ${ADMIN_KEY}`,
        },
        body: JSON.stringify({ query: '{ status { devMode } }' }),
      });
      store.failing = false;
      expect(response.headers.get('x-request-id')).toBe('req-1234');
      const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
      expect(body.errors[0]?.extensions.code).toBe('STORE_UNAVAILABLE');

      const ofRequest = lines.filter((line) => line.reqId === 'req-1234');
      expect(ofRequest.map((line) => line.msg)).toEqual(['Store unavailable', 'request completed']);
      expect(JSON.stringify(lines)).not.toContain(ADMIN_KEY);

      const generated = await fetch(url.replace('/graphql', '/readyz'));
      expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await app.stop();
    }
  });
});

describe('metrics', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('count operations by name and errors by code, in the Prometheus format', async () => {
    await server.graphql('query PlatformStatus { status { devMode } }');
    await server.graphql('query Missing { model(token: "nope") { token } }');
    await server.graphql('mutation { runCleanup }', { key: ADMIN_KEY });
    const response = await fetch(`${server.origin}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    expect(text).toMatch(/flash_graphql_request_duration_seconds_count\{operation="PlatformStatus",type="query"\} 1/);
    expect(text).toMatch(/flash_graphql_errors_total\{code="MODEL_NOT_FOUND"\} 1/);
    expect(text).toMatch(/flash_cleanup_runs_total 1/);
    expect(text).toMatch(/flash_training_queue_length 0/);
    expect(text).toMatch(/flash_process_resident_memory_bytes \d+/);
  });
});

describe('Apollo conventions', () => {
  it('serve automatic persisted queries', async () => {
    const server = await startTestServer();
    try {
      const query = '{ status { cleanupActive } }';
      const sha256Hash = createHash('sha256').update(query).digest('hex');
      const extensions = { persistedQuery: { version: 1, sha256Hash } };
      const post = (body: object) =>
        fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
          (r) => r.json() as Promise<{ data?: unknown; errors?: { extensions: { code: string } }[] }>,
        );
      expect((await post({ extensions })).errors?.[0]?.extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
      expect((await post({ query, extensions })).data).toEqual({ status: { cleanupActive: true } });
      expect((await post({ extensions })).data).toEqual({ status: { cleanupActive: true } });
    } finally {
      await server.stop();
    }
  });

  it('turn introspection and Sandbox off in production', async () => {
    const server = await startTestServer({ config: { env: 'production', introspection: false } });
    try {
      const introspection = await server.graphql('{ __schema { queryType { name } } }');
      expect(introspection.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      const page = await fetch(server.url, { headers: { accept: 'text/html' } });
      expect(await page.text()).not.toContain('id="embeddableSandbox"');
    } finally {
      await server.stop();
    }
  });
});
