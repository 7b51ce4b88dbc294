import sharp from 'sharp';

import { BadUserInputError, type FieldProblem } from '../errors';
import { ImageDecodeError, prepareImage } from '../preprocessing/image';
import { compareNames } from './class-names';
import type { DatasetLimits } from './limits';
import { formatBytes, formatCount, listCapped, plural, quote } from './messages';

/** One image saved in the staging folder. */
export interface StagedImage {
  /** The name the user gave it (ZIP entry path or upload file name), for messages. */
  fileName: string;
  /** Where it is staged on disk. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
}

/** A validated image dataset: every image decodes. Classes are sorted by name (label order). */
export interface ImageDataset {
  kind: 'image';
  classes: { name: string; images: StagedImage[] }[];
}

export interface ImageIngestOptions {
  /** An existing private folder for this submission; the caller removes it afterwards. */
  stagingDir: string;
  limits: DatasetLimits;
  /** Network input size in pixels the images are prepared for (see `prepareImage`). */
  imageSize: number;
}

/** A class whose images are staged but not yet decoded. */
export interface PendingClass {
  name: string;
  images: StagedImage[];
}

/** Formats sharp decodes that make sense as photos; SVG and libvips' own format are refused. */
const SUPPORTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);
const SUPPORTED_FORMATS_TEXT = 'JPEG, PNG, WebP, GIF, AVIF or TIFF';
const NOT_SUPPORTED = 'not an image in a supported format';
/** Images decoded at once; each decode already uses several libvips threads. */
const DECODE_CONCURRENCY = 4;

/**
 * The problems of several classes or images as `FieldProblem`s: one each where every item has
 * a field of its own (the `classes` input: `classes[1].images`), or one naming them all where
 * they share the input's field (a ZIP's `dataset`).
 */
function problemsOf<T extends { field: string }>(
  faulty: readonly T[],
  field: string,
  describe: (items: readonly T[]) => string,
): FieldProblem[] {
  if (faulty.length === 0) return [];
  if (faulty.some((item) => item.field === field)) return [{ field, message: describe(faulty) }];
  return faulty.map((item) => ({ field: item.field, message: describe([item]) }));
}

/** Refuses classes with fewer than `minImagesPerClass` or more than `maxImagesPerClass` images. */
export function checkImageCounts(
  classes: readonly { name: string; field: string; count: number }[],
  limits: DatasetLimits,
  field: string,
): void {
  const problems = imageCountProblems(classes, limits, field);
  if (problems.length > 0) throw BadUserInputError.of(problems);
}

/** `checkImageCounts`'s problems, every class at fault, to report with others. */
export function imageCountProblems(
  classes: readonly { name: string; field: string; count: number }[],
  limits: DatasetLimits,
  field: string,
): FieldProblem[] {
  const describe = (faulty: readonly { name: string; count: number }[]) =>
    `${faulty.length === 1 ? 'class' : 'classes'} ` +
    listCapped(faulty.map((c) => `${quote(c.name)} (${plural(c.count, 'image')})`));
  const few = classes.filter((c) => c.count < limits.minImagesPerClass);
  const many = classes.filter((c) => c.count > limits.maxImagesPerClass);
  return [
    ...problemsOf(
      few,
      field,
      (faulty) => `too few images in ${describe(faulty)}; each class needs at least ${formatCount(limits.minImagesPerClass)}`,
    ),
    ...problemsOf(
      many,
      field,
      (faulty) =>
        `too many images in ${describe(faulty)}; each class may hold at most ${formatCount(limits.maxImagesPerClass)}`,
    ),
  ].sort((a, b) => fieldOrder(classes, a.field) - fieldOrder(classes, b.field));
}

/** Where a class's field comes in the input, so that problems are listed in input order. */
function fieldOrder(classes: readonly { field: string }[], field: string): number {
  return classes.findIndex((c) => c.field === field);
}

/** Refuses classes whose images add up to more than `maxClassBytes`. */
export function checkClassBytes(
  classes: readonly { name: string; field: string; bytes: number }[],
  limits: DatasetLimits,
  field: string,
): void {
  const heavy = classes.filter((c) => c.bytes > limits.maxClassBytes);
  const problems = problemsOf(heavy, field, (faulty) => {
    const described = faulty.map((c) => `${quote(c.name)} (${formatBytes(c.bytes)})`);
    return (
      `the images of ${faulty.length === 1 ? 'class' : 'classes'} ${listCapped(described)} ` +
      `add up to more than the ${formatBytes(limits.maxClassBytes)} allowed per class`
    );
  });
  if (problems.length > 0) throw BadUserInputError.of(problems);
}

/**
 * Proves every image is usable: a supported format, within the pixel limit, and decoding
 * completely through `prepareImage` (truncated files fail there). Animated images are accepted
 * and train on their first frame, as `prepareImage` reads only that one. All failures are
 * named in one error (one entry of `fields` per image where images have fields of their own);
 * the dataset comes back sorted by class name.
 */
export async function finishImageDataset(
  classes: readonly PendingClass[],
  options: ImageIngestOptions,
  imageField: (classIndex: number, imageIndex: number) => string,
  field: string,
): Promise<ImageDataset> {
  const checks = classes.flatMap((c, classIndex) =>
    c.images.map((image, imageIndex) => ({ image, field: imageField(classIndex, imageIndex) })),
  );
  const problems: (string | undefined)[] = new Array(checks.length);
  let next = 0;
  const worker = async () => {
    while (next < checks.length) {
      const index = next++;
      problems[index] = await imageProblem(checks[index]!.image.path, options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(DECODE_CONCURRENCY, checks.length) }, worker));

  const failures = checks.flatMap((check, index) => {
    const problem = problems[index];
    return problem ? [{ ...check, problem }] : [];
  });
  const refusals = problemsOf(failures, field, (faulty) => {
    const hint = faulty.some((f) => f.problem === NOT_SUPPORTED) ? `. Supported formats: ${SUPPORTED_FORMATS_TEXT}` : '';
    return faulty.length === 1
      ? `${quote(faulty[0]!.image.fileName)} cannot be used: ${faulty[0]!.problem}${hint}`
      : `${formatCount(faulty.length)} files cannot be used as images: ` +
          `${listCapped(faulty.map((f) => `${quote(f.image.fileName)} (${f.problem})`))}${hint}`;
  });
  if (refusals.length > 0) throw BadUserInputError.of(refusals);

  return {
    kind: 'image',
    classes: classes.map(({ name, images }) => ({ name, images })).sort((a, b) => compareNames(a.name, b.name)),
  };
}

/** Why the image at `path` cannot be used, or `undefined` when it can. */
async function imageProblem(path: string, { limits, imageSize }: ImageIngestOptions): Promise<string | undefined> {
  // The header alone gives format and dimensions; when even it cannot be read, the full
  // decode below says why (truncated, not an image…).
  const metadata = await sharp(path)
    .metadata()
    .catch(() => undefined);
  if (metadata) {
    if (!SUPPORTED_FORMATS.has(metadata.format)) return NOT_SUPPORTED;
    const width = metadata.width;
    const height = metadata.pageHeight ?? metadata.height;
    if (width * height > limits.maxImagePixels) {
      return `${width}×${height} pixels is more than the ${formatCount(limits.maxImagePixels)} pixels allowed`;
    }
  }
  try {
    await prepareImage(path, { imageSize, maxInputPixels: limits.maxImagePixels });
    return metadata ? undefined : NOT_SUPPORTED;
  } catch (error) {
    if (error instanceof ImageDecodeError) return error.message;
    throw error;
  }
}
