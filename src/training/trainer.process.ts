import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

import type { Logger } from 'pino';
import { z } from 'zod';

import { epochRecordSchema } from '../documents';

/** The trainer's progress events (trainer/README.md, "Progress: stdout"). */
const trainerEventSchema = z.discriminatedUnion('event', [
  z.looseObject({
    event: z.literal('started'),
    device: z.string(),
    train_size: z.number(),
    val_size: z.number(),
    epochs: z.number(),
  }),
  z.looseObject({
    event: z.literal('batch'),
    epoch: z.number(),
    batch: z.number(),
    batches: z.number(),
    loss: z.number().nullable(),
  }),
  epochRecordSchema.extend({ event: z.literal('epoch') }),
  z.looseObject({ event: z.literal('exported'), files: z.array(z.string()) }),
  z.looseObject({
    event: z.literal('done'),
    best_val_accuracy: z.number(),
    best_epoch: z.number(),
    seconds: z.number(),
  }),
  z.looseObject({ event: z.literal('error'), message: z.string(), kind: z.string() }),
]);
export type TrainerEvent = z.infer<typeof trainerEventSchema>;
export type DoneEvent = Extract<TrainerEvent, { event: 'done' }>;

export type TrainerOutcome =
  | { outcome: 'succeeded'; done: DoneEvent }
  /** `message` is meant for the job's user; `detail` only for the log. */
  | { outcome: 'failed'; message: string; detail: string }
  | { outcome: 'cancelled' }
  | { outcome: 'timed-out' }
  /** Stopped because this server is shutting down: the job stays queued for a restart. */
  | { outcome: 'interrupted' };

type StopReason = 'cancelled' | 'timed-out' | 'interrupted';

/**
 * Error kinds whose message the trainer words for the job's user (the README's failure table).
 * `usage` errors are the operator's, and `weights` messages name server paths: both are logged
 * and reach users in other words.
 */
const USER_FACING_KINDS = new Set(['config', 'data', 'diverged', 'oom']);
const WEIGHTS_MISSING = 'ImageNet weights for this model are not installed on this server; train it from scratch instead.';

export interface TrainerOptions {
  python: string;
  /** Working directory: the folder that holds the `trainer` package. */
  cwd: string;
  jobDir: string;
  device: 'auto' | 'cpu' | 'cuda';
  weightsDir: string | undefined;
  batchProgressSeconds: number;
  /** The process is stopped and the job fails after this long, in milliseconds. */
  timeoutMillis: number;
  onEvent(event: TrainerEvent): void;
  logger: Logger;
}

/** How long a stopped trainer gets between SIGTERM and SIGKILL, in milliseconds. */
const KILL_GRACE_MILLIS = 10_000;
/** Lines of the trainer's stderr kept to explain an unexpected exit in the log. */
const STDERR_TAIL_LINES = 30;

/**
 * One supervised trainer process. Progress arrives as JSON lines on stdout and is handed to
 * `onEvent` in order; stderr is logged. The process is stopped with SIGTERM (the trainer
 * unwinds and exits within its running batch) and, if it is still there after a grace period,
 * SIGKILL, whether for a cancellation, the timeout or a server shutdown. `outcome` resolves
 * once the process has exited and both of its streams have been read to the end.
 */
export class TrainerProcess {
  readonly outcome: Promise<TrainerOutcome>;
  private readonly child: ChildProcess;
  private stopReason: StopReason | undefined;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: TrainerOptions) {
    const args = ['-m', 'trainer', 'run', options.jobDir, '--device', options.device];
    if (options.weightsDir) args.push('--weights-dir', options.weightsDir);
    args.push('--batch-progress-seconds', String(options.batchProgressSeconds));
    this.child = spawn(options.python, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.outcome = this.supervise();
  }

  /** Stops the job at the user's request. */
  cancel(): void {
    this.stop('cancelled');
  }

  /** Stops the job because the server shuts down; it will run again after the restart. */
  interrupt(): void {
    this.stop('interrupted');
  }

  private stop(reason: StopReason): void {
    if (this.stopReason || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.stopReason = reason;
    this.child.kill('SIGTERM');
    this.killTimer = setTimeout(() => this.child.kill('SIGKILL'), KILL_GRACE_MILLIS);
    this.killTimer.unref();
  }

  private async supervise(): Promise<TrainerOutcome> {
    const { logger } = this.options;
    const timeout = setTimeout(() => this.stop('timed-out'), this.options.timeoutMillis);
    const stderrTail: string[] = [];
    let done: DoneEvent | undefined;
    let failure: { message: string; kind: string } | undefined;

    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>(
      (resolve) => {
        this.child.once('error', (spawnError) => resolve({ code: null, signal: null, spawnError }));
        this.child.once('close', (code, signal) => resolve({ code, signal }));
      },
    );
    const readStderr = (async () => {
      if (!this.child.stderr) return;
      for await (const line of createInterface({ input: this.child.stderr, crlfDelay: Infinity })) {
        logger.debug({ trainer: line }, 'trainer log');
        stderrTail.push(line);
        if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
      }
    })();
    const readStdout = (async () => {
      if (!this.child.stdout) return;
      for await (const line of createInterface({ input: this.child.stdout, crlfDelay: Infinity })) {
        const event = parseEvent(line);
        if (!event) {
          logger.warn({ line: line.slice(0, 500) }, 'Ignoring a trainer output line that is not a progress event');
          continue;
        }
        if (event.event === 'done') done = event;
        if (event.event === 'error') failure = { message: event.message, kind: event.kind };
        this.options.onEvent(event);
      }
    })();

    const [exit] = await Promise.all([exited, readStdout, readStderr]);
    clearTimeout(timeout);
    clearTimeout(this.killTimer);

    if (this.stopReason) return { outcome: this.stopReason };
    if (exit.code === 0 && done) return { outcome: 'succeeded', done };

    const detail = exit.spawnError
      ? `could not start ${this.options.python}: ${exit.spawnError.message}`
      : `exit code ${exit.code ?? 'none'}, signal ${exit.signal ?? 'none'}; stderr tail:\n${stderrTail.join('\n')}`;
    if (failure && USER_FACING_KINDS.has(failure.kind)) {
      return { outcome: 'failed', message: failure.message, detail: `${failure.kind}: ${detail}` };
    }
    if (failure?.kind === 'weights') {
      return { outcome: 'failed', message: WEIGHTS_MISSING, detail: `weights: ${failure.message}; ${detail}` };
    }
    return {
      outcome: 'failed',
      message: exit.signal === 'SIGKILL' ? 'The trainer was killed.' : 'The trainer failed unexpectedly.',
      detail: failure ? `${failure.kind}: ${failure.message}; ${detail}` : detail,
    };
  }
}

function parseEvent(line: string): TrainerEvent | undefined {
  try {
    const parsed = trainerEventSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
