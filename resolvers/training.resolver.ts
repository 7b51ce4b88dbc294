import { Arg, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';

import { TrainingState } from '../schema/enums';
import { Model } from '../schema/model.type';
import { TrainingEvent, TrainingInput, TrainingJob } from '../schema/training.types';
import { ModelNotFoundError } from '../src/errors';
import type { TrainingProgress } from '../src/training/job';
import type { Context } from './context';
import { toModel, toTrainingEvent, toTrainingJob } from './mappers';

@Resolver(() => TrainingJob)
export class TrainingResolver {
  @Mutation(() => TrainingJob, {
    nullable: true,
    description:
      'Uploads a dataset and queues a training job (GraphQL multipart request; send the "apollo-require-preflight: true" header). Answers MAINTENANCE in dev mode and SERVER_BUSY when the queue is full.',
  })
  async submitTraining(
    @Arg('input', () => TrainingInput) { dataset, classes, ...request }: TrainingInput,
    @Ctx() { services }: Context,
  ): Promise<TrainingJob> {
    return toTrainingJob(await services.training.submit(request, { dataset, classes }));
  }

  @Mutation(() => TrainingJob, {
    nullable: true,
    description: 'Removes a queued job, or stops a running one (the token is the credential).',
  })
  async cancelTraining(@Arg('token', () => ID) token: string, @Ctx() { services }: Context): Promise<TrainingJob> {
    return toTrainingJob(await services.training.cancel(token));
  }

  @Query(() => TrainingJob, { nullable: true, description: 'A training job’s state, queue position and history.' })
  async trainingJob(@Arg('token', () => ID) token: string, @Ctx() { services }: Context): Promise<TrainingJob> {
    return toTrainingJob(await services.training.job(token));
  }

  @Subscription(() => TrainingEvent, {
    description: 'A job’s progress: first its current state and history, then every change until it ends.',
    subscribe: ({ args, context }) => (context as Context).services.training.watch(String(args.token)),
  })
  trainingProgress(@Arg('token', () => ID) _token: string, @Root() progress: TrainingProgress): TrainingEvent {
    return toTrainingEvent(progress);
  }

  @FieldResolver(() => Model, { nullable: true })
  async model(@Root() job: TrainingJob, @Ctx() { services, documents }: Context): Promise<Model | null> {
    if (job.state !== TrainingState.DEPLOYED) return null;
    try {
      return toModel(await services.models.get(job.token, documents));
    } catch (error) {
      if (error instanceof ModelNotFoundError) return null; // deployed, then deleted
      throw error;
    }
  }
}
