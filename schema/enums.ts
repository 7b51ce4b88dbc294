import { registerEnumType } from 'type-graphql';

export enum TaskType {
  IMAGE_CLASSIFICATION = 'imageclassification',
  TEXT_CLASSIFICATION = 'textclassification',
}
registerEnumType(TaskType, { name: 'TaskType', description: 'What a model does.' });

export enum TrainingServerStatus {
  ACTIVE = 'active',
  SLEEPING = 'sleeping',
}
registerEnumType(TrainingServerStatus, {
  name: 'TrainingServerStatus',
  description: 'Whether the training server is running a job (`ACTIVE`) or idle (`SLEEPING`).',
});
