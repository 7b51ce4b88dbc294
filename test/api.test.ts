import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { FsStore, type ObjectStore } from '../src/store';
import { ADMIN_KEY, makeDataDir, startTestServer, type TestServer } from './helpers/server';

const STATUS_QUERY = '{ status { status taskType devMode cleanupActive } }';
const MODEL_FIELDS = 'token taskType accuracy accuracyPlot downloadable classes createdAt';
const IMAGE_TOKEN = 'imageClassification-tinyimgnet-demo-dbasb';
const TEXT_TOKEN = 'textClassification-test-sa-demo-xjfsf';

const readJson = (server: TestServer, key: string) =>
  JSON.parse(readFileSync(path.join(server.dataDir, key), 'utf8'));
const codes = (response: { errors?: { extensions?: { code?: string } }[] }) =>
  response.errors?.map((error) => error.extensions?.code);

describe('on a fresh store', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('reports the seed initial state', async () => {
    const response = await server.graphql(STATUS_QUERY);
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({
      status: { status: 'SLEEPING', taskType: null, devMode: false, cleanupActive: true },
    });
  });

  it('answers /healthz and /readyz', async () => {
    const health = await fetch(`${server.origin}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${server.origin}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', store: 'fs' });
  });

  it('answers MODEL_NOT_FOUND for a token nobody holds', async () => {
    const response = await server.graphql(`query($t: ID!) { model(token: $t) { token } }`, { variables: { t: 'nope' } });
    expect(codes(response)).toEqual(['MODEL_NOT_FOUND']);
    expect(response.data).toEqual({ model: null });
  });

  it('answers BAD_USER_INPUT for arguments of the wrong type', async () => {
    const response = await server.graphql(`mutation($e: Boolean!) { setDevMode(enabled: $e) { devMode } }`, {
      variables: { e: 'yes' },
      key: ADMIN_KEY,
    });
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(readJson(server, 'status.json').dev_mode).toBe(false);
  });

  it('serves Apollo Sandbox to browsers outside production', async () => {
    const page = await fetch(server.url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('id="embeddableSandbox"');
  });

  it('refuses a GET operation without a CSRF-preventing header', async () => {
    const response = await fetch(`${server.url}?query=${encodeURIComponent(STATUS_QUERY)}`);
    expect(response.status).toBe(400);
  });
});

describe('admin mutations', () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer({ withFlashSamples: true });
  });
  afterEach(() => server.stop());

  const SET_DEV_MODE = `mutation($on: Boolean!) { setDevMode(enabled: $on) { status taskType devMode cleanupActive } }`;
  const SET_CLEANUP = `mutation($on: Boolean!) { setCleanup(active: $on) { devMode cleanupActive } }`;

  it('answer UNAUTHENTICATED without a key and change nothing', async () => {
    const before = readFileSync(path.join(server.dataDir, 'status.json'), 'utf8');
    const response = await server.graphql(SET_DEV_MODE, { variables: { on: true } });
    expect(codes(response)).toEqual(['UNAUTHENTICATED']);
    expect(readFileSync(path.join(server.dataDir, 'status.json'), 'utf8')).toBe(before);
  });

  it('answer FORBIDDEN to a key wrong by one character and change nothing', async () => {
    const wrong = `${ADMIN_KEY.slice(0, -1)}${ADMIN_KEY.endsWith('f') ? 'e' : 'f'}`;
    const before = readFileSync(path.join(server.dataDir, 'cleanup.json'), 'utf8');
    const response = await server.graphql(SET_CLEANUP, { variables: { on: false }, key: wrong });
    expect(codes(response)).toEqual(['FORBIDDEN']);
    expect(response.errors?.[0]?.message).not.toContain(ADMIN_KEY);
    expect(readFileSync(path.join(server.dataDir, 'cleanup.json'), 'utf8')).toBe(before);
  });

  it('set dev mode with the right key, keeping every other key of status.json', async () => {
    const before = readJson(server, 'status.json');
    const response = await server.graphql(SET_DEV_MODE, { variables: { on: true }, key: ADMIN_KEY });
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({
      setDevMode: { status: 'SLEEPING', taskType: null, devMode: true, cleanupActive: true },
    });
    expect(readJson(server, 'status.json')).toEqual({ ...before, dev_mode: true });

    await server.graphql(SET_DEV_MODE, { variables: { on: false }, key: ADMIN_KEY });
    expect(readJson(server, 'status.json')).toEqual(before);
  });

  it('pause and resume cleanup with the right key, in cleanup.json', async () => {
    const paused = await server.graphql(SET_CLEANUP, { variables: { on: false }, key: ADMIN_KEY });
    expect(paused.data).toEqual({ setCleanup: { devMode: false, cleanupActive: false } });
    expect(readJson(server, 'cleanup.json')).toEqual({ status: 'sleeping' });
    await server.graphql(SET_CLEANUP, { variables: { on: true }, key: ADMIN_KEY });
    expect(readJson(server, 'cleanup.json')).toEqual({ status: 'active' });
  });

  it('list every model for the admin only', async () => {
    const query = `{ models { token accuracy } }`;
    expect(codes(await server.graphql(query))).toEqual(['UNAUTHENTICATED']);
    expect(codes(await server.graphql(query, { key: 'not-the-admin-key-at-all' }))).toEqual(['FORBIDDEN']);
    const response = await server.graphql<{ models: { token: string; accuracy: number }[] }>(query, { key: ADMIN_KEY });
    expect(response.data?.models.map((model) => model.token)).toEqual([TEXT_TOKEN, IMAGE_TOKEN]);
  });
});

describe('models from an existing Flash bucket', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ withFlashSamples: true });
  });
  afterAll(() => server.stop());

  const MODEL = `query($t: ID!) { model(token: $t) { ${MODEL_FIELDS} } }`;

  it('read an image model stored with a percentage accuracy', async () => {
    const response = await server.graphql(MODEL, { variables: { t: IMAGE_TOKEN } });
    expect(response.data).toEqual({
      model: {
        token: IMAGE_TOKEN,
        taskType: 'IMAGE_CLASSIFICATION',
        accuracy: 0.9667,
        accuracyPlot: '/9j/4AAQSkZJRgABAQEAZABkAAD/...',
        downloadable: true,
        classes: ['birdhouse', 'hourglass', 'lemon', 'pizza', 'seashore', 'stopwatch'],
        createdAt: '2021-01-10T18:13:00.000Z',
      },
    });
  });

  it('read a text model stored with a fractional accuracy', async () => {
    const response = await server.graphql<{ model: { accuracy: number; classes: null; taskType: string } }>(MODEL, {
      variables: { t: TEXT_TOKEN },
    });
    expect(response.data?.model).toMatchObject({ taskType: 'TEXT_CLASSIFICATION', classes: null });
    expect(response.data?.model.accuracy).toBeCloseTo(0.6667, 4);
  });

  it('never shows the running job token in the status', async () => {
    const response = await server.graphql('{ status { status taskType } }');
    expect(JSON.stringify(response)).not.toContain('lkfb84kj');
    expect(response.data).toEqual({ status: { status: 'SLEEPING', taskType: null } });
  });
});

describe('a model that is training', () => {
  it('answers MODEL_TRAINING for the token of the running job', async () => {
    const dataDir = makeDataDir();
    writeFileSync(
      path.join(dataDir, 'status.json'),
      JSON.stringify({ status: 'active', token: 'imageClassification-x-123', task_type: 'imageclassification', dev_mode: false }),
    );
    const server = await startTestServer({ dataDir });
    try {
      const response = await server.graphql(`{ model(token: "imageClassification-x-123") { token } }`);
      expect(codes(response)).toEqual(['MODEL_TRAINING']);
      const status = await server.graphql('{ status { status taskType } }');
      expect(status.data).toEqual({ status: { status: 'ACTIVE', taskType: 'IMAGE_CLASSIFICATION' } });
    } finally {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a corrupted status.json', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ withFlashSamples: true });
    writeFileSync(path.join(server.dataDir, 'status.json'), '{"status": "sleeping", "dev_mode": 3}');
  });
  afterAll(() => server.stop());

  it('gives a clear error naming the file and the key', async () => {
    const response = await server.graphql(STATUS_QUERY);
    expect(codes(response)).toEqual(['DOCUMENT_INVALID']);
    expect(response.errors?.[0]?.extensions?.document).toBe('status.json');
    expect(response.errors?.[0]?.message).toContain('key "dev_mode"');
  });

  it('is not overwritten by an admin mutation', async () => {
    const response = await server.graphql('mutation { setDevMode(enabled: true) { devMode } }', { key: ADMIN_KEY });
    expect(codes(response)).toEqual(['DOCUMENT_INVALID']);
    expect(readFileSync(path.join(server.dataDir, 'status.json'), 'utf8')).toBe('{"status": "sleeping", "dev_mode": 3}');
  });

  it('leaves /healthz and queries that do not need it working', async () => {
    expect((await fetch(`${server.origin}/healthz`)).status).toBe(200);
    const response = await server.graphql(`{ model(token: "${IMAGE_TOKEN}") { accuracy } }`);
    expect(response).toMatchObject({ data: { model: { accuracy: 0.9667 } } });
  });
});

/** An fs store that counts reads per key and can be told to fail. */
class InstrumentedStore extends FsStore {
  reads = new Map<string, number>();
  failWith: Error | undefined;

  override async get(key: string) {
    this.count(key);
    return super.get(key);
  }

  override async getIfChanged(key: string, etag: string) {
    this.count(key);
    return super.getIfChanged(key, etag);
  }

  private count(key: string): void {
    this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
    if (this.failWith) throw this.failWith;
  }
}

describe('store access', () => {
  let store: InstrumentedStore;
  let server: TestServer;
  beforeAll(async () => {
    const dataDir = makeDataDir();
    store = new InstrumentedStore(dataDir);
    server = await startTestServer({ dataDir, store: store as ObjectStore, withFlashSamples: true });
  });
  afterAll(async () => {
    await server.stop();
    rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('reads each document at most once per request', async () => {
    store.reads.clear();
    const response = await server.graphql(
      `{ a: status { devMode } b: status { cleanupActive } c: model(token: "${IMAGE_TOKEN}") { token } d: model(token: "nope") { token } }`,
    );
    expect(codes(response)).toEqual(['MODEL_NOT_FOUND']);
    expect(Object.fromEntries(store.reads)).toEqual({
      'status.json': 1,
      'cleanup.json': 1,
      'inference.json': 1,
      // An unknown token is looked up once more, to tell an expired model from one never made.
      'training/jobs/nope/job.json': 1,
    });
  });

  it('answers STORE_UNAVAILABLE without the internal message when the store fails, and /readyz stays honest', async () => {
    store.failWith = new Error('EACCES: permission denied, open /secret/path/status.json');
    try {
      const response = await server.graphql(STATUS_QUERY);
      expect(codes(response)).toEqual(['STORE_UNAVAILABLE']);
      expect(JSON.stringify(response)).not.toContain('/secret/path');
    } finally {
      store.failWith = undefined;
    }
    expect((await server.graphql(STATUS_QUERY)).errors).toBeUndefined();
  });

  it('reports not ready when the store folder is gone', async () => {
    rmSync(server.dataDir, { recursive: true, force: true });
    const ready = await fetch(`${server.origin}/readyz`);
    expect(ready.status).toBe(503);
    expect((await fetch(`${server.origin}/healthz`)).status).toBe(200);
  });
});

describe('subscriptions over graphql-ws', () => {
  it('stream status changes on /graphql and end cleanly when the server stops', async () => {
    const server = await startTestServer();
    const client = createClient({ url: server.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const received: unknown[] = [];
    let closeCode: number | undefined;
    client.on('closed', (event) => {
      closeCode = (event as { code: number }).code;
    });
    const subscribed = new Promise<void>((resolve, reject) => {
      client.on('connected', () => resolve());
      client.subscribe(
        { query: 'subscription { statusChanged { devMode cleanupActive } }' },
        { next: (value) => received.push(value), error: () => undefined, complete: () => undefined },
      );
      client.on('error', reject);
    });
    try {
      await subscribed;
      // The subscription registers right after the connection acknowledgement.
      await new Promise((resolve) => setTimeout(resolve, 50));
      await server.graphql('mutation { setDevMode(enabled: true) { devMode } }', { key: ADMIN_KEY });
      await server.graphql('mutation { setCleanup(active: false) { devMode } }', { key: ADMIN_KEY });
      await waitFor(() => received.length === 2);
      expect(received).toEqual([
        { data: { statusChanged: { devMode: true, cleanupActive: true } } },
        { data: { statusChanged: { devMode: true, cleanupActive: false } } },
      ]);
    } finally {
      await server.stop();
    }
    // graphql-ws closes with 1001 "Going away" when the server shuts down.
    await waitFor(() => closeCode !== undefined);
    expect(closeCode).toBe(1001);
    await client.dispose();
  });
});

describe('the admin key', () => {
  it('is generated at first start, kept with mode 0600 in the data folder, and reused', async () => {
    const dataDir = makeDataDir();
    try {
      const first = await startTestServer({ dataDir, env: { FLASH_ADMIN_KEY: '' } });
      await first.stop();
      const keyFile = path.join(dataDir, '.admin-key');
      const key = readFileSync(keyFile, 'utf8').trim();
      expect(key.length).toBeGreaterThanOrEqual(43);
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);

      const second = await startTestServer({ dataDir, env: { FLASH_ADMIN_KEY: '' } });
      try {
        const response = await second.graphql('mutation { setDevMode(enabled: true) { devMode } }', { key });
        expect(response.data).toEqual({ setDevMode: { devMode: true } });
        expect(codes(await second.graphql('{ models { token } }', { key: ADMIN_KEY }))).toEqual(['FORBIDDEN']);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMillis = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('Timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('operation limits', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ config: { queryLimits: { aliases: 15, tokens: 500 } } });
  });
  afterAll(() => server.stop());

  it('refuse too many aliases, too many tokens and batched requests with a code', async () => {
    const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: status { devMode }`).join(' ');
    const wide = await server.graphql(`{ ${aliases} }`);
    expect(wide.status).toBe(400);
    expect(codes(wide)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    expect(wide.errors?.[0]?.message).toMatch(/Aliases limit of 15/);

    const long = await server.graphql(`{ ${Array.from({ length: 300 }, () => 'status { devMode }').join(' ')} }`);
    expect(long.status).toBe(400);
    expect(codes(long)).toEqual(['GRAPHQL_PARSE_FAILED']);

    const batched = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ query: '{ status { devMode } }' }, { query: '{ status { devMode } }' }]),
    });
    expect(batched.status).toBe(400);
  });

  it('apply the same limits to subscriptions', async () => {
    const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: statusChanged { devMode }`).join(' ');
    const client = createClient({ url: server.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const outcome = await new Promise<unknown>((resolve) => {
        client.subscribe({ query: `subscription { ${aliases} }` }, { next: resolve, error: resolve, complete: () => resolve('complete') });
      });
      expect(JSON.stringify(outcome)).toContain('GRAPHQL_VALIDATION_FAILED');
    } finally {
      await client.dispose();
    }
  });

  it('leave introspection, as Apollo Sandbox sends it, within the limits', async () => {
    const introspection = await server.graphql(
      '{ __schema { types { name fields { name type { name ofType { name ofType { name ofType { name } } } } } } } }',
    );
    expect(introspection.errors).toBeUndefined();
  });
});
