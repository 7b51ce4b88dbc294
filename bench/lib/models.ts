import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { DocumentStore, INFERENCE } from '../../src/documents';
import type { EpochRecord, InferenceEntry, TrainingDocument } from '../../src/documents/schemas';
import { FsStore } from '../../src/store';
import { renderAccuracyPlot } from '../../src/training/accuracy-plot';
import { deployModel, type TrainedModel, trainImageModel, trainTextModel } from '../../test/helpers/trained-models';
import { REPO_ROOT } from './machine';

export const IMAGE_ARCHS = ['mobilenet v2', 'resnet18', 'resnet34'] as const;
export const TEXT_ARCHS = ['lstm', 'gru'] as const;
export type Arch = (typeof IMAGE_ARCHS)[number] | (typeof TEXT_ARCHS)[number];

export const CACHE_DIR = path.join(REPO_ROOT, 'bench', '.cache');
/** Network input size of the image models: the platform's default. */
export const IMAGE_SIZE = 224;

export interface BenchModel {
  arch: Arch;
  kind: 'image' | 'text';
  token: string;
  folder: string;
  classes: string[];
  /** Seconds the trainer took in this run; `null` when the model was trained by an earlier run. */
  trainedSeconds: number | null;
}

/**
 * Models trained by the real trainer (`python3 -m trainer run`, CPU) on tiny datasets: images
 * at 224 px for 1 epoch, texts for 2. Kept under `bench/.cache/models/`, keyed by the trainer's
 * and the preprocessing's sources, so a run after a change to either trains again.
 */
export async function ensureModels(archs: readonly Arch[], { retrain = false, log = (_: string) => {} } = {}) {
  const version = sourceHash();
  const models: BenchModel[] = [];
  for (const arch of archs) {
    const kind = (TEXT_ARCHS as readonly string[]).includes(arch) ? 'text' : 'image';
    const folder = path.join(CACHE_DIR, 'models', `${arch.replace(' ', '')}-${kind === 'image' ? IMAGE_SIZE : 'text'}-${version}`);
    const token = `${kind === 'image' ? 'imageClassification' : 'textClassification'}-bench_${arch.replace(' ', '')}-${version.slice(0, 20)}`;
    const marker = path.join(folder, 'bench.json');
    if (!retrain && existsSync(marker) && existsSync(path.join(folder, 'model.onnx'))) {
      const { classes } = JSON.parse(readFileSync(marker, 'utf8')) as { classes: string[] };
      models.push({ arch, kind, token, folder, classes, trainedSeconds: null });
      continue;
    }
    log(`training ${arch} (${kind === 'image' ? `${IMAGE_SIZE} px, 1 epoch` : '2 epochs'}) with the trainer on CPU`);
    const started = performance.now();
    const model = arch as TrainingDocument['model'];
    const trained =
      kind === 'image'
        ? await trainImageModel(folder, { imageSize: IMAGE_SIZE, perClass: 4, epochs: 1, model })
        : await trainTextModel(folder, { epochs: 2, model });
    const seconds = (performance.now() - started) / 1000;
    writeFileSync(marker, JSON.stringify({ classes: trained.classes, seconds }));
    models.push({ arch, kind, token, folder, classes: trained.classes, trainedSeconds: seconds });
  }
  return models;
}

/**
 * Deploys the models into an fs store at `dataDir` as the supervisor does, with a real accuracy
 * chart in each `inference.json` entry; `extraEntries` more copies of the first model's entry
 * (other tokens, same files) make `inference.json` the size of a busy platform's.
 */
export async function deployAll(dataDir: string, models: readonly BenchModel[], extraEntries = 0) {
  const store = new FsStore(dataDir);
  const documents = new DocumentStore(store);
  await documents.initialize();
  const entries: Record<string, InferenceEntry> = {};
  for (const model of models) {
    const taskType = model.kind === 'image' ? 'imageclassification' : 'textclassification';
    const trained = { folder: model.folder, classes: model.classes } as TrainedModel<unknown>;
    const entry = await deployModel(store, model.token, trained, taskType);
    const history = (JSON.parse(readFileSync(path.join(model.folder, 'metrics.json'), 'utf8')) as { history: EpochRecord[] })
      .history;
    entries[model.token] = { ...entry, accuracy_plot: renderAccuracyPlot(history).toString('base64'), history };
  }
  const first = models[0] ? entries[models[0].token] : undefined;
  for (let i = 0; i < extraEntries && first; i++) {
    entries[`${models[0]!.token.replace(/-[^-]+$/, '')}-extra${String(i).padStart(15, '0')}`] = first;
  }
  await documents.update(INFERENCE, (inference) => ({ ...inference, ...entries }));
  return entries;
}

function sourceHash(): string {
  const hash = createHash('sha256');
  const files = [
    ...readdirSync(path.join(REPO_ROOT, 'trainer'))
      .filter((name) => name.endsWith('.py'))
      .map((name) => path.join('trainer', name)),
    'src/training/job-folder.ts',
    'src/preprocessing/image.ts',
    'src/preprocessing/text.ts',
  ].sort();
  for (const file of files) hash.update(file).update(readFileSync(path.join(REPO_ROOT, file)));
  return hash.digest('hex').slice(0, 12);
}
