import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';

import { createClient } from 'graphql-ws';
import pino from 'pino';
import WebSocket from 'ws';

import { buildApp } from '../src/server/app';
import { ADMIN_KEY, makeDataDir, startTestServer, type TestServer } from './helpers/server';
import { classImage, imageInput, multipart, sentimentCsv, SUBMIT, subscribe, textInput } from './helpers/training';

/**
 * Issue 11, "Errors a form can use": every invalid input field at once with its path, missing
 * variable fields named, job tokens answered as jobs, partial results, and Apollo's own answers
 * to persisted-query mistakes. Through the real server over HTTP and graphql-ws.
 */

jest.setTimeout(30_000);

type FieldProblem = { field: string; message: string };
type ErrorBody = { message: string; path?: string[]; extensions?: { code?: string; field?: string; fields?: FieldProblem[] } };
type Answer = { status: number; data?: Record<string, unknown> | null; errors?: ErrorBody[] };

const codes = (answer: { errors?: ErrorBody[] }) => answer.errors?.map((error) => error.extensions?.code);
const fieldsOf = (answer: Answer) => answer.errors?.[0]?.extensions?.fields?.map((problem) => problem.field);

/** What a submission must leave behind when it is refused: no job, no queue entry, no staging. */
function expectNothingStored(server: TestServer): void {
  const jobs = path.join(server.dataDir, 'training', 'jobs');
  expect(existsSync(jobs) ? readdirSync(jobs) : []).toEqual([]);
  expect(existsSync(path.join(server.dataDir, 'training', 'queue.json'))).toBe(false);
  const uploads = path.join(server.dataDir, '.work', 'uploads');
  expect(existsSync(uploads) ? readdirSync(uploads) : []).toEqual([]);
}

describe('validation of submitTraining', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('names every invalid hyperparameter and the missing dataset at once, each with its path', async () => {
    const input = textInput({
      batchSize: 999,
      epochs: 0,
      dataSplit: '99 : 1',
      reduceLrOnPlateau: { factor: 0.5, patience: 1, minLr: 0.5 },
    });
    const answer: Answer = await server.graphql(SUBMIT, { variables: { input } });
    expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
    const error = answer.errors![0]!;
    expect(error.extensions?.field).toBe('batchSize');
    expect(fieldsOf(answer)).toEqual(['batchSize', 'epochs', 'dataSplit', 'reduceLrOnPlateau.minLr', 'dataset']);
    for (const problem of error.extensions?.fields ?? []) {
      expect(problem.message).not.toMatch(/^\S+: /); // shown beside its field: no field name in front
      expect(error.message).toContain(problem.message);
    }
    expectNothingStored(server);
  });

  it('names every bad class name and class size of the classes input, with the hyperparameters, before reading a file', async () => {
    const image = await classImage(0, 0);
    const classes = [
      { name: '../etc', images: [null, null] },
      { name: 'ok', images: [null] },
      { name: 'OK', images: [null, null] },
    ];
    const files = classes.flatMap((c, i) =>
      c.images.map((_, j) => ({ path: `variables.input.classes.${i}.images.${j}`, filename: `${i}-${j}.png`, content: image })),
    );
    const answer: Answer = await multipart(
      server,
      SUBMIT,
      { input: imageInput({ learningRate: 5, classes }) },
      files,
    );
    expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
    expect(answer.errors?.[0]?.extensions?.field).toBe('learningRate');
    expect(fieldsOf(answer)).toEqual([
      'learningRate',
      'classes[0].name',
      'classes[0].images',
      'classes[1].images',
      'classes[2].name',
      'classes[2].images',
    ]);
    expectNothingStored(server);
  });

  it('lists each undecodable image of the classes input under its own path', async () => {
    const images = async (index: number) => Promise.all(Array.from({ length: 10 }, (_, i) => classImage(index, i)));
    const classes = [
      { name: 'red', images: await images(0) },
      { name: 'blue', images: await images(1) },
    ];
    classes[0]!.images[3] = Buffer.from('not a picture');
    classes[1]!.images[7] = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>');
    const answer: Answer = await multipart(
      server,
      SUBMIT,
      { input: imageInput({ classes: classes.map((c) => ({ name: c.name, images: c.images.map(() => null) })) }) },
      classes.flatMap((c, i) =>
        c.images.map((content, j) => ({ path: `variables.input.classes.${i}.images.${j}`, filename: `${c.name}-${j}.png`, content })),
      ),
    );
    expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
    expect(answer.errors?.[0]?.extensions?.field).toBe('classes[0].images[3]');
    expect(fieldsOf(answer)).toEqual(['classes[0].images[3]', 'classes[1].images[7]']);
    expectNothingStored(server);
  });

  it('gives a single problem the same shape: field, and fields holding it alone', async () => {
    const answer: Answer = await multipart(server, SUBMIT, { input: textInput({ taskName: '../x' }) }, [
      { path: 'variables.input.dataset', filename: 'reviews.csv', content: sentimentCsv() },
    ]);
    expect(answer.errors?.[0]?.extensions).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'taskName',
      fields: [{ field: 'taskName', message: expect.stringMatching(/^must be 1–50 characters/) }],
    });
  });
});

describe('a variable that misses a required field', () => {
  const SUBMIT_AS_I = 'mutation($i: TrainingInput!) { submitTraining(input: $i) { token } }';
  const SECRET_NAME = 'secret-task-name-7q3';

  describe.each(['development', 'production'] as const)('in %s', (env) => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ config: { env } });
    });
    afterAll(() => server.stop());

    it('is named, in the message and as the field, echoing no value', async () => {
      const { epochs: _left, ...input } = textInput({ taskName: SECRET_NAME });
      const response = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: SUBMIT_AS_I, variables: { i: input } }),
      });
      const text = await response.text();
      const answer = JSON.parse(text) as Answer;
      expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
      expect(answer.errors?.[0]?.message).toBe(
        'Variable "$i" has an invalid value: Field "epochs" of required type "Int!" was not provided.',
      );
      expect(answer.errors?.[0]?.extensions?.field).toBe('epochs');
      expect(text).not.toContain(SECRET_NAME);
    });

    it('is named with its path inside a nested input, one error per missing field', async () => {
      const { batchSize: _left, ...input } = textInput({
        taskName: SECRET_NAME,
        reduceLrOnPlateau: { factor: 0.5, patience: 1 },
      });
      const answer: Answer = await server.graphql(SUBMIT_AS_I, { variables: { i: input } });
      expect(codes(answer)).toEqual(['BAD_USER_INPUT', 'BAD_USER_INPUT']);
      expect(answer.errors?.map((error) => error.extensions?.field).sort()).toEqual(['batchSize', 'reduceLrOnPlateau.minLr']);
      expect(answer.errors?.map((error) => error.message).join('\n')).toContain(
        'Variable "$i" has an invalid value at "i.reduceLrOnPlateau": Field "minLr" of required type "Float!" was not provided.',
      );
      expect(JSON.stringify(answer)).not.toContain(SECRET_NAME);
    });

    it('is named the same over graphql-ws', async () => {
      const { epochs: _left, ...input } = textInput({ taskName: SECRET_NAME });
      const client = createClient({ url: server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
      try {
        const result = await new Promise<unknown>((resolve, reject) => {
          client.subscribe({ query: SUBMIT_AS_I, variables: { i: input } }, { next: resolve, error: resolve, complete: () => reject(new Error('no result')) });
        });
        const errors = (Array.isArray(result) ? result : (result as { errors?: ErrorBody[] }).errors) as ErrorBody[];
        expect(errors.map((error) => [error.extensions?.code, error.extensions?.field])).toEqual([['BAD_USER_INPUT', 'epochs']]);
        expect(JSON.stringify(result)).not.toContain(SECRET_NAME);
      } finally {
        await client.dispose();
      }
    });

    it('of the wrong type is named as the field, its value still not echoed', async () => {
      const answer: Answer = await server.graphql(SUBMIT_AS_I, {
        variables: { i: textInput({ taskName: SECRET_NAME, batchSize: SECRET_NAME }) },
      });
      expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
      expect(answer.errors?.[0]?.extensions?.field).toBe('batchSize');
      expect(JSON.stringify(answer)).not.toContain(SECRET_NAME);
    });
  });
});

describe('job tokens', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  const UNKNOWN = 'textClassification-none-00000000000000000000';

  it('answer JOB_NOT_FOUND on trainingJob and cancelTraining when no job has the token', async () => {
    for (const token of [UNKNOWN, '../status', 'x'.repeat(5_000)]) {
      const job: Answer = await server.graphql('query($t: ID!) { trainingJob(token: $t) { state } }', { variables: { t: token } });
      expect(codes(job)).toEqual(['JOB_NOT_FOUND']);
      const cancel: Answer = await server.graphql('mutation($t: ID!) { cancelTraining(token: $t) { state } }', {
        variables: { t: token },
      });
      expect(codes(cancel)).toEqual(['JOB_NOT_FOUND']);
    }
  });

  it('answer JOB_NOT_FOUND on a trainingProgress subscription over graphql-ws', async () => {
    const subscription = subscribe(server, 'subscription($t: ID!) { trainingProgress(token: $t) { state } }', { t: UNKNOWN });
    try {
      await expect(subscription.completed).rejects.toThrow('JOB_NOT_FOUND');
    } finally {
      await subscription.close();
    }
  });
});

describe('an error in one root field', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('leaves the other root fields of the query their data', async () => {
    const answer: Answer = await server.graphql('{ status { status } model(token: "x") { token } }');
    expect(answer.data).toEqual({ status: { status: 'SLEEPING' }, model: null });
    expect(answer.errors?.map((error) => [error.path, error.extensions?.code])).toEqual([[['model'], 'MODEL_NOT_FOUND']]);
  });

  it('leaves the mutations that ran before it their results', async () => {
    const answer: Answer = await server.graphql(
      'mutation { a: setDevMode(enabled: false) { devMode } b: deleteModel(token: "x") c: setCleanup(active: true) { cleanupActive } }',
      { key: ADMIN_KEY },
    );
    expect(answer.data).toEqual({ a: { devMode: false }, b: null, c: { cleanupActive: true } });
    expect(codes(answer)).toEqual(['MODEL_NOT_FOUND']);
  });
});

describe('automatic persisted queries', () => {
  const QUERY = '{ status { status } }';
  let url: string;
  let stop: () => Promise<void>;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        callback();
      },
    });
    const dataDir = makeDataDir();
    const app = buildApp({
      env: { FLASH_ADMIN_KEY: ADMIN_KEY },
      config: { env: 'test', host: '127.0.0.1', port: 0, dataDir },
      logger: pino({ level: 'info' }, stream),
    });
    ({ url } = await app.start());
    stop = async () => {
      await app.stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
  });
  afterAll(() => stop());

  const send = async (body: unknown) => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, ...((await response.json()) as Omit<Answer, 'status'>) };
  };
  const persisted = (sha256Hash: unknown, version: unknown = 1) => ({ persistedQuery: { version, sha256Hash } });

  it.each([
    ['a hash that does not match its query', { query: QUERY, extensions: persisted('0'.repeat(64)) }, 400, 'BAD_REQUEST', 'provided sha does not match query'],
    ['an unsupported version', { query: QUERY, extensions: persisted('0'.repeat(64), 2) }, 400, 'BAD_REQUEST', 'Unsupported persisted query version'],
    ['a hash never registered', { extensions: persisted('f'.repeat(64)) }, 200, 'PERSISTED_QUERY_NOT_FOUND', 'PersistedQueryNotFound'],
    ['a hash that is not a string', { extensions: persisted({ not: 'a hash' }) }, 200, 'PERSISTED_QUERY_NOT_FOUND', 'PersistedQueryNotFound'],
  ])('answer %s with Apollo’s own code and message, logging no error', async (_label, body, status, code, message) => {
    lines.length = 0;
    const answer = await send(body);
    expect({ status: answer.status, codes: codes(answer), message: answer.errors?.[0]?.message }).toEqual({
      status,
      codes: [code],
      message,
    });
    expect(lines.filter((line) => Number(line.level) >= 50)).toEqual([]);
    expect(JSON.stringify(lines)).not.toContain('stack');
  });
});
