import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Kind, parse } from 'graphql';
import { type Client, createClient } from 'graphql-ws';
import pino from 'pino';
import WebSocket from 'ws';

import { KNOWN_OPERATIONS } from '../src/observability/operation-labels';
import { withoutSuggestions } from '../src/server/format-error';
import { buildApp } from '../src/server/app';
import { ADMIN_KEY, makeDataDir, startTestServer, type TestServer } from './helpers/server';
import { sentimentCsv, textInput } from './helpers/training';
import { GatedStore } from './hostile/gated-store';
import { type Answer, graphql, post, readJson, type Submitted, submit, waitUntil } from './hostile/requests';

/**
 * Issue 11, "No one can exhaust the server": through the real server, requests built to make it
 * spend its time or memory on one client, and the bounds that now stop them.
 */

const STATUS = '{ status { status } }';
const MiB = 1024 * 1024;
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis));

/** The real server on a gated fs store: an accepted job stays queued and no trainer starts. */
async function startGatedServer(): Promise<{ server: TestServer; store: GatedStore; stop: () => Promise<void> }> {
  const root = mkdtempSync(path.join(tmpdir(), 'flash-exhaust-'));
  const dataDir = path.join(root, 'data');
  mkdirSync(dataDir);
  const store = new GatedStore(dataDir);
  const server = await startTestServer({ dataDir, store, env: { FLASH_MAX_QUEUE: '20' } });
  return {
    server,
    store,
    async stop() {
      store.refuse();
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `work` while polling `status` one request after another, and returns its result with the
 * latency of every status request sent meanwhile.
 */
async function pollingStatus<T>(server: TestServer, work: () => Promise<T>): Promise<{ result: T; latencies: number[] }> {
  const latencies: number[] = [];
  let done = false;
  const polling = (async () => {
    while (!done) {
      const started = performance.now();
      const answer = await graphql(server, STATUS);
      latencies.push(performance.now() - started);
      expect(answer.data).toEqual({ status: { status: expect.any(String) } });
      await sleep(10);
    }
  })();
  try {
    return { result: await work(), latencies };
  } finally {
    done = true;
    await polling;
  }
}

describe('a CSV of blank lines', () => {
  let gated: Awaited<ReturnType<typeof startGatedServer>>;
  beforeAll(async () => {
    gated = await startGatedServer();
  });
  afterAll(() => gated.stop());

  // Before the fix, csv-parse spent ~25 µs on every line whose cell count differs from the
  // header's, a 64 KiB chunk at a time: a megabyte of them blocked the event loop for tens of
  // seconds, in blocks of seconds. Now a status request waits milliseconds; 1 s separates the
  // two clearly even on a loaded machine.
  it.each([
    ['empty lines', '\n'],
    ['lines of spaces', ' \r\n'],
    ['lines of one cell', 'x\n'],
  ])('is read while status keeps answering: a few rows, then a megabyte of %s', async (_name, line) => {
    const rows = sentimentCsv(3).replaceAll('\r\n', '\n');
    const csv = Buffer.from(rows + line.repeat(Math.ceil(MiB / line.length)));
    const { result, latencies } = await pollingStatus(gated.server, () =>
      submit(gated.server, { kind: 'csv-bytes', build: () => csv }, {}, { timeoutMillis: 120_000 }),
    );
    const answer: Answer<Submitted> = result;
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.submitTraining.state).toBe('QUEUED');
    const token = answer.data!.submitTraining.token;
    const staged: Record<string, string[]> = readJson(gated.server.dataDir, `training/jobs/${token}/dataset.json`);
    expect(Object.fromEntries(Object.entries(staged).map(([label, rows]) => [label, rows.length]))).toEqual({
      negative: 3,
      positive: 3,
    });
    expect(latencies.length).toBeGreaterThan(0);
    expect(Math.max(...latencies)).toBeLessThan(1_000);
  }, 120_000);
});

describe('/metrics', () => {
  /** The values of the `operation` label in a scrape. */
  const operationLabels = (scrape: string) =>
    new Set([...scrape.matchAll(/^flash_graphql_request_duration_seconds_count\{operation="([^"]*)"/gm)].map((m) => m[1]));

  it('labels requests by known operation or root field name, and every other name as one label', async () => {
    const server = await startTestServer();
    try {
      // 5,000 names a client made up, in batches of concurrent requests.
      const names = Array.from({ length: 5_000 }, (_, i) => `Made_up_${i}`);
      for (let i = 0; i < names.length; i += 100) {
        await Promise.all(names.slice(i, i + 100).map((name) => graphql(server, `query ${name} { __typename }`)));
      }
      await graphql(server, 'query PlatformStatus { status { status } }');
      await graphql(server, 'query status { status { status } }');
      await graphql(server, '{ status { status } }');
      const scrape = await (await fetch(`${server.origin}/metrics`)).text();
      expect([...operationLabels(scrape)].sort()).toEqual(['PlatformStatus', 'anonymous', 'other', 'status']);
      expect(scrape).toMatch(/^flash_graphql_request_duration_seconds_count\{operation="other",type="query"\} 5000$/m);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('knows the operations of examples/operations/ as the project\'s client operations', () => {
    const folder = path.join(__dirname, '..', 'examples', 'operations');
    const names = readdirSync(folder)
      .filter((file) => file.endsWith('.graphql'))
      .flatMap((file) => parse(readFileSync(path.join(folder, file), 'utf8')).definitions)
      .flatMap((definition) => (definition.kind === Kind.OPERATION_DEFINITION && definition.name ? [definition.name.value] : []));
    expect([...KNOWN_OPERATIONS].sort()).toEqual(names.sort());
  });

  /** The real server in `env`, with the admin key known; `stop` removes its data folder. */
  async function startApp(env: Record<string, string>, nodeEnv: 'production' | 'development') {
    const dataDir = makeDataDir();
    const app = buildApp({
      env: { FLASH_ADMIN_KEY: ADMIN_KEY, ...env },
      config: { env: nodeEnv, host: '127.0.0.1', port: 0, dataDir },
      logger: pino({ level: 'silent' }),
    });
    const started = await app.start();
    return {
      ...started,
      origin: new URL(started.url).origin,
      async stop() {
        await app.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }

  const scrape = (url: string, headers: Record<string, string> = {}) =>
    fetch(url, { headers }).then(async (response) => ({
      status: response.status,
      type: response.headers.get('content-type'),
      text: await response.text(),
    }));
  const codeOf = (text: string) => (JSON.parse(text) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code;

  it('in production, answer only the admin key on the main port: 401 without it, 403 with another', async () => {
    const app = await startApp({}, 'production');
    try {
      const missing = await scrape(`${app.origin}/metrics`);
      expect({ status: missing.status, code: codeOf(missing.text) }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
      const wrong = await scrape(`${app.origin}/metrics`, { authorization: `Bearer ${ADMIN_KEY}x` });
      expect({ status: wrong.status, code: codeOf(wrong.text) }).toEqual({ status: 403, code: 'FORBIDDEN' });
      for (const answer of [missing, wrong]) expect(answer.text).not.toContain('flash_');
      const allowed = await scrape(`${app.origin}/metrics`, { authorization: `Bearer ${ADMIN_KEY}` });
      expect(allowed.status).toBe(200);
      expect(allowed.text).toMatch(/^flash_training_queue_length 0$/m);
      expect((await fetch(`${app.origin}/healthz`)).status).toBe(200);
    } finally {
      await app.stop();
    }
  });

  it('stay open on the main port in development', async () => {
    const app = await startApp({}, 'development');
    try {
      const open = await scrape(`${app.origin}/metrics`);
      expect(open.status).toBe(200);
      expect(open.text).toMatch(/^flash_training_queue_length 0$/m);
    } finally {
      await app.stop();
    }
  });

  it('move to FLASH_METRICS_PORT when it is set, with /healthz and /readyz, and leave the main port', async () => {
    const app = await startApp({ FLASH_METRICS_PORT: '0' }, 'production');
    const metricsOrigin = `http://127.0.0.1:${app.metricsPort}`;
    try {
      expect(app.metricsPort).toEqual(expect.any(Number));
      expect(app.metricsPort).not.toBe(Number(new URL(app.url).port));
      await post(app.url, {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'query PlatformStatus { status { status } }' }),
      });
      const open = await scrape(`${metricsOrigin}/metrics`);
      expect(open.status).toBe(200);
      expect(open.text).toMatch(/^flash_graphql_request_duration_seconds_count\{operation="PlatformStatus",type="query"\} 1$/m);
      expect((await fetch(`${metricsOrigin}/healthz`)).status).toBe(200);
      expect(await (await fetch(`${metricsOrigin}/readyz`)).json()).toEqual({ status: 'ready', store: 'fs' });
      const main = await scrape(`${app.origin}/metrics`, { authorization: `Bearer ${ADMIN_KEY}` });
      expect(main.status).toBe(404);
      expect(main.text).not.toContain('flash_');
      expect((await fetch(`${app.origin}/healthz`)).status).toBe(200);
    } finally {
      await app.stop();
    }
    await expect(fetch(`${metricsOrigin}/healthz`)).rejects.toThrow();
  });
});

describe('a WebSocket connection', () => {
  const MAX_SUBSCRIPTIONS = 3;
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      env: { FLASH_MAX_SUBSCRIPTIONS_PER_CONNECTION: String(MAX_SUBSCRIPTIONS) },
      // A 1 MiB image limit makes the body limit 1 MiB × 4/3 + 1 MiB (room for one base64 image).
      config: { inference: { maxImageBytes: MiB } },
    });
  });
  afterAll(() => server.stop());

  const wsUrl = () => server.url.replace(/^http/, 'ws');
  const wsClient = () => createClient({ url: wsUrl(), webSocketImpl: WebSocket, retryAttempts: 0 });

  /** A subscription's events and errors as they arrive, and how to complete it. */
  function watch(client: Client, query: string) {
    const watched = { events: [] as unknown[], errors: [] as unknown[], complete: () => undefined as void };
    watched.complete = client.subscribe(
      { query },
      { next: (value) => watched.events.push(value), error: (error) => watched.errors.push(error), complete: () => undefined },
    );
    return watched;
  }

  /** A query over a new graphql-ws connection: the server still serves WebSockets. */
  async function queryOverWebSocket() {
    const client = wsClient();
    try {
      return await new Promise<unknown>((resolve, reject) => {
        client.subscribe({ query: STATUS }, { next: resolve, error: reject, complete: () => undefined });
      });
    } finally {
      await client.dispose();
    }
  }

  /** A graphql-ws connection spoken by hand, acknowledged, with the messages it received. */
  async function rawConnection() {
    const socket = new WebSocket(wsUrl(), 'graphql-transport-ws');
    const messages: { id?: string; type: string; payload?: unknown }[] = [];
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await waitUntil(() => messages.some((message) => message.type === 'connection_ack'), 5_000, 'connection_ack');
    return { socket, messages, closed };
  }

  it('is closed with 1009 for a frame over the body limit, and the server goes on serving', async () => {
    const { socket, messages, closed } = await rawConnection();
    try {
      // 4 MiB: over the 2.3 MiB body limit, far under ws's own default of 100 MiB.
      const padding = 'x'.repeat(4 * MiB);
      socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: STATUS, variables: { padding } } }));
      let timer: NodeJS.Timeout | undefined;
      const stillOpen = new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve('still open'), 10_000);
      });
      const code = await Promise.race([closed, stillOpen]).finally(() => clearTimeout(timer));
      expect(code).toBe(1009);
      expect(messages.map((message) => message.type)).toEqual(['connection_ack']);
    } finally {
      socket.terminate();
    }
    expect(await queryOverWebSocket()).toEqual({ data: { status: { status: 'SLEEPING' } } });
    expect((await graphql(server, STATUS)).data).toEqual({ status: { status: 'SLEEPING' } });
  });

  it('admits the first FLASH_MAX_SUBSCRIPTIONS_PER_CONNECTION of a burst of 200 subscribe frames', async () => {
    const { socket, messages } = await rawConnection();
    try {
      for (let i = 0; i < 200; i++) {
        socket.send(JSON.stringify({ id: String(i), type: 'subscribe', payload: { query: 'subscription { statusChanged { devMode } }' } }));
      }
      const errors = () => messages.filter((message) => message.type === 'error');
      await waitUntil(() => errors().length === 200 - MAX_SUBSCRIPTIONS, 10_000, 'the refusals');
      const refused = errors().map((message) => message.id);
      expect(new Set(refused)).toEqual(new Set(Array.from({ length: 200 - MAX_SUBSCRIPTIONS }, (_, i) => String(i + MAX_SUBSCRIPTIONS))));
      const codes = new Set(errors().flatMap((message) => (message.payload as { extensions: { code: string } }[]).map((e) => e.extensions.code)));
      expect(codes).toEqual(new Set(['TOO_MANY_SUBSCRIPTIONS']));

      await graphql(server, 'mutation { setCleanup(active: true) { cleanupActive } }', { key: ADMIN_KEY });
      const next = () => messages.filter((message) => message.type === 'next').map((message) => message.id);
      await waitUntil(() => next().length === MAX_SUBSCRIPTIONS, 5_000, 'events on the admitted subscriptions');
      expect(next().sort()).toEqual(['0', '1', '2']);
    } finally {
      socket.terminate();
    }
  });

  it(`refuses a subscription over FLASH_MAX_SUBSCRIPTIONS_PER_CONNECTION with TOO_MANY_SUBSCRIPTIONS, keeping the others`, async () => {
    const client = wsClient();
    const changeStatus = (active: boolean) =>
      graphql(server, `mutation { setCleanup(active: ${active}) { cleanupActive } }`, { key: ADMIN_KEY });
    try {
      const STATUS_CHANGED = 'subscription { statusChanged { cleanupActive } }';
      const admitted = Array.from({ length: MAX_SUBSCRIPTIONS }, () => watch(client, STATUS_CHANGED));
      const refused = watch(client, STATUS_CHANGED);
      await waitUntil(() => refused.errors.length === 1, 5_000, 'the refusal');
      const codes = (refused.errors[0] as { extensions?: { code?: string } }[]).map((error) => error.extensions?.code);
      expect(codes).toEqual(['TOO_MANY_SUBSCRIPTIONS']);

      await changeStatus(false);
      await waitUntil(() => admitted.every((watched) => watched.events.length === 1), 5_000, 'an event on each');
      expect(admitted.flatMap((watched) => watched.errors)).toEqual([]);

      // Completing one frees its slot at once.
      admitted[0]!.complete();
      const next = watch(client, STATUS_CHANGED);
      await changeStatus(true);
      await waitUntil(() => next.events.length === 1 && admitted[2]!.events.length === 2, 5_000, 'the next event');
      expect(next.errors).toEqual([]);
      expect(admitted[0]!.events).toHaveLength(1);
      expect(next.events).toEqual([{ data: { statusChanged: { cleanupActive: true } } }]);

      // Another connection has slots of its own.
      expect(await queryOverWebSocket()).toEqual({ data: { status: { status: 'SLEEPING' } } });
    } finally {
      await client.dispose();
    }
  });
});

describe('suggestions', () => {
  const LITERAL = 'mutation { downloadModel(token: "x", format: ONN) { url } }';
  const VARIABLE = 'mutation($f: ModelFormat!) { downloadModel(token: "x", format: $f) { url } }';
  const INPUT_FIELD = 'mutation($i: TrainingInput!) { submitTraining(input: $i) { token } }';
  const FIELD = '{ statu { status } }';

  /** Every error message of `query`, over HTTP and over graphql-ws. */
  async function messages(server: TestServer, query: string, variables?: Record<string, unknown>) {
    const overHttp = await graphql(server, query, variables ? { variables } : {});
    const client = createClient({ url: server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const overWs = await new Promise<unknown>((resolve) => {
        client.subscribe({ query, ...(variables ? { variables } : {}) }, { next: resolve, error: resolve, complete: () => undefined });
      });
      const wsErrors = (Array.isArray(overWs) ? overWs : ((overWs as { errors?: unknown[] }).errors ?? [])) as { message: string }[];
      return [...(overHttp.errors ?? []), ...wsErrors].map((error) => error.message);
    } finally {
      await client.dispose();
    }
  }

  const CASES: [string, string, Record<string, unknown> | undefined, RegExp][] = [
    ['an enum value in the query', LITERAL, undefined, /the enum value "ONNX"/],
    ['an enum value in a variable', VARIABLE, { f: 'ONN' }, /the enum value "ONNX"/],
    ['an enum value inside an input variable', INPUT_FIELD, { i: { ...textInput(), model: 'GR' } }, /the enum value "GRU"/],
    ['a field', FIELD, undefined, /"status"/],
  ];

  describe('in production', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ config: { env: 'production', introspection: false } });
    });
    afterAll(() => server.stop());

    it.each(CASES)('are hidden for %s, over HTTP and WebSocket', async (_name, query, variables, suggestion) => {
      const seen = await messages(server, query, variables);
      expect(seen).toHaveLength(2);
      for (const message of seen) {
        expect(message).not.toMatch(/Did you mean/);
        expect(message).not.toMatch(suggestion);
      }
    });
  });

  it('are cut from messages however graphql-js words them, the rest kept', () => {
    const cut = (message: string) => withoutSuggestions({ message }).message;
    expect(
      cut('Variable "$f" got invalid value "ONN"; Value "ONN" does not exist in "ModelFormat" enum. Did you mean the enum value "ONNX"?'),
    ).toBe('Variable "$f" got invalid value "ONN"; Value "ONN" does not exist in "ModelFormat" enum.');
    expect(cut('Unknown argument "tokn" on field "Query.model". Did you mean "token"?')).toBe(
      'Unknown argument "tokn" on field "Query.model".',
    );
    expect(cut('Cannot query field "x" on type "Model". Did you mean "a", "b", or "c"?')).toBe('Cannot query field "x" on type "Model".');
    expect(cut('No model is deployed under this token.')).toBe('No model is deployed under this token.');
  });

  describe('in development', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ config: { env: 'development' } });
    });
    afterAll(() => server.stop());

    it.each(CASES.filter(([, query]) => query !== VARIABLE && query !== INPUT_FIELD))(
      'are shown for %s',
      async (_name, query, variables, suggestion) => {
        for (const message of await messages(server, query, variables)) expect(message).toMatch(suggestion);
      },
    );
  });
});
