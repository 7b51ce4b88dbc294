import { z } from 'zod';

import { defineDocument, type DocumentDefinition } from './document.store';
import { epochRecordSchema, taskTypeSchema, trainingSchema } from './schemas';

/**
 * Documents this platform adds beside the seed's four, all under `training/`, so that a bucket
 * stays readable by anything that only knows the seed's layout:
 *
 * - `training/queue.json`: the jobs admitted and not yet finished, oldest first. The head is
 *   the job that runs (or will run next). Admission is a compare-and-swap on this one
 *   document, which is what bounds the queue exactly under concurrent submissions.
 * - `training/jobs/<token>/job.json`: one job's state and per-epoch history, for
 *   `trainingJob` queries and late subscribers, from any server process.
 * - `training/jobs/<token>/dataset.json`: the validated dataset of a queued job, in the form
 *   `training.json`'s `dataset` takes, until the job starts.
 */

export const JOB_STATES = ['QUEUED', 'PREPARING', 'TRAINING', 'EXPORTING', 'DEPLOYED', 'FAILED', 'CANCELLED'] as const;
export type JobStateValue = (typeof JOB_STATES)[number];
export const FINAL_JOB_STATES: ReadonlySet<JobStateValue> = new Set(['DEPLOYED', 'FAILED', 'CANCELLED']);

/** Hyperparameters as `training.json` stores them: its keys without `token` and `dataset`. */
export const jobConfigSchema = trainingSchema.omit({ token: true, dataset: true });
export type JobConfig = z.infer<typeof jobConfigSchema>;

export const queueEntrySchema = z.looseObject({
  token: z.string().min(1),
  task_type: taskTypeSchema,
  task_name: z.string(),
  /** ISO time of admission. */
  submitted_at: z.string(),
  config: jobConfigSchema,
  /** Store key of the staged dataset. */
  dataset_key: z.string().min(1),
  /** Set when a supervisor takes the job; `null` while it waits. */
  running: z
    .looseObject({
      /** The supervisor's id: unique per process. */
      worker: z.string(),
      host: z.string(),
      pid: z.number().int(),
      started_at: z.string(),
    })
    .nullable(),
  /** Times a supervisor died while running the job (graceful shutdowns do not count). */
  crashes: z.number().int().min(0).default(0),
});
export type QueueEntry = z.infer<typeof queueEntrySchema>;

export const queueSchema = z.looseObject({ jobs: z.array(queueEntrySchema) });
export type QueueDocument = z.infer<typeof queueSchema>;


export const jobRecordSchema = z.looseObject({
  token: z.string().min(1),
  task_type: taskTypeSchema,
  task_name: z.string(),
  model: z.string(),
  state: z.enum(JOB_STATES),
  epochs: z.number().int().positive(),
  history: z.array(epochRecordSchema),
  /** The reason a job failed, worded for its user. */
  error: z.string().nullable(),
  submitted_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  /** Which supervisor runs the job, and when it last said so (ISO): the job's lease. Only that supervisor writes the record while the job runs. */
  worker: z.string().nullable(),
  heartbeat_at: z.string().nullable(),
  /** Times the job was started. */
  attempts: z.number().int().min(0),
  /** Set by `cancelTraining` on any server; the supervisor running the job acts on it. */
  cancel_requested: z.boolean(),
  /** When cleanup deleted the model this job deployed (ISO). */
  expired_at: z.string().nullish(),
  /**
   * The server process that submitted the job: its worker id (`FLASH_WORKER_ID`) and pid. The
   * record is written before the dataset is staged and the job admitted, so that a restart can
   * tell a submission its killed predecessor left from one another server is making.
   */
  submitted_by: z.looseObject({ host: z.string(), pid: z.number().int() }).nullish(),
  /** When `deleteModel` deleted the model this job deployed (ISO). */
  deleted_at: z.string().nullish(),
});
export type JobRecord = z.infer<typeof jobRecordSchema>;

/**
 * Tokens this platform makes, and the samples' older ones, are letters, digits, `_` and `-`.
 * Anything else cannot name a job or model, and must never reach a store key.
 */
export function isWellFormedToken(token: string): boolean {
  return /^[A-Za-z0-9_-]{1,200}$/.test(token);
}

export const QUEUE = defineDocument<QueueDocument>('training/queue.json', queueSchema, { jobs: [] }, { cached: true });

/** Where each job's folder (`<token>/job.json`, `<token>/dataset.json`) lives. */
export const JOBS_PREFIX = 'training/jobs/';

export function jobRecordDocument(token: string): DocumentDefinition<JobRecord> {
  return defineDocument<JobRecord>(`${JOBS_PREFIX}${token}/job.json`, jobRecordSchema, undefined, {
    name: 'training/jobs/<token>/job.json',
  });
}

export function stagedDatasetKey(token: string): string {
  return `${JOBS_PREFIX}${token}/dataset.json`;
}
