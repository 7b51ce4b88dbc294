import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';

import type { Logger } from 'pino';

import type { TrainingConfig } from '../config';
import {
  type ClassUpload,
  type DatasetLimits,
  type ImageDataset,
  ingestImageClasses,
  ingestImageZip,
  ingestTextCsv,
  type TextDataset,
  type UploadInput,
} from '../datasets';
import {
  type DocumentStore,
  FINAL_JOB_STATES,
  INFERENCE,
  type JobRecord,
  type QueueEntry,
  stagedDatasetKey,
  STATUS,
} from '../documents';
import { BadUserInputError, MaintenanceError, ModelNotFoundError, ServerBusyError } from '../errors';
import type { PlatformPubSub } from '../events/pubsub';
import type { ObjectStore } from '../store';
import { type TrainingJob, type TrainingProgress, toTrainingJob } from './job';
import type { JobRepository } from './job.repository';
import type { TrainingSupervisor } from './supervisor';
import { createToken } from './token';
import { type TrainingRequest, validateTrainingRequest } from './training.input';

/** Where a job's data comes from: one upload (a ZIP of class folders, or a CSV), or images per class. */
export type DatasetSource = { kind: 'archive'; upload: UploadInput } | { kind: 'classes'; classes: ClassUpload[] };

export interface TrainingServiceDependencies {
  documents: DocumentStore;
  store: ObjectStore;
  jobs: JobRepository;
  supervisor: TrainingSupervisor;
  pubsub: PlatformPubSub;
  config: TrainingConfig;
  limits: DatasetLimits;
  logger: Logger;
}

/** How long `cancelTraining` waits for a running job on this server to stop, in milliseconds. */
const CANCEL_WAIT_MILLIS = 15_000;

/** Submitting, cancelling and looking up training jobs. */
export class TrainingService {
  constructor(private readonly deps: TrainingServiceDependencies) {}

  /**
   * Validates the request and its dataset, stages the dataset in the store and admits the job
   * to the queue. Nothing is left behind when any step fails.
   */
  async submit(request: TrainingRequest, source: DatasetSource): Promise<TrainingJob> {
    const { documents, jobs, store, config, limits } = this.deps;
    if ((await documents.read(STATUS)).dev_mode) throw new MaintenanceError();
    const { taskName, config: hyperparameters } = validateTrainingRequest(request, config);
    // A cheap look before reading any upload; admission below decides under compare-and-swap.
    if (!(await jobs.hasRoom())) throw new ServerBusyError();

    const uploads = path.join(config.workDir, 'uploads');
    await mkdir(uploads, { recursive: true });
    const stagingDir = await mkdtemp(path.join(uploads, 'submission-'));
    try {
      const dataset = await this.ingest(hyperparameters.task_type, source, stagingDir, limits);
      const token = await this.newToken(hyperparameters.task_type, taskName);
      const datasetFile = path.join(stagingDir, 'dataset.json');
      const classes = await writeDatasetJson(dataset, datasetFile);

      const now = new Date().toISOString();
      const entry: QueueEntry = {
        token,
        task_type: hyperparameters.task_type,
        task_name: taskName,
        submitted_at: now,
        config: { ...hyperparameters, num_classes: classes },
        dataset_key: stagedDatasetKey(token),
        running: null,
      };
      const record: JobRecord = {
        token,
        task_type: entry.task_type,
        task_name: taskName,
        model: hyperparameters.model,
        state: 'QUEUED',
        epochs: hyperparameters.epochs,
        history: [],
        error: null,
        submitted_at: now,
        started_at: null,
        finished_at: null,
        worker: null,
        heartbeat_at: null,
        attempts: 0,
        cancel_requested: false,
      };
      await store.putFile(entry.dataset_key, datasetFile, { contentType: 'application/json' });
      let position: number;
      try {
        await jobs.createRecord(record);
        position = await jobs.admit(entry);
      } catch (error) {
        await Promise.all([store.delete(entry.dataset_key), jobs.removeRecord(token)].map((p) => p.catch(() => undefined)));
        throw error;
      }
      this.deps.logger.info({ token, job: taskName, position }, 'Training job queued');
      this.publishQueued(record, position);
      this.deps.supervisor.wake();
      return toTrainingJob(record, position);
    } finally {
      await rm(stagingDir, { recursive: true, force: true });
    }
  }

  /** The job under `token`; `MODEL_NOT_FOUND` when there is none. */
  async job(token: string): Promise<TrainingJob> {
    const record = await this.deps.jobs.record(token);
    if (!record) throw new ModelNotFoundError();
    return toTrainingJob(record, record.state === 'QUEUED' ? await this.deps.jobs.position(token) : null);
  }

  /** The job as a first progress event, for late subscribers. */
  async progress(token: string): Promise<TrainingProgress> {
    const job = await this.job(token);
    return {
      token,
      state: job.state,
      epoch: job.history.length,
      epochs: job.epochs,
      metrics: job.history.at(-1) ?? null,
      batch: null,
      etaSeconds: null,
      message: job.error,
      queuePosition: job.queuePosition,
      history: job.history,
      model: null,
    };
  }

  /**
   * The job's progress: first its state and history now, then every event until it ends.
   * `MODEL_NOT_FOUND` (on the first read) when there is no such job.
   */
  async *watch(token: string): AsyncGenerator<TrainingProgress> {
    const live = this.deps.pubsub.subscribe('TRAINING_PROGRESS', token)[Symbol.asyncIterator]();
    // Listen before reading the snapshot, so that no event falls between the two.
    let next = live.next();
    try {
      const snapshot = await this.progress(token);
      yield snapshot;
      if (FINAL_JOB_STATES.has(snapshot.state)) return;
      for (;;) {
        const { value: event, done } = await next;
        if (done) return;
        next = live.next();
        // Events the snapshot already covered can arrive once more; skip those.
        if (event.history.length < snapshot.history.length) continue;
        yield event;
        if (FINAL_JOB_STATES.has(event.state)) return;
      }
    } finally {
      await live.return?.();
    }
  }

  /**
   * Removes a waiting job from the queue, or stops a running one. Finished jobs are returned
   * as they are. A job running on another server stops at its next heartbeat.
   */
  async cancel(token: string): Promise<TrainingJob> {
    const { jobs, store, supervisor } = this.deps;
    const record = await jobs.record(token);
    if (!record) throw new ModelNotFoundError();
    if (FINAL_JOB_STATES.has(record.state)) return toTrainingJob(record, null);

    const removed = await jobs.remove(token, { onlyIfWaiting: true });
    if (removed) {
      const now = new Date().toISOString();
      const cancelled = await jobs.updateRecord(token, (current) => ({ ...current, state: 'CANCELLED', finished_at: now }));
      await store.delete(removed.dataset_key).catch(() => undefined);
      this.deps.pubsub.publish('TRAINING_PROGRESS', token, { ...(await this.progress(token)), message: 'Cancelled' });
      this.republishPositions();
      return toTrainingJob(cancelled, null);
    }

    await jobs.updateRecord(token, (current) => ({ ...current, cancel_requested: true }));
    const stopped = await Promise.race([
      supervisor.cancel(token),
      new Promise<false>((resolve) => setTimeout(resolve, CANCEL_WAIT_MILLIS, false).unref()),
    ]);
    if (!stopped) this.deps.logger.info({ token }, 'Cancellation requested for a job running elsewhere');
    return this.job(token);
  }

  private async ingest(
    taskType: QueueEntry['task_type'],
    source: DatasetSource,
    stagingDir: string,
    limits: DatasetLimits,
  ): Promise<ImageDataset | TextDataset> {
    if (taskType === 'textclassification') {
      if (source.kind !== 'archive') {
        throw new BadUserInputError('Text classification takes its dataset as a CSV in "dataset", not "classes".', 'classes');
      }
      return ingestTextCsv(source.upload, { stagingDir, limits });
    }
    const options = { stagingDir, limits, imageSize: this.deps.config.imageSize };
    return source.kind === 'archive' ? ingestImageZip(source.upload, options) : ingestImageClasses(source.classes, options);
  }

  /** A fresh token; 103 random bits make a clash practically impossible, but it is checked. */
  private async newToken(taskType: QueueEntry['task_type'], taskName: string): Promise<string> {
    const inference = await this.deps.documents.read(INFERENCE);
    for (;;) {
      const token = createToken(taskType, taskName);
      if (!Object.hasOwn(inference, token) && !(await this.deps.jobs.record(token))) return token;
    }
  }

  private publishQueued(record: JobRecord, position: number): void {
    this.deps.pubsub.publish('TRAINING_PROGRESS', record.token, {
      token: record.token,
      state: 'QUEUED',
      epoch: 0,
      epochs: record.epochs,
      metrics: null,
      batch: null,
      etaSeconds: null,
      message: null,
      queuePosition: position,
      history: [],
      model: null,
    });
  }

  /** Tells waiting jobs' subscribers their new place after one left the queue. */
  private republishPositions(): void {
    this.deps.jobs
      .queue()
      .then((queue) =>
        Promise.all(
          queue.map(async (entry, position) => {
            if (entry.running) return;
            const record = await this.deps.jobs.record(entry.token);
            if (record) this.publishQueued(record, position);
          }),
        ),
      )
      .catch(() => undefined);
  }
}

/**
 * Writes the dataset in the form `training.json` keeps it — class name → base64 items (image
 * files, or UTF-8 texts) — streaming, one item at a time. Returns the number of classes.
 */
async function writeDatasetJson(dataset: ImageDataset | TextDataset, file: string): Promise<number> {
  const out = createWriteStream(file);
  const write = async (chunk: string) => {
    if (!out.write(chunk)) await once(out, 'drain');
  };
  const classes =
    dataset.kind === 'image'
      ? dataset.classes.map((entry) => ({ name: entry.name, items: entry.images.map((image) => image.path) }))
      : dataset.classes.map((name) => ({
          name,
          items: dataset.rows.filter((row) => row.label === name).map((row) => row.input),
        }));
  try {
    await write('{');
    for (const [index, { name, items }] of classes.entries()) {
      await write(`${index ? ',' : ''}${JSON.stringify(name)}:[`);
      for (const [itemIndex, item] of items.entries()) {
        await write(itemIndex ? ',"' : '"');
        if (dataset.kind === 'image') {
          // Base64 of a whole number of 3-byte groups at a time, so the pieces concatenate.
          let carry = Buffer.alloc(0);
          for await (const chunk of createReadStream(item)) {
            const bytes = Buffer.concat([carry, chunk as Buffer]);
            const whole = bytes.length - (bytes.length % 3);
            await write(bytes.subarray(0, whole).toString('base64'));
            carry = bytes.subarray(whole);
          }
          await write(carry.toString('base64'));
        } else {
          await write(Buffer.from(item, 'utf8').toString('base64'));
        }
        await write('"');
      }
      await write(']');
    }
    await write('}');
  } finally {
    out.end();
    await once(out, 'close');
  }
  return classes.length;
}
