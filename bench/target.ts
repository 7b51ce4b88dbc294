/**
 * One process under test, driven by `bench/lib/child.ts` over IPC: a Flash server (`buildApp`
 * on port 0), a bare Apollo server answering a constant, or the inference engine alone. Load
 * that does not go over HTTP (the engine called directly, a session per request, the stages
 * on their own) runs here, in a closed loop, so that it is measured the way HTTP load is.
 */
import 'reflect-metadata';

import childProcess from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import cors from 'cors';
import express from 'express';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import pino from 'pino';

import { loadConfig } from '../src/config';
import { DocumentStore, INFERENCE } from '../src/documents';
import type { InferenceEntry } from '../src/documents/schemas';
import { InferenceEngine, intraOpThreadsFor, sessionOptions } from '../src/inference';
import { download, readTextMetadata } from '../src/inference/model-artifacts';
import { centerCrop, prepareImage, preparedSize } from '../src/preprocessing/image';
import { buildApp, type App } from '../src/server/app';
import { inferenceOptions } from '../src/server/services';
import { FsStore, type ObjectStore } from '../src/store';
import { closedLoop, type LoadOptions } from './lib/load';
import { UncachedStore } from './lib/uncached-store';
import { installStageTrace, resetStageTrace, stageTrace } from './prototypes/stage-trace';

type Args = Record<string, unknown>;

if (!process.send) throw new Error('bench/target.ts runs as a child of the benchmark');
const send = (message: unknown) => process.send!(message);

// Trainer processes the supervisor starts, timed for the training area (bench-only probe).
const originalSpawn = childProcess.spawn;
(childProcess as { spawn: typeof childProcess.spawn }).spawn = ((...args: Parameters<typeof originalSpawn>) => {
  const child = originalSpawn(...args);
  const command = [args[0], ...(Array.isArray(args[1]) ? args[1] : [])].join(' ');
  send({ notice: 'spawn', at: Date.now(), command });
  child.once('exit', (code) => send({ notice: 'exit', at: Date.now(), command, code }));
  return child;
}) as typeof childProcess.spawn;

let app: App | undefined;
let bare: { apollo: ApolloServer; server: Server } | undefined;
let engine: InferenceEngine | undefined;
let profiler: Session | undefined;

const ops: Record<string, (args: Args) => Promise<unknown>> = {
  /**
   * A Flash server on port 0. `uncached` reads every document on every request (the
   * server before its document cache); `trace` times each request's stages.
   */
  async server(args) {
    const dataDir = args.dataDir as string;
    let store: ObjectStore = new FsStore(dataDir);
    if (args.uncached) store = new UncachedStore(store);
    if (args.trace) installStageTrace();
    app = buildApp({
      env: { FLASH_ADMIN_KEY: 'bench-admin-key-0123456789', ...(args.env as Record<string, string> | undefined) },
      config: {
        env: 'test',
        host: '127.0.0.1',
        port: 0,
        dataDir,
        ...(args.inference ? { inference: args.inference as object } : {}),
        ...(args.training ? { training: args.training as object } : {}),
      },
      store,
      logger: pino({ level: (args.logLevel as string | undefined) ?? 'silent' }),
    });
    const { url } = await app.start();
    return { url, pid: process.pid };
  },

  /** Apollo Server 5 on express 5 (cors, JSON body), answering `status` with a constant. */
  async bare() {
    const apollo = new ApolloServer({
      typeDefs: `
        enum TrainingServerStatus { ACTIVE SLEEPING }
        enum TaskType { IMAGE_CLASSIFICATION TEXT_CLASSIFICATION }
        type PlatformStatus { status: TrainingServerStatus! taskType: TaskType devMode: Boolean! cleanupActive: Boolean! }
        type Query { status: PlatformStatus! }`,
      resolvers: { Query: { status: () => ({ status: 'SLEEPING', taskType: null, devMode: false, cleanupActive: true }) } },
      includeStacktraceInErrorResponses: false,
      stopOnTerminationSignals: false,
    });
    await apollo.start();
    const expressApp = express();
    expressApp.disable('x-powered-by');
    expressApp.use('/graphql', cors<cors.CorsRequest>(), express.json({ limit: '1mb' }), expressMiddleware(apollo));
    // The transport floor: the body is read to its end and a small JSON answers, nothing else.
    expressApp.post('/drain', (req, res) => {
      req.resume();
      req.once('end', () => res.json({ data: { drained: true } }));
    });
    const server = createServer(expressApp);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    bare = { apollo, server };
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, pid: process.pid };
  },

  /** The inference engine with the options `buildApp` gives it, on the same store. */
  async engine(args) {
    const dataDir = args.dataDir as string;
    const config = loadConfig((args.env as Record<string, string> | undefined) ?? {}, { dataDir });
    engine = new InferenceEngine(
      new FsStore(dataDir),
      inferenceOptions(config),
      pino({ level: 'silent' }),
    );
    return { pid: process.pid };
  },

  /**
   * A closed loop of one kind of work:
   * - `engine`: `InferenceEngine.classifyImages` / `classifyTexts` (the direct call);
   * - `reload`: the original's way, a new onnxruntime session per request (create, run, release);
   * - `reload-download`: the same after copying the model out of the store, as a load does;
   * - `prepare`: image decoding and the centre crop alone;
   * - `ort`: `session.run` alone on a prepared input repeated `batch` times, on this thread, with
   *   `threads` intra-op threads.
   */
  async load(args) {
    const mode = args.mode as 'engine' | 'reload' | 'reload-download' | 'prepare' | 'ort';
    const dataDir = args.dataDir as string;
    const token = args.token as string;
    const input = args.input as { image: string } | { text: string };
    const options = args.options as LoadOptions;
    const entry = await readEntry(dataDir, token);
    const image = 'image' in input ? readFileSync(input.image) : null;
    const text = 'text' in input ? input.text : null;
    const onnx = path.join(dataDir, entry.model_filename_onnx!);
    const imageSize = 224;
    // The engine's thread count for this model (`FLASH_INFERENCE_THREADS=auto`) unless told otherwise.
    const threads = (args.threads as number | undefined) ?? intraOpThreadsFor(entry.task_type, 'auto');

    const feed = async (): Promise<Record<string, Tensor>> => {
      if (image) {
        const crop = centerCrop(await prepareImage(image, { imageSize }), preparedSize(imageSize), imageSize);
        return { input: new Tensor('uint8', new Uint8Array(crop), [1, imageSize, imageSize, 3]) };
      }
      const { vocabulary } = await readTextMetadata(path.join(dataDir, entry.metadata_filename!));
      const ids = vocabulary.encode(text!);
      return { input_ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) };
    };

    switch (mode) {
      case 'engine': {
        if (!engine) throw new Error('no engine');
        const ref = { token, entry };
        const before = engine.stats();
        const result = await closedLoop(async () => {
          const [prediction] = image
            ? await engine!.classifyImages(ref, [image])
            : await engine!.classifyTexts(ref, [text!]);
          if (!prediction?.label) throw new Error('no prediction');
        }, options);
        const after = engine.stats();
        return { ...result, runs: after.runs - before.runs, inputs: after.inputs - before.inputs };
      }
      case 'reload':
        return closedLoop(async () => {
          const session = await InferenceSession.create(onnx, sessionOptions(threads));
          try {
            const outputs = await session.run(await feed());
            if (!outputs.logits) throw new Error('no logits');
          } finally {
            await session.release();
          }
        }, options);
      case 'reload-download': {
        const store = new FsStore(dataDir);
        const scratch = path.join(dataDir, '.work', 'reload');
        return closedLoop(async () => {
          const folder = path.join(scratch, randomUUID());
          await mkdir(folder, { recursive: true });
          try {
            const file = await download(store, entry.model_filename_onnx!, folder, 'model.onnx');
            const session = await InferenceSession.create(file, sessionOptions(threads));
            try {
              const outputs = await session.run(await feed());
              if (!outputs.logits) throw new Error('no logits');
            } finally {
              await session.release();
            }
          } finally {
            await rm(folder, { recursive: true, force: true });
          }
        }, options);
      }
      case 'prepare':
        return closedLoop(async () => void (await feed()), options);
      case 'ort': {
        const batch = (args.batch as number | undefined) ?? 1;
        const session = await InferenceSession.create(onnx, sessionOptions(threads));
        const one = await feed();
        const feeds = Object.fromEntries(
          Object.entries(one).map(([name, tensor]) => {
            const data = tensor.data as Uint8Array | BigInt64Array;
            const many = new (data.constructor as Uint8ArrayConstructor)(data.length * batch);
            for (let i = 0; i < batch; i++) many.set(data as Uint8Array, i * data.length);
            return [name, new Tensor(tensor.type as 'uint8', many, [batch, ...tensor.dims.slice(1)])];
          }),
        );
        try {
          return await closedLoop(async () => void (await session.run(feeds)), options);
        } finally {
          await session.release();
        }
      }
      default:
        throw new Error(`unknown load mode ${String(mode)}`);
    }
  },

  /** `process.memoryUsage()`, after two full collections when `gc` is asked for (and exposed). */
  async memory(args) {
    if (args.gc && global.gc) {
      global.gc();
      await new Promise((resolve) => setImmediate(resolve));
      global.gc();
    }
    return process.memoryUsage();
  },

  async traceReset() {
    resetStageTrace();
    return {};
  },

  async traceRead() {
    return stageTrace();
  },

  async profileStart(args) {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: (args.intervalMicros as number | undefined) ?? 200 });
    await profiler.post('Profiler.start');
    return {};
  },

  async profileStop(args) {
    if (!profiler) throw new Error('not profiling');
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    profiler = undefined;
    writeFileSync(args.file as string, JSON.stringify(profile));
    return {};
  },

  async exit() {
    await app?.stop();
    if (bare) {
      await bare.apollo.stop();
      await new Promise((resolve) => bare!.server.close(resolve));
    }
    await engine?.close();
    setImmediate(() => process.exit(0));
    return {};
  },
};

async function readEntry(dataDir: string, token: string): Promise<InferenceEntry> {
  const inference = await new DocumentStore(new FsStore(dataDir)).read(INFERENCE);
  const entry = inference[token];
  if (!entry) throw new Error(`no model ${token} in ${dataDir}`);
  return entry;
}

process.on('message', (message: { id: number; op: string; args: Args }) => {
  const op = ops[message.op];
  if (!op) {
    send({ id: message.id, ok: false, message: `unknown op ${message.op}` });
    return;
  }
  op(message.args).then(
    (result) => send({ id: message.id, ok: true, result }),
    (error: unknown) =>
      send({ id: message.id, ok: false, message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});

// A lost parent (the benchmark was interrupted) takes its targets with it.
process.on('disconnect', () => process.exit(0));
