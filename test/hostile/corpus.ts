import { readFileSync } from 'node:fs';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';

import sharp from 'sharp';

import type { DatasetLimits } from '../../src/datasets';
import { classImage, imageInput, SUBMIT, textInput } from '../helpers/training';
import { zip, type ZipSpec } from '../helpers/zip';

/**
 * The hostile-input corpus: every case is one request a stranger could send, and the answer
 * it must get. CSV cases are the committed files in `csv/` (their bytes matter: a BOM, CRLF,
 * Latin-1); binary cases are generated here from their description, so that the corpus stays
 * a few kilobytes. `test/hardening.test.ts` sends each one to the real server and checks, on
 * top of the answer, that nothing was written outside the store, no staging was left behind
 * and no partial document was stored.
 *
 * The server runs with `CORPUS_LIMITS`, small enough that every limit is crossed cheaply.
 */

const KiB = 1024;

export const CORPUS_LIMITS: Partial<DatasetLimits> = {
  minImagesPerClass: 2,
  maxImagesPerClass: 5,
  maxUploadBytes: 512 * KiB,
  maxClassBytes: 256 * KiB,
  maxCsvRows: 20,
  maxZipEntries: 30,
  maxZipUncompressedBytes: 300 * KiB,
};

/** Absolute paths hostile ZIP entries aim at; the server runs as whoever runs the tests, maybe root. */
export const ESCAPE_TARGETS = ['/flash-hostile-absolute.png', '/flash-hostile-traversal.png'];

/** What the server must answer. */
export type Expected =
  /** Refused before GraphQL runs (Apollo, the multipart parser, the body parser): HTTP status and `BAD_REQUEST`. */
  | { kind: 'http'; status: 400 | 413; code: 'BAD_REQUEST' }
  /**
   * A GraphQL error with this code; for `BAD_USER_INPUT`, the input field at fault, words of
   * the message, and where several fields are at fault, every one (`extensions.fields`).
   */
  | { kind: 'graphql'; code: string; field?: string; message?: RegExp; fields?: string[] }
  /** The job is admitted; `classes` are the labels it trains on, `texts` inputs it must keep verbatim. */
  | { kind: 'accepted'; classes: string[]; texts?: string[] };

export interface UploadedFile {
  filename: string;
  content: Buffer;
}

/** The dataset of a `submitTraining` request. */
export type Dataset =
  | { kind: 'zip'; filename?: string; build: () => Promise<Buffer> }
  | { kind: 'csv'; file: string }
  | { kind: 'csv-bytes'; filename?: string; build: () => Buffer }
  | { kind: 'classes'; build: () => Promise<{ name: string; images: UploadedFile[] }[]> };

export interface UploadCase {
  /** Completes "refuses …" or "accepts …". */
  name: string;
  dataset: Dataset;
  expect: Expected;
}

/** A request built by hand, for what no well-behaved client library would send. */
export interface RawCase {
  name: string;
  request: () => Promise<{ headers: Record<string, string>; body: Buffer }>;
  expect: Expected;
}

const refused = (field: string, message?: RegExp, fields?: string[]): Expected => ({
  kind: 'graphql',
  code: 'BAD_USER_INPUT',
  field,
  ...(message ? { message } : {}),
  ...(fields ? { fields } : {}),
});
const badRequest = (status: 400 | 413 = 400): Expected => ({ kind: 'http', status, code: 'BAD_REQUEST' });

// ---------------------------------------------------------------------------------------------
// Building blocks

/** `count` good, distinct PNGs per class folder. */
async function folders(classes: Record<string, number>): Promise<ZipSpec[]> {
  const specs: ZipSpec[] = [];
  for (const [index, [name, count]] of Object.entries(classes).entries()) {
    for (let i = 0; i < count; i++) specs.push({ name: `${name}/${i + 1}.png`, data: await classImage(index, i) });
  }
  return specs;
}

/** Two classes of two good images, to which a case adds its hostile entry. */
const twoClasses = () => folders({ cats: 2, dogs: 2 });

const zipWith = (...extra: ZipSpec[]) => async () => zip([...(await twoClasses()), ...extra]);

/** A PNG whose header claims `width × height` pixels, with a few bytes of real image data. */
export function pngHeaderClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.writeUInt8(8, 8); // bit depth
  header.writeUInt8(2, 9); // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.alloc(64))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A real image cut after 60 % of its bytes. */
async function truncatedImage(): Promise<Buffer> {
  const full = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3366cc' } })
    .composite([{ input: await classImage(0, 3, 64) }])
    .jpeg({ quality: 95 })
    .toBuffer();
  return full.subarray(0, Math.floor(full.length * 0.6));
}

/** Two frames; training uses the first. */
export async function animatedGif(): Promise<Buffer> {
  return sharp([await classImage(0, 1), await classImage(1, 1)], { join: { animated: true } })
    .gif()
    .toBuffer();
}

/** An uncompressed 224 × 224 RGB TIFF, white but for a small mark: 147 KiB that deflate ~500:1. */
async function uniformTiff(): Promise<Buffer> {
  return sharp({ create: { width: 224, height: 224, channels: 3, background: '#ffffff' } })
    .composite([{ input: await classImage(1, 2, 16), left: 100, top: 100 }])
    .removeAlpha()
    .tiff({ compression: 'none' })
    .toBuffer();
}

const text = (value: string) => Buffer.from(value, 'utf8');

/** Per-class uploads: `classes[0]` and `classes[1]` of two good images each, then `patch` applied. */
async function classUploads(
  patch: (classes: { name: string; images: UploadedFile[] }[]) => void | Promise<void>,
): Promise<{ name: string; images: UploadedFile[] }[]> {
  const classes = [];
  for (const [index, name] of ['red', 'blue'].entries()) {
    const images = [];
    for (let i = 0; i < 2; i++) images.push({ filename: `${name}-${i}.png`, content: await classImage(index, i) });
    classes.push({ name, images });
  }
  await patch(classes);
  return classes;
}

/** A CSV of `rows` good rows over two labels, `input` cells from `cell(i)`. */
function csvRows(rows: number, cell: (i: number) => string = (i) => `review number ${i}`): Buffer {
  const lines = ['input,label'];
  for (let i = 0; i < rows; i++) lines.push(`"${cell(i)}",${i % 2 ? 'negative' : 'positive'}`);
  return text(`${lines.join('\n')}\n`);
}

// ---------------------------------------------------------------------------------------------
// Image datasets sent as one ZIP (`input.dataset`)

export const ZIP_CASES: UploadCase[] = [
  {
    name: 'a ZIP bomb (1 MiB of zeros in one entry), by the bytes it would inflate',
    dataset: { kind: 'zip', build: zipWith({ name: 'dogs/bomb.png', data: Buffer.alloc(1024 * KiB) }) },
    expect: refused('dataset', /add up to 1 MiB uncompressed/),
  },
  {
    name: 'a ZIP whose files add up to more than the uncompressed limit',
    dataset: {
      kind: 'zip',
      build: async () =>
        zip(
          ['cats', 'dogs'].flatMap((folder) =>
            [1, 2].map((i) => ({
              name: `${folder}/${i}.png`,
              data: Buffer.from(Array.from({ length: 100 * KiB }, (_, j) => (j * 7919 + i * 104729) % 251)),
              method: 'store' as const,
            })),
          ),
        ),
    },
    expect: refused('dataset', /uncompressed/),
  },
  {
    name: 'a ZIP entry that inflates to more than its header declares',
    dataset: {
      kind: 'zip',
      build: zipWith({ name: 'dogs/liar.png', data: Buffer.alloc(256 * KiB, 1), declaredSize: 5 * KiB }),
    },
    expect: refused('dataset', /cannot be extracted/),
  },
  {
    name: 'a ZIP entry named ../evil.png',
    dataset: { kind: 'zip', build: zipWith({ name: '../evil.png', data: 'x' }) },
    expect: refused('dataset', /"\.\." segment/),
  },
  {
    name: 'a ZIP entry climbing to the root of the file system',
    dataset: { kind: 'zip', build: zipWith({ name: `cats/${'../'.repeat(16)}flash-hostile-traversal.png`, data: 'x' }) },
    expect: refused('dataset', /"\.\." segment/),
  },
  {
    name: 'a ZIP entry with an absolute path',
    dataset: { kind: 'zip', build: zipWith({ name: ESCAPE_TARGETS[0]!, data: 'x' }) },
    expect: refused('dataset', /absolute path/),
  },
  {
    name: 'a ZIP entry with backslashes and a drive letter',
    dataset: { kind: 'zip', build: zipWith({ name: 'C:\\Windows\\evil.png', data: 'x' }) },
    expect: refused('dataset', /backslash|drive letter/),
  },
  {
    name: 'a ZIP entry that is a symbolic link',
    dataset: {
      kind: 'zip',
      build: zipWith({ name: 'dogs/passwd.png', data: '/etc/passwd', method: 'store', mode: 0o120777 }),
    },
    expect: refused('dataset', /symbolic link/),
  },
  {
    name: 'a ZIP entry whose name holds a NUL byte',
    dataset: { kind: 'zip', build: zipWith({ name: 'dogs/evil.png\u0000.txt', data: 'x' }) },
    expect: refused('dataset', /NUL or control character/),
  },
  {
    name: 'an encrypted ZIP entry',
    dataset: { kind: 'zip', build: zipWith({ name: 'dogs/secret.png', data: 'x', encrypted: true }) },
    expect: refused('dataset', /encrypted/),
  },
  {
    name: 'a ZIP nested inside the ZIP',
    dataset: {
      kind: 'zip',
      build: async () => zipWith({ name: 'dogs/more.zip', data: zip(await twoClasses()), method: 'store' })(),
    },
    expect: refused('dataset', /archive/),
  },
  {
    name: 'a file named .jpg that is not an image',
    dataset: { kind: 'zip', build: zipWith({ name: 'dogs/photo.jpg', data: 'MZ\u0090\u0000 this is not a picture' }) },
    expect: refused('dataset', /dogs\/photo\.jpg/),
  },
  {
    name: 'a truncated image',
    dataset: { kind: 'zip', build: async () => zipWith({ name: 'dogs/cut.jpg', data: await truncatedImage() })() },
    expect: refused('dataset', /dogs\/cut\.jpg/),
  },
  {
    name: 'an image whose header claims 50,000 × 50,000 pixels',
    dataset: { kind: 'zip', build: zipWith({ name: 'dogs/huge.png', data: pngHeaderClaiming(50_000, 50_000) }) },
    expect: refused('dataset', /pixels/),
  },
  {
    name: 'an empty image file',
    dataset: { kind: 'zip', build: zipWith({ name: 'dogs/empty.png', data: '' }) },
    expect: refused('dataset', /dogs\/empty\.png/),
  },
  {
    name: 'an empty upload',
    dataset: { kind: 'zip', build: async () => Buffer.alloc(0) },
    expect: refused('dataset', /is empty/),
  },
  {
    name: 'a CSV sent as the image ZIP',
    dataset: { kind: 'zip', filename: 'images.zip', build: async () => csvRows(4) },
    expect: refused('dataset', /not a readable ZIP/),
  },
  {
    name: 'a ZIP cut off half-way',
    dataset: {
      kind: 'zip',
      build: async () => {
        const whole = zip(await twoClasses());
        return whole.subarray(0, Math.floor(whole.length / 2));
      },
    },
    expect: refused('dataset', /not a readable ZIP/),
  },
  {
    name: 'more ZIP entries than allowed',
    dataset: {
      kind: 'zip',
      build: zipWith(...Array.from({ length: 30 }, (_, i) => ({ name: `dogs/skip-${i}/`, data: '' }))),
    },
    expect: refused('dataset', /entries/),
  },
  {
    name: 'more images in a class than allowed',
    dataset: { kind: 'zip', build: async () => zip(await folders({ cats: 2, dogs: 6 })) },
    expect: refused('dataset', /too many images/),
  },
  {
    name: 'a single class folder',
    dataset: { kind: 'zip', build: async () => zip(await folders({ cats: 3 })) },
    expect: refused('dataset', /at least 2/),
  },
  {
    name: 'a class folder named with a fullwidth slash (a Unicode lookalike)',
    dataset: { kind: 'zip', build: async () => zip(await folders({ cats: 2, 'dogs\uff0fetc': 2 })) },
    expect: refused('dataset', /slash/),
  },
  {
    name: 'a class folder named with a right-to-left override',
    dataset: { kind: 'zip', build: async () => zip(await folders({ cats: 2, '\u202egnp.exe': 2 })) },
    expect: refused('dataset', /control character/),
  },
  {
    name: 'a class folder with a 300-character name',
    dataset: { kind: 'zip', build: async () => zip(await folders({ cats: 2, ['d'.repeat(300)]: 2 })) },
    expect: refused('dataset', /characters long/),
  },
  {
    name: 'two class folders that differ only in case',
    dataset: { kind: 'zip', build: async () => zip(await folders({ cats: 2, Cats: 2 })) },
    expect: refused('dataset', /same class/),
  },
  {
    // Ten entries, one PNG's bytes: every entry would inflate the same stream again, so the
    // archive's size would no longer bound what it inflates (1,000 entries: 1,000 times).
    name: 'a ZIP whose entries all point at one shared data stream',
    dataset: {
      kind: 'zip',
      build: async () => {
        const png = await classImage(0, 7);
        const shared = (name: string) => ({ name, sharesDataWith: 0 });
        return zip([
          { name: 'cats/1.png', data: png },
          ...[2, 3, 4, 5].map((i) => shared(`cats/${i}.png`)),
          ...[1, 2, 3, 4, 5].map((i) => shared(`dogs/${i}.png`)),
        ]);
      },
    },
    expect: refused('dataset', /overlap/),
  },
  {
    name: 'a ZIP entry whose CRC-32 does not match its data',
    dataset: { kind: 'zip', build: async () => zipWith({ name: 'dogs/3.png', data: await classImage(1, 5), crc: 0x1234_5678 })() },
    expect: refused('dataset', /"dogs\/3\.png".*CRC-32/),
  },
];

/** Uploads over the size limit: their own server, so that a request that never ends cannot affect the others. */
export const OVERSIZE_CASES: UploadCase[] = [
  {
    name: 'a ZIP over the upload size limit',
    dataset: {
      kind: 'zip',
      build: async () =>
        zip([...(await twoClasses()), { name: 'dogs/big.png', data: Buffer.alloc(600 * KiB, 7), method: 'store' }]),
    },
    expect: refused('dataset', /larger than/),
  },
  {
    name: 'a CSV over the upload size limit',
    dataset: { kind: 'csv-bytes', build: () => csvRows(150, (i) => `review ${i} ${'w'.repeat(4_000)}`) },
    expect: refused('dataset', /larger than/),
  },
  {
    name: 'images of one class adding up to more than the per-class limit',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads((classes) => {
          classes[1]!.images[1] = { filename: 'heavy.png', content: Buffer.alloc(300 * KiB, 9) };
        }),
    },
    expect: refused('classes[1].images', /per class/),
  },
];

// ---------------------------------------------------------------------------------------------
// Image datasets sent as uploads per class (`input.classes`)

export const CLASS_CASES: UploadCase[] = [
  ...(
    [
      ['a class named ../etc', '../etc', /slash/],
      ['a class named a/b', 'a/b', /slash/],
      ['a class name holding a NUL byte', 'red\u0000x', /control character/],
      ['a class named with fullwidth dots that read as ..', '\uff0e\uff0e', /"\." or "\.\."/],
      ['a class name of 5,000 characters', 'r'.repeat(5_000), /characters long/],
      ['an empty class name', '   ', /empty/],
    ] as const
  ).map(
    ([name, className, message]): UploadCase => ({
      name,
      dataset: {
        kind: 'classes',
        build: () =>
          classUploads((classes) => {
            classes[0]!.name = className;
          }),
      },
      expect: refused('classes[0].name', message),
    }),
  ),
  {
    name: 'two classes whose names differ only in case',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads((classes) => {
          classes[1]!.name = 'RED';
        }),
    },
    expect: refused('classes[1].name', /same class/),
  },
  {
    name: 'an empty image upload',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads((classes) => {
          classes[0]!.images[1] = { filename: 'blank.png', content: Buffer.alloc(0) };
        }),
    },
    expect: refused('classes[0].images[1]', /is empty/),
  },
  {
    name: 'an upload named .jpg that is not an image',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads((classes) => {
          classes[1]!.images[0] = { filename: 'photo.jpg', content: text('<html>not a picture</html>') };
        }),
    },
    expect: refused('classes[1].images[0]', /photo\.jpg/),
  },
  {
    name: 'a truncated image upload',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads(async (classes) => {
          classes[0]!.images[0] = { filename: 'cut.jpg', content: await truncatedImage() };
        }),
    },
    expect: refused('classes[0].images[0]', /cut\.jpg/),
  },
  {
    name: 'an image upload whose header claims 50,000 × 50,000 pixels',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads((classes) => {
          classes[1]!.images[1] = { filename: 'huge.png', content: pngHeaderClaiming(50_000, 50_000) };
        }),
    },
    expect: refused('classes[1].images[1]', /pixels/),
  },
  {
    name: 'more images in a class than allowed',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads(async (classes) => {
          for (let i = 2; i < 6; i++) classes[0]!.images.push({ filename: `more-${i}.png`, content: await classImage(0, i) });
        }),
    },
    expect: refused('classes[0].images', /too many images/),
  },
  {
    name: 'two bad class names and a class of one image, all named at once',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads((classes) => {
          classes[0]!.name = '../etc';
          classes[1]!.name = 'blue\u0000';
          classes[1]!.images.pop();
        }),
    },
    expect: refused('classes[0].name', /slash.*control character.*too few images/, ['classes[0].name', 'classes[1].name', 'classes[1].images']),
  },
  {
    name: 'undecodable images in two classes, each named by its path',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads(async (classes) => {
          classes[0]!.images[1] = { filename: 'page.jpg', content: text('<html>not a picture</html>') };
          classes[1]!.images[0] = { filename: 'cut.jpg', content: await truncatedImage() };
        }),
    },
    expect: refused('classes[0].images[1]', /page\.jpg.*cut\.jpg/, ['classes[0].images[1]', 'classes[1].images[0]']),
  },
];

// ---------------------------------------------------------------------------------------------
// Text datasets (`input.dataset`, a CSV)

const csv = (file: string) => ({ kind: 'csv' as const, file });

export const CSV_CASES: UploadCase[] = [
  { name: 'a CSV with bytes that are not UTF-8', dataset: csv('latin1.csv'), expect: refused('dataset', /not UTF-8.*line 2/) },
  { name: 'a CSV with a header only', dataset: csv('header-only.csv'), expect: refused('dataset', /no data rows/) },
  { name: 'a CSV with one class only', dataset: csv('one-class.csv'), expect: refused('dataset', /at least 2/) },
  {
    name: 'a CSV with more rows than the limit',
    dataset: { kind: 'csv-bytes', build: () => csvRows(21) },
    expect: refused('dataset', /more than 20 rows/),
  },
  {
    name: 'a CSV with a 6,000-character cell',
    dataset: { kind: 'csv-bytes', build: () => csvRows(4, (i) => (i === 2 ? 'w'.repeat(6_000) : `review ${i}`)) },
    expect: refused('dataset', /row 4.*characters long/),
  },
  {
    name: 'a CSV with a 200-character label',
    dataset: {
      kind: 'csv-bytes',
      build: () => text(`input,label\ngreat,positive\nfine,positive\nbad,${'n'.repeat(200)}\nawful,${'n'.repeat(200)}\n`),
    },
    expect: refused('dataset', /characters long/),
  },
  { name: 'a CSV whose labels hold ../', dataset: csv('label-traversal.csv'), expect: refused('dataset', /row 4.*slash/) },
  { name: 'a CSV whose labels hold a slash', dataset: csv('label-slash.csv'), expect: refused('dataset', /slash/) },
  {
    name: 'a CSV whose labels are fullwidth dots that read as ..',
    dataset: csv('label-lookalike.csv'),
    expect: refused('dataset', /"\." or "\.\."/),
  },
  {
    name: 'a CSV label holding a NUL byte',
    dataset: {
      kind: 'csv-bytes',
      build: () => text('input,label\ngreat,pos\u0000itive\nfine,positive\nbad,negative\nawful,negative\n'),
    },
    expect: refused('dataset', /control character/),
  },
  {
    name: 'a CSV with one label spelled two ways',
    dataset: csv('label-case-clash.csv'),
    expect: refused('dataset', /same class/),
  },
  { name: 'a CSV whose inputs are all numbers', dataset: csv('numbers-only.csv'), expect: refused('dataset', /only numbers/) },
  { name: 'a CSV with an unclosed quote', dataset: csv('unclosed-quote.csv'), expect: refused('dataset', /well-formed/) },
  {
    // papaparse reads an unfinished row again with each chunk: 2 MiB of this took 3 s, unlimited.
    name: 'a CSV whose quoted cell never ends: 500 KiB of doubled quotes',
    dataset: { kind: 'csv-bytes', build: () => text(`input,label\n"${'""'.repeat(250 * KiB)}`) },
    expect: refused('dataset', /row 2 of .* is longer than 65,536 characters/),
  },
  { name: 'a CSV separated by semicolons', dataset: csv('semicolons.csv'), expect: refused('dataset', /separated by commas/) },
  { name: 'a CSV without a label column', dataset: csv('no-label-column.csv'), expect: refused('dataset', /"label" column/) },
  {
    name: 'an empty CSV',
    dataset: { kind: 'csv-bytes', build: () => Buffer.alloc(0) },
    expect: refused('dataset', /is empty/),
  },
  {
    name: 'a PNG sent as the CSV',
    dataset: { kind: 'csv-bytes', filename: 'reviews.csv', build: () => pngHeaderClaiming(10, 10) },
    expect: refused('dataset', /not UTF-8/),
  },
];

// ---------------------------------------------------------------------------------------------
// Hostile-looking datasets that are fine

export const ACCEPTED_CASES: UploadCase[] = [
  {
    name: 'a CSV with a BOM and CRLF line ends',
    dataset: csv('bom-crlf.csv'),
    expect: { kind: 'accepted', classes: ['negative', 'positive'], texts: ['a great film, truly', 'awful, simply awful'] },
  },
  {
    name: 'a CSV with quoted commas, quotes and line breaks',
    dataset: csv('quoted.csv'),
    expect: {
      kind: 'accepted',
      classes: ['negative', 'positive'],
      texts: ['great, great, great', 'a film\nthat spans\nthree lines', 'he said "bad", twice', 'boring,\r\nreally'],
    },
  },
  {
    name: 'a CSV of formula-injection cells, kept as plain text',
    dataset: csv('formula.csv'),
    expect: {
      kind: 'accepted',
      classes: ['negative', 'positive'],
      texts: ['=HYPERLINK("http://evil.example","click")', '+1+2', "-cmd|' /C calc'!A0", '@SUM(A1:A2)'],
    },
  },
  {
    name: 'a CSV with empty and blank lines, which are dropped',
    dataset: csv('empty-lines.csv'),
    expect: { kind: 'accepted', classes: ['negative', 'positive'], texts: ['great film', 'boring'] },
  },
  {
    // csv-parse spent ~25 µs on each of these rows: 14 s for this file, without yielding.
    name: 'a CSV of four rows then 500,000 blank lines, read in milliseconds',
    dataset: { kind: 'csv-bytes', build: () => Buffer.concat([csvRows(4), text('\n'.repeat(500_000))]) },
    expect: { kind: 'accepted', classes: ['negative', 'positive'], texts: ['review number 3'] },
  },
  {
    name: 'a CSV of four rows then 250,000 rows of one cell, which are dropped',
    dataset: { kind: 'csv-bytes', build: () => Buffer.concat([csvRows(4), text('x\n'.repeat(250_000))]) },
    expect: { kind: 'accepted', classes: ['negative', 'positive'], texts: ['review number 0'] },
  },
  {
    name: 'a CSV whose labels are numbers, kept as text',
    dataset: csv('numeric-labels.csv'),
    expect: { kind: 'accepted', classes: ['0', '1'], texts: ['great film', 'awful film'] },
  },
  {
    name: 'a ZIP holding an animated GIF (trained on its first frame)',
    dataset: {
      kind: 'zip',
      build: async () => zipWith({ name: 'dogs/wag.gif', data: await animatedGif() })(),
    },
    expect: { kind: 'accepted', classes: ['cats', 'dogs'] },
  },
  {
    // 147 KiB of pixels that deflate to a few hundred bytes: a high ratio, and a real image.
    name: 'a ZIP holding an uncompressed TIFF of one colour (not a ZIP bomb)',
    dataset: {
      kind: 'zip',
      build: async () => zipWith({ name: 'dogs/scan.tiff', data: await uniformTiff() })(),
    },
    expect: { kind: 'accepted', classes: ['cats', 'dogs'] },
  },
  {
    name: 'an animated GIF uploaded per class',
    dataset: {
      kind: 'classes',
      build: () =>
        classUploads(async (classes) => {
          classes[0]!.images[1] = { filename: 'wag.gif', content: await animatedGif() };
        }),
    },
    expect: { kind: 'accepted', classes: ['blue', 'red'] },
  },
  {
    name: 'a ZIP with a wrapper folder, __MACOSX, dot-files and Thumbs.db, which are skipped',
    dataset: {
      kind: 'zip',
      build: async () =>
        zip([
          ...(await twoClasses()).map((spec) => ({ ...spec, name: `export/${spec.name}` })),
          { name: '__MACOSX/export/cats/._1.png', data: 'resource fork' },
          { name: 'export/.DS_Store', data: 'finder' },
          { name: 'export/dogs/Thumbs.db', data: 'thumbnails' },
        ]),
    },
    expect: { kind: 'accepted', classes: ['cats', 'dogs'] },
  },
];

// ---------------------------------------------------------------------------------------------
// Requests that break the multipart or HTTP layer itself

const BOUNDARY = '----flash-hostile-boundary';

/** A multipart body from raw parts; `end: false` leaves the closing boundary out. */
function formBody(parts: { name: string; value: string | Buffer; filename?: string }[], { end = true } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const file = part.filename === undefined ? '' : `; filename="${part.filename}"`;
    chunks.push(text(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.name}"${file}\r\n\r\n`));
    chunks.push(Buffer.from(part.value), text('\r\n'));
  }
  if (end) chunks.push(text(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

const MULTIPART = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'apollo-require-preflight': 'true' };
const textOperations = JSON.stringify({ query: SUBMIT, variables: { input: textInput() } });
const datasetMap = JSON.stringify({ 0: ['variables.input.dataset'] });
const goodCsv = () => csvRows(6);

const multipartCase = (
  name: string,
  parts: () => Promise<Parameters<typeof formBody>[0]> | Parameters<typeof formBody>[0],
  expect: Expected,
  options: { end?: boolean; headers?: Record<string, string> } = {},
): RawCase => ({
  name,
  request: async () => ({
    headers: options.headers ?? MULTIPART,
    body: formBody(await parts(), { end: options.end ?? true }),
  }),
  expect,
});

export const RAW_CASES: RawCase[] = [
  {
    name: 'a multipart body that is not multipart at all',
    request: async () => ({ headers: MULTIPART, body: text('this is not a multipart body') }),
    expect: badRequest(),
  },
  {
    name: 'a multipart body with no parts',
    request: async () => ({ headers: MULTIPART, body: text(`--${BOUNDARY}--\r\n`) }),
    expect: badRequest(),
  },
  {
    name: 'a multipart content type without a boundary',
    request: async () => ({
      headers: { 'content-type': 'multipart/form-data', 'apollo-require-preflight': 'true' },
      body: formBody([{ name: 'operations', value: textOperations }]),
    }),
    expect: badRequest(),
  },
  multipartCase(
    'a multipart request without its map part',
    () => [
      { name: 'operations', value: textOperations },
      { name: '0', value: goodCsv(), filename: 'reviews.csv' },
    ],
    badRequest(),
  ),
  multipartCase(
    'a multipart request without its operations part',
    () => [
      { name: 'map', value: datasetMap },
      { name: '0', value: goodCsv(), filename: 'reviews.csv' },
    ],
    badRequest(),
  ),
  multipartCase(
    'a multipart request whose files come before its map',
    () => [
      { name: 'operations', value: textOperations },
      { name: '0', value: goodCsv(), filename: 'reviews.csv' },
      { name: 'map', value: datasetMap },
    ],
    badRequest(),
  ),
  multipartCase(
    'operations that are not JSON',
    () => [
      { name: 'operations', value: '{"query": "mutation {' },
      { name: 'map', value: datasetMap },
    ],
    badRequest(),
  ),
  multipartCase(
    'a map that is not JSON',
    () => [
      { name: 'operations', value: textOperations },
      { name: 'map', value: '{0: [variables.input.dataset' },
    ],
    badRequest(),
  ),
  multipartCase(
    'a map that aims at Object.prototype',
    () => [
      { name: 'operations', value: textOperations },
      { name: 'map', value: JSON.stringify({ 0: ['__proto__.polluted'] }) },
      { name: '0', value: goodCsv(), filename: 'reviews.csv' },
    ],
    badRequest(),
  ),
  multipartCase(
    'a map that names a file the request never sends',
    () => [
      { name: 'operations', value: textOperations },
      { name: 'map', value: datasetMap },
    ],
    refused('dataset'),
  ),
  multipartCase(
    'a body that ends in the middle of its file',
    () => [
      { name: 'operations', value: textOperations },
      { name: 'map', value: datasetMap },
      { name: '0', value: goodCsv().subarray(0, 40), filename: 'reviews.csv' },
    ],
    refused('dataset'),
    { end: false },
  ),
  multipartCase(
    'one file mapped to two image inputs',
    async () => [
      {
        name: 'operations',
        value: JSON.stringify({
          query: SUBMIT,
          variables: {
            input: imageInput({
              classes: [
                { name: 'red', images: [null, null] },
                { name: 'blue', images: [null, null] },
              ],
            }),
          },
        }),
      },
      {
        name: 'map',
        value: JSON.stringify({
          0: ['variables.input.classes.0.images.0', 'variables.input.classes.0.images.1'],
          1: ['variables.input.classes.1.images.0', 'variables.input.classes.1.images.1'],
        }),
      },
      { name: '0', value: await classImage(0, 0), filename: 'red.png' },
      { name: '1', value: await classImage(1, 0), filename: 'blue.png' },
    ],
    refused('classes[0].images[1]'),
  ),
  multipartCase(
    'more files than the server takes in one request',
    async () => {
      const image = await classImage(0, 0);
      const count = 60;
      const classes = [{ name: 'red', images: Array.from({ length: count }, () => null) }];
      return [
        { name: 'operations', value: JSON.stringify({ query: SUBMIT, variables: { input: imageInput({ classes }) } }) },
        {
          name: 'map',
          value: JSON.stringify(
            Object.fromEntries(Array.from({ length: count }, (_, i) => [i, [`variables.input.classes.0.images.${i}`]])),
          ),
        },
        ...Array.from({ length: count }, (_, i) => ({ name: String(i), value: image, filename: `${i}.png` })),
      ];
    },
    badRequest(413),
  ),
  multipartCase(
    'an upload without the CSRF-preventing header',
    () => [
      { name: 'operations', value: textOperations },
      { name: 'map', value: datasetMap },
      { name: '0', value: goodCsv(), filename: 'reviews.csv' },
    ],
    badRequest(),
    { headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } },
  ),
  {
    name: 'an operation sent as text/plain',
    request: async () => ({
      headers: { 'content-type': 'text/plain' },
      body: text(JSON.stringify({ query: '{ status { status } }' })),
    }),
    expect: badRequest(),
  },
  {
    name: 'an operation sent as a form',
    request: async () => ({
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: text(`query=${encodeURIComponent('mutation { setDevMode(enabled: true) { devMode } }')}`),
    }),
    expect: badRequest(),
  },
  {
    name: 'an operation sent as XML',
    request: async () => ({
      headers: { 'content-type': 'application/xml', 'apollo-require-preflight': 'true' },
      body: text('<query>{ status { status } }</query>'),
    }),
    expect: badRequest(),
  },
  {
    name: 'a JSON body that is cut off',
    request: async () => ({ headers: { 'content-type': 'application/json' }, body: text('{"query": "{ status { st') }),
    expect: badRequest(),
  },
  {
    name: 'variables that are a JSON string instead of an object',
    request: async () => ({
      headers: { 'content-type': 'application/json' },
      body: text(JSON.stringify({ query: '{ status { status } }', variables: '{"a":1}' })),
    }),
    expect: badRequest(),
  },
  {
    name: 'a training input variable without its epochs, naming the field and echoing nothing',
    request: async () => {
      const { epochs: _missing, ...input } = textInput({ taskName: 'never echoed' });
      return {
        headers: { 'content-type': 'application/json' },
        body: text(JSON.stringify({ query: SUBMIT, variables: { input } })),
      };
    },
    expect: refused('epochs', /^Variable "\$input" has an invalid value: Field "epochs" of required type "Int!" was not provided\.$/),
  },
  {
    name: 'a persisted query whose hash is not the hash of its query',
    request: async () => ({
      headers: { 'content-type': 'application/json' },
      body: text(
        JSON.stringify({
          query: '{ status { status } }',
          extensions: { persistedQuery: { version: 1, sha256Hash: '0'.repeat(64) } },
        }),
      ),
    }),
    expect: badRequest(),
  },
  {
    name: 'a persisted query of an unsupported version',
    request: async () => ({
      headers: { 'content-type': 'application/json' },
      body: text(JSON.stringify({ extensions: { persistedQuery: { version: 99, sha256Hash: 'f'.repeat(64) } } })),
    }),
    expect: badRequest(),
  },
  {
    name: 'a trainingJob query for a token no job has',
    request: async () => ({
      headers: { 'content-type': 'application/json' },
      body: text(JSON.stringify({ query: '{ trainingJob(token: "textClassification-nobody-00000000000000000000") { state } }' })),
    }),
    expect: { kind: 'graphql', code: 'JOB_NOT_FOUND' },
  },
];

/** The bytes of a committed CSV case. */
export function corpusFile(file: string): Buffer {
  return readFileSync(path.join(__dirname, 'csv', file));
}
