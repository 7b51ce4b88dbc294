import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { fetchFromAnotherProcess, type ProcessAnswer, type ProcessRequest } from './helpers/fetch-process';
import { ADMIN_KEY, startTestServer, type TestServer } from './helpers/server';
import { multipart, sentimentCsv, SUBMIT, textInput, waitForState } from './helpers/training';

/*
 * Refusals that come before the server has read a multipart request's files (and errors before
 * GraphQL runs) are ready while the client is still sending. Every client must get that answer
 * as the coded GraphQL error, not a broken connection: Node's fetch reports "fetch failed"
 * (EPIPE) when the server closes the connection on unread data.
 */

const MB = 1024 * 1024;
const SIZES = [3 * MB, 20 * MB];
const PREDICT = `mutation($t: ID!, $f: Upload) { classifyImage(token: $t, image: $f) { label } }`;
const STATUS = '{ status { status } }';

/** A trainer that never finishes: a submitted job stays running until the server stops. */
function sleepingTrainer(folder: string): string {
  const trainer = path.join(folder, 'python');
  writeFileSync(trainer, '#!/bin/sh\nexec sleep 120\n');
  chmodSync(trainer, 0o755);
  return trainer;
}

interface Refusal {
  operations: ProcessRequest['operations'];
  map: Record<string, string[]>;
  headers?: Record<string, string>;
}

const submission = (overrides: Record<string, unknown> = {}): Refusal => ({
  operations: { query: SUBMIT, variables: { input: textInput(overrides) } },
  map: { 0: ['variables.input.dataset'] },
});

/** The refused upload at 3 MB and at 20 MB, then a plain query, all from one other process. */
async function refuseEachSize(server: TestServer, refusal: Refusal): Promise<{ refused: ProcessAnswer[]; next: ProcessAnswer }> {
  const answers = await fetchFromAnotherProcess([
    ...SIZES.map((size) => ({
      url: server.url,
      headers: refusal.headers ?? { 'apollo-require-preflight': 'true' },
      operations: refusal.operations,
      map: refusal.map,
      file: { name: 'big.csv', size },
    })),
    { url: server.url, operations: { query: STATUS } },
  ]);
  return { refused: answers.slice(0, SIZES.length), next: answers[SIZES.length] as ProcessAnswer };
}

const codes = (answers: ProcessAnswer[]) => answers.map((answer) => answer.failed ?? answer.body?.errors?.[0]?.extensions?.code);
const fields = (answers: ProcessAnswer[]) => answers.map((answer) => answer.body?.errors?.[0]?.extensions?.field);

describe('a multipart request refused before its files were read', () => {
  let server: TestServer;
  let folder: string;

  beforeAll(async () => {
    folder = mkdtempSync(path.join(tmpdir(), 'flash-uploads-'));
    server = await startTestServer({ env: { FLASH_TRAINER_PYTHON: sleepingTrainer(folder) } });
  });
  afterAll(async () => {
    await server.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('answers BAD_USER_INPUT naming the field to uploads of 3 and 20 MB with an invalid input, then the next request', async () => {
    const { refused, next } = await refuseEachSize(server, submission({ batchSize: 100_000 }));
    expect(codes(refused)).toEqual(['BAD_USER_INPUT', 'BAD_USER_INPUT']);
    expect(fields(refused)).toEqual(['batchSize', 'batchSize']);
    expect(next.body?.data).toEqual({ status: { status: 'SLEEPING' } });
  });

  it('answers MODEL_NOT_FOUND to images of 3 and 20 MB sent to an unknown model', async () => {
    const { refused, next } = await refuseEachSize(server, {
      operations: { query: PREDICT, variables: { t: 'imageClassification-none-0000', f: null } },
      map: { 0: ['variables.f'] },
    });
    expect(codes(refused)).toEqual(['MODEL_NOT_FOUND', 'MODEL_NOT_FOUND']);
    expect(next.body?.data).toEqual({ status: { status: 'SLEEPING' } });
  });

  it('answers MAINTENANCE to uploads of 3 and 20 MB in dev mode', async () => {
    await server.graphql('mutation { setDevMode(enabled: true) { devMode } }', { key: ADMIN_KEY });
    try {
      const { refused } = await refuseEachSize(server, submission());
      expect(codes(refused)).toEqual(['MAINTENANCE', 'MAINTENANCE']);
    } finally {
      await server.graphql('mutation { setDevMode(enabled: false) { devMode } }', { key: ADMIN_KEY });
    }
  });

  it('answers BAD_REQUEST to uploads of 3 and 20 MB without the CSRF-preventing header', async () => {
    const { refused, next } = await refuseEachSize(server, { ...submission(), headers: {} });
    expect(refused.map((answer) => answer.status)).toEqual([400, 400]);
    expect(codes(refused)).toEqual(['BAD_REQUEST', 'BAD_REQUEST']);
    expect(next.body?.data).toEqual({ status: { status: 'SLEEPING' } });
  });

  it('answers 413 BAD_REQUEST before GraphQL to uploads of 3 and 20 MB whose map names too many files', async () => {
    const map: Record<string, string[]> = { 0: ['variables.f'] };
    for (let i = 1; i <= 1001; i++) map[String(i)] = [`variables.extra${i}`];
    const { refused, next } = await refuseEachSize(server, {
      operations: { query: PREDICT, variables: { t: 'imageClassification-none-0000', f: null } },
      map,
    });
    expect(refused.map((answer) => answer.status)).toEqual([413, 413]);
    expect(codes(refused)).toEqual(['BAD_REQUEST', 'BAD_REQUEST']);
    expect(next.body?.data).toEqual({ status: { status: 'SLEEPING' } });
  });

  it('takes the next request on a kept-alive connection, over the same socket, after a refused 20 MB upload', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const refused = await httpRequest(server, agent, multipartBody(submission({ batchSize: 100_000 }), 20 * MB));
      expect(refused.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const next = await httpRequest(server, agent, { type: 'application/json', body: Buffer.from(JSON.stringify({ query: STATUS })) });
      expect(next).toMatchObject({ status: 200, reusedSocket: true, body: { data: { status: { status: 'SLEEPING' } } } });
    } finally {
      agent.destroy();
    }
  });

  it('answers a client that asks to close the connection after a refused 20 MB upload', async () => {
    const agent = new http.Agent({ keepAlive: false });
    const refused = await httpRequest(server, agent, multipartBody(submission({ batchSize: 100_000 }), 20 * MB), {
      connection: 'close',
    });
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('still accepts a valid upload after refused ones', async () => {
    await refuseEachSize(server, submission({ batchSize: 100_000 }));
    const answer = await multipart<{ submitTraining: { token: string; state: string } }>(server, SUBMIT, { input: textInput() }, [
      { path: 'variables.input.dataset', filename: 'reviews.csv', content: sentimentCsv() },
    ]);
    expect(answer.data?.submitTraining.state).toBe('QUEUED');
    await server.graphql('mutation($t: ID!) { cancelTraining(token: $t) { state } }', {
      variables: { t: answer.data?.submitTraining.token },
    });
  });
});

describe('a multipart request refused for the size of its file', () => {
  // The file is cut at the limit and refused while the rest of it is still on its way.
  for (const [size, limitMb] of [
    [3 * MB, 2],
    [20 * MB, 16],
  ] as const) {
    it(`answers BAD_USER_INPUT naming the dataset to a ${size / MB} MB CSV over a ${limitMb} MB limit`, async () => {
      const server = await startTestServer({ env: { FLASH_MAX_UPLOAD_MB: String(limitMb) } });
      try {
        const refusal = submission();
        const [answer] = await fetchFromAnotherProcess([
          { url: server.url, headers: { 'apollo-require-preflight': 'true' }, ...refusal, file: { name: 'big.csv', size } },
        ]);
        expect(codes([answer as ProcessAnswer])).toEqual(['BAD_USER_INPUT']);
        expect(fields([answer as ProcessAnswer])).toEqual(['dataset']);
      } finally {
        await server.stop();
      }
    });
  }
});

describe('a refused multipart request whose body goes on past the upload size limit', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ env: { FLASH_MAX_UPLOAD_MB: '1' } });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('is cut off: the server closes the connection without waiting for the rest of the body', async () => {
    const { type, body } = multipartBody(submission({ batchSize: 100_000 }), 20 * MB);
    const { port } = new URL(server.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    const closed = new Promise<string>((resolve) => {
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(received));
    });
    socket.write(
      `POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\n` +
        'apollo-require-preflight: true\r\n\r\n',
    );
    // 3 MB of the 20 the headers announce, then nothing more: the server stops reading at 1 MB past its answer.
    socket.write(body.subarray(0, 3 * MB));
    const received = await closed;
    // Closing on unread data resets the connection, which may cost the client the answer: when it
    // did arrive, it said that the connection closes.
    if (received) expect(received).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\nConnection: close\r\n[\s\S]*"BAD_USER_INPUT"/i);
  });
});

describe('a multipart request refused while the queue is full', () => {
  let server: TestServer;
  let folder: string;

  beforeAll(async () => {
    folder = mkdtempSync(path.join(tmpdir(), 'flash-busy-'));
    server = await startTestServer({ env: { FLASH_MAX_QUEUE: '0', FLASH_TRAINER_PYTHON: sleepingTrainer(folder) } });
    const running = await multipart<{ submitTraining: { token: string } }>(server, SUBMIT, { input: textInput() }, [
      { path: 'variables.input.dataset', filename: 'reviews.csv', content: sentimentCsv() },
    ]);
    await waitForState(server, running.data?.submitTraining.token as string, ['PREPARING', 'TRAINING']);
  });
  afterAll(async () => {
    await server.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('answers SERVER_BUSY to uploads of 3 and 20 MB', async () => {
    const { refused, next } = await refuseEachSize(server, submission());
    expect(codes(refused)).toEqual(['SERVER_BUSY', 'SERVER_BUSY']);
    expect(next.body?.data).toEqual({ status: { status: 'ACTIVE' } });
  });
});

/** A GraphQL multipart request body with one file of `size` bytes. */
function multipartBody(refusal: Refusal, size: number): { type: string; body: Buffer } {
  const boundary = '----flash-test-boundary';
  const field = (name: string, value: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const head =
    field('operations', JSON.stringify(refusal.operations)) +
    field('map', JSON.stringify(refusal.map)) +
    `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n`;
  return {
    type: `multipart/form-data; boundary=${boundary}`,
    body: Buffer.concat([Buffer.from(head), Buffer.alloc(size, 0x61), Buffer.from(`\r\n--${boundary}--\r\n`)]),
  };
}

/** A POST with node:http on `agent`; says whether it went over a socket an earlier request used. */
function httpRequest(
  server: TestServer,
  agent: http.Agent,
  { type, body }: { type: string; body: Buffer },
  headers: Record<string, string> = {},
): Promise<{ status: number; reusedSocket: boolean; body: NonNullable<ProcessAnswer['body']> }> {
  return new Promise((resolve, reject) => {
    const request = http.request(server.url, {
      method: 'POST',
      agent,
      headers: { 'content-type': type, 'content-length': body.length, 'apollo-require-preflight': 'true', ...headers },
    });
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, reusedSocket: request.reusedSocket, body: JSON.parse(text) });
        } catch (error) {
          reject(error);
        }
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}
