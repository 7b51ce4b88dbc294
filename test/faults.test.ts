import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import S3rver from 's3rver';

import type { StoreConfig } from '../src/config';
import { CLEANUP, DocumentStore, formatCreated, INFERENCE, STATUS } from '../src/documents';
import { FsStore, S3Store } from '../src/store';
import { seedModels } from './helpers/records';
import { ADMIN_KEY, makeDataDir, startTestServer, type TestServer } from './helpers/server';
import { sentimentCsv } from './helpers/training';
import { GatedStore } from './hostile/gated-store';
import {
  type Answer,
  codes,
  graphql,
  readJson,
  stagingLeftovers,
  submit,
  type Submitted,
  waitUntil,
} from './hostile/requests';

/**
 * Issue 7's faults and concurrency, through the real server: the bucket going away and coming
 * back, a corrupted document, a burst of submissions against a bounded queue, and concurrent
 * writers of the same documents. (The trainer killed, hanging or interrupted by a restart is
 * covered by `training.test.ts`.)
 */

jest.setTimeout(60_000);

const STATUS_QUERY = '{ status { status devMode cleanupActive } }';
const csvDataset = (rows = 4) => ({
  kind: 'csv-bytes' as const,
  filename: 'reviews.csv',
  build: () => Buffer.from(sentimentCsv(rows)),
});

// ---------------------------------------------------------------------------------------------

describe('the S3-compatible store stopped mid-run', () => {
  const BUCKET = 'flash-outage';
  let directory: string;
  let s3: S3rver;
  let port: number;
  let server: TestServer;

  const startS3 = async () => {
    s3 = new S3rver({ address: '127.0.0.1', port, silent: true, directory });
    port = (await s3.run()).port;
  };
  const storeConfig = (): Extract<StoreConfig, { kind: 's3' }> => ({
    kind: 's3',
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    checksums: 'WHEN_REQUIRED',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  /** The platform documents as the bucket holds them, read by a client of its own. */
  const bucketDocuments = async () => {
    const store = new S3Store(storeConfig());
    try {
      const read = async (key: string) => JSON.parse(((await store.get(key))?.body ?? 'null').toString());
      const [status, cleanup, inference] = await Promise.all(['status.json', 'cleanup.json', 'inference.json'].map(read));
      return { status, cleanup, inference };
    } finally {
      await store.close();
    }
  };

  beforeAll(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'flash-s3-outage-'));
    port = 0;
    await startS3();
    server = await startTestServer({ config: { store: storeConfig() } });
  });
  afterAll(async () => {
    await server.stop();
    await s3.close();
    rmSync(directory, { recursive: true, force: true });
  });

  /** STORE_UNAVAILABLE, with nothing of the SDK, the socket or the address in the answer. */
  const expectUnavailable = (answer: Answer) => {
    expect(codes(answer)).toEqual(['STORE_UNAVAILABLE']);
    expect(answer.errors?.[0]?.message).toBe('The platform store is unavailable; try again shortly.');
    expect(answer.text).not.toMatch(/ECONN|127\.0\.0\.1|socket|\$metadata|stack|S3rver/i);
    expect(answer.text).not.toContain(String(port));
  };

  it('answers STORE_UNAVAILABLE and a 503 readiness while it is down, changes nothing, and recovers by itself', async () => {
    const set = (devMode: boolean) =>
      graphql<{ setDevMode: { devMode: boolean } }>(server, `mutation { setDevMode(enabled: ${devMode}) { devMode } }`, {
        key: ADMIN_KEY,
      });
    expect((await set(true)).data).toEqual({ setDevMode: { devMode: true } });
    const before = await bucketDocuments();

    await s3.close();
    expectUnavailable(await graphql(server, STATUS_QUERY));
    expectUnavailable(await set(false));
    expectUnavailable(await graphql(server, '{ model(token: "imageClassification-x-00000000000000000000") { token } }'));
    expectUnavailable(await graphql(server, '{ models { token } }', { key: ADMIN_KEY }));
    expectUnavailable(await submit(server, csvDataset()));
    expect(stagingLeftovers(server.dataDir)).toEqual([]);
    const ready = await fetch(`${server.origin}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'unavailable', store: 's3' });
    expect((await fetch(`${server.origin}/healthz`)).status).toBe(200);

    // The same server, port and folder come back: the platform picks up without a restart.
    await startS3();
    const answers = async () => (await graphql(server, STATUS_QUERY)).errors === undefined;
    await waitUntil(answers, 15_000, 'the store to answer again');
    expect(await bucketDocuments()).toEqual(before);
    expect((await set(false)).data).toEqual({ setDevMode: { devMode: false } });
    expect((await fetch(`${server.origin}/readyz`)).status).toBe(200);
    expect(await bucketDocuments()).toEqual({ ...before, status: { ...before.status, dev_mode: false } });
  });
});

// ---------------------------------------------------------------------------------------------

describe('a corrupted document in the store', () => {
  const MODEL = 'imageClassification-cats-a1b2c3d4e5f6g7h8i9j0';
  const BROKEN = '{"imageClassification-cats-a1b2c3d4e5f6g7h8i9j0": {"task_type": "imageclass';
  let server: TestServer;
  const inferencePath = () => path.join(server.dataDir, 'inference.json');

  beforeAll(async () => {
    server = await startTestServer();
    seedModels(server.dataDir, [{ token: MODEL, createdHoursAgo: 5 }]);
  });
  afterAll(() => server.stop());

  const expectInvalid = (answer: Answer, document: string) => {
    expect(codes(answer)).toEqual(['DOCUMENT_INVALID']);
    expect(answer.errors?.[0]?.extensions?.document).toBe(document);
    expect(answer.errors?.[0]?.message).toContain(document);
    expect(answer.text).not.toContain(MODEL);
  };

  it('answers DOCUMENT_INVALID naming inference.json to every operation that needs it, and never overwrites it', async () => {
    writeFileSync(inferencePath(), BROKEN);
    expectInvalid(await graphql(server, `{ model(token: "${MODEL}") { token } }`), 'inference.json');
    expectInvalid(await graphql(server, '{ models { token } }', { key: ADMIN_KEY }), 'inference.json');
    expectInvalid(await graphql(server, 'mutation { runCleanup }', { key: ADMIN_KEY }), 'inference.json');
    expectInvalid(await graphql(server, `mutation { deleteModel(token: "${MODEL}") }`), 'inference.json');
    expectInvalid(await submit(server, csvDataset()), 'inference.json');
    expect(stagingLeftovers(server.dataDir)).toEqual([]);
    expect(existsSync(path.join(server.dataDir, 'training', 'jobs'))).toBe(false);
    expect(existsSync(path.join(server.dataDir, 'training', 'queue.json'))).toBe(false);
    expect(readFileSync(inferencePath(), 'utf8')).toBe(BROKEN);
    expect(existsSync(path.join(server.dataDir, 'imageclassification', `${MODEL}.onnx`))).toBe(true);
  });

  it('keeps everything that does not need it working', async () => {
    writeFileSync(inferencePath(), BROKEN);
    expect((await graphql(server, STATUS_QUERY)).data).toEqual({
      status: { status: 'SLEEPING', devMode: false, cleanupActive: true },
    });
    const devMode = await graphql(server, 'mutation { setDevMode(enabled: true) { devMode } }', { key: ADMIN_KEY });
    expect(devMode.data).toEqual({ setDevMode: { devMode: true } });
    await graphql(server, 'mutation { setDevMode(enabled: false) { devMode } }', { key: ADMIN_KEY });
    const cleanup = await graphql(server, 'mutation { setCleanup(active: false) { cleanupActive } }', { key: ADMIN_KEY });
    expect(cleanup.data).toEqual({ setCleanup: { cleanupActive: false } });
    await graphql(server, 'mutation { setCleanup(active: true) { cleanupActive } }', { key: ADMIN_KEY });
    const job = await graphql(server, '{ trainingJob(token: "textClassification-x-00000000000000000000") { state } }');
    expect(codes(job)).toEqual(['JOB_NOT_FOUND']);
    expect((await fetch(`${server.origin}/readyz`)).status).toBe(200);
    expect(readFileSync(inferencePath(), 'utf8')).toBe(BROKEN);
  });

  it('names the file and the key of a broken entry, never its token', async () => {
    seedModels(server.dataDir, [{ token: MODEL, createdHoursAgo: 1 }]);
    const inference = readJson(server.dataDir, 'inference.json');
    inference[MODEL].accuracy = 'very high';
    writeFileSync(inferencePath(), JSON.stringify(inference));
    const answer = await graphql(server, `{ model(token: "${MODEL}") { token } }`);
    expectInvalid(answer, 'inference.json');
    expect(answer.errors?.[0]?.message).toMatch(/key <token>\."accuracy"/);
  });

  it('answers DOCUMENT_INVALID naming training/queue.json to submissions, and only to them, when the queue is corrupted', async () => {
    seedModels(server.dataDir, [{ token: MODEL, createdHoursAgo: 1 }]);
    const queue = path.join(server.dataDir, 'training', 'queue.json');
    writeFileSync(queue, '[[[');
    try {
      expectInvalid(await submit(server, csvDataset()), 'training/queue.json');
      expect(stagingLeftovers(server.dataDir)).toEqual([]);
      expect(existsSync(path.join(server.dataDir, 'training', 'jobs'))).toBe(false);
      expect(readFileSync(queue, 'utf8')).toBe('[[[');
      expect((await graphql(server, `{ model(token: "${MODEL}") { token } }`)).data).toEqual({ model: { token: MODEL } });
      expect((await graphql(server, STATUS_QUERY)).errors).toBeUndefined();
    } finally {
      rmSync(queue);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('50 concurrent submissions with FLASH_MAX_QUEUE=5', () => {
  let dataDir: string;
  let store: GatedStore;
  let server: TestServer;

  beforeAll(async () => {
    dataDir = makeDataDir();
    store = new GatedStore(dataDir);
    server = await startTestServer({ dataDir, store, env: { FLASH_MAX_QUEUE: '5' } });
  });
  afterAll(async () => {
    store.refuse();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('admit exactly the running job and the five the queue holds, each once, and answer SERVER_BUSY to the rest', async () => {
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => submit(server, csvDataset(), { taskName: `burst ${i}` })),
    );
    const accepted = answers.flatMap((answer) => (answer.data?.submitTraining ? [(answer.data as Submitted).submitTraining] : []));
    const refused = answers.filter((answer) => !answer.data?.submitTraining);
    // None lost: every request is either admitted or told the server is busy.
    expect(accepted).toHaveLength(6);
    expect(refused.map(codes)).toEqual(Array.from({ length: 44 }, () => ['SERVER_BUSY']));
    expect(accepted.map((job) => job.queuePosition).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(accepted.every((job) => job.state === 'QUEUED')).toBe(true);

    const tokens = accepted.map((job) => job.token).sort();
    expect(new Set(tokens).size).toBe(6);
    // Tokens are credentials: at least 96 random bits each (20 characters of 36 symbols).
    for (const token of tokens) {
      const random = token.split('-').at(-1) as string;
      expect(random).toMatch(/^[a-z0-9]+$/);
      expect(random.length * Math.log2(36)).toBeGreaterThanOrEqual(96);
    }
    const queued = () => readJson(dataDir, 'training/queue.json').jobs as { token: string; running: unknown }[];
    expect(queued().map((job) => job.token).sort()).toEqual(tokens);
    expect(readdirSync(path.join(dataDir, 'training', 'jobs')).sort()).toEqual(tokens);
    for (const token of tokens) {
      expect(readdirSync(path.join(dataDir, 'training', 'jobs', token)).sort()).toEqual(['dataset.json', 'job.json']);
    }
    expect(stagingLeftovers(dataDir)).toEqual([]);

    // The head is running (held at the gate before its trainer starts); the status says so, without its token.
    await waitUntil(() => queued()[0]?.running !== null, 10_000, 'the supervisor to take the head of the queue');
    const status = await graphql(server, '{ status { status taskType } }');
    expect(status.data).toEqual({ status: { status: 'ACTIVE', taskType: 'TEXT_CLASSIFICATION' } });
    for (const token of tokens) expect(status.text).not.toContain(token);

    // Cancel them all: the waiting ones leave the queue, the running one stops before training.
    const cancel = (token: string) =>
      graphql<{ cancelTraining: { state: string } }>(server, 'mutation($t: ID!) { cancelTraining(token: $t) { state } }', {
        variables: { t: token },
      });
    const [head, ...waiting] = queued().map((job) => job.token);
    for (const token of waiting) expect((await cancel(token)).data).toEqual({ cancelTraining: { state: 'CANCELLED' } });
    const stopping = cancel(head as string);
    const requested = () => readJson(dataDir, `training/jobs/${head}/job.json`).cancel_requested === true;
    await waitUntil(requested, 10_000, 'the cancellation to be recorded');
    await new Promise((resolve) => setTimeout(resolve, 100));
    store.release();
    expect((await stopping).data).toEqual({ cancelTraining: { state: 'CANCELLED' } });

    expect(queued()).toEqual([]);
    expect(readJson(dataDir, 'status.json')).toEqual({ status: 'sleeping', token: '', task_type: '', dev_mode: false });
    for (const token of tokens) {
      expect(readJson(dataDir, `training/jobs/${token}/job.json`)).toMatchObject({ state: 'CANCELLED', history: [] });
    }
    expect(readJson(dataDir, 'inference.json')).toEqual({});
  });
});

// ---------------------------------------------------------------------------------------------

describe('concurrent writers of the platform documents', () => {
  const token = (name: string) => `imageClassification-${name}-${name.padEnd(20, '0')}`;
  const EXPIRED = ['old1', 'old2', 'old3', 'old4'].map(token);
  const FRESH = ['fresh1', 'fresh2'].map(token);
  const LOCK = 'textClassification-locked-l0l0l0l0l0l0l0l0l0l0';
  let server: TestServer;
  /** Another writer on the same store, as the supervisor's deploy and lock are. */
  let other: DocumentStore;

  beforeAll(async () => {
    server = await startTestServer();
    seedModels(server.dataDir, [
      ...EXPIRED.map((t) => ({ token: t, createdHoursAgo: 3 })),
      ...FRESH.map((t) => ({ token: t, createdHoursAgo: 0.5 })),
    ]);
    other = new DocumentStore(new FsStore(server.dataDir));
  });
  afterAll(() => server.stop());

  const admin = (query: string) => graphql(server, query, { key: ADMIN_KEY });
  const times = <T>(count: number, make: (i: number) => Promise<T>) => Array.from({ length: count }, (_, i) => make(i));

  it('never lose an update to status.json, cleanup.json or inference.json', async () => {
    const deployed = Array.from({ length: 20 }, (_, i) => token(`new${i}`));
    const template = readJson(server.dataDir, 'inference.json')[FRESH[0] as string];
    // Requests to the server and writes of the other writer, all in flight at once.
    const requests = [
      ...times(10, () => admin('mutation { setDevMode(enabled: true) { devMode } }')),
      ...times(10, () => admin('mutation { setCleanup(active: false) { cleanupActive } }')),
      ...times(3, () => admin('mutation { runCleanup }')),
      graphql(server, `mutation { deleteModel(token: "${FRESH[1]}") }`),
    ];
    const writes: Promise<unknown>[] = [
      ...deployed.map((t) =>
        other.update(INFERENCE, (inference) => ({ ...inference, [t]: { ...template, created: formatCreated(new Date()) } })),
      ),
      other.update(STATUS, (status) => ({
        ...status,
        status: 'active' as const,
        token: LOCK,
        task_type: 'textclassification' as const,
      })),
      other.update(CLEANUP, (cleanup) => ({ ...cleanup, written_by: 'another writer' })),
    ];
    const [answers] = await Promise.all([Promise.all(requests), Promise.all(writes)]);
    expect(answers.flatMap((answer) => answer.errors ?? [])).toEqual([]);

    expect(readJson(server.dataDir, 'status.json')).toEqual({
      status: 'active',
      token: LOCK,
      task_type: 'textclassification',
      dev_mode: true,
    });
    expect(readJson(server.dataDir, 'cleanup.json')).toEqual({ status: 'sleeping', written_by: 'another writer' });
    expect(Object.keys(readJson(server.dataDir, 'inference.json')).sort()).toEqual([FRESH[0], ...deployed].sort());
    // Each expired model was deleted by exactly one of the cleanup runs.
    const cleaned = answers.flatMap((answer) => (answer.data as { runCleanup?: string[] } | undefined)?.runCleanup ?? []);
    expect(cleaned.sort()).toEqual([...EXPIRED].sort());

    await Promise.all([
      ...times(10, () => admin('mutation { setDevMode(enabled: false) { devMode } }')),
      ...times(10, () => admin('mutation { setCleanup(active: true) { cleanupActive } }')),
      other.update(STATUS, (status) => ({ ...status, status: 'sleeping' as const, token: '', task_type: '' as const })),
    ]);
    expect(readJson(server.dataDir, 'status.json')).toEqual({ status: 'sleeping', token: '', task_type: '', dev_mode: false });
    expect(readJson(server.dataDir, 'cleanup.json')).toEqual({ status: 'active', written_by: 'another writer' });
  });
});
