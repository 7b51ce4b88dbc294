import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';

import { DownloadLink } from '../schema/download-link.type';
import { ModelFormat } from '../schema/enums';
import { Model } from '../schema/model.type';
import { type Context, Role } from './context';
import { toModel } from './mappers';

@Resolver(() => Model)
export class ModelResolver {
  @Query(() => Model, {
    nullable: true,
    description: 'The model deployed under a token (the token is the credential).',
  })
  async model(@Arg('token', () => ID) token: string, @Ctx() { services, documents }: Context): Promise<Model> {
    return toModel(await services.models.get(token, documents));
  }

  @Authorized(Role.ADMIN)
  @Query(() => [Model], { nullable: true, description: 'Admin: every deployed model, newest first.' })
  async models(@Ctx() { services, documents }: Context): Promise<Model[]> {
    return (await services.models.list(documents)).map(toModel);
  }

  @Mutation(() => DownloadLink, {
    nullable: true,
    description: 'A link to the model’s weights that expires (FORBIDDEN when the model is not downloadable).',
  })
  async downloadModel(
    @Arg('token', () => ID) token: string,
    @Arg('format', () => ModelFormat) format: ModelFormat,
    @Ctx() { services, origin }: Context,
  ): Promise<DownloadLink> {
    return services.downloads.link(token, format, origin);
  }

  @Mutation(() => Boolean, {
    nullable: true,
    description: 'Deletes the model and its files (the token is the credential).',
  })
  async deleteModel(@Arg('token', () => ID) token: string, @Ctx() { services }: Context): Promise<boolean> {
    await services.models.delete(token);
    return true;
  }

  @FieldResolver(() => [String], { nullable: true })
  async classes(@Root() model: Model, @Ctx() { services, documents }: Context): Promise<string[] | null> {
    return services.models.classes(model, documents);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => [ID], {
    nullable: true,
    description: 'Admin: deletes the expired models, and the job records past their retention, now; returns the tokens of the models deleted.',
  })
  async runCleanup(@Ctx() { services }: Context): Promise<string[]> {
    return services.cleanup.run();
  }
}
