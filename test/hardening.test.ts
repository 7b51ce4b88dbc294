import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { createClient, type FormattedExecutionResult } from 'graphql-ws';
import WebSocket from 'ws';

import { formatCreated } from '../src/documents';
import { ADMIN_KEY, startTestServer, type TestServer, type TestServerOptions } from './helpers/server';
import {
  ACCEPTED_CASES,
  CLASS_CASES,
  CORPUS_LIMITS,
  CSV_CASES,
  type Dataset,
  ESCAPE_TARGETS,
  type Expected,
  OVERSIZE_CASES,
  RAW_CASES,
  type UploadCase,
  ZIP_CASES,
} from './hostile/corpus';
import { GatedStore } from './hostile/gated-store';
import {
  type Answer,
  codes,
  expectAnswer,
  graphql,
  noData,
  post,
  readJson,
  stagingLeftovers,
  submit,
  tree,
} from './hostile/requests';

/**
 * Issue 7, through the real server over HTTP: hostile uploads (the corpus in `hostile/`),
 * operation limits, hostile names and tokens, and who may see what. Every refusal is checked
 * for its stable code and for what it left behind: nothing written inside or outside the store,
 * no staged upload, no partial document, and a server that still answers.
 */

jest.setTimeout(30_000);

const STATUS = '{ status { status } }';

/** A folder of its own holding the data folder, so that a write beside the store shows too. */
interface Sandbox {
  root: string;
  dataDir: string;
  store: GatedStore;
  server: TestServer;
}

async function startSandbox(
  options: TestServerOptions = {},
  seed: (dataDir: string) => void = () => undefined,
): Promise<Sandbox> {
  const root = mkdtempSync(path.join(tmpdir(), 'flash-hostile-'));
  const dataDir = path.join(root, 'data');
  mkdirSync(dataDir);
  seed(dataDir);
  const store = new GatedStore(dataDir);
  const server = await startTestServer({
    ...options,
    dataDir,
    store,
    config: { ...options.config, datasets: { ...CORPUS_LIMITS, ...options.config?.datasets } },
  });
  return { root, dataDir, store, server };
}

async function stopSandbox(sandbox: Sandbox | undefined): Promise<void> {
  if (!sandbox) return;
  sandbox.store.refuse();
  await sandbox.server.stop();
  rmSync(sandbox.root, { recursive: true, force: true });
}

/**
 * Sends a request and checks that it changed nothing: the sandbox (the data folder and what is
 * beside it) is as it was, no staged upload is left, nothing appeared where hostile paths point,
 * and the server still answers.
 */
async function sendChangingNothing<T>(sandbox: Sandbox, send: () => Promise<Answer<T>>): Promise<Answer<T>> {
  const before = tree(sandbox.root);
  const answer = await send();
  expect(tree(sandbox.root)).toEqual(before);
  expect(stagingLeftovers(sandbox.dataDir)).toEqual([]);
  for (const target of ESCAPE_TARGETS) expect(existsSync(target)).toBe(false);
  expect(Object.prototype).not.toHaveProperty('polluted');
  const status = await graphql(sandbox.server, STATUS);
  expect(status.data).toEqual({ status: { status: 'SLEEPING' } });
  return answer;
}

const describeExpected = (expected: Expected) => {
  switch (expected.kind) {
    case 'http':
      return `HTTP ${expected.status} ${expected.code}`;
    case 'graphql':
      return `${expected.code}${expected.field ? ` on ${expected.field}` : ''}`;
    case 'accepted':
      return 'a queued job';
  }
};

const asTable = (cases: readonly UploadCase[]) => cases.map((c) => [c.name, describeExpected(c.expect), c] as const);

describe('hostile uploads', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox();
  });
  afterAll(() => stopSandbox(sandbox));

  it.each(asTable([...ZIP_CASES, ...CLASS_CASES, ...CSV_CASES]))(
    'refuses %s with %s, storing nothing',
    async (_name, _expected, hostile) => {
      const answer = await sendChangingNothing(sandbox, () => submit(sandbox.server, hostile.dataset));
      expectAnswer(answer, hostile.expect);
    },
  );

  it.each(RAW_CASES.map((c) => [c.name, describeExpected(c.expect), c] as const))(
    'answers %s with %s, storing nothing',
    async (_name, _expected, hostile) => {
      const answer = await sendChangingNothing(sandbox, async () => post(sandbox.server.url, await hostile.request()));
      expectAnswer(answer, hostile.expect);
    },
  );
});

describe('uploads over the size limits', () => {
  // A request that never gets an answer would leave its staging behind for the next one: each
  // case gets a server of its own.
  it.each(asTable(OVERSIZE_CASES))('refuses %s with %s, storing nothing', async (_name, _expected, hostile) => {
    const sandbox = await startSandbox();
    try {
      // Refusing an upload takes milliseconds; one not answered within seconds will never be.
      const answer = await sendChangingNothing(sandbox, () =>
        submit(sandbox.server, hostile.dataset, {}, { timeoutMillis: 3_000 }),
      );
      expectAnswer(answer, hostile.expect);
    } finally {
      await stopSandbox(sandbox);
    }
  });
});

describe('hostile-looking datasets that are fine', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    // Jobs stay queued (the first one PREPARING at the gate), so their staged datasets can be read.
    sandbox = await startSandbox({ env: { FLASH_MAX_QUEUE: '20' } });
  });
  afterAll(() => stopSandbox(sandbox));

  it.each(asTable(ACCEPTED_CASES))('accepts %s as %s', async (_name, _expected, fine) => {
    const answer = await submit(sandbox.server, fine.dataset);
    expectAnswer(answer, fine.expect);
    if (fine.expect.kind !== 'accepted') throw new Error('not an accepted case');
    const token = answer.data?.submitTraining.token as string;
    expect(answer.data?.submitTraining.state).toBe('QUEUED');
    expect(stagingLeftovers(sandbox.dataDir)).toEqual([]);

    const queue = readJson(sandbox.dataDir, 'training/queue.json').jobs.map((job: { token: string }) => job.token);
    expect(queue.filter((queued: string) => queued === token)).toHaveLength(1);
    expect(readJson(sandbox.dataDir, `training/jobs/${token}/job.json`)).toMatchObject({ token, error: null });
    const staged: Record<string, string[]> = readJson(sandbox.dataDir, `training/jobs/${token}/dataset.json`);
    expect(Object.keys(staged).sort()).toEqual(fine.expect.classes);
    const texts = Object.values(staged)
      .flat()
      .map((item) => Buffer.from(item, 'base64').toString('utf8'));
    for (const expected of fine.expect.texts ?? []) expect(texts).toContain(expected);
  });
});

describe('operation limits', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  /** Refused before anything runs: HTTP 400, one of `allowed` codes, a message naming the limit, quickly. */
  async function expectLimited(send: () => Promise<Answer>, allowed: string[], limit: RegExp) {
    const started = performance.now();
    const response = await send();
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(response.status).toBe(400);
    expect(response.data).toBeUndefined();
    expect(response.errors?.length).toBeGreaterThan(0);
    for (const code of codes(response) ?? []) expect(allowed).toContain(code);
    expect(response.errors?.map((error) => error.message).join('\n')).toMatch(limit);
    expect((await graphql(server, STATUS)).data).toEqual({ status: { status: 'SLEEPING' } });
  }

  const MODEL_QUERY = 'query($t: ID!) { model(token: $t) { token } }';
  const nested = (levels: number) => `{ ${'status { '.repeat(levels)}status${' }'.repeat(levels)} }`;
  const VALIDATION = ['GRAPHQL_VALIDATION_FAILED'];
  /** The token limit stops the parser itself, before validation can run. */
  const PARSE_OR_VALIDATION = ['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED'];

  it('refuses a query 40 levels deep with GRAPHQL_VALIDATION_FAILED naming the depth limit', async () => {
    await expectLimited(() => graphql(server, nested(40)), VALIDATION, /depth limit/i);
  });

  it('refuses a query 5,000 levels deep before parsing it all, naming the limit it hit', async () => {
    await expectLimited(() => graphql(server, nested(5_000)), PARSE_OR_VALIDATION, /limit|tokens/i);
  });

  it('refuses 100 aliases of status with GRAPHQL_VALIDATION_FAILED naming the alias limit', async () => {
    const query = `{ ${Array.from({ length: 100 }, (_, i) => `a${i}: status { status }`).join(' ')} }`;
    await expectLimited(() => graphql(server, query), VALIDATION, /alias/i);
  });

  it('refuses 500 aliases of the admin models list, even with the admin key', async () => {
    const aliases = Array.from({ length: 500 }, (_, i) => `m${i}: models { token accuracy history { epoch } }`);
    const query = `{ ${aliases.join(' ')} }`;
    await expectLimited(() => graphql(server, query, { key: ADMIN_KEY }), PARSE_OR_VALIDATION, /alias|tokens|cost/i);
  });

  it('refuses fragments that repeat an expensive field a hundredfold, naming the cost limit', async () => {
    const fragments = ['fragment F0 on Query { models { token history { epoch valAccuracy } } }'];
    for (let i = 1; i <= 2; i++) fragments.push(`fragment F${i} on Query { ${`...F${i - 1} `.repeat(10)}}`);
    const query = `{ ...F2 } ${fragments.join(' ')}`;
    await expectLimited(() => graphql(server, query, { key: ADMIN_KEY }), VALIDATION, /cost limit/i);
  });

  it('refuses a fragment bomb (2^20 spreads) quickly with GRAPHQL_VALIDATION_FAILED', async () => {
    const fragments = ['fragment F0 on Query { status { status devMode } }'];
    for (let i = 1; i <= 20; i++) fragments.push(`fragment F${i} on Query { ...F${i - 1} ...F${i - 1} }`);
    const query = `{ ...F20 } ${fragments.join(' ')}`;
    await expectLimited(() => graphql(server, query), VALIDATION, /cost limit|depth limit/i);
  });

  it('refuses the same limits on a graphql-ws subscription', async () => {
    const client = createClient({ url: server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const deep = `subscription { statusChanged { ${'status { '.repeat(40)}status${' }'.repeat(40)} } }`;
      const outcome = await new Promise<unknown>((resolve) => {
        client.subscribe({ query: deep }, { next: resolve, error: resolve, complete: () => resolve('completed') });
      });
      const received = JSON.stringify(outcome);
      expect(received).toContain('GRAPHQL_VALIDATION_FAILED');
      expect(received).toMatch(/depth limit/i);
    } finally {
      await client.dispose();
    }
  });

  it('refuses batched requests (a JSON array body) with BAD_REQUEST', async () => {
    for (const count of [2, 1_000]) {
      const batch = Array.from({ length: count }, () => ({ query: '{ models { token } }' }));
      const answer = await post(server.url, {
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
        body: JSON.stringify(batch),
      });
      expect({ status: answer.status, codes: codes(answer) }).toEqual({ status: 400, codes: ['BAD_REQUEST'] });
    }
  });

  it('refuses a 20 MB body with HTTP 413 BAD_REQUEST', async () => {
    const answer = await graphql(server, STATUS, { variables: { padding: 'x'.repeat(20 * 1024 * 1024) } });
    expect({ status: answer.status, codes: codes(answer) }).toEqual({ status: 413, codes: ['BAD_REQUEST'] });
  });

  it('refuses a list variable of 200,000 texts with BAD_USER_INPUT', async () => {
    const query = 'mutation($t: ID!, $x: [String!]!) { classifyTexts(token: $t, texts: $x) { label } }';
    const texts = Array.from({ length: 200_000 }, () => 'a');
    const answer = await graphql(server, query, { variables: { t: 'textClassification-none-00000000000000000000', x: texts } });
    expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
    expect(answer.errors?.[0]?.extensions?.field).toBe('texts');
  });

  it('refuses a variable nested 100,000 arrays deep with BAD_USER_INPUT', async () => {
    const depth = 100_000;
    const answer = await post(server.url, {
      headers: { 'content-type': 'application/json' },
      body: `{"query":${JSON.stringify(MODEL_QUERY)},"variables":{"t":${'['.repeat(depth)}"x"${']'.repeat(depth)}}}`,
    });
    expect({ status: answer.status, codes: codes(answer) }).toEqual({ status: 400, codes: ['BAD_USER_INPUT'] });
  });

  it('answers a 5 MB token with MODEL_NOT_FOUND, without sending it back', async () => {
    const answer = await graphql(server, MODEL_QUERY, { variables: { t: 'x'.repeat(5_000_000) } });
    expect(codes(answer)).toEqual(['MODEL_NOT_FOUND']);
    expect(answer.text.length).toBeLessThan(1_000);
  });
});

// ---------------------------------------------------------------------------------------------
// Names, tokens and keys

const DEPLOYED = 'textClassification-reviews-k3v9x2m8q1w7e5r4t6y0';
const RUNNING = 'imageClassification-pets-q8w7e6r5t4y3u2i1o0p9';

/** A deployed text model (stand-in files) and, optionally, the seed's lock held by a running job. */
function seedPlatform(dataDir: string, { running = false } = {}): void {
  mkdirSync(path.join(dataDir, 'textclassification'), { recursive: true });
  for (const file of [`${DEPLOYED}.pt`, `${DEPLOYED}.onnx`, `${DEPLOYED}_metadata.json`]) {
    writeFileSync(path.join(dataDir, 'textclassification', file), `bytes of ${file}`);
  }
  writeFileSync(
    path.join(dataDir, 'inference.json'),
    JSON.stringify({
      [DEPLOYED]: {
        task_type: 'textclassification',
        model_filename: `textclassification/${DEPLOYED}.pt`,
        model_filename_onnx: `textclassification/${DEPLOYED}.onnx`,
        metadata_filename: `textclassification/${DEPLOYED}_metadata.json`,
        downloadable: true,
        accuracy: 0.9,
        accuracy_plot: 'iVBORw0KGgo=',
        created: formatCreated(new Date()),
      },
    }),
  );
  if (running) {
    writeFileSync(
      path.join(dataDir, 'status.json'),
      JSON.stringify({ status: 'active', token: RUNNING, task_type: 'imageclassification', dev_mode: false }),
    );
  }
}

/** A dataset the server accepts, for requests refused for something else. */
const GOOD_CSV: Dataset = { kind: 'csv', file: 'bom-crlf.csv' };

/** How a token shows inside a JSON body. */
const inJson = (value: string) => JSON.stringify(value).slice(1, -1);

describe('hostile names and tokens', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox({}, (dataDir) => seedPlatform(dataDir));
  });
  afterAll(() => stopSandbox(sandbox));

  const TOKENS: [string, string][] = [
    ['a path to another document', '../status.json'],
    ['a path up to the root', '../../../../../etc/passwd'],
    ['a slash', 'textClassification/reviews'],
    ['a NUL byte after a real token', `${DEPLOYED}\u0000`],
    ['10,000 characters', 't'.repeat(10_000)],
    ['a Cyrillic lookalike of a real token', DEPLOYED.replace('e', '\u0435')],
    ['a fullwidth-hyphen lookalike of a real token', DEPLOYED.replace('-', '\uff0d')],
    ['a real token and a line break', `${DEPLOYED}\n`],
    ['a real token in upper case', DEPLOYED.toUpperCase()],
    ['a well-formed token nobody holds', 'textClassification-reviews-00000000000000000000'],
  ];
  const OPERATIONS: [string, string, string][] = [
    ['model', 'query($t: ID!) { model(token: $t) { token } }', 'MODEL_NOT_FOUND'],
    ['trainingJob', 'query($t: ID!) { trainingJob(token: $t) { state } }', 'JOB_NOT_FOUND'],
    ['cancelTraining', 'mutation($t: ID!) { cancelTraining(token: $t) { state } }', 'JOB_NOT_FOUND'],
    ['deleteModel', 'mutation($t: ID!) { deleteModel(token: $t) }', 'MODEL_NOT_FOUND'],
    ['downloadModel', 'mutation($t: ID!) { downloadModel(token: $t, format: ONNX) { url } }', 'MODEL_NOT_FOUND'],
    ['classifyText', 'mutation($t: ID!) { classifyText(token: $t, text: "a great film") { label } }', 'MODEL_NOT_FOUND'],
  ];

  it.each(TOKENS)('answers MODEL_NOT_FOUND (JOB_NOT_FOUND for jobs) to a token with %s in every operation, echoing nothing', async (_label, token) => {
    for (const [, operation, code] of OPERATIONS) {
      const answer = await sendChangingNothing(sandbox, () => graphql(sandbox.server, operation, { variables: { t: token } }));
      expect({ operation, codes: codes(answer) }).toEqual({ operation, codes: [code] });
      expect(answer.text).not.toContain(inJson(token));
    }
    // The real model is untouched by its lookalikes.
    expect(Object.keys(readJson(sandbox.dataDir, 'inference.json'))).toEqual([DEPLOYED]);
  });

  it.each([
    ['../../etc', 'a path'],
    ['cats/dogs', 'a slash'],
    ['cats\u0000', 'a NUL byte'],
    ['\uff0e\uff0e', 'fullwidth dots'],
    ['c'.repeat(5_000), '5,000 characters'],
    ['cats\u202e', 'a right-to-left override'],
  ])('refuses a task name %j (%s) with BAD_USER_INPUT on taskName, storing nothing', async (taskName) => {
    const answer = await sendChangingNothing(sandbox, () => submit(sandbox.server, GOOD_CSV, { taskName }));
    expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
    expect(answer.errors?.[0]?.extensions?.field).toBe('taskName');
  });
});

describe('the admin key', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox({}, (dataDir) => seedPlatform(dataDir));
  });
  afterAll(() => stopSandbox(sandbox));

  const flip = (key: string, at: number) => `${key.slice(0, at)}${key[at] === 'a' ? 'b' : 'a'}${key.slice(at + 1)}`;
  const WRONG_KEYS: [string, string][] = [
    ['wrong in its first character', flip(ADMIN_KEY, 0)],
    ['wrong in its middle character', flip(ADMIN_KEY, Math.floor(ADMIN_KEY.length / 2))],
    ['wrong in its last character', flip(ADMIN_KEY, ADMIN_KEY.length - 1)],
    ['one character short', ADMIN_KEY.slice(0, -1)],
    ['one character too long', `${ADMIN_KEY}0`],
    ['in upper case', ADMIN_KEY.toUpperCase()],
    ['repeated 200 times', ADMIN_KEY.repeat(200)],
  ];
  const MISSING: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['an empty bearer', { authorization: 'Bearer ' }],
    ['the key without "Bearer"', { authorization: ADMIN_KEY }],
    ['the key as Basic credentials', { authorization: `Basic ${Buffer.from(`admin:${ADMIN_KEY}`).toString('base64')}` }],
    ['two keys', { authorization: `Bearer ${ADMIN_KEY} ${ADMIN_KEY}` }],
  ];
  const ADMIN_OPERATIONS = [
    '{ models { token } }',
    'mutation { setDevMode(enabled: true) { devMode } }',
    'mutation { setCleanup(active: false) { cleanupActive } }',
    'mutation { runCleanup }',
  ];

  it.each(WRONG_KEYS)('answers FORBIDDEN to a key %s, changing nothing and echoing no key', async (_label, key) => {
    for (const operation of ADMIN_OPERATIONS) {
      const answer = await sendChangingNothing(sandbox, () => graphql(sandbox.server, operation, { key }));
      expect({ operation, codes: codes(answer), noData: noData(answer.data) }).toEqual({ operation, codes: ['FORBIDDEN'], noData: true });
      expect(answer.text).not.toContain(ADMIN_KEY.slice(0, 12));
      expect(answer.text).not.toContain(key.slice(0, 12));
      expect(answer.text).not.toContain(DEPLOYED);
    }
  });

  it.each(MISSING)('answers UNAUTHENTICATED to %s, changing nothing', async (_label, headers) => {
    for (const operation of ADMIN_OPERATIONS) {
      const answer = await sendChangingNothing(sandbox, () => graphql(sandbox.server, operation, { headers }));
      expect({ operation, codes: codes(answer), noData: noData(answer.data) }).toEqual({
        operation,
        codes: ['UNAUTHENTICATED'],
        noData: true,
      });
      expect(answer.text).not.toContain(ADMIN_KEY.slice(0, 12));
      expect(answer.text).not.toContain(DEPLOYED);
    }
  });

  it('is checked over graphql-ws as over HTTP', async () => {
    type WsResult = FormattedExecutionResult<Record<string, unknown>, unknown>;
    const over = async (authorization?: string) => {
      const client = createClient({
        url: sandbox.server.url.replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        connectionParams: authorization === undefined ? {} : { authorization },
      });
      try {
        return await new Promise<WsResult>((resolve, reject) => {
          client.subscribe<Record<string, unknown>>(
            { query: '{ models { token } }' },
            { next: resolve, error: reject, complete: () => undefined },
          );
        });
      } finally {
        await client.dispose();
      }
    };
    const codesOf = (result: WsResult) => result.errors?.map((error) => error.extensions?.code);
    expect(codesOf(await over())).toEqual(['UNAUTHENTICATED']);
    expect(codesOf(await over(`Bearer ${flip(ADMIN_KEY, 3)}`))).toEqual(['FORBIDDEN']);
    expect((await over(`Bearer ${ADMIN_KEY}`)).data).toEqual({ models: [{ token: DEPLOYED }] });
  });
});

describe('what is public', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox({}, (dataDir) => seedPlatform(dataDir, { running: true }));
  });
  afterAll(() => stopSandbox(sandbox));

  const SECRETS = [DEPLOYED, RUNNING, DEPLOYED.split('-').at(-1) as string, RUNNING.split('-').at(-1) as string];
  const expectNoSecret = (body: string) => {
    for (const secret of SECRETS) expect(body).not.toContain(secret);
  };

  it('never shows the running job token or the models in status, errors or probes', async () => {
    const status = await graphql(sandbox.server, '{ status { status taskType devMode cleanupActive } }');
    expect(status.data).toEqual({
      status: { status: 'ACTIVE', taskType: 'IMAGE_CLASSIFICATION', devMode: false, cleanupActive: true },
    });
    const bodies = [
      status.text,
      (await graphql(sandbox.server, '{ models { token } }')).text,
      (await graphql(sandbox.server, '{ status { status } models { token taskType } }')).text,
      (await graphql(sandbox.server, '{ models { token } }', { key: `${ADMIN_KEY}x` })).text,
      (await graphql(sandbox.server, '{ model(token: "imageClassification-pets-0") { token } }')).text,
      (await graphql(sandbox.server, '{ trainingJob(token: "imageClassification-pets-0") { state } }')).text,
      (await graphql(sandbox.server, '{ model(token: "") { token } }')).text,
      (await graphql(sandbox.server, '{ __type(name: "PlatformStatus") { fields { name } } }')).text,
    ];
    for (const probe of ['/healthz', '/readyz', '/metrics']) {
      bodies.push(await (await fetch(`${sandbox.server.origin}${probe}`)).text());
    }
    bodies.forEach(expectNoSecret);
    // The one who holds the running token learns only that it trains.
    const own = await graphql(sandbox.server, `{ model(token: "${RUNNING}") { token } }`);
    expect(codes(own)).toEqual(['MODEL_TRAINING']);
    expect(own.errors?.[0]?.message).not.toContain(RUNNING);
  });

  it('never shows them in statusChanged events', async () => {
    const client = createClient({ url: sandbox.server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const event = new Promise<unknown>((resolve, reject) => {
        client.subscribe(
          { query: 'subscription { statusChanged { status taskType devMode cleanupActive } }' },
          { next: resolve, error: reject, complete: () => undefined },
        );
      });
      const connected = new Promise<void>((resolve) => client.on('connected', () => resolve()));
      await connected;
      await new Promise((resolve) => setTimeout(resolve, 50));
      await graphql(sandbox.server, 'mutation { setCleanup(active: true) { cleanupActive } }', { key: ADMIN_KEY });
      const received = JSON.stringify(await event);
      expect(received).toContain('ACTIVE');
      expectNoSecret(received);
    } finally {
      await client.dispose();
    }
  });

  it('never echoes a token sent in a variable of the wrong type', async () => {
    const wrongType = [
      graphql(sandbox.server, 'query($t: ID!) { model(token: $t) { token } }', { variables: { t: [DEPLOYED] } }),
      graphql(sandbox.server, 'mutation($t: ID!, $f: ModelFormat!) { downloadModel(token: $t, format: $f) { url } }', {
        variables: { t: 'x', f: DEPLOYED },
      }),
      graphql(sandbox.server, 'mutation($t: ID!, $k: Int) { classifyText(token: $t, text: "x", topK: $k) { label } }', {
        variables: { t: 'x', k: RUNNING },
      }),
    ];
    for (const answer of await Promise.all(wrongType)) {
      expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
      expectNoSecret(answer.text);
    }
  });

  it('leaves status.json and inference.json as they were', () => {
    expect(readJson(sandbox.dataDir, 'status.json')).toMatchObject({ token: RUNNING, status: 'active' });
    expect(Object.keys(readJson(sandbox.dataDir, 'inference.json'))).toEqual([DEPLOYED]);
    expect(readFileSync(path.join(sandbox.dataDir, 'cleanup.json'), 'utf8')).toContain('active');
  });
});
