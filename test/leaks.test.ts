import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { DocumentStore, INFERENCE } from '../src/documents';
import { FsStore } from '../src/store';
import { writeDeployedJobRecord } from './helpers/records';
import { ADMIN_KEY } from './helpers/server';
import { deployModel, type TrainedModel, trainTextModel } from './helpers/trained-models';

jest.setTimeout(120_000);

const ROOT = path.join(__dirname, '..');
const TEXT = 'textClassification-reviews-leakstest0000001';

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
