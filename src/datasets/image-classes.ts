import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';

import { BadUserInputError, type FieldProblem } from '../errors';
import { checkClassName, classCountProblems, classKey } from './class-names';
import {
  finishImageDataset,
  imageCountProblems,
  type ImageDataset,
  type ImageIngestOptions,
  type PendingClass,
  type StagedImage,
} from './image-dataset';
import type { DatasetLimits } from './limits';
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
  const names = checkClassUploads(classes, limits);

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

/**
 * Checks what the `classes` input says before any of its files is read: every name, the
 * number of classes and the number of images in each. All problems are reported in one
 * error, one entry per field in input order (`classes[0].name`, `classes[2].images`). Returns the checked
 * names, in input order.
 */
export function checkClassUploads(classes: readonly ClassUpload[], limits: DatasetLimits): string[] {
  const { names, problems } = nameProblems(classes, limits);
  problems.push(
    ...classCountProblems(names, limits, 'classes', 'class'),
    ...imageCountProblems(
      classes.map((c, i) => ({ name: names[i]!, field: `classes[${i}].images`, count: c.images.length })),
      limits,
      'classes',
    ),
  );
  if (problems.length > 0) throw BadUserInputError.of(problems.sort((a, b) => inputOrder(a.field) - inputOrder(b.field)));
  return names;
}

/** `classes` first, then `classes[0].name`, `classes[0].images`, `classes[1].name`…: the order of the input. */
function inputOrder(field: string): number {
  const match = /^classes\[(\d+)\]\.(name|images)/.exec(field);
  return match ? Number(match[1]) * 2 + (match[2] === 'images' ? 1 : 0) : -1;
}

/** The names as checked (the raw name where it is refused), and the problem of each name refused or repeated. */
function nameProblems(
  classes: readonly ClassUpload[],
  limits: DatasetLimits,
): { names: string[]; problems: FieldProblem[] } {
  const seen = new Map<string, number>();
  const problems: FieldProblem[] = [];
  const names = classes.map((c, i) => {
    const field = `classes[${i}].name`;
    const check = checkClassName(c.name, limits.maxLabelLength);
    if (!check.ok) {
      problems.push({ field, message: `the class name ${quote(c.name)} ${check.problem}` });
      return c.name;
    }
    const key = classKey(check.name);
    const first = seen.get(key);
    if (first !== undefined) {
      problems.push({
        field,
        message:
          `${quote(c.name)} names the same class as classes[${first}].name ${quote(classes[first]!.name)} ` +
          '(names are compared ignoring case)',
      });
    } else {
      seen.set(key, i);
    }
    return check.name;
  });
  return { names, problems };
}
