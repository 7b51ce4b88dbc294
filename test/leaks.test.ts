import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';

import pino from 'pino';

import { DocumentStore, formatCreated, INFERENCE } from '../src/documents';
import { tokenId } from '../src/observability/token-id';
import { FsStore } from '../src/store';
import { writeDeployedJobRecord } from './helpers/records';
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
    mkdirSync(path.join(dataDir, 'imageclassification'));
    for (const extension of ['pt', 'onnx']) writeFileSync(path.join(dataDir, 'imageclassification', `${token}.${extension}`), 'weights');
    const entry = {
      task_type: 'imageclassification',
      model_filename: `imageclassification/${token}.pt`,
      model_filename_onnx: `imageclassification/${token}.onnx`,
      classes: ['a', 'b'],
      downloadable: true,
      accuracy: 0.9,
      accuracy_plot: '',
      created: formatCreated(new Date()),
    };
    writeFileSync(path.join(dataDir, 'inference.json'), JSON.stringify({ [token]: entry }));
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
