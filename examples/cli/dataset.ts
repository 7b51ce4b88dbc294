import { openAsBlob } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

import type { TaskType, TrainingInput } from '../gql/graphql';

/** The dataset part of a `TrainingInput`, and what it holds, for the user. */
export interface Dataset {
  upload: Pick<TrainingInput, 'dataset' | 'classes'>;
  /** The task the dataset suits: a CSV is text, the rest images. */
  taskType: TaskType;
  description: string;
}

/**
 * A ZIP of class folders or a CSV is uploaded as it is. A folder of class folders is uploaded
 * per class (`classes: [{ name, images }]`), one upload per image, which the API takes as it
 * takes a ZIP; no archive is built on the way.
 */
export async function readDataset(location: string): Promise<Dataset> {
  const info = await stat(location).catch(() => null);
  if (!info) throw new Error(`${location}: no such file or folder`);
  if (info.isDirectory()) return readClassFolders(location);
  const extension = path.extname(location).toLowerCase();
  if (extension !== '.zip' && extension !== '.csv') {
    throw new Error(`${location}: expected a folder of class folders, a .zip or a .csv`);
  }
  return {
    upload: { dataset: await openFile(location) },
    taskType: extension === '.csv' ? 'TEXT_CLASSIFICATION' : 'IMAGE_CLASSIFICATION',
    description: `${path.basename(location)} (${formatBytes(info.size)})`,
  };
}

async function readClassFolders(folder: string): Promise<Dataset> {
  const folders = (await readdir(folder, { withFileTypes: true }))
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))
    .map((entry) => entry.name)
    .sort();
  if (folders.length === 0) throw new Error(`${folder}: expected one folder of images per class`);
  const classes = await Promise.all(
    folders.map(async (name) => {
      const files = (await readdir(path.join(folder, name), { withFileTypes: true }))
        .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
        .map((entry) => entry.name)
        .sort();
      return { name, images: await Promise.all(files.map((file) => openFile(path.join(folder, name, file)))) };
    }),
  );
  const images = classes.reduce((sum, { images }) => sum + images.length, 0);
  return {
    upload: { classes },
    taskType: 'IMAGE_CLASSIFICATION',
    description: `${path.basename(path.resolve(folder))}/ (${classes.length} classes, ${images} images)`,
  };
}

/** A file as an upload, read when it is sent. */
export async function openFile(file: string): Promise<File> {
  const info = await stat(file).catch(() => null);
  if (!info?.isFile()) throw new Error(`${file}: no such file`);
  return new File([await openAsBlob(file)], path.basename(file));
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}
