import { createReadStream } from 'node:fs';
import { open, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { Repeater } from '@graphql-yoga/subscription';
import type { Logger } from 'pino';

import type { TrainingConfig } from '../config';
import {
  checkClassUploads,
  type ClassUpload,
  type DatasetLimits,
  type ImageDataset,
  ingestImageClasses,
  ingestImageZip,
  ingestTextCsv,
  type TextDataset,
  type UploadInput,
} from '../datasets';
import { makeStagingFolder, staging } from '../datasets/staging';
import {
  type DocumentStore,
  FINAL_JOB_STATES,
  INFERENCE,
  isWellFormedToken,
  type JobRecord,
  type QueueEntry,
  stagedDatasetKey,
  STATUS,
  storeOperation,
} from '../documents';
import { BadUserInputError, JobNotFoundError, MaintenanceError, ServerBusyError } from '../errors';
import type { PlatformPubSub } from '../events/pubsub';
import type { ModelService } from '../models/model.service';
import { tokenId } from '../observability/token-id';
import type { ObjectStore } from '../store';
import { isFinalState, type TrainingJob, type TrainingProgress, toTrainingJob } from './job';
import type { JobRepository } from './job.repository';
import { publishQueuePositions, recordEvent } from './progress';
import { processAlive, type TrainingSupervisor } from './supervisor';
import { createToken } from './token';
import { type TrainingLimits, type TrainingRequest, validateTrainingRequest, type ValidatedTraining } from './training.input';

/** The dataset as a request brings it: one upload (a ZIP of class folders, or a CSV), or images per class. */
export interface DatasetInput {
  dataset?: UploadInput | null;
  classes?: ClassUpload[] | null;
}

export interface TrainingServiceDependencies {
  documents: DocumentStore;
  store: ObjectStore;
  jobs: JobRepository;
  models: ModelService;
  /** The supervisor of this server; an API replica has none that runs jobs (see `createPlatform`). */
  supervisor: Pick<TrainingSupervisor, 'wake' | 'cancel'>;
  pubsub: PlatformPubSub;
  config: TrainingConfig;
  limits: DatasetLimits;
  logger: Logger;
}

/** How long `cancelTraining` waits for a running job to stop, in milliseconds. */
const CANCEL_WAIT_MILLIS = 15_000;
/**
 * A submission another server has left unadmitted this long is taken for abandoned, in
 * milliseconds. Admission follows the record within the time it takes to store the dataset.
 */
const ABANDONED_SUBMISSION_MILLIS = 3_600_000;
/** Staging folders in the work folder: `submission-<pid>-<random>`. */
const STAGING_FOLDER = /^submission-(?:(\d+)-)?/;

/** Submitting, cancelling, looking up and following training jobs. */
export class TrainingService {
  constructor(private readonly deps: TrainingServiceDependencies) {}

  /**
   * Validates the request and its dataset, stages the dataset in the store and admits the job
   * to the queue. Nothing is left behind when any step fails.
   */
  async submit(request: TrainingRequest, input: DatasetInput): Promise<TrainingJob> {
    const { documents, jobs, store, config, limits } = this.deps;
    if ((await documents.read(STATUS)).dev_mode) throw new MaintenanceError();
    const { validated, source } = checkInput(request, input, { training: config, datasets: limits });
    const { taskName, config: hyperparameters } = validated;
    // A cheap look before reading any upload; admission below decides under compare-and-swap.
    if (!(await jobs.hasRoom())) throw new ServerBusyError();

    const stagingDir = await makeStagingFolder(path.join(config.workDir, 'uploads'), `submission-${process.pid}-`);
    try {
      const dataset = await staging(() => this.ingest(source, stagingDir, limits));
      const token = await this.newToken(hyperparameters.task_type, taskName);
      const datasetFile = path.join(stagingDir, 'dataset.json');
      const classes = await staging(() => writeDatasetJson(dataset, datasetFile));

      const now = new Date().toISOString();
      const entry: QueueEntry = {
        token,
        task_type: hyperparameters.task_type,
        task_name: taskName,
        submitted_at: now,
        config: { ...hyperparameters, num_classes: classes },
        dataset_key: stagedDatasetKey(token),
        running: null,
        crashes: 0,
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
        submitted_by: { host: config.workerId, pid: process.pid },
      };
      // The record first: whatever a killed server leaves in the store has a record that says
      // whose it was and since when (`removeAbandonedSubmissions`).
      let position: number;
      try {
        await jobs.createRecord(record);
        await storeOperation(() => store.putFile(entry.dataset_key, datasetFile, { contentType: 'application/json' }));
        position = await jobs.admit(entry);
      } catch (error) {
        await Promise.all([store.delete(entry.dataset_key), jobs.removeRecord(token)].map((p) => p.catch(() => undefined)));
        throw error;
      }
      this.deps.logger.info({ tokenId: tokenId(token), job: taskName, position }, 'Training job queued');
      this.deps.pubsub.publish('TRAINING_PROGRESS', token, recordEvent(record, position, null));
      this.deps.supervisor.wake();
      return toTrainingJob(record, position);
    } finally {
      await rm(stagingDir, { recursive: true, force: true });
    }
  }

  /**
   * Removes what submissions cut off by a killed server left behind; run at start, before this
   * server takes submissions of its own. In the work folder: the staging folders of processes
   * that are gone (another server may share the folder). In the store: the dataset and record
   * of a job that never reached the queue, when its submitter was this server's predecessor
   * (same worker id, process gone), the store is the fs store (one server only), or it is an
   * hour old (another server's, which would have admitted it long since); and the staged
   * dataset of a job that ended (a cancellation cut off before it deleted it).
   */
  async removeAbandonedSubmissions(): Promise<{ folders: number; jobs: number }> {
    const { config, jobs, store } = this.deps;
    const uploads = path.join(config.workDir, 'uploads');
    const entries = await readdir(uploads).catch(() => [] as string[]);
    let folders = 0;
    for (const name of entries) {
      const pid = Number(STAGING_FOLDER.exec(name)?.[1] ?? NaN);
      if (Number.isInteger(pid) && pid !== process.pid && processAlive(pid)) continue;
      await rm(path.join(uploads, name), { recursive: true, force: true });
      folders++;
    }

    const abandoned = (record: JobRecord): boolean => {
      const by = record.submitted_by;
      const predecessor = by?.host === config.workerId && (by.pid === process.pid || !processAlive(by.pid));
      const old = !(Date.parse(record.submitted_at) > Date.now() - ABANDONED_SUBMISSION_MILLIS);
      return store.kind === 'fs' || predecessor || old;
    };
    let removed = 0;
    for (const { token, record } of await jobs.unqueuedFolders()) {
      if (record && FINAL_JOB_STATES.has(record.state)) {
        await jobs.removeSubmission(token, { keepRecord: true });
      } else if (!record || (record.state === 'QUEUED' && record.attempts === 0 && abandoned(record))) {
        // No record: a dataset staged by an earlier version, which stored it before the record.
        await jobs.removeSubmission(token);
      } else continue;
      removed++;
    }
    return { folders, jobs: removed };
  }

  /** The job under `token`; `JOB_NOT_FOUND` when there is none. */
  async job(token: string): Promise<TrainingJob> {
    const record = await this.record(token);
    return toTrainingJob(record, record.state === 'QUEUED' ? await this.deps.jobs.position(token) : null);
  }

  /**
   * The job's progress: first its state and history now, then every event until it ends.
   * `JOB_NOT_FOUND` before anything is streamed when there is no such job. Ending the
   * subscription releases its listener at once, whether or not events still come.
   */
  async watch(token: string): Promise<AsyncIterableIterator<TrainingProgress>> {
    await this.record(token);
    return new Repeater<TrainingProgress>(async (push, stop) => {
      // Listen before reading the job, so that no event falls between the two. A subscription
      // listens from its first `next()`, so that is asked for now; through Redis, it listens
      // once Redis has confirmed it.
      const live = this.deps.pubsub.subscribe('TRAINING_PROGRESS', token)[Symbol.asyncIterator]();
      const ask = () => {
        const next = live.next();
        next.catch(() => undefined); // raced below; not an unhandled rejection meanwhile
        return next;
      };
      let pending = ask();
      stop.then(() => live.return?.());
      try {
        await this.deps.pubsub.listening();
        const snapshot = await this.snapshot(token);
        await push(snapshot);
        if (isFinalState(snapshot.state)) return stop();
        for (;;) {
          const next = await Promise.race([pending, stop.then(() => ({ done: true as const, value: undefined }))]);
          if (next.done) return stop();
          pending = ask();
          // Events the snapshot already covered can arrive once more; skip those.
          if (next.value.history.length < snapshot.history.length) continue;
          await push(next.value);
          if (isFinalState(next.value.state)) return stop();
        }
      } catch (error) {
        return stop(error);
      }
    });
  }

  /**
   * Removes a waiting job from the queue, or stops a running one (on any server: the job record
   * carries the request). Finished jobs are returned as they are.
   */
  async cancel(token: string): Promise<TrainingJob> {
    const { jobs, store, supervisor } = this.deps;
    const record = await this.record(token);
    if (FINAL_JOB_STATES.has(record.state)) return toTrainingJob(record, null);

    const removed = await jobs.remove(token, { onlyIfWaiting: true });
    if (removed) {
      const cancelled = await jobs.updateRecord(token, (current) => ({
        ...current,
        state: 'CANCELLED',
        finished_at: new Date().toISOString(),
      }));
      await store.delete(removed.dataset_key).catch(() => undefined);
      this.deps.pubsub.publish('TRAINING_PROGRESS', token, recordEvent(cancelled, null, null));
      publishQueuePositions(jobs, this.deps.pubsub).catch(() => undefined);
      return toTrainingJob(cancelled, null);
    }

    await jobs.updateRecord(token, (current) => ({ ...current, cancel_requested: true }));
    if (!(await supervisor.cancel(token))) {
      // Another server runs it, or this one is just taking it: wait for the job to end.
      const deadline = Date.now() + CANCEL_WAIT_MILLIS;
      while (Date.now() < deadline && !FINAL_JOB_STATES.has((await this.record(token)).state)) await sleep(200);
    }
    return this.job(token);
  }

  private async record(token: string): Promise<JobRecord> {
    const record = isWellFormedToken(token) ? await this.deps.jobs.record(token) : null;
    if (!record) throw new JobNotFoundError();
    return record;
  }

  /** The job as it is now, as a progress event: what a late subscriber receives first. */
  private async snapshot(token: string): Promise<TrainingProgress> {
    const record = await this.record(token);
    const position = record.state === 'QUEUED' ? await this.deps.jobs.position(token) : null;
    const model = record.state === 'DEPLOYED' ? await this.deps.models.get(token).catch(() => null) : null;
    return recordEvent(record, position, model);
  }

  private async ingest(source: DatasetSource, stagingDir: string, limits: DatasetLimits) {
    switch (source.kind) {
      case 'csv':
        return ingestTextCsv(source.upload, { stagingDir, limits });
      case 'zip':
        return ingestImageZip(source.upload, { stagingDir, limits, imageSize: this.deps.config.imageSize });
      case 'classes':
        return ingestImageClasses(source.classes, { stagingDir, limits, imageSize: this.deps.config.imageSize });
    }
  }

  /** A fresh token; 103 random bits make a clash practically impossible, but it is checked. */
  private async newToken(taskType: QueueEntry['task_type'], taskName: string): Promise<string> {
    const inference = await this.deps.documents.read(INFERENCE);
    for (;;) {
      const token = createToken(taskType, taskName);
      if (!Object.hasOwn(inference, token) && !(await this.deps.jobs.record(token))) return token;
    }
  }
}

type DatasetSource =
  | { kind: 'csv' | 'zip'; upload: UploadInput }
  | { kind: 'classes'; classes: ClassUpload[] };

/**
 * Checks every input field that can be checked before an upload is read — the
 * hyperparameters, which dataset form was used, and the names and image counts of `classes` —
 * and reports all their problems in one `BAD_USER_INPUT` error (`fields` lists them in input
 * order). A dataset's content is checked while it is read, and reports its first problem.
 */
function checkInput(
  request: TrainingRequest,
  input: DatasetInput,
  limits: { training: TrainingLimits; datasets: DatasetLimits },
): { validated: ValidatedTraining; source: DatasetSource } {
  const errors: BadUserInputError[] = [];
  const attempt = <T>(check: () => T): T | undefined => {
    try {
      return check();
    } catch (error) {
      if (!(error instanceof BadUserInputError)) throw error;
      errors.push(error);
      return undefined;
    }
  };
  const validated = attempt(() => validateTrainingRequest(request, limits.training));
  const source = attempt(() => datasetSource(request.taskType, input));
  if (source?.kind === 'classes') attempt(() => checkClassUploads(source.classes, limits.datasets));
  if (errors.length > 0) throw BadUserInputError.merge(errors);
  return { validated: validated!, source: source! };
}

/** Which of the dataset forms the request used, checked against the task. */
function datasetSource(taskType: QueueEntry['task_type'], { dataset, classes }: DatasetInput): DatasetSource {
  if (dataset && classes) {
    throw new BadUserInputError('Send the dataset either as "dataset" or as "classes", not both.', 'dataset');
  }
  if (taskType === 'textclassification') {
    if (!dataset) throw new BadUserInputError('Text classification takes its dataset as a CSV in "dataset".', 'dataset');
    return { kind: 'csv', upload: dataset };
  }
  if (dataset) return { kind: 'zip', upload: dataset };
  if (classes) return { kind: 'classes', classes };
  throw new BadUserInputError('A dataset is required: a ZIP of class folders in "dataset", or images in "classes".', 'dataset');
}

/**
 * Writes the dataset in the form `training.json` keeps it — class name → base64 items (image
 * files, or UTF-8 texts) — one item at a time. Returns the number of classes.
 */
async function writeDatasetJson(dataset: ImageDataset | TextDataset, file: string): Promise<number> {
  const classes =
    dataset.kind === 'image'
      ? dataset.classes.map((entry) => ({ name: entry.name, items: entry.images.map((image) => image.path) }))
      : dataset.classes.map((name) => ({
          name,
          items: dataset.rows.filter((row) => row.label === name).map((row) => row.input),
        }));
  const out = await open(file, 'w');
  try {
    await out.write('{');
    for (const [index, { name, items }] of classes.entries()) {
      await out.write(`${index ? ',' : ''}${JSON.stringify(name)}:[`);
      for (const [itemIndex, item] of items.entries()) {
        await out.write(itemIndex ? ',"' : '"');
        if (dataset.kind === 'image') {
          // Base64 of a whole number of 3-byte groups at a time, so that the pieces concatenate.
          let carry = Buffer.alloc(0);
          for await (const chunk of createReadStream(item)) {
            const bytes = Buffer.concat([carry, chunk as Buffer]);
            const whole = bytes.length - (bytes.length % 3);
            await out.write(bytes.subarray(0, whole).toString('base64'));
            carry = bytes.subarray(whole);
          }
          await out.write(carry.toString('base64'));
        } else {
          await out.write(Buffer.from(item, 'utf8').toString('base64'));
        }
        await out.write('"');
      }
      await out.write(']');
    }
    await out.write('}');
  } finally {
    await out.close();
  }
  return classes.length;
}
