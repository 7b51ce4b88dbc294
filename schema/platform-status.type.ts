import { Field, ObjectType } from 'type-graphql';

import { TaskType, TrainingServerStatus } from './enums';

@ObjectType({ description: 'The platform as `status.json` and `cleanup.json` describe it.' })
export class PlatformStatus {
  @Field(() => TrainingServerStatus, { description: 'Whether a training job is running.' })
  status!: TrainingServerStatus;

  @Field(() => TaskType, { nullable: true, description: 'Task type of the running job; null while sleeping.' })
  taskType!: TaskType | null;

  @Field({ description: 'Maintenance mode: while on, the platform refuses new work.' })
  devMode!: boolean;

  @Field({ description: 'Whether expired models are being deleted.' })
  cleanupActive!: boolean;
}
