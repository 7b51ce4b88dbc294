import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';

import pino from 'pino';

import { DocumentStore, formatCreated, INFERENCE, type JobRecord, type QueueEntry, stagedDatasetKey, STATUS } from '../src/documents';
import { tokenId } from '../src/observability/token-id';
import { FsStore, type ObjectStore, S3Store } from '../src/store';
import { JobRepository } from '../src/training/job.repository';
import { seedModels, writeDeployedJobRecord, writeJobRecord } from './helpers/records';
import { startS3Server } from './helpers/s3';
import { ADMIN_KEY, makeDataDir, startTestServer } from './helpers/server';
import { deployModel, type TrainedModel, trainTextModel } from './helpers/trained-models';
import { multipart, sentimentCsv, SUBMIT, textInput, waitForState } from './helpers/training';

jest.setTimeout(120_000);

const ROOT = path.join(__dirname, '..');
const TEXT = 'textClassification-reviews-leakstest0000001';

/** A pino logger at its most talkative whose lines the test reads back. */
function memoryLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), lines };
}

/** Every file and folder under `folder`, relative to it. */
function listTree(folder: string): string[] {
  return readdirSync(folder, { recursive: true, encoding: 'utf8' }).sort();
}

/**
 * The server as its own process (`src/index.ts`, as `npm start` runs it, from sources), with
 * only the environment given: what onnxruntime's native code reads with `getenv` is this
 * process's environment, which a server inside the test process could not have fresh.
 */
async function startServerProcess(env: Record<string, string>): Promise<{ url: string; child: ChildProcess; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, ['--require', 'ts-node/register/transpile-only', 'src/index.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The server did not start:\n${output}`)), 60_000);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /"url":"([^"]+)"[^\n]*Flash API listening/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve(listening[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`The server exited (${code}):\n${output}`)));
  });
  return {
    url,
    child,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

describe('onnxruntime telemetry', () => {
  let scratch: string;
  let model: TrainedModel<string>;

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), 'flash-leaks-'));
    model = await trainTextModel(path.join(scratch, 'model'), { epochs: 1 });
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('is off: loading and running a model writes nothing to the home, cache or temporary folders', async () => {
    const folders = { HOME: 'home', XDG_CACHE_HOME: 'cache', TMPDIR: 'tmp' };
    const env: Record<string, string> = {
      // Nothing else of the test's environment: no CI variable (onnxruntime keeps quiet on CI).
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      FLASH_ADMIN_KEY: ADMIN_KEY,
      FLASH_DATA_DIR: path.join(scratch, 'data'),
      // ts-node's compile cache (in $TMPDIR): the built server, which runs without ts-node, has none.
      DISABLE_V8_COMPILE_CACHE: '1',
    };
    for (const [name, folder] of Object.entries(folders)) {
      env[name] = path.join(scratch, folder);
      mkdirSync(env[name]!);
    }
    const store = new FsStore(env.FLASH_DATA_DIR!);
    await store.prepare();
    const entry = await deployModel(store, TEXT, model, 'textclassification');
    await new DocumentStore(store).update(INFERENCE, (inference) => ({ ...inference, [TEXT]: entry }));
    writeDeployedJobRecord(env.FLASH_DATA_DIR!, TEXT, 'textclassification');

    const server = await startServerProcess(env);
    try {
      const response = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          query: 'mutation($t: ID!, $x: String!) { classifyText(token: $t, text: $x) { label } }',
          variables: { t: TEXT, x: 'a wonderful film, truly love' },
        }),
      });
      const body = (await response.json()) as { data?: { classifyText: { label: string } }; errors?: unknown };
      expect(body.errors).toBeUndefined();
      expect(model.classes).toContain(body.data?.classifyText.label);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    const written = Object.fromEntries(Object.values(folders).map((folder) => [folder, listTree(path.join(scratch, folder))]));
    expect(written).toEqual({ home: [], cache: [], tmp: [] });
  });
});

describe('model tokens in the logs', () => {
  it('never appear, from submission through training, prediction and download to deletion: the short id does', async () => {
    const { logger, lines } = memoryLogger();
    const server = await startTestServer({
      logger,
      config: { training: { batchProgressSeconds: 0 }, datasets: { minImagesPerClass: 4 } },
    });
    let token: string;
    try {
      const submitted = await multipart<{ submitTraining: { token: string } }>(
        server,
        SUBMIT,
        { input: textInput({ epochs: 1 }) },
        [{ path: 'variables.input.dataset', filename: 'reviews.csv', content: sentimentCsv() }],
      );
      token = submitted.data?.submitTraining.token as string;
      expect(token).toBeDefined();
      expect((await waitForState(server, token, ['DEPLOYED', 'FAILED'])).state).toBe('DEPLOYED');

      const predicted = await server.graphql(`mutation($t: ID!) { classifyText(token: $t, text: "what a great film") { label } }`, {
        variables: { t: token },
      });
      expect(predicted.errors).toBeUndefined();
      const link = await server.graphql<{ downloadModel: { url: string; vocabularyUrl: string } }>(
        `mutation($t: ID!) { downloadModel(token: $t, format: ONNX) { url vocabularyUrl } }`,
        { variables: { t: token } },
      );
      for (const url of [link.data?.downloadModel.url, link.data?.downloadModel.vocabularyUrl]) {
        const download = await fetch(url as string);
        expect(download.status).toBe(200);
        await download.arrayBuffer();
      }
      const deleted = await server.graphql(`mutation($t: ID!) { deleteModel(token: $t) }`, { variables: { t: token } });
      expect(deleted.errors).toBeUndefined();
    } finally {
      await server.stop();
    }

    // The random part is the secret; the task name before it is not.
    const secret = token.split('-').at(-1) as string;
    expect(lines.filter((line) => line.includes(secret))).toEqual([]);
    const id = tokenId(token);
    const withId = lines.filter((line) => line.includes(id)).map((line) => JSON.parse(line) as { msg: string; req?: { url: string } });
    const messages = new Set(withId.map((line) => line.msg));
    for (const message of ['Training job queued', 'Starting a training job', 'Training job ended', 'Inference model loaded', 'Model deleted']) {
      expect(messages).toContain(message);
    }
    expect(withId.map((line) => line.req?.url).filter(Boolean)).toEqual(
      expect.arrayContaining([`/downloads/${id}/model.onnx`, `/downloads/${id}/metadata.json`]),
    );
  });
});

/** A store whose failures name the key they failed on, as I/O errors name their path. */
class KeyNamingStore extends FsStore {
  /** While set, signing fails with an error that names this key. */
  failSigning: string | null = null;
  override async presignGet() {
    if (this.failSigning) throw new Error(`AccessDenied: cannot sign ${this.failSigning}`);
    return super.presignGet();
  }
  override async openRead(key: string): Promise<never> {
    throw Object.assign(new Error(`EIO: i/o error, open '/srv/flash/${key}'`), { code: 'EIO', path: `/srv/flash/${key}` });
  }
}

describe('errors that name a token', () => {
  it('are logged with the token replaced by its id', async () => {
    const token = 'imageClassification-cats-k3v9q2m8x1z7w4r6t0y5';
    const dataDir = makeDataDir();
    seedModels(dataDir, [{ token }]);
    const { logger, lines } = memoryLogger();
    const store = new KeyNamingStore(dataDir);
    const server = await startTestServer({ dataDir, store, logger });
    const link = () =>
      server.graphql<{ downloadModel: { url: string } }>(`mutation($t: ID!) { downloadModel(token: $t, format: ONNX) { url } }`, { variables: { t: token } });
    try {
      store.failSigning = `imageclassification/${token}.pt`;
      expect((await link()).errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      store.failSigning = null;
      expect((await fetch((await link()).data?.downloadModel.url as string)).status).toBe(500);
    } finally {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
    const logged = lines.map((line) => JSON.parse(line) as { msg: string; err?: { message: string } });
    for (const message of ['Unexpected error while executing an operation', 'Download failed']) {
      expect(logged.find((line) => line.msg === message)?.err?.message).toContain(`imageclassification/${tokenId(token)}.`);
    }
    expect(lines.filter((line) => line.includes('k3v9q2m8x1z7w4r6t0y5'))).toEqual([]);
  });
});

const DATASET = Buffer.from(JSON.stringify({ positive: ['Z29vZA=='], negative: ['YmFk'] }));

/** A job admitted the way `submitTraining` admits one: record, staged dataset, queue entry. */
async function queueJob(store: ObjectStore, token: string): Promise<void> {
  const jobs = new JobRepository(new DocumentStore(store), 10);
  const now = new Date().toISOString();
  await jobs.createRecord({
    token, task_type: 'textclassification', task_name: 'waiting', model: 'gru', state: 'QUEUED', epochs: 1, history: [],
    error: null, submitted_at: now, started_at: null, finished_at: null, worker: null, heartbeat_at: null, attempts: 0,
    cancel_requested: false,
  });
  await store.put(stagedDatasetKey(token), DATASET);
  const config = {
    task_type: 'textclassification', num_classes: 2, model: 'gru', optimizer: 'adam', learning_rate: 0.01, batch_size: 4,
    epochs: 1, data_split: '75 : 25', reduce_lr_on_plateau: false, step_lr: false,
  } as QueueEntry['config'];
  await jobs.admit({
    token, task_type: 'textclassification', task_name: 'waiting', submitted_at: now, config,
    dataset_key: stagedDatasetKey(token), running: null, crashes: 0,
  });
}

/** The pid of a process that has ended (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid as number;
}

/** What `submitTraining` has staged in a store for a job it had not yet admitted. */
function submissionRecord(token: string, submittedBy: { host: string; pid: number }, submittedAt = new Date()): Partial<JobRecord> & { token: string } {
  return {
    token, task_type: 'textclassification', model: 'gru', state: 'QUEUED', submitted_at: submittedAt.toISOString(), started_at: null,
    finished_at: null, attempts: 0, submitted_by: submittedBy,
  } as Partial<JobRecord> & { token: string };
}

describe('submissions cut off by a killed server', () => {
  let scratch: string;
  beforeEach(() => {
    scratch = mkdtempSync(path.join(tmpdir(), 'flash-killed-'));
  });
  afterEach(() => rmSync(scratch, { recursive: true, force: true }));

  it('leave nothing behind after the next start, in the work folder or the store; queued jobs keep their datasets', async () => {
    const dataDir = path.join(scratch, 'data');
    const uploads = path.join(dataDir, '.work', 'uploads');
    const killed = await startServerProcess({
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? scratch, NODE_ENV: 'test', HOST: '127.0.0.1', PORT: '0',
      LOG_LEVEL: 'info', FLASH_ADMIN_KEY: ADMIN_KEY, FLASH_DATA_DIR: dataDir,
    });
    // A dataset upload the server has started to read when it is killed.
    const boundary = 'flashboundary';
    const upload = request(killed.url, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'apollo-require-preflight': 'true' },
    });
    upload.on('error', () => undefined);
    const operations = JSON.stringify({ query: SUBMIT, variables: { input: textInput() } });
    upload.write(
      [`--${boundary}`, 'Content-Disposition: form-data; name="operations"', '', operations,
        `--${boundary}`, 'Content-Disposition: form-data; name="map"', '', '{"0":["variables.input.dataset"]}',
        `--${boundary}`, 'Content-Disposition: form-data; name="0"; filename="reviews.csv"', 'Content-Type: text/csv', '',
        sentimentCsv(200)].join('\r\n'),
    );
    const deadline = Date.now() + 20_000;
    const staged = () => (existsSync(uploads) ? readdirSync(uploads, { recursive: true, encoding: 'utf8' }) : []);
    while (!staged().some((entry) => entry.endsWith('.csv') || entry.includes('/'))) {
      if (Date.now() > deadline) throw new Error(`Nothing staged in ${uploads}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    killed.child.kill('SIGKILL');
    await killed.stop();
    expect(staged()).not.toEqual([]);

    // What a server killed later in a submission leaves in the store, and a job still waiting.
    const store = new FsStore(dataDir);
    const killedBy = { host: hostname(), pid: killed.child.pid as number };
    const tokens = {
      staged: 'textClassification-x-staged0000000000000001', // killed between staging the dataset and admission
      recordOnly: 'textClassification-x-record0000000000000001', // killed while the dataset was being stored
      datasetOnly: 'textClassification-x-dataset000000000000001', // an older version's order: dataset first
      cancelled: 'textClassification-x-cancel0000000000000001', // killed while cancelling a queued job
      queued: 'textClassification-x-queued0000000000000001',
    };
    writeJobRecord(dataDir, submissionRecord(tokens.staged, killedBy));
    await store.put(stagedDatasetKey(tokens.staged), DATASET);
    writeJobRecord(dataDir, submissionRecord(tokens.recordOnly, killedBy));
    await store.put(stagedDatasetKey(tokens.datasetOnly), DATASET);
    writeJobRecord(dataDir, { token: tokens.cancelled, state: 'CANCELLED' });
    await store.put(stagedDatasetKey(tokens.cancelled), DATASET);
    await queueJob(store, tokens.queued);
    // Maintenance: the queued job waits instead of starting.
    await new DocumentStore(store).update(STATUS, (status) => ({ ...status, dev_mode: true }));

    const server = await startTestServer({ dataDir });
    try {
      expect(staged()).toEqual([]);
      expect(readdirSync(path.join(dataDir, 'training', 'jobs')).sort()).toEqual([tokens.cancelled, tokens.queued].sort());
      expect(readdirSync(path.join(dataDir, 'training', 'jobs', tokens.cancelled))).toEqual(['job.json']);
      expect(readdirSync(path.join(dataDir, 'training', 'jobs', tokens.queued)).sort()).toEqual(['dataset.json', 'job.json']);
      expect(readFileSync(path.join(dataDir, stagedDatasetKey(tokens.queued)))).toEqual(DATASET);
      const job = await server.graphql<{ trainingJob: { state: string; queuePosition: number } }>(
        'query($t: ID!) { trainingJob(token: $t) { state queuePosition } }',
        { variables: { t: tokens.queued } },
      );
      expect(job.data?.trainingJob).toEqual({ state: 'QUEUED', queuePosition: 0 });
    } finally {
      await server.stop();
    }
  });

  it('on a shared bucket, leave alone what another live server is staging', async () => {
    const s3 = await startS3Server();
    const bucket = 'killed-submissions';
    const store = new S3Store(s3.configFor(bucket));
    try {
      await store.prepare();
      const tokens = {
        ours: 'textClassification-x-ours00000000000000001', // this host's server, killed
        theirs: 'textClassification-x-theirs000000000000001', // another server, staging right now
        stale: 'textClassification-x-stale0000000000000001', // another server, two hours ago
      };
      const records: [string, { host: string; pid: number }, Date][] = [
        [tokens.ours, { host: hostname(), pid: await deadPid() }, new Date()],
        [tokens.theirs, { host: 'another-host', pid: process.pid }, new Date()],
        [tokens.stale, { host: 'another-host', pid: process.pid }, new Date(Date.now() - 2 * 3_600_000)],
      ];
      const documents = new JobRepository(new DocumentStore(store), 10);
      for (const [token, by, at] of records) {
        await documents.createRecord({ ...writeableRecord(submissionRecord(token, by, at)) });
        await store.put(stagedDatasetKey(token), DATASET);
      }
      const server = await startTestServer({ env: s3.envFor(bucket) });
      await server.stop();
      expect(await store.list('training/jobs/')).toEqual([`training/jobs/${tokens.theirs}/dataset.json`, `training/jobs/${tokens.theirs}/job.json`]);
    } finally {
      await store.close();
      await s3.stop();
    }
  });
});

/** A whole job record from the fields of one being staged. */
function writeableRecord(fields: Partial<JobRecord> & { token: string }): JobRecord {
  return {
    task_type: 'textclassification', task_name: 'staging', model: 'gru', state: 'QUEUED', epochs: 1, history: [], error: null,
    submitted_at: new Date().toISOString(), started_at: null, finished_at: null, worker: null, heartbeat_at: null, attempts: 0,
    cancel_requested: false, ...fields,
  };
}

/** POSTs an operation with the `Host` header given (which `fetch` does not let a caller set). */
function postWithHost(url: string, host: string, body: object): Promise<{ data?: Record<string, { url: string }> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { host, 'content-type': 'application/json', 'x-forwarded-host': host } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('download links', () => {
  const token = 'imageClassification-cats-linkstest0000000001';
  const seed = (dataDir: string) => {
    mkdirSync(path.join(dataDir, 'imageclassification'));
    writeFileSync(path.join(dataDir, 'imageclassification', `${token}.onnx`), 'weights');
    writeFileSync(
      path.join(dataDir, 'inference.json'),
      JSON.stringify({
        [token]: {
          task_type: 'imageclassification', model_filename: `imageclassification/${token}.onnx`,
          model_filename_onnx: `imageclassification/${token}.onnx`, classes: ['a', 'b'], downloadable: true, accuracy: 0.9,
          accuracy_plot: '', created: formatCreated(new Date()),
        },
      }),
    );
  };
  const LINK = { query: `mutation($t: ID!) { downloadModel(token: $t, format: ONNX) { url } }`, variables: { t: token } };

  it('point at the server itself, whatever Host header the request forged, when FLASH_PUBLIC_URL is unset', async () => {
    const dataDir = makeDataDir();
    seed(dataDir);
    const server = await startTestServer({ dataDir });
    try {
      const answer = await postWithHost(server.url, 'attacker.example', LINK);
      const link = new URL(answer.data?.downloadModel.url as string);
      expect(link.origin).toBe(server.origin);
      expect((await fetch(link)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('point at FLASH_PUBLIC_URL when it is set', async () => {
    const dataDir = makeDataDir();
    seed(dataDir);
    const server = await startTestServer({ dataDir, env: { FLASH_PUBLIC_URL: 'https://flash.example.com/api/' } });
    try {
      const answer = await postWithHost(server.url, 'attacker.example', LINK);
      expect(answer.data?.downloadModel.url).toMatch(new RegExp(`^https://flash\\.example\\.com/api/downloads/${token}/model\\.onnx\\?`));
    } finally {
      await server.stop();
    }
  });
});
