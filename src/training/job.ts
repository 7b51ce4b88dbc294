import { type EpochRecord, FINAL_JOB_STATES, type JobRecord, type JobStateValue, type TaskTypeValue } from '../documents';
import type { Model } from '../models/model.service';

/**
 * A job's state as the platform presents it: the stored state, or `DELETED` for a job that
 * deployed its model when the model has since been deleted (by `deleteModel`, or by cleanup
 * after its time to live). The record itself keeps `DEPLOYED` and the time of the deletion, so
 * it stays readable by every version of the platform.
 */
export type JobState = JobStateValue | 'DELETED';

export function jobState(record: JobRecord): JobState {
  return record.state === 'DEPLOYED' && (record.deleted_at || record.expired_at) ? 'DELETED' : record.state;
}

/** Nothing more will happen to a job in this state. */
export function isFinalState(state: JobState): boolean {
  return state === 'DELETED' || FINAL_JOB_STATES.has(state);
}

/** A training job as the platform presents it. Accuracies are fractions in 0..1. */
export interface TrainingJob {
  token: string;
  taskType: TaskTypeValue;
  taskName: string;
  model: string;
  state: JobState;
  /** Jobs that run before this one; `null` once it has started or ended. */
  queuePosition: number | null;
  epochs: number;
  history: EpochRecord[];
  error: string | null;
  submittedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** One step of a job's progress, as subscribers receive it. */
export interface TrainingProgress {
  token: string;
  state: JobState;
  /** The last completed epoch (0 before the first). */
  epoch: number;
  epochs: number;
  /** The epoch's metrics, on the event that completes it. */
  metrics: EpochRecord | null;
  /** Batch progress inside the running epoch. */
  batch: { epoch: number; batch: number; batches: number; loss: number | null } | null;
  etaSeconds: number | null;
  message: string | null;
  queuePosition: number | null;
  history: EpochRecord[];
  /** The deployed model, on `DEPLOYED`. */
  model: Model | null;
}

export function toTrainingJob(record: JobRecord, queuePosition: number | null): TrainingJob {
  return {
    token: record.token,
    taskType: record.task_type,
    taskName: record.task_name,
    model: record.model,
    state: jobState(record),
    queuePosition: record.state === 'QUEUED' ? queuePosition : null,
    epochs: record.epochs,
    history: record.history,
    error: record.error,
    submittedAt: new Date(record.submitted_at),
    startedAt: record.started_at ? new Date(record.started_at) : null,
    finishedAt: record.finished_at ? new Date(record.finished_at) : null,
  };
}

/** Seconds left, from the mean epoch time so far. */
export function estimateEta(history: readonly EpochRecord[], epochs: number): number | null {
  if (history.length === 0) return null;
  const mean = history.reduce((sum, record) => sum + record.seconds, 0) / history.length;
  return Math.max(0, Math.round(mean * (epochs - history.length)));
}
