import { Arg, Authorized, Ctx, ID, Query, Resolver } from 'type-graphql';

import type { TaskType } from '../schema/enums';
import { Model } from '../schema/model.type';
import type { Model as DeployedModel } from '../src/models/model.service';
import { type Context, Role } from './context';
import { toEpochMetrics } from './training.resolver';

@Resolver(() => Model)
export class ModelResolver {
  @Query(() => Model, { description: 'The model deployed under a token (the token is the credential).' })
  async model(@Arg('token', () => ID) token: string, @Ctx() { services, documents }: Context): Promise<Model> {
    return toModel(await services.models.get(token, documents));
  }

  @Authorized(Role.ADMIN)
  @Query(() => [Model], { description: 'Admin: every deployed model, newest first.' })
  async models(@Ctx() { services, documents }: Context): Promise<Model[]> {
    return (await services.models.list(documents)).map(toModel);
  }
}

export function toModel(model: DeployedModel): Model {
  return { ...model, taskType: model.taskType as TaskType, history: model.history.map(toEpochMetrics) };
}
