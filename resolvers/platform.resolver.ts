import { Arg, Authorized, Ctx, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';

import { TaskType, TrainingServerStatus } from '../schema/enums';
import { PlatformStatus } from '../schema/platform-status.type';
import { CLEANUP, STATUS } from '../src/documents';
import type { PlatformState } from '../src/platform/platform.service';
import { type Context, Role } from './context';

@Resolver(() => PlatformStatus)
export class PlatformResolver {
  @Query(() => PlatformStatus, {
    nullable: true,
    description: 'Training server state, maintenance mode and model expiry.',
  })
  async status(@Ctx() { services, documents }: Context): Promise<PlatformStatus> {
    return toPlatformStatus(await services.platform.state(documents));
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => PlatformStatus, { nullable: true, description: 'Admin: turn maintenance (dev) mode on or off.' })
  async setDevMode(@Arg('enabled') enabled: boolean, @Ctx() { services, documents }: Context): Promise<PlatformStatus> {
    const state = await services.platform.setDevMode(enabled);
    documents.forget(STATUS);
    return toPlatformStatus(state);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => PlatformStatus, {
    nullable: true,
    description: 'Admin: let the expiry of old models run, or pause it.',
  })
  async setCleanup(@Arg('active') active: boolean, @Ctx() { services, documents }: Context): Promise<PlatformStatus> {
    const state = await services.platform.setCleanup(active);
    documents.forget(CLEANUP);
    return toPlatformStatus(state);
  }

  @Subscription(() => PlatformStatus, {
    topics: 'STATUS_CHANGED',
    description: 'The platform status, each time an operation on this server changes it.',
  })
  statusChanged(@Root() state: PlatformState): PlatformStatus {
    return toPlatformStatus(state);
  }
}

function toPlatformStatus(state: PlatformState): PlatformStatus {
  return {
    status: state.trainingServer === 'active' ? TrainingServerStatus.ACTIVE : TrainingServerStatus.SLEEPING,
    taskType: state.taskType as TaskType | null,
    devMode: state.devMode,
    cleanupActive: state.cleanupActive,
  };
}
