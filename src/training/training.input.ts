import { z } from 'zod';

import { DATA_SPLIT_PATTERN, IMAGE_MODELS, type ModelName, type TaskTypeValue, TEXT_MODELS } from '../documents';
import { BadUserInputError } from '../errors';

/** A training request as the API takes it, before validation. */
export interface TrainingRequest {
  taskType: TaskTypeValue;
  taskName: string;
  model: ModelName;
  optimizer: 'sgd' | 'adam';
  learningRate: number;
  batchSize: number;
  epochs: number;
  dataSplit: string;
  pretrainDataset?: 'imagenet' | 'scratch' | null;
  reduceLrOnPlateau?: { factor: number; patience: number; minLr: number } | null;
  stepLr?: { stepSize: number; gamma: number } | null;
}

export interface TrainingLimits {
  maxEpochs: number;
  maxBatchSize: number;
}

/** `training.json`'s hyperparameter keys, as stored (all but `token`, `dataset`, `num_classes`). */
export interface Hyperparameters {
  task_type: TaskTypeValue;
  optimizer: 'sgd' | 'adam';
  learning_rate: number;
  batch_size: number;
  epochs: number;
  data_split: string;
  model: ModelName;
  pretrain_dataset?: 'imagenet' | 'scratch';
  reduce_lr_on_plateau: false | { factor: number; patience: number; min_lr: number };
  step_lr: false | { step_size: number; gamma: number };
}

/** A validated request: the task name to put in the token, and the hyperparameters. */
export interface ValidatedTraining {
  taskName: string;
  config: Hyperparameters;
}

const TASK_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9 -]{0,48}[A-Za-z0-9])?$/;

function requestSchema({ maxEpochs, maxBatchSize }: TrainingLimits) {
  const fraction = (name: string) =>
    z.number().refine((value) => value > 0 && value < 1, `${name} must be between 0 and 1 (exclusive)`);
  return z
    .object({
      taskType: z.enum(['imageclassification', 'textclassification']),
      taskName: z
        .string()
        .transform((value) => value.trim())
        .refine(
          (value) => TASK_NAME.test(value),
          'must be 1–50 characters of letters, digits, spaces and hyphens, starting and ending with a letter or digit',
        ),
      model: z.enum([...IMAGE_MODELS, ...TEXT_MODELS]),
      optimizer: z.enum(['sgd', 'adam']),
      learningRate: z
        .number()
        .refine((value) => Number.isFinite(value) && value > 0 && value <= 1, 'must be greater than 0 and at most 1'),
      batchSize: z
        .number()
        .int('must be a whole number')
        .refine((value) => value >= 1 && value <= maxBatchSize, `must be between 1 and ${maxBatchSize}`),
      epochs: z
        .number()
        .int('must be a whole number')
        .refine((value) => value >= 1 && value <= maxEpochs, `must be between 1 and ${maxEpochs}`),
      dataSplit: z.string().transform((value, ctx) => {
        const match = DATA_SPLIT_PATTERN.exec(value);
        const train = Number(match?.[1]);
        const validation = Number(match?.[2]);
        if (!match || train + validation !== 100 || validation < 5 || validation > 50) {
          ctx.addIssue({
            code: 'custom',
            message: 'must be "train : validation" percentages that add up to 100, such as "70 : 30" or "80:20", with 5 to 50 for validation',
          });
          return z.NEVER;
        }
        return `${train} : ${validation}`;
      }),
      pretrainDataset: z.enum(['imagenet', 'scratch']).nullish(),
      reduceLrOnPlateau: z
        .object({
          factor: fraction('factor'),
          patience: z.number().int('patience must be a whole number').min(0).max(100, 'patience must be at most 100'),
          minLr: z.number().min(0, 'minLr must not be negative'),
        })
        .nullish(),
      stepLr: z
        .object({
          stepSize: z.number().int('stepSize must be a whole number').min(1, 'stepSize must be at least 1'),
          gamma: z.number().refine((value) => value > 0 && value <= 1, 'gamma must be greater than 0 and at most 1'),
        })
        .nullish(),
    })
    // Each check across fields runs when the fields it reads are valid, whatever else is not:
    // all problems are reported at once.
    .superRefine(
      (request, ctx) => {
        const imageTask = request.taskType === 'imageclassification';
        const models: readonly string[] = imageTask ? IMAGE_MODELS : TEXT_MODELS;
        if (!models.includes(request.model)) {
          ctx.addIssue({
            code: 'custom',
            path: ['model'],
            message: `${request.model} is not a ${imageTask ? 'image' : 'text'} classification model; choose one of ${models.join(', ')}`,
          });
        }
      },
      { when: validAt('taskType', 'model') },
    )
    .superRefine(
      (request, ctx) => {
        if (request.taskType !== 'imageclassification' && request.pretrainDataset === 'imagenet') {
          ctx.addIssue({ code: 'custom', path: ['pretrainDataset'], message: 'ImageNet weights exist for image models only' });
        }
      },
      { when: validAt('taskType', 'pretrainDataset') },
    )
    .superRefine(
      (request, ctx) => {
        if (request.reduceLrOnPlateau && request.reduceLrOnPlateau.minLr >= request.learningRate) {
          ctx.addIssue({
            code: 'custom',
            path: ['reduceLrOnPlateau', 'minLr'],
            message: 'minLr must be lower than learningRate',
          });
        }
      },
      { when: validAt('learningRate', 'reduceLrOnPlateau') },
    );
}

/** A refinement's `when`: the fields it reads have no problem of their own. */
function validAt(...fields: string[]) {
  return (payload: { issues: readonly { path?: readonly PropertyKey[] }[] }) =>
    !payload.issues.some((issue) => fields.includes(String(issue.path?.[0])));
}

/**
 * Checks every hyperparameter and reports all problems in one `BAD_USER_INPUT` error: `fields`
 * lists each input field at fault (`batchSize`, `reduceLrOnPlateau.minLr`) in input order,
 * `field` is the first. Returns `training.json`'s keys.
 */
export function validateTrainingRequest(request: TrainingRequest, limits: TrainingLimits): ValidatedTraining {
  const schema = requestSchema(limits);
  const parsed = schema.safeParse(request);
  if (!parsed.success) {
    const order = Object.keys(schema.shape);
    const position = (path: readonly PropertyKey[]) => order.indexOf(String(path[0]));
    const issues = [...parsed.error.issues].sort((a, b) => position(a.path) - position(b.path));
    throw BadUserInputError.of(issues.map((issue) => ({ field: issue.path.map(String).join('.'), message: issue.message })));
  }
  const valid = parsed.data;
  const imageTask = valid.taskType === 'imageclassification';
  return {
    taskName: valid.taskName,
    config: {
      task_type: valid.taskType,
      optimizer: valid.optimizer,
      learning_rate: valid.learningRate,
      batch_size: valid.batchSize,
      epochs: valid.epochs,
      data_split: valid.dataSplit,
      model: valid.model,
      ...(imageTask ? { pretrain_dataset: valid.pretrainDataset ?? 'scratch' } : {}),
      reduce_lr_on_plateau: valid.reduceLrOnPlateau
        ? {
            factor: valid.reduceLrOnPlateau.factor,
            patience: valid.reduceLrOnPlateau.patience,
            min_lr: valid.reduceLrOnPlateau.minLr,
          }
        : false,
      step_lr: valid.stepLr ? { step_size: valid.stepLr.stepSize, gamma: valid.stepLr.gamma } : false,
    },
  };
}
