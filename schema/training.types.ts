import type { FileUpload } from 'graphql-upload-minimal';
import { Field, Float, ID, InputType, Int, ObjectType } from 'type-graphql';

import { ModelArchitecture, Optimizer, PretrainDataset, TaskType, TrainingState } from './enums';
import { Model } from './model.type';
import { Upload } from './scalars';

@InputType({ description: 'Lower the learning rate when validation accuracy stops improving.' })
export class ReduceLrOnPlateauInput {
  @Field(() => Float, { description: 'Multiplier applied to the rate, between 0 and 1.' })
  factor!: number;

  @Field(() => Int, { description: 'Epochs without improvement before the rate is lowered.' })
  patience!: number;

  @Field(() => Float, { description: 'The rate is never lowered below this.' })
  minLr!: number;
}

@InputType({ description: 'Multiply the learning rate by gamma every stepSize epochs.' })
export class StepLrInput {
  @Field(() => Int)
  stepSize!: number;

  @Field(() => Float)
  gamma!: number;
}

@InputType({ description: 'One image class: its name and its images, one upload each.' })
export class ClassImagesInput {
  @Field()
  name!: string;

  @Field(() => [Upload])
  images!: Promise<FileUpload>[];
}

@InputType({ description: 'A training job: the task, the hyperparameters and the dataset.' })
export class TrainingInput {
  @Field(() => TaskType)
  taskType!: TaskType;

  @Field({ description: 'Letters, digits, spaces and hyphens; part of the model token.' })
  taskName!: string;

  @Field(() => ModelArchitecture)
  model!: ModelArchitecture;

  @Field(() => Optimizer)
  optimizer!: Optimizer;

  @Field(() => Float)
  learningRate!: number;

  @Field(() => Int)
  batchSize!: number;

  @Field(() => Int)
  epochs!: number;

  @Field({ description: 'Training and validation percentages, such as "70 : 30" or "80:20".' })
  dataSplit!: string;

  @Field(() => PretrainDataset, { nullable: true, description: 'Images only; default SCRATCH.' })
  pretrainDataset?: PretrainDataset | null;

  @Field(() => ReduceLrOnPlateauInput, { nullable: true })
  reduceLrOnPlateau?: ReduceLrOnPlateauInput | null;

  @Field(() => StepLrInput, { nullable: true })
  stepLr?: StepLrInput | null;

  @Field(() => Upload, {
    nullable: true,
    description: 'A ZIP with one folder of images per class, or for text a CSV with columns input and label.',
  })
  dataset?: Promise<FileUpload> | null;

  @Field(() => [ClassImagesInput], { nullable: true, description: 'Images uploaded per class, instead of a ZIP.' })
  classes?: ClassImagesInput[] | null;
}

@ObjectType({ description: 'The metrics of one training epoch. Accuracies are fractions in 0..1.' })
export class EpochMetrics {
  @Field(() => Int)
  epoch!: number;

  @Field(() => Float, { nullable: true, description: 'Null when the loss was not finite.' })
  trainLoss!: number | null;

  @Field(() => Float)
  trainAccuracy!: number;

  @Field(() => Float, { nullable: true, description: 'Null when the loss was not finite.' })
  valLoss!: number | null;

  @Field(() => Float)
  valAccuracy!: number;

  @Field(() => Float)
  learningRate!: number;

  @Field(() => Float, { description: 'Duration of the epoch.' })
  seconds!: number;
}

@ObjectType({ description: 'Progress inside the running epoch.' })
export class BatchProgress {
  @Field(() => Int)
  epoch!: number;

  @Field(() => Int)
  batch!: number;

  @Field(() => Int)
  batches!: number;

  @Field(() => Float, { nullable: true })
  loss!: number | null;
}

@ObjectType({ description: 'A training job, from submission to deployment.' })
export class TrainingJob {
  @Field(() => ID, { description: 'The job’s token, which becomes its model’s token.' })
  token!: string;

  @Field(() => TaskType)
  taskType!: TaskType;

  @Field()
  taskName!: string;

  @Field(() => ModelArchitecture)
  architecture!: ModelArchitecture;

  @Field(() => TrainingState)
  state!: TrainingState;

  @Field(() => Int, { nullable: true, description: 'Jobs that run before this one; null once it has started.' })
  queuePosition!: number | null;

  @Field(() => Int)
  epochs!: number;

  @Field(() => [EpochMetrics])
  history!: EpochMetrics[];

  @Field(() => String, { nullable: true, description: 'Why the job failed.' })
  error!: string | null;

  @Field()
  submittedAt!: Date;

  @Field(() => Date, { nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  finishedAt!: Date | null;

  @Field(() => Model, { nullable: true, description: 'The deployed model, once DEPLOYED.' })
  model!: Model | null;
}

@ObjectType({ description: 'One step of a training job’s progress.' })
export class TrainingEvent {
  @Field(() => ID)
  token!: string;

  @Field(() => TrainingState)
  state!: TrainingState;

  @Field(() => Int, { description: 'Epochs completed.' })
  epoch!: number;

  @Field(() => Int)
  epochs!: number;

  @Field(() => EpochMetrics, { nullable: true, description: 'The epoch this event completes.' })
  metrics!: EpochMetrics | null;

  @Field(() => BatchProgress, { nullable: true })
  batch!: BatchProgress | null;

  @Field(() => Int, { nullable: true, description: 'Estimated seconds until training ends.' })
  etaSeconds!: number | null;

  @Field(() => String, { nullable: true })
  message!: string | null;

  @Field(() => Int, { nullable: true })
  queuePosition!: number | null;

  @Field(() => [EpochMetrics], { description: 'Every epoch completed so far.' })
  history!: EpochMetrics[];

  @Field(() => Model, { nullable: true, description: 'The deployed model, on DEPLOYED.' })
  model!: Model | null;
}
