import path from 'node:path';

import type { FlashClient } from '../client';
import { readDataset } from '../dataset';
import {
  SubmitTrainingDocument,
  TrainingProgressDocument,
  type ModelArchitecture,
  type Optimizer,
  type PretrainDataset,
  type TaskType,
  type TrainingInput,
} from '../../gql/graphql';
import { formatPercent, unreachable, type Streams } from '../output';
import { progressView, type TrainingEvent } from '../progress';

export interface TrainOptions {
  task?: TaskType;
  name?: string;
  model?: ModelArchitecture;
  optimizer: Optimizer;
  lr: number;
  batchSize: number;
  epochs: number;
  split: string;
  pretrain?: PretrainDataset;
}

const DEFAULT_ARCHITECTURE: Record<TaskType, ModelArchitecture> = {
  IMAGE_CLASSIFICATION: 'MOBILENET_V2',
  TEXT_CLASSIFICATION: 'GRU',
};

/** How the user runs this client, so that the commands it suggests can be pasted as they are. */
export interface Invocation {
  /** `flash`, or `npm run flash --` under npm. */
  command: string;
  /** ` --url …` when the server is not the one a bare command reaches. */
  urlFlag: string;
}

/** Uploads the dataset, queues the job and follows it to its end. */
export async function train(
  client: FlashClient,
  location: string,
  options: TrainOptions,
  io: Streams,
  invocation: Invocation,
): Promise<number> {
  const dataset = await readDataset(location);
  const taskType = options.task ?? dataset.taskType;
  const isImage = taskType === 'IMAGE_CLASSIFICATION';
  const input: TrainingInput = {
    ...dataset.upload,
    taskType,
    taskName: options.name ?? defaultName(location),
    model: options.model ?? DEFAULT_ARCHITECTURE[taskType],
    optimizer: options.optimizer,
    learningRate: options.lr,
    batchSize: options.batchSize,
    epochs: options.epochs,
    dataSplit: options.split,
    ...(isImage ? { pretrainDataset: options.pretrain ?? 'SCRATCH' } : {}),
  };
  io.stderr.write(`Uploading ${dataset.description}: ${input.model}, ${input.epochs} epochs…\n`);
  const { submitTraining: job } = await client.request(SubmitTrainingDocument, { input });
  io.stdout.write(`Token: ${job.token}\n`);
  return follow(client, job.token, io, invocation);
}

/** Shows a job's progress until it ends; 0 once deployed, 1 when it failed or was cancelled. */
export async function follow(client: FlashClient, token: string, io: Streams, invocation: Invocation): Promise<number> {
  const view = progressView(io.stderr);
  let last: TrainingEvent | undefined;
  try {
    for await (const { trainingProgress } of client.subscribe(TrainingProgressDocument, { token })) {
      last = trainingProgress;
      view.update(trainingProgress);
    }
  } finally {
    view.stop();
  }
  if (!last) throw new Error('The server ended the progress subscription without an event.');
  switch (last.state) {
    case 'DEPLOYED':
      io.stdout.write(`Accuracy: ${formatPercent(last.model?.accuracy ?? null, 2)}\n`);
      io.stderr.write(nextSteps(token, last.model?.taskType ?? null, invocation));
      return 0;
    case 'FAILED':
    case 'CANCELLED':
      io.stderr.write(`Training ${last.state.toLowerCase()}: ${last.message ?? 'no reason given'}\n`);
      return 1;
    case 'DELETED':
      io.stderr.write('The model this job deployed has been deleted.\n');
      return 1;
    case 'QUEUED':
    case 'PREPARING':
    case 'TRAINING':
    case 'EXPORTING':
      throw new Error(`The progress subscription ended while the job was ${last.state}; follow it again with "flash watch ${token}".`);
    default:
      return unreachable(last.state);
  }
}

/** What to do with a deployed model: the commands that predict with it and download it. */
function nextSteps(token: string, taskType: TaskType | null, { command, urlFlag }: Invocation): string {
  const example = taskType === 'TEXT_CLASSIFICATION' ? '--text "what a wonderful film"' : 'photo.jpg';
  return (
    `\nNext steps (the token is the model's only credential: keep it):\n` +
    `  ${command} predict ${token} ${example}${urlFlag}\n` +
    `  ${command} download ${token} --format onnx${urlFlag}     (or --format pytorch)\n`
  );
}

/** Task names take letters, digits, spaces and hyphens. */
function defaultName(location: string): string {
  const base = path.basename(path.resolve(location), path.extname(location));
  return base.replace(/[^A-Za-z0-9 -]+/g, '-').replace(/^-+|-+$/g, '') || 'dataset';
}
