import { Arg, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';

import type { ModelArchitecture, TaskType, TrainingState } from '../schema/enums';
import { TrainingState as State } from '../schema/enums';
import { Model } from '../schema/model.type';
import { EpochMetrics, TrainingEvent, TrainingInput, TrainingJob } from '../schema/training.types';
import type { EpochRecord } from '../src/documents';
import { BadUserInputError, ModelNotFoundError } from '../src/errors';
import type { TrainingJob as Job, TrainingProgress } from '../src/training/job';
import type { DatasetSource } from '../src/training/training.service';
import type { TrainingRequest } from '../src/training/training.input';
import type { Context } from './context';
import { toModel } from './model.resolver';

@Resolver(() => TrainingJob)
export class TrainingResolver {
  @Mutation(() => TrainingJob, {
    description:
      'Uploads a dataset and queues a training job (GraphQL multipart request; send the "apollo-require-preflight: true" header). Answers MAINTENANCE in dev mode and SERVER_BUSY when the queue is full.',
  })
  async submitTraining(
    @Arg('input', () => TrainingInput) input: TrainingInput,
    @Ctx() { services }: Context,
  ): Promise<TrainingJob> {
    return toTrainingJob(await services.training.submit(toRequest(input), toDatasetSource(input)));
  }

  @Mutation(() => TrainingJob, { description: 'Removes a queued job, or stops a running one (the token is the credential).' })
  async cancelTraining(@Arg('token', () => ID) token: string, @Ctx() { services }: Context): Promise<TrainingJob> {
    return toTrainingJob(await services.training.cancel(token));
  }

  @Query(() => TrainingJob, { description: 'A training job’s state, queue position and history.' })
  async trainingJob(@Arg('token', () => ID) token: string, @Ctx() { services }: Context): Promise<TrainingJob> {
    return toTrainingJob(await services.training.job(token));
  }

  @Subscription(() => TrainingEvent, {
    description: 'A job’s progress: first its current state and history, then every change until it ends.',
    subscribe: ({ args, context }) => (context as Context).services.training.watch(String(args.token)),
  })
  trainingProgress(@Arg('token', () => ID) _token: string, @Root() progress: TrainingProgress): TrainingEvent {
    return {
      ...progress,
      state: progress.state as TrainingState,
      metrics: progress.metrics ? toEpochMetrics(progress.metrics) : null,
      history: progress.history.map(toEpochMetrics),
      model: progress.model ? toModel(progress.model) : null,
    };
  }

  @FieldResolver(() => Model, { nullable: true })
  async model(@Root() job: TrainingJob, @Ctx() { services, documents }: Context): Promise<Model | null> {
    if (job.state !== State.DEPLOYED) return null;
    try {
      return toModel(await services.models.get(job.token, documents));
    } catch (error) {
      if (error instanceof ModelNotFoundError) return null; // deployed, then expired or deleted
      throw error;
    }
  }
}

function toRequest(input: TrainingInput): TrainingRequest {
  return {
    taskType: input.taskType,
    taskName: input.taskName,
    model: input.model,
    optimizer: input.optimizer,
    learningRate: input.learningRate,
    batchSize: input.batchSize,
    epochs: input.epochs,
    dataSplit: input.dataSplit,
    pretrainDataset: input.pretrainDataset ?? null,
    reduceLrOnPlateau: input.reduceLrOnPlateau ?? null,
    stepLr: input.stepLr ?? null,
  };
}

function toDatasetSource(input: TrainingInput): DatasetSource {
  if (input.dataset && input.classes) {
    throw new BadUserInputError('Send the dataset either as "dataset" or as "classes", not both.', 'input.dataset');
  }
  if (input.dataset) return { kind: 'archive', upload: input.dataset };
  if (input.classes) return { kind: 'classes', classes: input.classes };
  throw new BadUserInputError('A dataset is required: a ZIP or CSV in "dataset", or images in "classes".', 'input.dataset');
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

function toTrainingJob(job: Job): TrainingJob {
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
    model: null,
  };
}
