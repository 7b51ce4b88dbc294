import { z } from 'zod';

/**
 * The platform's four JSON documents, exactly as the seed describes them. Every object schema
 * is loose: keys we do not know survive a read-modify-write untouched, so an existing bucket
 * written by another version of the platform keeps working.
 */

export const TASK_TYPES = ['imageclassification', 'textclassification'] as const;
export const taskTypeSchema = z.enum(TASK_TYPES);
export type TaskTypeValue = z.infer<typeof taskTypeSchema>;

export const activitySchema = z.enum(['active', 'sleeping']);

/** `status.json`: the training server's state, doubling as its one-job lock, and dev mode. */
export const statusSchema = z.looseObject({
  status: activitySchema,
  token: z.string(),
  task_type: z.union([taskTypeSchema, z.literal('')]),
  dev_mode: z.boolean(),
});
export type StatusDocument = z.infer<typeof statusSchema>;

/** `cleanup.json`: `sleeping` stops the expiry of old models. */
export const cleanupSchema = z.looseObject({
  status: activitySchema,
});
export type CleanupDocument = z.infer<typeof cleanupSchema>;

/** One epoch of training, as the trainer reports it; accuracies are fractions in 0..1. */
export const epochRecordSchema = z.looseObject({
  epoch: z.number().int().positive(),
  epochs: z.number().int().positive(),
  train_loss: z.number().nullable(),
  train_accuracy: z.number(),
  val_loss: z.number().nullable(),
  val_accuracy: z.number(),
  lr: z.number(),
  seconds: z.number(),
});
export type EpochRecord = z.infer<typeof epochRecordSchema>;

/** `created` is written as `%d-%m-%y %H:%M` in UTC, e.g. `10-01-21 18:13`. */
export const CREATED_PATTERN = /^(\d{2})-(\d{2})-(\d{2}) (\d{2}):(\d{2})$/;

export const inferenceEntrySchema = z
  .looseObject({
    task_type: taskTypeSchema,
    model_filename: z.string().min(1),
    model_filename_onnx: z.string().min(1).optional(),
    classes: z.array(z.string()).optional(),
    metadata_filename: z.string().min(1).optional(),
    downloadable: z.boolean(),
    /** Either a percentage (96.67) or a fraction (0.67): both occur in existing buckets. */
    accuracy: z.number().min(0).max(100),
    accuracy_plot: z.string(),
    created: z.string().refine((value) => parseCreated(value) !== null, 'expected a date as "dd-mm-yy HH:MM"'),
    /** Added by this platform: per-epoch metrics of the training that produced the model. */
    history: z.array(epochRecordSchema).optional(),
  })
  .superRefine((entry, ctx) => {
    if (entry.task_type === 'imageclassification' && !entry.classes) {
      ctx.addIssue({ code: 'custom', path: ['classes'], message: 'image classification models need "classes"' });
    }
    if (entry.task_type === 'textclassification' && !entry.metadata_filename) {
      ctx.addIssue({
        code: 'custom',
        path: ['metadata_filename'],
        message: 'text classification models need "metadata_filename"',
      });
    }
  });
export type InferenceEntry = z.infer<typeof inferenceEntrySchema>;

/** `inference.json`: deployed models, keyed by their token. */
export const inferenceSchema = z.record(z.string(), inferenceEntrySchema);
export type InferenceDocument = z.infer<typeof inferenceSchema>;

export const IMAGE_MODELS = ['resnet18', 'resnet34', 'mobilenet v2'] as const;
export const TEXT_MODELS = ['lstm', 'gru'] as const;
export type ModelName = (typeof IMAGE_MODELS)[number] | (typeof TEXT_MODELS)[number];

/** `data_split`: train and validation percentages, `"70 : 30"` (spaces optional). */
export const DATA_SPLIT_PATTERN = /^\s*(\d{1,2})\s*:\s*(\d{1,2})\s*$/;

const positive = z.number().positive();
const positiveInt = z.number().int().positive();

/** `training/training.json`: the job the training server is running now. */
export const trainingSchema = z.looseObject({
  token: z.string().min(1),
  task_type: taskTypeSchema,
  num_classes: positiveInt,
  optimizer: z.enum(['sgd', 'adam']),
  learning_rate: positive,
  batch_size: positiveInt,
  epochs: positiveInt,
  /** Train and validation percentages, written `"70 : 30"`. */
  data_split: z.string().regex(DATA_SPLIT_PATTERN, 'expected a split such as "70 : 30"'),
  /**
   * Class name → base64 items: the image files, or for text jobs the UTF-8 texts. (A single
   * string is read too, as buckets of other writers may hold one, but never written.)
   */
  dataset: z.union([z.record(z.string(), z.array(z.string())), z.string()]),
  model: z.enum([...IMAGE_MODELS, ...TEXT_MODELS]),
  pretrain_dataset: z.enum(['imagenet', 'scratch']).optional(),
  reduce_lr_on_plateau: z.union([
    z.literal(false),
    z.looseObject({ factor: positive, patience: z.number().int().min(0), min_lr: z.number().min(0) }),
  ]),
  step_lr: z.union([z.literal(false), z.looseObject({ step_size: positiveInt, gamma: positive })]),
});
export type TrainingDocument = z.infer<typeof trainingSchema>;

/** Parses `created` (`%d-%m-%y %H:%M`, UTC, years 2000–2099); `null` when it is no real date. */
export function parseCreated(value: string): Date | null {
  const match = CREATED_PATTERN.exec(value);
  if (!match) return null;
  const [day, month, year, hour, minute] = match.slice(1).map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(2000 + year, month - 1, day, hour, minute));
  const roundTrips =
    date.getUTCDate() === day && date.getUTCMonth() === month - 1 && date.getUTCHours() === hour && minute < 60;
  return roundTrips ? date : null;
}

/** Formats a date the way `created` is stored: `%d-%m-%y %H:%M` in UTC. */
export function formatCreated(date: Date): string {
  const two = (value: number) => String(value).padStart(2, '0');
  return `${two(date.getUTCDate())}-${two(date.getUTCMonth() + 1)}-${two(date.getUTCFullYear() % 100)} ${two(
    date.getUTCHours(),
  )}:${two(date.getUTCMinutes())}`;
}
