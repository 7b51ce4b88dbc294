import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

import { formatCreated, type InferenceEntry, type TrainingDocument } from '../../src/documents/schemas';
import type { ObjectStore } from '../../src/store/object-store';
import { inlineDataset, writeJobFolder } from '../../src/training/job-folder';
import { classImage } from './training';

/**
 * Tiny models trained by the real trainer (`python3 -m trainer run`, CPU) from job folders the
 * server's own `writeJobFolder` wrote, and deployed into a store the way the supervisor's
 * `deploy()` does. A 32-pixel ResNet-18 on 2 × 6 pictures and a GRU on 2 × 12 sentences train
 * in a few seconds each.
 */

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const PYTHON = '/usr/bin/python3';
const run = promisify(execFile);

/** `check.json`: one validation batch and the trainer's eager PyTorch logits for it. */
export interface CheckFile {
  input_name: string;
  dtype: 'uint8' | 'int64';
  shape: number[];
  inputs: unknown[];
  logits: number[][];
  tolerance: number;
}

export interface TrainedModel<Source> {
  folder: string;
  /** Class names in label order. */
  classes: string[];
  /** Every training input, by class: encoded images or texts. */
  sources: { label: number; input: Source }[];
  check: CheckFile;
}

export const TEXT_SAMPLES: Record<string, string[]> = {
  positive: ['great', 'wonderful', 'love', 'excellent', 'happy', 'superb'].flatMap((word, i, words) => [
    `a ${word} film, truly ${words[(i + 2) % 6]}`,
    `${word} and ${words[(i + 3) % 6]} acting!`,
  ]),
  negative: ['terrible', 'awful', 'hate', 'boring', 'sad', 'dreadful'].flatMap((word, i, words) => [
    `a ${word} film, truly ${words[(i + 2) % 6]}`,
    `${word} and ${words[(i + 3) % 6]} acting?`,
  ]),
};

const baseConfig = {
  optimizer: 'adam',
  reduce_lr_on_plateau: false,
  step_lr: false,
} as const;

export async function trainImageModel(
  folder: string,
  { imageSize = 32, perClass = 6, epochs = 1, model = 'resnet18' as TrainingDocument['model'] } = {},
): Promise<TrainedModel<Buffer>> {
  const classes = ['red', 'blue'];
  const sources: { label: number; input: Buffer }[] = [];
  for (const label of classes.keys()) {
    for (let variant = 0; variant < perClass; variant++) {
      sources.push({ label, input: await classImage(label, variant, 48) });
    }
  }
  const dataset = Object.fromEntries(
    classes.map((name, label) => [
      name,
      sources.filter((source) => source.label === label).map((source) => source.input.toString('base64')),
    ]),
  );
  const settings: Omit<TrainingDocument, 'token' | 'dataset'> = {
    ...baseConfig,
    task_type: 'imageclassification',
    num_classes: classes.length,
    model,
    learning_rate: 0.003,
    batch_size: 4,
    epochs,
    data_split: '70 : 30',
    pretrain_dataset: 'scratch',
  };
  await writeJobFolder(folder, settings, inlineDataset(dataset), { imageSize });
  await runTrainer(folder);
  return { folder, classes, sources, check: await readCheck(folder) };
}

export async function trainTextModel(
  folder: string,
  { epochs = 2, model = 'gru' as TrainingDocument['model'] } = {},
): Promise<TrainedModel<string>> {
  const classes = Object.keys(TEXT_SAMPLES);
  const sources = classes.flatMap((name, label) => TEXT_SAMPLES[name]!.map((input) => ({ label, input })));
  const dataset = Object.fromEntries(
    classes.map((name) => [name, TEXT_SAMPLES[name]!.map((text) => Buffer.from(text).toString('base64'))]),
  );
  const settings: Omit<TrainingDocument, 'token' | 'dataset'> = {
    ...baseConfig,
    task_type: 'textclassification',
    num_classes: classes.length,
    model,
    learning_rate: 0.01,
    batch_size: 4,
    epochs,
    data_split: '75 : 25',
  };
  await writeJobFolder(folder, settings, inlineDataset(dataset), { imageSize: 224 });
  await runTrainer(folder);
  return { folder, classes, sources, check: await readCheck(folder) };
}

async function runTrainer(folder: string): Promise<void> {
  try {
    await run(PYTHON, ['-m', 'trainer', 'run', folder, '--device', 'cpu', '--seed', '0'], {
      cwd: REPO_ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`The trainer failed on ${folder}:\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
  }
}

async function readCheck(folder: string): Promise<CheckFile> {
  return JSON.parse(await readFile(path.join(folder, 'check.json'), 'utf8')) as CheckFile;
}

/**
 * Puts a trained job folder's artifacts into `store` under the supervisor's keys and returns
 * the `inference.json` entry it would write (`inference.json` itself is not written).
 */
export async function deployModel(
  store: ObjectStore,
  token: string,
  model: TrainedModel<unknown>,
  taskType: 'imageclassification' | 'textclassification',
): Promise<InferenceEntry> {
  const prefix = taskType;
  await store.putFile(`${prefix}/${token}.pt`, path.join(model.folder, 'model.pt'));
  await store.putFile(`${prefix}/${token}.onnx`, path.join(model.folder, 'model.onnx'));
  const image = taskType === 'imageclassification';
  if (!image) await store.putFile(`${prefix}/${token}_metadata.json`, path.join(model.folder, 'metadata.json'));
  return {
    task_type: taskType,
    model_filename: `${prefix}/${token}.pt`,
    model_filename_onnx: `${prefix}/${token}.onnx`,
    ...(image ? { classes: model.classes } : { metadata_filename: `${prefix}/${token}_metadata.json` }),
    downloadable: true,
    accuracy: 1,
    accuracy_plot: '',
    created: formatCreated(new Date()),
  };
}
