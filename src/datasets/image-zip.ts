import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';

import { BadUserInputError } from '../errors';
import { checkClassCount, checkClassName, classKey } from './class-names';
import {
  checkClassBytes,
  checkImageCounts,
  finishImageDataset,
  type ImageDataset,
  type ImageIngestOptions,
  type PendingClass,
} from './image-dataset';
import type { DatasetLimits } from './limits';
import { formatBytes, formatCount, quote } from './messages';
import { receiveUpload, saveUpload, type UploadInput, uploadName } from './uploads';
import { ZipArchive, type ZipEntry } from './zip';

const FIELD = 'dataset';
const LAYOUT =
  'the ZIP must hold one folder per class with its images directly inside (cats/1.jpg, dogs/1.jpg), ' +
  'or one folder holding those class folders';
/** Files operating systems add to folders; skipped like every dot-file and `__MACOSX/`. */
const SYSTEM_FILES = new Set(['thumbs.db', 'desktop.ini']);
const ARCHIVE_EXTENSIONS = ['.zip', '.tar', '.gz', '.tgz', '.bz2', '.xz', '.7z', '.rar'];

/**
 * Ingests a ZIP with one folder per class (`cats/1.jpg`), optionally wrapped in a single top
 * folder (`dataset/cats/1.jpg`, what zipping a folder gives). Everything is checked from the
 * central directory before a byte is inflated; then the images are extracted into
 * `stagingDir` under generated names and each is decoded.
 */
export async function ingestImageZip(upload: UploadInput, options: ImageIngestOptions): Promise<ImageDataset> {
  const { limits, stagingDir } = options;
  const file = await receiveUpload(upload, FIELD);
  const name = uploadName(file);
  const workDir = await mkdtemp(join(stagingDir, 'zip-'));
  const zipPath = join(workDir, 'dataset.zip');
  await saveUpload(file, zipPath, {
    field: FIELD,
    maxBytes: limits.maxUploadBytes,
    tooLarge: () =>
      new BadUserInputError(
        `${FIELD}: ${quote(name)} is larger than the ${formatBytes(limits.maxUploadBytes)} upload limit`,
        FIELD,
      ),
  });

  const archive = await ZipArchive.open(zipPath, { field: FIELD, name });
  let classes: PendingClass[];
  try {
    if (archive.entryCount > limits.maxZipEntries) {
      throw new BadUserInputError(
        `${FIELD}: the ZIP holds ${formatCount(archive.entryCount)} entries; ` +
          `at most ${formatCount(limits.maxZipEntries)} are allowed`,
        FIELD,
      );
    }
    const files = (await archive.readEntries()).filter((entry) => !entry.isDirectory && !isSystemFile(entry.path));
    if (files.length === 0) throw new BadUserInputError(`${FIELD}: ${quote(name)} holds no images; ${LAYOUT}`, FIELD);
    checkExpansion(files, limits);
    checkNoNestedArchives(files);
    const folders = groupByClassFolder(files);
    const names = classNames([...folders.keys()], limits);
    checkClassCount([...folders.keys()], limits, FIELD, 'class folder');
    const declared = [...folders].map(([folder, entries]) => ({
      name: folder,
      field: FIELD,
      count: entries.length,
      bytes: sum(entries.map((entry) => entry.uncompressedSize)),
    }));
    checkImageCounts(declared, limits, FIELD);
    checkClassBytes(declared, limits, FIELD);

    classes = [];
    let staged = 0;
    for (const [folder, entries] of folders) {
      const images = [];
      for (const entry of entries) {
        const path = join(workDir, `image-${staged++}`);
        await archive.extract(entry, path);
        images.push({ fileName: entry.path, path, bytes: entry.uncompressedSize });
      }
      classes.push({ name: names.get(folder)!, images });
    }
  } finally {
    archive.close();
  }
  return finishImageDataset(classes, options, () => FIELD, FIELD);
}

function isSystemFile(path: string): boolean {
  const segments = path.split('/');
  return (
    segments.some((segment) => segment.startsWith('.') || segment === '__MACOSX') ||
    SYSTEM_FILES.has(segments[segments.length - 1]!.toLowerCase())
  );
}

/**
 * ZIP-bomb guard, from the central directory before anything is inflated: the bytes extraction
 * will write, against the limit. They are the declared sizes: `ZipArchive` refuses entries that
 * share data and yauzl's `validateEntrySizes` holds each entry to its declared size. No ratio
 * is checked: what a bomb costs is the bytes it inflates, and a legitimate uncompressed TIFF or
 * BMP with large uniform areas deflates far beyond any ratio a bomb check could pick.
 */
function checkExpansion(files: readonly ZipEntry[], limits: DatasetLimits): void {
  const total = sum(files.map((entry) => entry.uncompressedSize));
  if (total > limits.maxZipUncompressedBytes) {
    throw new BadUserInputError(
      `${FIELD}: the files in the ZIP add up to ${formatBytes(total)} uncompressed; at most ` +
        `${formatBytes(limits.maxZipUncompressedBytes)} are allowed`,
      FIELD,
    );
  }
}

function checkNoNestedArchives(files: readonly ZipEntry[]): void {
  const isArchive = (entry: ZipEntry) => ARCHIVE_EXTENSIONS.some((ext) => entry.path.toLowerCase().endsWith(ext));
  const nested = files.find(isArchive);
  if (nested) {
    throw new BadUserInputError(
      `${FIELD}: ${quote(nested.path)} is an archive; archives inside the ZIP are not accepted, ` +
        'put the images themselves in the class folders',
      FIELD,
    );
  }
}

/**
 * Class folder name → its image entries, in archive order. A single top folder holding
 * everything in sub-folders is a wrapper and is skipped.
 */
function groupByClassFolder(files: readonly ZipEntry[]): Map<string, ZipEntry[]> {
  const paths = files.map((entry) => entry.path.split('/'));
  const top = paths[0]![0];
  const wrapped = paths.every((segments) => segments[0] === top) && paths.some((segments) => segments.length > 2);
  const folders = new Map<string, ZipEntry[]>();
  files.forEach((entry, index) => {
    const segments = paths[index]!.slice(wrapped ? 1 : 0);
    if (segments.length === 1) {
      throw new BadUserInputError(`${FIELD}: ${quote(entry.path)} is not inside a class folder; ${LAYOUT}`, FIELD);
    }
    if (segments.length > 2) {
      throw new BadUserInputError(`${FIELD}: ${quote(entry.path)} is nested too deep; ${LAYOUT}`, FIELD);
    }
    const folder = segments[0]!;
    const entries = folders.get(folder) ?? [];
    entries.push(entry);
    folders.set(folder, entries);
  });
  return folders;
}

/** Folder → checked class name; refuses invalid names and folders that name the same class. */
function classNames(folders: readonly string[], limits: DatasetLimits): Map<string, string> {
  const names = new Map<string, string>();
  const byKey = new Map<string, string>();
  for (const folder of folders) {
    const check = checkClassName(folder, limits.maxLabelLength);
    if (!check.ok) throw new BadUserInputError(`${FIELD}: class folder ${quote(folder)} ${check.problem}`, FIELD);
    const same = byKey.get(classKey(check.name));
    if (same !== undefined) {
      throw new BadUserInputError(
        `${FIELD}: class folders ${quote(same)} and ${quote(folder)} name the same class ` +
          '(names are compared ignoring case); merge them',
        FIELD,
      );
    }
    byKey.set(classKey(check.name), folder);
    names.set(folder, check.name);
  }
  return names;
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
