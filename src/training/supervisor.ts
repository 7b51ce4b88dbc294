import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import type { Logger } from 'pino';

import type { TrainingConfig } from '../config';
import {
  type DocumentStore,
  type EpochRecord,
  formatCreated,
  INFERENCE,
  type InferenceEntry,
  type JobRecord,
  type JobStateValue,
  type QueueEntry,
  STATUS,
  TRAINING,
  type TrainingDocument,
} from '../documents';
import type { PlatformPubSub } from '../events/pubsub';
import type { ModelService } from '../models/model.service';
import type { PlatformService } from '../platform/platform.service';
import type { ObjectStore } from '../store';
import { UnreachableCaseError } from '../unreachable';
import { renderAccuracyPlot } from './accuracy-plot';
import { estimateEta, type TrainingProgress } from './job';
import { writeJobFolder } from './job-folder';
import { type JobRepository, LostClaimError } from './job.repository';
import { type TrainerEvent, type TrainerOutcome, TrainerProcess } from './trainer.process';

/** How often the supervisor looks at the queue without being woken, in milliseconds. */
const POLL_MILLIS = 2_000;
/** How often a running job renews its lease and checks for a cancellation, in milliseconds. */
const HEARTBEAT_MILLIS = 5_000;
/** A job whose lease is older than this is taken over by another supervisor, in milliseconds. */
const LEASE_MILLIS = 60_000;
/** Attempts before a job that keeps being interrupted fails. */
const MAX_ATTEMPTS = 3;

type FinalState = Extract<JobStateValue, 'DEPLOYED' | 'FAILED' | 'CANCELLED'>;

interface RunningJob {
  token: string;
  entry: QueueEntry;
  /** Epochs completed so far in this attempt. */
  history: EpochRecord[];
  process: TrainerProcess | undefined;
  cancelRequested: boolean;
  /** The server is shutting down: stop without ending the job, which runs again after a restart. */
  interrupted: boolean;
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
  logger: Logger;
}

/**
 * Runs the queued training jobs, one at a time, through the trainer process.
 *
 * It talks to the rest of the platform only through the store and the PubSub, so that it can
 * run in a worker process of its own on a GPU host. Which supervisor runs a job is decided by
 * compare-and-swap on `training/queue.json` (the head's `running` mark) and kept by a lease
 * that the running supervisor renews in the job record; `status.json` is the seed's lock and is
 * `active` exactly while a job runs. Any failure ends the job `FAILED`, releases the lock and
 * removes whatever it had deployed; a job interrupted by a shutdown or a crash runs again when
 * its supervisor restarts (or, after the lease runs out, on another), at most `MAX_ATTEMPTS`
 * times.
 */
export class TrainingSupervisor {
  private current: SupervisorState = { state: 'idle' };
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private tickAgain = false;

  constructor(private readonly deps: SupervisorDependencies) {}

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

  /**
   * Stops the running trainer (its job stays queued and runs again after a restart) and stops
   * looking at the queue.
   */
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

  /**
   * Cancels the job if this supervisor runs it; resolves when it has ended. `false` when this
   * supervisor does not run it (the job record's `cancel_requested` reaches the one that does).
   */
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
    const { documents, jobs, config, logger } = this.deps;
    const [queue, status] = await Promise.all([jobs.queue(), documents.read(STATUS)]);
    const head = queue[0];
    if (!head) {
      if (status.status === 'active') await this.releaseStaleLock(status.token);
      return;
    }
    // Maintenance halts new work: queued jobs wait, a running job finishes.
    if (status.dev_mode) return;
    if (head.running && !(await this.mayTakeOver(head))) return;

    let entry: QueueEntry;
    try {
      // Take it only if nobody claimed it since we looked (or it is still the same stale claim).
      entry = await jobs.claimHead(head.token, config.workerId, (stored) => isDeepStrictEqual(stored.running, head.running));
    } catch (error) {
      if (error instanceof LostClaimError) return;
      throw error;
    }
    if (this.current.state !== 'idle') return; // stopped while claiming: the job stays queued
    const job: RunningJob = {
      token: entry.token,
      entry,
      history: [],
      process: undefined,
      cancelRequested: false,
      interrupted: false,
      finished: Promise.resolve(),
    };
    job.finished = this.run(job).catch((error: unknown) =>
      logger.error({ err: error, token: entry.token }, 'Supervisor failed to finish a job'),
    );
    this.current = { state: 'running', job };
  }

  /** A job marked running may be taken when its supervisor is this one restarted, or its lease ran out. */
  private async mayTakeOver(head: QueueEntry): Promise<boolean> {
    if (head.running?.worker === this.deps.config.workerId) return true;
    const record = await this.deps.jobs.record(head.token);
    const heartbeat = record?.heartbeat_at ? Date.parse(record.heartbeat_at) : 0;
    return Date.now() - heartbeat > LEASE_MILLIS;
  }

  private async run(job: RunningJob): Promise<void> {
    const { entry, token } = job;
    const logger = this.deps.logger.child({ token, job: entry.task_name });
    const attempt = entry.running?.attempt ?? 1;
    const folder = path.join(this.deps.config.workDir, 'jobs', token);
    let final: { state: FinalState; error: string | null } | undefined;
    try {
      if (attempt > MAX_ATTEMPTS) {
        final = { state: 'FAILED', error: `The job was interrupted ${MAX_ATTEMPTS} times and was given up.` };
        return;
      }
      logger.info({ attempt }, 'Starting a training job');
      await this.lock(entry);
      await this.record(token, { state: 'PREPARING', attempts: attempt, history: [] }, { startedAt: true });
      this.publish(job, { state: 'PREPARING', message: attempt > 1 ? 'Resuming after an interruption' : null });

      const training = await this.writeTrainingDocument(entry);
      await rm(folder, { recursive: true, force: true });
      await writeJobFolder(folder, training, { imageSize: this.deps.config.imageSize });
      if (job.cancelRequested) {
        final = { state: 'CANCELLED', error: null };
        return;
      }
      if (job.interrupted) return;

      const outcome = await this.train(job, folder, logger);
      switch (outcome.outcome) {
        case 'succeeded':
          await this.deploy(job, folder);
          final = { state: 'DEPLOYED', error: null };
          break;
        case 'failed':
          logger.warn({ detail: outcome.detail }, 'Training failed');
          final = { state: 'FAILED', error: outcome.message };
          break;
        case 'cancelled':
          final = { state: 'CANCELLED', error: null };
          break;
        case 'timed-out':
          final = {
            state: 'FAILED',
            error: `Training took longer than the ${Math.round(this.deps.config.timeoutMillis / 60_000)}-minute limit.`,
          };
          break;
        case 'interrupted':
          logger.info('Training interrupted by a shutdown; the job stays queued');
          break;
        default:
          throw new UnreachableCaseError(outcome);
      }
    } catch (error) {
      logger.error({ err: error }, 'Training job failed');
      final = { state: 'FAILED', error: userMessage(error) };
    } finally {
      await rm(folder, { recursive: true, force: true }).catch(() => undefined);
      if (final) await this.finish(job, final, logger);
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

  /** `training/training.json` as the seed describes it: the hyperparameters and the dataset inline. */
  private async writeTrainingDocument(entry: QueueEntry): Promise<TrainingDocument> {
    const staged = await this.deps.store.get(entry.dataset_key);
    if (!staged) throw new Error(`The staged dataset of job ${entry.token} is missing`);
    const dataset = JSON.parse(staged.body.toString('utf8')) as Record<string, string[]>;
    const training: TrainingDocument = {
      token: entry.token,
      ...entry.config,
      num_classes: Object.keys(dataset).length,
      dataset,
    };
    await this.deps.documents.write(TRAINING, training);
    return training;
  }

  private async train(job: RunningJob, folder: string, logger: Logger): Promise<TrainerOutcome> {
    const { config } = this.deps;
    const { history } = job;
    let writes = Promise.resolve();
    // Store writes for progress run one after another, in event order.
    const persist = (change: Partial<JobRecord>) => {
      writes = writes.then(() => this.record(job.token, change).then(() => undefined)).catch((error: unknown) => {
        logger.warn({ err: error }, 'Could not record training progress');
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
          history.push(record);
          persist({ history: [...history] });
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
    if (job.interrupted) trainer.interrupt();

    // The lease: renewed while the trainer runs; a cancellation asked for on another server
    // arrives through the same record.
    const heartbeat = setInterval(() => {
      this.record(job.token, {})
        .then((record) => {
          if (record.cancel_requested) trainer.cancel();
        })
        .catch((error: unknown) => logger.warn({ err: error }, 'Could not renew the job lease'));
    }, HEARTBEAT_MILLIS);
    try {
      return await trainer.outcome;
    } finally {
      clearInterval(heartbeat);
      await writes;
    }
  }

  /**
   * Uploads the artifacts, then adds the model to `inference.json` — the commit point. If
   * anything fails before that write, the uploaded artifacts are removed again.
   */
  private async deploy(job: RunningJob, folder: string): Promise<void> {
    const { store, documents } = this.deps;
    const { token, entry } = job;
    const metrics = JSON.parse(await readFile(path.join(folder, 'metrics.json'), 'utf8')) as {
      classes: string[];
      history: EpochRecord[];
      best_val_accuracy: number;
    };
    const prefix = entry.task_type;
    const artifacts: [key: string, file: string][] = [
      [`${prefix}/${token}.pt`, 'model.pt'],
      [`${prefix}/${token}.onnx`, 'model.onnx'],
    ];
    const imageTask = entry.task_type === 'imageclassification';
    if (!imageTask) artifacts.push([`${prefix}/${token}_metadata.json`, 'metadata.json']);

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
        model: entry.config.model,
        history: metrics.history,
      };
      await documents.update(INFERENCE, (inference) => ({ ...inference, [token]: deployed }));
    } catch (error) {
      await Promise.all(uploaded.map((key) => store.delete(key).catch(() => undefined)));
      throw error;
    }
  }

  /**
   * Ends a job: final record, then the job leaves the queue, its staged dataset and
   * `training.json` go, and the lock is released. Each step is retried by the next job's start
   * or by recovery if it fails, so none of them may throw past here.
   */
  private async finish(job: RunningJob, final: { state: FinalState; error: string | null }, logger: Logger) {
    const { documents, store, jobs } = this.deps;
    const { token, entry } = job;
    const steps: [string, () => Promise<unknown>][] = [
      ['record the final state', () => this.record(token, { state: final.state, error: final.error }, { finished: true })],
      ['remove the job from the queue', () => jobs.remove(token)],
      ['delete the staged dataset', () => store.delete(entry.dataset_key)],
      ['delete training.json', async () => {
        const training = await documents.snapshot(TRAINING).catch(() => null);
        if (!training || training.value.token === token) await documents.remove(TRAINING);
      }],
      ['release the lock', () => this.releaseLock(token)],
    ];
    for (const [what, step] of steps) {
      await step().catch((error: unknown) => logger.error({ err: error }, `Could not ${what}`));
    }
    logger.info({ state: final.state, error: final.error }, 'Training job ended');
    const model = final.state === 'DEPLOYED' ? await this.deps.models.get(token).catch(() => null) : null;
    this.publish(job, { state: final.state, message: final.error, model });
  }

  private async releaseLock(token: string): Promise<void> {
    await this.deps.documents.update(STATUS, (status) =>
      status.status === 'active' && status.token === token
        ? { ...status, status: 'sleeping' as const, token: '', task_type: '' as const }
        : status,
    );
    this.publishStatus();
  }

  /** `status.json` active with no job in the queue is left over from a crash: free it. */
  private async releaseStaleLock(token: string): Promise<void> {
    this.deps.logger.warn('status.json is active but no job is queued: releasing the stale lock');
    await this.releaseLock(token);
  }

  private record(token: string, change: Partial<JobRecord>, stamps: { startedAt?: boolean; finished?: boolean } = {}) {
    const now = new Date().toISOString();
    return this.deps.jobs.updateRecord(token, (record) => ({
      ...record,
      ...change,
      worker: this.deps.config.workerId,
      heartbeat_at: now,
      ...(stamps.startedAt ? { started_at: now, finished_at: null, error: null } : {}),
      ...(stamps.finished ? { finished_at: now } : {}),
    }));
  }

  private publish(job: RunningJob, progress: Partial<TrainingProgress> & Pick<TrainingProgress, 'state'>): void {
    const history = [...job.history];
    const epochs = job.entry.config.epochs;
    this.deps.pubsub.publish('TRAINING_PROGRESS', job.token, {
      token: job.token,
      epoch: history.length,
      epochs,
      metrics: null,
      batch: null,
      etaSeconds: progress.state === 'TRAINING' ? estimateEta(history, epochs) : null,
      message: null,
      queuePosition: null,
      model: null,
      ...progress,
      history,
    });
  }

  private publishStatus(): void {
    this.deps.platform.publishState().catch(() => undefined);
  }
}

function userMessage(error: unknown): string {
  if (error instanceof Error && error.name === 'JobDataError') return error.message;
  return 'The job failed because of an internal error.';
}
