import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { startTestServer, type TestServer } from './helpers/server';
import { sentimentCsv } from './helpers/training';
import { GatedStore } from './hostile/gated-store';
import { type Answer, graphql, readJson, type Submitted, submit } from './hostile/requests';

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
