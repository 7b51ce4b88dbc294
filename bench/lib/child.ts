import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { REPO_ROOT } from './machine';

/** What `bench/target.ts` answers to a call. */
export type TargetReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; message: string };
/** What it sends unasked: a server log line, or a trainer process starting or ending. */
export type TargetNotice = { notice: 'spawn' | 'exit'; at: number; command: string; code?: number | null };

/**
 * A process running `bench/target.ts` (a Flash server, a bare Apollo server, or the inference
 * engine alone), driven by calls over the IPC channel. Each kind of target lives in its own
 * process so that the load generator never shares an event loop with what it measures.
 */
export class Target {
  readonly notices: TargetNotice[] = [];
  /** The target's stdout, one line each (a Flash server's pino logs when asked for). */
  readonly logLines: { at: number; line: string }[] = [];
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private nextId = 1;
  private exited: Promise<void>;

  constructor(
    readonly name: string,
    { exposeGc = false }: { exposeGc?: boolean } = {},
  ) {
    this.child = fork(path.join(__dirname, '..', 'target.ts'), [name], {
      cwd: REPO_ROOT,
      execArgv: ['--require', require.resolve('ts-node/register/transpile-only'), ...(exposeGc ? ['--expose-gc'] : [])],
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      env: { ...process.env, TS_NODE_PROJECT: path.join(REPO_ROOT, 'tsconfig.json') },
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.logLines.push({ at: Date.now(), line }));
    this.child.on('message', (message: TargetReply | TargetNotice) => {
      if ('notice' in message) {
        this.notices.push(message);
        return;
      }
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(new Error(`${this.name}: ${message.message}`));
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        for (const pending of this.pending.values()) {
          pending.reject(new Error(`${this.name} exited (code ${code}, signal ${signal})`));
        }
        this.pending.clear();
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, op, args });
    });
  }

  /** Asks the target to stop its server or engine and exit; kills it after 15 s. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    try {
      await this.call('exit').catch(() => undefined);
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Closes every target, whatever happens to the others. */
export async function closeAll(targets: readonly (Target | undefined)[]): Promise<void> {
  await Promise.all(targets.map((target) => target?.close().catch(() => undefined)));
}
