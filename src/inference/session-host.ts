import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

import type { Logger } from 'pino';

import type { LoadResult, WireSessionOptions, WireTensor, WorkerRequest, WorkerResponse } from './protocol';

/** A request before it gets its id (`Omit` applied to each member of the union). */
type Request = WorkerRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/** onnxruntime refused a request (a file it cannot load, a run that failed); the message is its own. */
export class OrtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OrtError';
  }
}

/** The worker stopped before it answered: the request's session went with it. */
export class WorkerStoppedError extends Error {
  constructor() {
    super('The inference worker stopped');
    this.name = 'WorkerStoppedError';
  }
}

interface Pending {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

/**
 * The main thread's side of the onnxruntime worker thread (`session.worker.ts`, which says why
 * inference cannot run on the main thread). Sessions live in the worker and are named by
 * number; this class turns requests into promises.
 *
 * The worker starts on first use. If it dies (an uncaught error, or `close`), every pending
 * request rejects, `generation` goes up, and `onLost` tells the engine that every session it
 * holds is gone; the next request starts a fresh worker. The worker keeps the process alive
 * only while requests are pending.
 */
export class SessionHost {
  /** Bumped whenever a worker stops: sessions made by an earlier generation no longer exist. */
  generation = 0;
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly onLost: () => void,
  ) {}

  load(file: string, options: WireSessionOptions): Promise<LoadResult> {
    return this.call({ op: 'load', file, options }, []) as Promise<LoadResult>;
  }

  /** Runs a session; the feeds' buffers are transferred, so the caller must own them and not reuse them. */
  run(session: number, feeds: Record<string, WireTensor>, fetch: string): Promise<WireTensor> {
    const transfer = Object.values(feeds).map((tensor) => tensor.data.buffer as ArrayBuffer);
    return this.call({ op: 'run', session, feeds, fetch }, transfer) as Promise<WireTensor>;
  }

  async release(session: number, generation: number): Promise<void> {
    // A session of a stopped worker went with it.
    if (generation !== this.generation || !this.worker) return;
    await this.call({ op: 'release', session }, []);
  }

  /**
   * Stops the worker once its pending requests are done: it releases its sessions and exits by
   * itself. Terminating a worker while onnxruntime runs aborts the whole process, so
   * `terminate()` is only the last resort for a worker that does not stop in time.
   */
  async close({ drainMillis = 30_000, exitMillis = 10_000 } = {}): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (!worker) return;
    const deadline = Date.now() + drainMillis;
    while (this.pending.size > 0 && Date.now() < deadline) await sleep(20);
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ id: 0, op: 'shutdown' } satisfies WorkerRequest);
    const timer = setTimeout(() => {
      this.logger.warn('The inference worker did not stop in time; terminating it');
      void worker.terminate();
    }, exitMillis);
    await exited;
    clearTimeout(timer);
  }

  private call(request: Request, transfer: ArrayBuffer[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('The inference engine is closed'));
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ ...request, id } as WorkerRequest, transfer);
    });
  }

  private start(): Worker {
    disableOrtTelemetry();
    const { file, execArgv } = workerScript();
    const worker = new Worker(file, execArgv ? { execArgv } : {});
    worker.unref();
    worker.on('message', (response: WorkerResponse) => {
      const pending = this.pending.get(response.id);
      if (!pending) return;
      this.pending.delete(response.id);
      if (this.pending.size === 0) worker.unref();
      if (response.ok) pending.resolve(response.result);
      // onnxruntime's message is for the log; the engine decides what a client sees.
      else pending.reject(new OrtError(response.message));
    });
    worker.on('error', (error) => this.logger.error({ err: error }, 'The inference worker failed'));
    worker.on('exit', (exitCode) => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.generation++;
      if (!this.closed) {
        this.logger.error({ exitCode }, 'The inference worker stopped; it restarts on the next request');
      }
      const stopped = new WorkerStoppedError();
      for (const pending of this.pending.values()) pending.reject(stopped);
      this.pending.clear();
      this.onLost();
    });
    this.worker = worker;
    return worker;
  }
}

/**
 * onnxruntime 1.29 and later (microsoft/onnxruntime#27379) send telemetry from Linux and macOS
 * too: on creating its environment, at the first session, the native library keeps a device id
 * and an event database under `$XDG_CACHE_HOME` (or `~/.cache`), writes files to `$TMPDIR`, and
 * uploads to a Microsoft host. It has no switch in onnxruntime-node's API; `ORT_DISABLE_TELEMETRY`
 * set before that first session turns all of it off, for the life of the process.
 *
 * The native code reads it with `getenv`, from the process's real environment. A worker thread's
 * `process.env` is a copy of it, so setting it there changes nothing native code sees: it is set
 * here, on the main thread (where Node writes through to the real environment), before any
 * worker starts. This is a write for a native library, not configuration, which is why it is
 * not in `config.ts`; child processes (the trainer) inherit it, which is as wanted.
 */
function disableOrtTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY = '1';
}

/**
 * Compiled, the worker is the `.js` next to this file. Run from sources (ts-jest, ts-node) it
 * is a `.ts` file, and a worker thread does not inherit the parent's require hooks, so it
 * registers ts-node's transpile-only hook itself (a development dependency, never needed by
 * the built server).
 */
function workerScript(): { file: string; execArgv?: string[] } {
  const compiled = path.join(__dirname, 'session.worker.js');
  if (existsSync(compiled)) return { file: compiled };
  return {
    file: path.join(__dirname, 'session.worker.ts'),
    execArgv: ['--require', require.resolve('ts-node/register/transpile-only')],
  };
}
