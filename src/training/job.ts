import type { EpochRecord, JobRecord, JobStateValue, TaskTypeValue } from '../documents';
import type { Model } from '../models/model.service';

/** A training job as the platform presents it. Accuracies are fractions in 0..1. */
export interface TrainingJob {
  token: string;
  taskType: TaskTypeValue;
  taskName: string;
  model: string;
  state: JobStateValue;
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
  state: JobStateValue;
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
    state: record.state,
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
