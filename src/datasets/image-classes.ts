import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';

import { BadUserInputError } from '../errors';
import { checkClassCount, checkClassName, classKey } from './class-names';
import {
  checkImageCounts,
  finishImageDataset,
  type ImageDataset,
  type ImageIngestOptions,
  type PendingClass,
  type StagedImage,
} from './image-dataset';
import { formatBytes, quote } from './messages';
import { receiveUpload, saveUpload, type UploadInput, uploadName } from './uploads';

/** One element of the `classes` input: a class name and its image uploads. */
export interface ClassUpload {
  name: string;
  images: readonly UploadInput[];
}

/**
 * Ingests images sent one upload per image, grouped by class. Names and counts are checked
 * before any file is read; the images are then streamed to `stagingDir` in request order,
 * each capped so that no class can exceed `maxClassBytes` on disk, and each is decoded.
 */
export async function ingestImageClasses(
  classes: readonly ClassUpload[],
  options: ImageIngestOptions,
): Promise<ImageDataset> {
  const { limits } = options;
  const names = checkNames(classes, options);
  checkClassCount(names, limits, 'classes', 'class');
  checkImageCounts(
    classes.map((c, i) => ({ name: names[i]!, field: `classes[${i}].images`, count: c.images.length })),
    limits,
    'classes',
  );

  const workDir = await mkdtemp(join(options.stagingDir, 'classes-'));
  const pending: PendingClass[] = [];
  for (const [i, c] of classes.entries()) {
    const images: StagedImage[] = [];
    let classBytes = 0;
    for (const [j, upload] of c.images.entries()) {
      const field = `classes[${i}].images[${j}]`;
      const file = await receiveUpload(upload, field);
      const fileName = uploadName(file);
      const path = join(workDir, `image-${i}-${j}`);
      const classRoom = limits.maxClassBytes - classBytes;
      const bytes = await saveUpload(file, path, {
        field,
        maxBytes: Math.min(limits.maxUploadBytes, classRoom),
        tooLarge: () =>
          classRoom < limits.maxUploadBytes
            ? new BadUserInputError(
                `classes[${i}].images: the images of class ${quote(names[i]!)} add up to more than the ` +
                  `${formatBytes(limits.maxClassBytes)} allowed per class (passed at ${field}, ${quote(fileName)})`,
                `classes[${i}].images`,
              )
            : new BadUserInputError(
                `${field}: ${quote(fileName)} is larger than the ${formatBytes(limits.maxUploadBytes)} upload limit`,
                field,
              ),
      });
      classBytes += bytes;
      images.push({ fileName, path, bytes });
    }
    pending.push({ name: names[i]!, images });
  }
  return finishImageDataset(pending, options, (i, j) => `classes[${i}].images[${j}]`, 'classes');
}

/** The checked names, in input order; refuses invalid names and two names for one class. */
function checkNames(classes: readonly ClassUpload[], { limits }: ImageIngestOptions): string[] {
  const seen = new Map<string, number>();
  return classes.map((c, i) => {
    const field = `classes[${i}].name`;
    const check = checkClassName(c.name, limits.maxLabelLength);
    if (!check.ok) throw new BadUserInputError(`${field}: the class name ${quote(c.name)} ${check.problem}`, field);
    const key = classKey(check.name);
    const first = seen.get(key);
    if (first !== undefined) {
      throw new BadUserInputError(
        `${field}: ${quote(c.name)} names the same class as classes[${first}].name ${quote(classes[first]!.name)} ` +
          '(names are compared ignoring case)',
        field,
      );
    }
    seen.set(key, i);
    return check.name;
  });
}
