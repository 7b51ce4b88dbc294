import type { ModelArchitecture, TaskType, TrainingState } from '../schema/enums';
import type { Model } from '../schema/model.type';
import type { EpochMetrics, TrainingEvent, TrainingJob } from '../schema/training.types';
import type { EpochRecord } from '../src/documents';
import type { Model as DeployedModel } from '../src/models/model.service';
import type { TrainingJob as Job, TrainingProgress } from '../src/training/job';

/** Domain objects → schema types. The enums' values are the stored values, so they map as they are. */

export function toModel(model: DeployedModel): Model {
  return { ...model, taskType: model.taskType as TaskType, history: model.history.map(toEpochMetrics) };
}

export function toEpochMetrics(record: EpochRecord): EpochMetrics {
  return {
    epoch: record.epoch,
    trainLoss: record.train_loss,
    trainAccuracy: record.train_accuracy,
    valLoss: record.val_loss,
    valAccuracy: record.val_accuracy,
    learningRate: record.lr,
    seconds: record.seconds,
  };
}

export function toTrainingJob(job: Job): TrainingJob {
  return {
    token: job.token,
    taskType: job.taskType as TaskType,
    taskName: job.taskName,
    architecture: job.model as ModelArchitecture,
    state: job.state as TrainingState,
    queuePosition: job.queuePosition,
    epochs: job.epochs,
    history: job.history.map(toEpochMetrics),
    error: job.error,
    submittedAt: job.submittedAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    model: null, // resolved on demand by TrainingResolver.model
  };
}

export function toTrainingEvent(progress: TrainingProgress): TrainingEvent {
  return {
    ...progress,
    state: progress.state as TrainingState,
    metrics: progress.metrics ? toEpochMetrics(progress.metrics) : null,
    history: progress.history.map(toEpochMetrics),
    model: progress.model ? toModel(progress.model) : null,
  };
}
