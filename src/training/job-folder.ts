import { createReadStream } from 'node:fs';
import { mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream';

import { parser } from 'stream-json';

import type { TrainingDocument } from '../documents';
import { prepareImage, preparedSize } from '../preprocessing/image';
import { DEFAULT_MAX_SEQUENCE_LENGTH, PAD_ID, Vocabulary } from '../preprocessing/text';

/** Images decoded at once while preparing; sharp runs them on libuv's thread pool. */
const DECODE_CONCURRENCY = 4;

export class JobDataError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'JobDataError';
  }
}

export interface JobFolderOptions {
  imageSize: number;
  maxImagePixels?: number;
}

/**
 * A dataset as `training.json` holds it, `{ "<class>": ["<base64>", …], … }`, one item at a
 * time: each class's name, then its items. A class with no items is still a class.
 */
export type DatasetEntry = { kind: 'class'; name: string } | { kind: 'item'; base64: string };

/** The entries of a dataset already in memory. */
export async function* inlineDataset(dataset: Record<string, string[]>): AsyncGenerator<DatasetEntry> {
  for (const [name, items] of Object.entries(dataset)) {
    yield { kind: 'class', name };
    for (const base64 of items) yield { kind: 'item', base64 };
  }
}

const NOT_A_DATASET = 'the staged dataset is not an object of arrays of strings';

/**
 * The entries of a dataset in a JSON file, streamed: only one item's text is in memory at a
 * time, where `JSON.parse` would hold the file, its text and every item at once (4.8× a
 * 100 MB ZIP of images). Anything but an object of arrays of strings is a `JobDataError`.
 */
export async function* readDatasetFile(file: string): AsyncGenerator<DatasetEntry> {
  const tokens = parser({ streamValues: false });
  // pipeline destroys the file stream with the parser, however the reading ends (the end of the
  // file, an error, or a consumer that stops early); errors reach us through the iteration.
  pipeline(createReadStream(file), tokens, () => {});
  const classes = new Set<string>();
  let depth = 0;
  try {
    for await (const token of tokens as AsyncIterable<{ name: string; value?: string }>) {
      switch (token.name) {
        case 'startObject':
          if (depth++ !== 0) throw new JobDataError(NOT_A_DATASET);
          break;
        case 'keyValue':
          // JSON.parse would keep only the last of two equal keys; a dataset must not have them.
          if (classes.has(token.value!)) throw new JobDataError(`the staged dataset lists class "${token.value}" twice`);
          classes.add(token.value!);
          yield { kind: 'class', name: token.value! };
          break;
        case 'startArray':
          if (depth++ !== 1) throw new JobDataError(NOT_A_DATASET);
          break;
        case 'stringValue':
          if (depth !== 2) throw new JobDataError(NOT_A_DATASET);
          yield { kind: 'item', base64: token.value! };
          break;
        case 'endArray':
        case 'endObject':
          depth--;
          break;
        default:
          throw new JobDataError(NOT_A_DATASET);
      }
    }
  } catch (error) {
    // File system errors carry a code; the parser's own say the text is not JSON.
    if (error instanceof JobDataError || (error as NodeJS.ErrnoException).code !== undefined) throw error;
    throw new JobDataError('the staged dataset is not valid JSON', { cause: error });
  } finally {
    tokens.destroy();
  }
}

/**
 * Writes the trainer's inputs (trainer/README.md, "Job folder: inputs"): `config.json` from
 * the job's settings, and `dataset.json` with `images.u8` (prepared pixels) or `vocab.json`
 * (text) from its dataset. Classes take the order of the dataset's keys, which is the label
 * order of the trained model.
 */
export async function writeJobFolder(
  folder: string,
  settings: Omit<TrainingDocument, 'token' | 'dataset'>,
  dataset: AsyncIterable<DatasetEntry>,
  options: JobFolderOptions,
) {
  await mkdir(folder, { recursive: true });
  const imageTask = settings.task_type === 'imageclassification';
  await writeJson(path.join(folder, 'config.json'), imageTask ? { ...settings, image_size: options.imageSize } : settings);
  const classes = imageTask ? await writeImages(folder, dataset, options) : await writeTexts(folder, dataset);
  return { classes };
}

async function writeImages(folder: string, dataset: AsyncIterable<DatasetEntry>, options: JobFolderOptions) {
  const side = preparedSize(options.imageSize);
  const classes: string[] = [];
  const labels: number[] = [];
  const pixels = await open(path.join(folder, 'images.u8'), 'w');
  // Images wait here until DECODE_CONCURRENCY of them decode together, or a class ends.
  let pending: { base64: string; label: number; index: number }[] = [];
  const flush = async () => {
    const batch = pending;
    pending = [];
    const prepared = await Promise.all(
      batch.map(({ base64, label, index }) =>
        prepareImage(Buffer.from(base64, 'base64'), options).catch((error: Error) => {
          throw new JobDataError(`image ${index + 1} of class "${classes[label]}" cannot be used: ${error.message}`);
        }),
      ),
    );
    for (const [offset, image] of prepared.entries()) {
      await pixels.write(image);
      labels.push(batch[offset]!.label);
    }
  };
  try {
    let index = 0;
    for await (const entry of dataset) {
      if (entry.kind === 'class') {
        await flush();
        classes.push(entry.name);
        index = 0;
        continue;
      }
      if (classes.length === 0) throw new JobDataError('the dataset has an item outside any class');
      pending.push({ base64: entry.base64, label: classes.length - 1, index: index++ });
      if (pending.length >= DECODE_CONCURRENCY) await flush();
    }
    await flush();
  } finally {
    await pixels.close();
  }
  await writeJson(path.join(folder, 'dataset.json'), { kind: 'image', classes, labels, height: side, width: side });
  return classes;
}

async function writeTexts(folder: string, dataset: AsyncIterable<DatasetEntry>) {
  const classes: string[] = [];
  const rows: { text: string; label: number }[] = [];
  for await (const entry of dataset) {
    if (entry.kind === 'class') classes.push(entry.name);
    else if (classes.length === 0) throw new JobDataError('the dataset has an item outside any class');
    else rows.push({ text: Buffer.from(entry.base64, 'base64').toString('utf8'), label: classes.length - 1 });
  }
  // The vocabulary comes from every text of the job: the trainer splits off validation later.
  const vocabulary = Vocabulary.build(rows.map((row) => row.text));
  await writeJson(path.join(folder, 'vocab.json'), vocabulary.tokens);
  await writeJson(path.join(folder, 'dataset.json'), {
    kind: 'text',
    classes,
    labels: rows.map((row) => row.label),
    sequences: rows.map((row) => vocabulary.encode(row.text, DEFAULT_MAX_SEQUENCE_LENGTH)),
    vocab_size: vocabulary.size,
    pad_id: PAD_ID,
  });
  return classes;
}

function writeJson(file: string, value: unknown): Promise<void> {
  return writeFile(file, `${JSON.stringify(value)}\n`);
}
