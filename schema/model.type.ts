import { Field, Float, ID, ObjectType } from 'type-graphql';

import { TaskType } from './enums';
import { EpochMetrics } from './training.types';

@ObjectType({ description: 'A trained model deployed for inference.' })
export class Model {
  @Field(() => ID, { description: 'The token that gives access to the model.' })
  token!: string;

  @Field(() => TaskType, { description: 'Image or text classification.' })
  taskType!: TaskType;

  @Field(() => Float, { description: 'Best validation accuracy, a fraction in 0..1.' })
  accuracy!: number;

  @Field({ description: 'Training and validation accuracy per epoch, as a base64 image.' })
  accuracyPlot!: string;

  @Field({ description: 'Whether the weights can be downloaded.' })
  downloadable!: boolean;

  @Field(() => [String], {
    nullable: true,
    description:
      'Class names in output order, the labels the model predicts, for image and text models; null when unknown (text models of the original platform).',
  })
  classes!: string[] | null;

  @Field({ description: 'When the model was deployed (minute precision, UTC).' })
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: 'When the model will be deleted; null for pinned models.' })
  expiresAt!: Date | null;

  @Field(() => [EpochMetrics], { description: 'Metrics per epoch of the training that made it (empty for older models).' })
  history!: EpochMetrics[];
}
