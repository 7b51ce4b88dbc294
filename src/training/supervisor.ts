import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Logger } from 'pino';
import { z } from 'zod';

import type { TrainingConfig } from '../config';
import {
  type DocumentStore,
  type EpochRecord,
  epochRecordSchema,
  FINAL_JOB_STATES,
  formatCreated,
  INFERENCE,
  type InferenceEntry,
  type JobRecord,
  type JobStateValue,
  type QueueEntry,
  STATUS,
  TRAINING,
} from '../documents';
import type { PlatformPubSub } from '../events/pubsub';
import type { ModelService } from '../models/model.service';
import type { Metrics } from '../observability/metrics';
import { tokenId, tokenLogger } from '../observability/token-id';
import type { PlatformService } from '../platform/platform.service';
import type { ObjectStore } from '../store';
import { UnreachableCaseError } from '../unreachable';
import { renderAccuracyPlot } from './accuracy-plot';
import type { TrainingProgress } from './job';
import { JobDataError, readDatasetFile, writeJobFolder } from './job-folder';
import { type JobRepository, LostClaimError } from './job.repository';
import { progressEvent, publishQueuePositions } from './progress';
import { type TrainerEvent, type TrainerOutcome, TrainerProcess } from './trainer.process';

/** How often the supervisor looks at the queue without being woken, in milliseconds. */
const POLL_MILLIS = 2_000;
/** How often a running job renews its lease and checks for a cancellation, in milliseconds. */
const HEARTBEAT_MILLIS = 5_000;
/** A job whose lease is older than this is taken over by another supervisor, in milliseconds. */
const LEASE_MILLIS = 60_000;
/** A job is given up after its supervisor died this many times while running it. */
const MAX_CRASHES = 3;

type FinalState = Extract<JobStateValue, 'DEPLOYED' | 'FAILED' | 'CANCELLED'>;

const metricsSchema = z.looseObject({
  classes: z.array(z.string()),
  history: z.array(epochRecordSchema),
  best_val_accuracy: z.number().min(0).max(1),
});

/** Another supervisor took the job over (it thought this one dead): stop without ending it. */
class LeaseLostError extends Error {
  constructor(token: string) {
    super(`Lost the lease on job ${token}`);
    this.name = 'LeaseLostError';
  }
}

interface RunningJob {
  token: string;
  entry: QueueEntry;
  /** Epochs completed so far in this attempt. */
  history: EpochRecord[];
  process: TrainerProcess | undefined;
  cancelRequested: boolean;
  /** The server is shutting down: stop without ending the job, which runs again after a restart. */
  interrupted: boolean;
  leaseLost: boolean;
  /** `performance.now()` when this supervisor took the job. */
  startedAt: number;
  finished: Promise<void>;
}

type SupervisorState =
  | { state: 'idle' }
  | { state: 'running'; job: RunningJob }
  | { state: 'stopping' }
  | { state: 'stopped' };

export interface SupervisorDependencies {
  documents: DocumentStore;
  store: ObjectStore;
  jobs: JobRepository;
  models: ModelService;
  platform: PlatformService;
  pubsub: PlatformPubSub;
  config: TrainingConfig;
  metrics: Metrics;
  /** The decompression-bomb guard of dataset ingestion, applied again when preparing. */
  maxImagePixels: number;
  logger: Logger;
}

/**
 * Runs the queued training jobs, one at a time, through the trainer process.
 *
 * It talks to the rest of the platform only through the store and the PubSub (the model and
 * platform services it uses are readers of the store), so that it can run in a worker process
 * of its own on a GPU host. Which supervisor runs a job is decided by compare-and-swap on
 * `training/queue.json` (the head's `running` mark, naming the supervisor's process) and kept
 * by a lease the supervisor renews in the job record; only the lease holder writes the record.
 * A job whose supervisor died is taken over at once on the same host (its process is gone) or
 * after the lease runs out elsewhere. `status.json` is the seed's lock, `active` from a job's
 * start until it has ended.
 *
 * Ending a job is idempotent: if the supervisor dies half-way through, the next one to take the
 * job sees that it already ended (its record is final, or its model is deployed) and only
 * finishes the clean-up.
 */
export class TrainingSupervisor {
  private current: SupervisorState = { state: 'idle' };
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private tickAgain = false;
  /** A lock seen active with no job queued, and since when (see `releaseIfStale`). */
  private orphanLock: { token: string; since: number } | undefined;
  private readonly identity: NonNullable<QueueEntry['running']>;

  constructor(private readonly deps: SupervisorDependencies) {
    const host = deps.config.workerId;
    this.identity = {
      worker: `${host}:${process.pid}:${randomBytes(4).toString('hex')}`,
      host,
      pid: process.pid,
      started_at: '',
    };
  }

  start(): void {
    this.timer = setInterval(() => this.wake(), POLL_MILLIS);
    this.timer.unref();
    this.wake();
  }

  /** Looks at the queue now (after a submission, or when a job ended). */
  wake(): void {
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = this.tick()
      .catch((error: unknown) => this.deps.logger.error({ err: error }, 'Supervisor could not check the queue'))
      .finally(() => {
        this.ticking = undefined;
        if (this.tickAgain) {
          this.tickAgain = false;
          this.wake();
        }
      });
  }

  /** Stops the running trainer (its job goes back to the queue and runs again after a restart). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    const previous = this.current;
    this.current = { state: 'stopping' };
    if (previous.state === 'running') {
      previous.job.interrupted = true;
      previous.job.process?.interrupt();
      await previous.job.finished;
    }
    await this.ticking;
    this.current = { state: 'stopped' };
  }

  /** Cancels the job if this supervisor runs it and resolves when it has ended; else `false`. */
  async cancel(token: string): Promise<boolean> {
    if (this.current.state !== 'running' || this.current.job.token !== token) return false;
    const { job } = this.current;
    job.cancelRequested = true;
    job.process?.cancel();
    await job.finished;
    return true;
  }

  private async tick(): Promise<void> {
    if (this.current.state !== 'idle') return;
    const { documents, jobs, logger } = this.deps;
    const [queue, status] = await Promise.all([jobs.queue(), documents.read(STATUS)]);
    const head = queue[0];
    if (!head) {
      await this.releaseIfStale(status.status === 'active' ? status.token : undefined);
      return;
    }
    this.orphanLock = undefined;
    // Maintenance halts new work: queued jobs wait, a running job finishes.
    if (status.dev_mode) return;
    if (head.running && !(await this.takerIsGone(head))) return;

    let entry: QueueEntry;
    try {
      const claim = { ...this.identity, started_at: new Date().toISOString() };
      // Take it only if nobody claimed it since we looked (or it is still the same dead claim).
      entry = await jobs.claimHead(head.token, claim, (stored) => stored.running?.worker === head.running?.worker);
    } catch (error) {
      if (error instanceof LostClaimError) return;
      throw error;
    }
    if (this.current.state !== 'idle') {
      await jobs.releaseClaim(entry.token, this.identity.worker); // stopped while claiming
      return;
    }
    const job: RunningJob = {
      token: entry.token,
      entry,
      history: [],
      process: undefined,
      cancelRequested: false,
      interrupted: false,
      leaseLost: false,
      startedAt: performance.now(),
      finished: Promise.resolve(),
    };
    this.current = { state: 'running', job };
    job.finished = this.run(job).catch((error: unknown) =>
      tokenLogger(logger, entry.token).error({ err: error }, 'Supervisor failed to end a job'),
    );
    publishQueuePositions(jobs, this.deps.pubsub).catch(() => undefined);
  }

  /**
   * `status.json` active with no job queued is not this platform's doing (it releases the lock
   * before a job leaves the queue): a leftover, or a writer this platform does not know. It is
   * released once it has stayed so for a whole lease, so that the platform never shows busy
   * forever, yet a lock that is about to be used is left alone.
   */
  private async releaseIfStale(token: string | undefined): Promise<void> {
    if (token === undefined || this.orphanLock?.token !== token) {
      this.orphanLock = token === undefined ? undefined : { token, since: Date.now() };
      return;
    }
    if (Date.now() - this.orphanLock.since < LEASE_MILLIS) return;
    this.deps.logger.warn('status.json has been active with no job queued for a whole lease: releasing it');
    this.orphanLock = undefined;
    await this.releaseLock(token);
  }

  /** Whether the supervisor that took `head` is gone: its process ended, or its lease ran out. */
  private async takerIsGone(head: QueueEntry): Promise<boolean> {
    const taker = head.running;
    if (!taker) return true;
    if (taker.host === this.identity.host && (taker.pid === process.pid || !processAlive(taker.pid))) return true;
    const record = await this.deps.jobs.record(head.token);
    const renewed = record?.worker === taker.worker && record.heartbeat_at ? record.heartbeat_at : taker.started_at;
    return Date.now() - Date.parse(renewed) > LEASE_MILLIS;
  }

  private async run(job: RunningJob): Promise<void> {
    const { entry, token } = job;
    const logger = tokenLogger(this.deps.logger, token, { job: entry.task_name });
    // Named by the token's id, not the token: the folder shows in the trainer's command line
    // (which `ps` shows every user of the host) and in the paths of its errors.
    const folder = path.join(this.deps.config.workDir, 'jobs', tokenId(token));
    const heartbeat = setInterval(() => this.renewLease(job, logger), HEARTBEAT_MILLIS);
    let final: { state: FinalState; error: string | null; recorded: boolean } | undefined;
    try {
      const record = await this.deps.jobs.record(token);
      if (record && FINAL_JOB_STATES.has(record.state)) {
        final = { state: record.state as FinalState, error: record.error, recorded: true };
        return;
      }
      if (Object.hasOwn(await this.deps.documents.read(INFERENCE), token)) {
        final = { state: 'DEPLOYED', error: null, recorded: false };
        return;
      }
      if (entry.crashes >= MAX_CRASHES) {
        final = { state: 'FAILED', error: `The job was interrupted ${entry.crashes} times and was given up.`, recorded: false };
        return;
      }

      logger.info({ crashes: entry.crashes }, 'Starting a training job');
      await this.lock(entry);
      const started = await this.record(job, (current) => ({
        state: 'PREPARING',
        attempts: current.attempts + 1,
        history: [],
        started_at: new Date().toISOString(),
        finished_at: null,
        error: null,
      }), { takeOver: true });
      job.cancelRequested ||= started.cancel_requested;
      this.publish(job, { state: 'PREPARING', message: started.attempts > 1 ? 'Starting again after an interruption' : null });

      await rm(folder, { recursive: true, force: true });
      const staged = await this.writeTrainingDocument(entry, folder);
      await writeJobFolder(folder, entry.config, readDatasetFile(staged), {
        imageSize: this.deps.config.imageSize,
        maxImagePixels: this.deps.maxImagePixels,
      });
      if (job.cancelRequested) {
        final = { state: 'CANCELLED', error: null, recorded: false };
        return;
      }
      if (job.interrupted || job.leaseLost) return;

      const outcome = await this.train(job, folder, logger);
      switch (outcome.outcome) {
        case 'succeeded':
          await this.deploy(job, folder);
          final = { state: 'DEPLOYED', error: null, recorded: false };
          break;
        case 'failed':
          logger.warn({ detail: outcome.detail }, 'Training failed');
          final = { state: 'FAILED', error: outcome.message, recorded: false };
          break;
        case 'cancelled':
          final = { state: 'CANCELLED', error: null, recorded: false };
          break;
        case 'timed-out': {
          const minutes = Math.round(this.deps.config.timeoutMillis / 60_000);
          final = { state: 'FAILED', error: `Training took longer than the ${minutes}-minute limit.`, recorded: false };
          break;
        }
        case 'interrupted':
          break;
        default:
          throw new UnreachableCaseError(outcome);
      }
    } catch (error) {
      if (error instanceof LeaseLostError) job.leaseLost = true;
      else {
        logger.error({ err: error }, 'Training job failed');
        const message = error instanceof JobDataError ? error.message : 'The job failed because of an internal error.';
        final = { state: 'FAILED', error: message, recorded: false };
      }
    } finally {
      clearInterval(heartbeat);
      await rm(folder, { recursive: true, force: true }).catch(() => undefined);
      if (job.leaseLost) {
        logger.warn('Another supervisor took this job over; leaving it to them');
      } else if (final) {
        await this.finish(job, final, logger);
      } else {
        logger.info('Training interrupted by a shutdown; the job goes back to the queue');
        await this.deps.jobs.releaseClaim(token, this.identity.worker).catch(() => undefined);
      }
      if (this.current.state === 'running' && this.current.job === job) {
        this.current = { state: 'idle' };
        this.wake();
      }
    }
  }

  /** Takes the seed's lock: `status.json` active with this job's token and task type. */
  private async lock(entry: QueueEntry): Promise<void> {
    await this.deps.documents.update(STATUS, (status) => ({
      ...status,
      status: 'active' as const,
      token: entry.token,
      task_type: entry.task_type,
    }));
    this.publishStatus();
  }

  /**
   * Writes `training/training.json` as the seed describes it — the hyperparameters with the
   * dataset inline — by streaming the staged dataset into it rather than building it in memory.
   * Returns the staged dataset's local file, which the job folder is prepared from.
   */
  private async writeTrainingDocument(entry: QueueEntry, folder: string): Promise<string> {
    const staged = path.join(folder, 'staged-dataset.json');
    const training = path.join(folder, 'training.json');
    await mkdir(folder, { recursive: true });
    if (!(await this.deps.store.getFile(entry.dataset_key, staged))) {
      throw new JobDataError('The dataset of this job is missing from the store.');
    }
    const header = { token: entry.token, ...entry.config };
    const handle = await open(training, 'w');
    try {
      await handle.write(`${JSON.stringify(header).slice(0, -1)},"dataset":`);
      for await (const chunk of createReadStream(staged)) await handle.write(chunk as Buffer);
      await handle.write('}\n');
    } finally {
      await handle.close();
    }
    // The parts were validated when the job was admitted, so the document is not parsed again.
    await this.deps.store.putFile(TRAINING.key, training, { contentType: 'application/json' });
    return staged;
  }

  private async train(job: RunningJob, folder: string, logger: Logger): Promise<TrainerOutcome> {
    const { config } = this.deps;
    let writes = Promise.resolve();
    // Progress is recorded one write after another, in event order.
    const persist = (change: Partial<JobRecord>) => {
      writes = writes
        .then(() => this.record(job, () => change))
        .then(() => undefined)
        .catch((error: unknown) => {
          if (error instanceof LeaseLostError) this.loseLease(job);
          else logger.warn({ err: error }, 'Could not record training progress');
        });
    };
    const onEvent = (event: TrainerEvent) => {
      switch (event.event) {
        case 'started':
          persist({ state: 'TRAINING' });
          this.publish(job, { state: 'TRAINING', message: `Training on ${event.device}` });
          break;
        case 'batch':
          this.publish(job, {
            state: 'TRAINING',
            batch: { epoch: event.epoch, batch: event.batch, batches: event.batches, loss: event.loss },
          });
          break;
        case 'epoch': {
          const { event: _event, ...record } = event;
          job.history.push(record);
          persist({ history: [...job.history] });
          this.publish(job, { state: 'TRAINING', metrics: record });
          break;
        }
        case 'exported':
          persist({ state: 'EXPORTING' });
          this.publish(job, { state: 'EXPORTING' });
          break;
        case 'done':
        case 'error':
          break;
        default:
          throw new UnreachableCaseError(event);
      }
    };

    const trainer = new TrainerProcess({
      python: config.python,
      cwd: config.trainerRoot,
      jobDir: folder,
      device: config.device,
      weightsDir: config.weightsDir,
      batchProgressSeconds: config.batchProgressSeconds,
      timeoutMillis: config.timeoutMillis,
      onEvent,
      logger,
    });
    job.process = trainer;
    if (job.cancelRequested) trainer.cancel();
    if (job.interrupted || job.leaseLost) trainer.interrupt();
    try {
      return await trainer.outcome;
    } finally {
      await writes;
      if (job.leaseLost) throw new LeaseLostError(job.token);
    }
  }

  /**
   * Uploads the artifacts, then adds the model to `inference.json` — the commit point. If
   * anything fails before that write, the uploaded artifacts are removed again.
   */
  private async deploy(job: RunningJob, folder: string): Promise<void> {
    const { store, documents } = this.deps;
    const { token, entry } = job;
    const metrics = metricsSchema.parse(JSON.parse(await readFile(path.join(folder, 'metrics.json'), 'utf8')));
    const prefix = entry.task_type;
    const imageTask = entry.task_type === 'imageclassification';
    const artifacts: [key: string, file: string][] = [
      [`${prefix}/${token}.pt`, 'model.pt'],
      [`${prefix}/${token}.onnx`, 'model.onnx'],
      ...(imageTask ? [] : [[`${prefix}/${token}_metadata.json`, 'metadata.json'] as [string, string]]),
    ];
    const uploaded: string[] = [];
    try {
      for (const [key, file] of artifacts) {
        await store.putFile(key, path.join(folder, file));
        uploaded.push(key);
      }
      const deployed: InferenceEntry = {
        task_type: entry.task_type,
        model_filename: `${prefix}/${token}.pt`,
        model_filename_onnx: `${prefix}/${token}.onnx`,
        ...(imageTask ? { classes: metrics.classes } : { metadata_filename: `${prefix}/${token}_metadata.json` }),
        downloadable: true,
        accuracy: metrics.best_val_accuracy,
        accuracy_plot: renderAccuracyPlot(metrics.history).toString('base64'),
        created: formatCreated(new Date()),
        // Beyond the seed's keys, for this platform: what the model is and how it trained.
        model: entry.config.model,
        ...(imageTask ? { image_size: this.deps.config.imageSize } : {}),
        history: metrics.history,
      };
      await documents.update(INFERENCE, (inference) => ({ ...inference, [token]: deployed }));
    } catch (error) {
      await Promise.all(uploaded.map((key) => store.delete(key).catch(() => undefined)));
      throw error;
    }
  }

  /**
   * Ends a job. `training.json` goes while the lock is still ours (a next job may write its own
   * as soon as the lock is free), then the lock is released and the final state recorded; the
   * job leaves the queue last, so that a supervisor dying before that takes the job up again
   * and only repeats this clean-up.
   */
  private async finish(
    job: RunningJob,
    final: { state: FinalState; error: string | null; recorded: boolean },
    logger: Logger,
  ): Promise<void> {
    const { documents, store, jobs } = this.deps;
    const { token, entry } = job;
    const steps: [string, () => Promise<unknown>][] = [
      ['delete training.json', () => documents.remove(TRAINING)],
      ['release the lock', () => this.releaseLock(token)],
      ...(final.recorded
        ? []
        : [['record the final state', () =>
            this.record(job, () => ({ state: final.state, error: final.error, finished_at: new Date().toISOString() }))] as [
            string,
            () => Promise<unknown>,
          ]]),
      ['delete the staged dataset', () => store.delete(entry.dataset_key)],
      ['remove the job from the queue', () => jobs.remove(token)],
    ];
    for (const [what, step] of steps) {
      await retry(step).catch((error: unknown) => logger.error({ err: error }, `Could not ${what}`));
    }
    logger.info({ state: final.state, error: final.error }, 'Training job ended');
    this.deps.metrics.trainingJobs.inc({ outcome: final.state });
    this.deps.metrics.trainingDuration.observe({ outcome: final.state }, (performance.now() - job.startedAt) / 1000);
    const model = final.state === 'DEPLOYED' ? await this.deps.models.get(token).catch(() => null) : null;
    this.publish(job, { state: final.state, message: final.error, model });
    publishQueuePositions(jobs, this.deps.pubsub).catch(() => undefined);
  }

  private async releaseLock(token: string): Promise<void> {
    await this.deps.documents.update(STATUS, (status) =>
      status.status === 'active' && status.token === token
        ? { ...status, status: 'sleeping' as const, token: '', task_type: '' as const }
        : status,
    );
    this.publishStatus();
  }

  /**
   * Writes the job record as its lease holder, renewing the lease. Throws `LeaseLostError` when
   * another supervisor holds it; `takeOver` claims it (at the start of a run).
   */
  private record(
    job: RunningJob,
    change: (record: JobRecord) => Partial<JobRecord>,
    { takeOver = false } = {},
  ): Promise<JobRecord> {
    const { worker } = this.identity;
    return this.deps.jobs.updateRecord(job.token, (record) => {
      if (!takeOver && record.worker !== worker) throw new LeaseLostError(job.token);
      return { ...record, ...change(record), worker, heartbeat_at: new Date().toISOString() };
    });
  }

  /** Renews the lease; a cancellation asked for on another server arrives this way too. */
  private renewLease(job: RunningJob, logger: Logger): void {
    this.record(job, () => ({}))
      .then((record) => {
        if (record.cancel_requested && !job.cancelRequested) {
          job.cancelRequested = true;
          job.process?.cancel();
        }
      })
      .catch((error: unknown) => {
        if (error instanceof LeaseLostError) this.loseLease(job);
        else logger.warn({ err: error }, 'Could not renew the job lease');
      });
  }

  private loseLease(job: RunningJob): void {
    job.leaseLost = true;
    job.process?.interrupt();
  }

  private publish(job: RunningJob, step: Parameters<typeof progressEvent>[1]): void {
    const event: TrainingProgress = progressEvent(
      { token: job.token, epochs: job.entry.config.epochs, history: job.history },
      step,
    );
    this.deps.pubsub.publish('TRAINING_PROGRESS', job.token, event);
  }

  private publishStatus(): void {
    this.deps.platform.publishState().catch(() => undefined);
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A few quick tries: a store hiccup must not leave a job half-ended. */
async function retry<T>(operation: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= attempts) throw error;
      await sleep(200 * attempt);
    }
  }
}
