import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';

import type { FormattedExecutionResult } from 'graphql';
import { createClient } from 'graphql-ws';
import pino from 'pino';
import WebSocket from 'ws';

import { ConfigError, loadConfig } from '../src/config';
import { formatCreated } from '../src/documents';
import { ADMIN_KEY, makeDataDir, startTestServer, type TestServer, type TestServerOptions } from './helpers/server';

/**
 * What client developers meet at the edges of the API: credentials over WebSocket, CORS, and
 * the download route (ranges, aborted downloads).
 */

type Result = FormattedExecutionResult<Record<string, unknown>, { code?: string }>;

/** Runs one operation over graphql-ws with the connection params given. */
async function overWebSocket(server: TestServer, query: string, connectionParams: Record<string, unknown>): Promise<Result> {
  const client = createClient({ url: server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams });
  try {
    return await new Promise<Result>((resolve, reject) => {
      client.subscribe<Record<string, unknown>, { code?: string }>({ query }, { next: resolve, error: reject, complete: () => undefined });
    });
  } finally {
    await client.dispose();
  }
}

describe('admin credentials over WebSocket', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it.each(['authorization', 'Authorization', 'AUTHORIZATION', 'AuThOrIzAtIoN'])(
    'are taken from the connection param %s',
    async (name) => {
      const result = await overWebSocket(server, '{ models { token } }', { [name]: `Bearer ${ADMIN_KEY}` });
      expect(result).toEqual({ data: { models: [] } });
    },
  );

  it('when missing, answer UNAUTHENTICATED saying to send them in the connection params, not as a header', async () => {
    for (const params of [{}, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } }]) {
      const result = await overWebSocket(server, '{ models { token } }', params);
      expect(result.errors?.map((error) => error.extensions?.code)).toEqual(['UNAUTHENTICATED']);
      expect(result.errors?.[0]?.message).toContain('connection params');
      expect(result.errors?.[0]?.message).toContain('{ "authorization": "Bearer <key>" }');
    }
    // Over HTTP the header is the way, and the message says so.
    const http = await server.graphql('{ models { token } }');
    expect(http.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(http.errors?.[0]?.message).toContain('Authorization: Bearer <key>');
  });
});

const MODEL = 'imageClassification-cats-clientaccess00000001';
/** Weights bigger than the socket buffers, so that a download can be cut off in the middle. */
const WEIGHTS = Buffer.from(Array.from({ length: 8 * 1024 * 1024 }, (_, i) => (i * 7) % 251));

/** A server with one downloadable model; `lines` is what it logged. */
async function serverWithModel(options: TestServerOptions = {}) {
  const dataDir = makeDataDir();
  mkdirSync(path.join(dataDir, 'imageclassification'));
  writeFileSync(path.join(dataDir, 'imageclassification', `${MODEL}.onnx`), WEIGHTS);
  writeFileSync(path.join(dataDir, 'imageclassification', `${MODEL}.pt`), 'torchscript');
  writeFileSync(
    path.join(dataDir, 'inference.json'),
    JSON.stringify({
      [MODEL]: {
        task_type: 'imageclassification', model_filename: `imageclassification/${MODEL}.pt`,
        model_filename_onnx: `imageclassification/${MODEL}.onnx`, classes: ['a', 'b'], downloadable: true, accuracy: 0.9,
        accuracy_plot: '', created: formatCreated(new Date()),
      },
    }),
  );
  const lines: { level: number; msg: string; err?: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  const server = await startTestServer({ ...options, dataDir, logger: pino({ level: 'debug' }, stream) });
  const link = async () => {
    const answer = await server.graphql<{ downloadModel: { url: string } }>(
      `mutation($t: ID!) { downloadModel(token: $t, format: ONNX) { url } }`,
      { variables: { t: MODEL } },
    );
    return answer.data?.downloadModel.url as string;
  };
  return {
    server,
    lines,
    link,
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const STATUS = JSON.stringify({ query: '{ status { devMode } }' });
const postFrom = (server: TestServer, origin: string) =>
  fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json', origin }, body: STATUS });
const preflight = (url: string, origin: string, headers: string) =>
  fetch(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': headers },
  });

describe('CORS', () => {
  it('lets any origin call the API outside production, and read x-request-id', async () => {
    const { server, link, stop } = await serverWithModel();
    try {
      const answer = await postFrom(server, 'https://app.example');
      expect(answer.headers.get('access-control-allow-origin')).toBe('*');
      expect(answer.headers.get('access-control-expose-headers')?.split(',')).toContain('x-request-id');
      const before = await preflight(server.url, 'https://app.example', 'content-type,authorization,apollo-require-preflight');
      expect(before.status).toBe(204);
      expect(before.headers.get('access-control-allow-origin')).toBe('*');

      const download = await fetch(await link(), { headers: { origin: 'https://app.example' } });
      expect(download.status).toBe(200);
      expect(download.headers.get('access-control-allow-origin')).toBe('*');
      expect(download.headers.get('access-control-expose-headers')?.split(',')).toEqual(
        expect.arrayContaining(['x-request-id', 'content-disposition', 'content-range']),
      );
      await download.arrayBuffer();
      const downloadPreflight = await preflight(await link(), 'https://app.example', 'range');
      expect(downloadPreflight.status).toBe(204);
      expect(downloadPreflight.headers.get('access-control-allow-origin')).toBe('*');
    } finally {
      await stop();
    }
  });

  it('lets only the origins in FLASH_CORS_ORIGINS call the API, downloads included', async () => {
    const { server, link, stop } = await serverWithModel({ env: { FLASH_CORS_ORIGINS: 'https://app.example, http://localhost:3000' } });
    try {
      for (const origin of ['https://app.example', 'http://localhost:3000']) {
        const answer = await postFrom(server, origin);
        expect(answer.headers.get('access-control-allow-origin')).toBe(origin);
        expect(answer.headers.get('vary')).toMatch(/origin/i);
      }
      const refused = await postFrom(server, 'https://evil.example');
      expect(refused.headers.get('access-control-allow-origin')).toBeNull();
      const download = await fetch(await link(), { headers: { origin: 'https://evil.example' } });
      expect(download.headers.get('access-control-allow-origin')).toBeNull();
      await download.arrayBuffer();
      const allowed = await fetch(await link(), { headers: { origin: 'https://app.example' } });
      expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
      await allowed.arrayBuffer();
    } finally {
      await stop();
    }
  });

  it('lets no other origin call the API in production unless FLASH_CORS_ORIGINS says so', async () => {
    const { server, stop } = await serverWithModel({ config: { env: 'production' } });
    try {
      const answer = await postFrom(server, 'https://app.example');
      expect(answer.status).toBe(200);
      expect(answer.headers.get('access-control-allow-origin')).toBeNull();
      expect(answer.headers.get('x-request-id')).toBeTruthy();
    } finally {
      await stop();
    }
  });

  it('refuses a FLASH_CORS_ORIGINS entry that is not an origin', () => {
    expect(loadConfig({}).corsOrigins).toBe('*');
    expect(loadConfig({ NODE_ENV: 'production' }).corsOrigins).toEqual([]);
    expect(loadConfig({ NODE_ENV: 'production', FLASH_CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    for (const value of ['app.example', 'https://app.example/path', 'ftp://app.example', 'https://a.example,*']) {
      expect(() => loadConfig({ FLASH_CORS_ORIGINS: value })).toThrow(ConfigError);
    }
  });
});

describe('downloads', () => {
  let model: Awaited<ReturnType<typeof serverWithModel>>;
  beforeAll(async () => {
    model = await serverWithModel();
  });
  afterAll(() => model.stop());

  it('answer a Range request with 206 and the bytes asked for', async () => {
    const url = await model.link();
    const whole = await fetch(url);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await whole.arrayBuffer()).equals(WEIGHTS)).toBe(true);

    const size = WEIGHTS.length;
    for (const [range, start, end] of [
      ['bytes=0-3', 0, 3],
      ['bytes=1000-', 1000, size - 1],
      ['bytes=-16', size - 16, size - 1],
      ['bytes=10-20, 15-30', 10, 30],
    ] as const) {
      const part = await fetch(url, { headers: { range } });
      expect({ range, status: part.status, contentRange: part.headers.get('content-range') }).toEqual({
        range,
        status: 206,
        contentRange: `bytes ${start}-${end}/${size}`,
      });
      expect(part.headers.get('content-length')).toBe(String(end - start + 1));
      expect(Buffer.from(await part.arrayBuffer()).equals(WEIGHTS.subarray(start, end + 1))).toBe(true);
    }
  });

  it('answer 416 to a range past the end, and the whole file to a range they cannot serve', async () => {
    const url = await model.link();
    const past = await fetch(url, { headers: { range: `bytes=${WEIGHTS.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${WEIGHTS.length}`);
    await past.arrayBuffer();
    for (const range of ['bytes=0-1,100-101', 'lines=1-2', 'bytes=oops']) {
      const whole = await fetch(url, { headers: { range } });
      expect({ range, status: whole.status }).toEqual({ range, status: 200 });
      expect((await whole.arrayBuffer()).byteLength).toBe(WEIGHTS.length);
    }
  });

  it('cut off by the client are not logged as errors', async () => {
    const url = await model.link();
    await new Promise<void>((resolve, reject) => {
      const req = request(url, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
      req.end();
    });
    // Both the access log and the route have seen the connection go.
    const seen = () => ['request aborted', 'Download cut off by the client'].every((msg) => model.lines.some((line) => line.msg === msg));
    const deadline = Date.now() + 5_000;
    while (!seen() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen()).toBe(true);
    expect(model.lines.filter((line) => line.level >= 40)).toEqual([]);
    // The server goes on serving.
    expect((await fetch(url, { headers: { range: 'bytes=0-0' } })).status).toBe(206);
  });
});
