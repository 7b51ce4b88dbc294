import { mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';

import type { TrainingDocument } from '../documents';
import { prepareImage, preparedSize } from '../preprocessing/image';
import { DEFAULT_MAX_SEQUENCE_LENGTH, PAD_ID, Vocabulary } from '../preprocessing/text';

/** Images decoded at once while preparing; sharp runs them on libuv's thread pool. */
const DECODE_CONCURRENCY = 4;

export class JobDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobDataError';
  }
}

export interface JobFolderOptions {
  imageSize: number;
  maxImagePixels?: number;
}

/**
 * Writes the trainer's inputs (trainer/README.md, "Job folder: inputs") from a `training.json`
 * document: `config.json`, and `dataset.json` with `images.u8` (prepared pixels) or
 * `vocab.json` (text). Classes take the order of the document's `dataset` keys, which is the
 * label order of the trained model.
 */
export async function writeJobFolder(folder: string, training: TrainingDocument, options: JobFolderOptions) {
  await mkdir(folder, { recursive: true });
  const { token: _token, dataset, ...config } = training;
  if (typeof dataset === 'string') throw new JobDataError('training.json holds its dataset in an unknown form');
  const classes = Object.keys(dataset);
  const imageTask = training.task_type === 'imageclassification';
  await writeJson(path.join(folder, 'config.json'), imageTask ? { ...config, image_size: options.imageSize } : config);
  if (imageTask) await writeImages(folder, classes, dataset, options);
  else await writeTexts(folder, classes, dataset);
  return { classes };
}

async function writeImages(
  folder: string,
  classes: string[],
  dataset: Record<string, string[]>,
  options: JobFolderOptions,
): Promise<void> {
  const side = preparedSize(options.imageSize);
  const labels: number[] = [];
  const pixels = await open(path.join(folder, 'images.u8'), 'w');
  try {
    for (const [label, name] of classes.entries()) {
      const images = dataset[name] ?? [];
      for (let start = 0; start < images.length; start += DECODE_CONCURRENCY) {
        const batch = images.slice(start, start + DECODE_CONCURRENCY);
        const prepared = await Promise.all(
          batch.map((base64, offset) =>
            prepareImage(Buffer.from(base64, 'base64'), options).catch((error: Error) => {
              throw new JobDataError(`image ${start + offset + 1} of class "${name}" cannot be used: ${error.message}`);
            }),
          ),
        );
        for (const image of prepared) {
          await pixels.write(image);
          labels.push(label);
        }
      }
    }
  } finally {
    await pixels.close();
  }
  await writeJson(path.join(folder, 'dataset.json'), { kind: 'image', classes, labels, height: side, width: side });
}

async function writeTexts(folder: string, classes: string[], dataset: Record<string, string[]>): Promise<void> {
  const rows = classes.flatMap((name, label) =>
    (dataset[name] ?? []).map((base64) => ({ text: Buffer.from(base64, 'base64').toString('utf8'), label })),
  );
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
}

function writeJson(file: string, value: unknown): Promise<void> {
  return writeFile(file, `${JSON.stringify(value)}\n`);
}
