import { randomBytes } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';

import sharp from 'sharp';

import {
  DEFAULT_DATASET_LIMITS,
  type DatasetLimits,
  ingestImageClasses,
  ingestImageZip,
  ingestTextCsv,
  type UploadedFile,
} from '../src/datasets';
import { BadUserInputError, ErrorCode } from '../src/errors';
import { zip, type ZipSpec } from './helpers/zip';

const KiB = 1024;
const IMAGE_SIZE = 32;

/** Small limits so every rule can be crossed with a few tiny files. */
const LIMITS: DatasetLimits = {
  ...DEFAULT_DATASET_LIMITS,
  maxClasses: 3,
  minImagesPerClass: 2,
  maxImagesPerClass: 4,
  maxClassBytes: 64 * KiB,
  maxUploadBytes: 1024 * KiB,
  maxZipEntries: 40,
  maxZipUncompressedBytes: 512 * KiB,
  maxImagePixels: 64 * 64,
  maxCsvRows: 20,
  maxCsvBytes: 64 * KiB,
  maxTextLength: 200,
  maxLabelLength: 20,
};

let png: Buffer;
let jpeg: Buffer;
let webp: Buffer;
let animatedGif: Buffer;
let hugePng: Buffer;

beforeAll(async () => {
  const square = (background: string, side = IMAGE_SIZE) =>
    sharp({ create: { width: side, height: side, channels: 3, background } });
  png = await square('#d04020').png().toBuffer();
  jpeg = await square('#2040d0').jpeg().toBuffer();
  webp = await square('#20d040').webp().toBuffer();
  animatedGif = await sharp([png, jpeg], { join: { animated: true } }).gif().toBuffer();
  hugePng = await square('#808080', 100).png().toBuffer();
});

let tmp: string;
let stagingDir: string;
let uploads = 0;

beforeEach(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'flash-datasets-'));
  stagingDir = path.join(tmp, 'staging');
  mkdirSync(stagingDir, { mode: 0o700 });
});

afterEach(() => rmSync(tmp, { recursive: true, force: true }));

/** An upload as graphql-upload-minimal hands it over, read from a real file. */
function upload(filename: string, content: Buffer | string): UploadedFile {
  const file = path.join(tmp, `upload-${uploads++}`);
  writeFileSync(file, content);
  return { filename, mimetype: 'application/octet-stream', createReadStream: () => createReadStream(file) };
}

/** Entries for a class folder of `count` good images. */
const images = (folder: string, count: number, data = () => png): ZipSpec[] =>
  Array.from({ length: count }, (_, i) => ({ name: `${folder}/${i + 1}.png`, data: data() }));
/** Two classes of two good images, to which a test adds the entry under test. */
const twoClasses = (): ZipSpec[] => [...images('cats', 2), ...images('dogs', 2)];
/** `count` stored entries of random bytes, which do not compress. */
const noise = (folder: string, count: number, bytes: number): ZipSpec[] =>
  Array.from({ length: count }, (_, i) => ({ name: `${folder}/${i}.png`, data: randomBytes(bytes), method: 'store' }));

const zipOptions = (limits: DatasetLimits = LIMITS) => ({ stagingDir, limits, imageSize: IMAGE_SIZE });
const ingestZip = (specs: readonly ZipSpec[], limits?: DatasetLimits) =>
  ingestImageZip(upload('dataset.zip', zip(specs)), zipOptions(limits));

/** Awaits a refusal: a `BadUserInputError` on `field` whose message holds every fragment. */
async function expectRefusal(promise: Promise<unknown>, field: string, ...fragments: (string | RegExp)[]) {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(BadUserInputError);
  const refusal = error as BadUserInputError;
  expect(refusal.extensions).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, field });
  for (const fragment of fragments) expect(refusal.message).toMatch(fragment);
  return refusal;
}

describe('image ZIP', () => {
  it('gives one class per folder, sorted, with every image staged and system files skipped', async () => {
    const dataset = await ingestZip([
      { name: 'dogs/', data: '' },
      ...images('dogs', 3, () => jpeg),
      ...images('cats', 2),
      { name: 'cats/.DS_Store', data: 'finder' },
      { name: 'Thumbs.db', data: 'windows' },
      { name: '__MACOSX/cats/._1.png', data: 'resource fork' },
      { name: '.hidden/x.png', data: 'dot folder' },
    ]);
    expect(dataset.kind).toBe('image');
    expect(dataset.classes.map((c) => [c.name, c.images.map((i) => i.fileName)])).toEqual([
      ['cats', ['cats/1.png', 'cats/2.png']],
      ['dogs', ['dogs/1.png', 'dogs/2.png', 'dogs/3.png']],
    ]);
    for (const image of dataset.classes.flatMap((c) => c.images)) {
      expect(path.dirname(path.dirname(image.path))).toBe(stagingDir);
      expect(statSync(image.path).size).toBe(image.bytes);
    }
    expect(readFileSync(dataset.classes[1]!.images[0]!.path)).toEqual(jpeg);
  });

  it('accepts a single wrapper folder, stored entries, Unicode names and animated images', async () => {
    const dataset = await ingestZip([
      { name: 'my dataset/', data: '' },
      ...images('my dataset/cafe\u0301', 2).map((spec) => ({ ...spec, method: 'store' as const })),
      { name: 'my dataset/dogs/a.webp', data: webp },
      { name: 'my dataset/dogs/b.gif', data: animatedGif },
    ]);
    expect(dataset.classes.map((c) => [c.name, c.images.length])).toEqual([
      ['café', 2],
      ['dogs', 2],
    ]);
  });

  it.each([
    ['a ".." segment', '../evil.png', /"\.\.\/evil\.png" has a "\.\." segment/],
    ['a ".." segment inside a folder', 'cats/../../evil.png', /"cats\/\.\.\/\.\.\/evil\.png" has a "\.\." segment/],
    ['an absolute path', '/etc/cron.d/evil', /"\/etc\/cron\.d\/evil" is an absolute path/],
    ['a backslash', 'cats\\..\\evil.png', /contains a backslash/],
    ['a drive letter', 'C:/evil.png', /"C:\/evil\.png" starts with a drive letter/],
    ['a NUL byte', 'cats/evil.png\u0000.txt', /"cats\/evil\.png\\u0000\.txt" contains a NUL or control character/],
  ])('refuses an entry with %s, naming it', async (_, name, message) => {
    await expectRefusal(ingestZip([...twoClasses(), { name, data: png }]), 'dataset', message);
  });

  it('refuses a symbolic link entry', async () => {
    const link = { name: 'cats/3.png', data: '/etc/passwd', method: 'store' as const, mode: 0o120777 };
    await expectRefusal(ingestZip([...twoClasses(), link]), 'dataset', /"cats\/3\.png" is a symbolic link/);
  });

  it('refuses an encrypted entry', async () => {
    const secret = { name: 'dogs/3.png', data: png, encrypted: true };
    await expectRefusal(ingestZip([...twoClasses(), secret]), 'dataset', /"dogs\/3\.png" is encrypted/);
  });

  it('refuses a nested archive explicitly', async () => {
    const nested = { name: 'cats/more.zip', data: zip(images('x', 2)) };
    await expectRefusal(ingestZip([...twoClasses(), nested]), 'dataset', /"cats\/more\.zip" is an archive/);
  });

  it('refuses files next to the class folders, explaining the layout', async () => {
    await expectRefusal(
      ingestZip([...twoClasses(), { name: 'stray.png', data: png }]),
      'dataset',
      /"stray\.png" is not inside a class folder; the ZIP must hold one folder per class/,
    );
  });

  it('refuses folders nested deeper than class/image', async () => {
    await expectRefusal(
      ingestZip([...images('animals/cats', 2), ...images('animals/dogs', 2), ...images('plants/trees', 2)]),
      'dataset',
      /"animals\/cats\/1\.png" is nested too deep/,
    );
  });

  it('refuses a ZIP that holds no images', async () => {
    const onlyJunk = [{ name: 'cats/' }, { name: '.DS_Store', data: 'x' }, { name: '__MACOSX/._cats', data: 'x' }];
    await expectRefusal(ingestZip(onlyJunk), 'dataset', /"dataset\.zip" holds no images/);
  });

  it('refuses more entries than allowed before reading them', async () => {
    await expectRefusal(ingestZip(images('cats', 41)), 'dataset', /holds 41 entries; at most 40/);
  });

  /** Files extracted into the staging folder so far. */
  const extracted = () => readdirSync(stagingDir, { recursive: true, encoding: 'utf8' }).filter((file) => /image-\d+$/.test(file));

  it('refuses a bomb by the bytes it would inflate, before inflating any', async () => {
    const bomb = { name: 'cats/3.png', data: Buffer.alloc(1024 * KiB) };
    await expectRefusal(ingestZip([...twoClasses(), bomb]), 'dataset', /add up to 1 MiB uncompressed; at most 512 KiB/);
    expect(extracted()).toEqual([]);
  });

  it('accepts an image that deflates far more than 100:1, an uncompressed TIFF of one colour', async () => {
    const tiff = await sharp({ create: { width: 256, height: 256, channels: 3, background: '#ffffff' } })
      .tiff({ compression: 'none' })
      .toBuffer();
    const specs = [...twoClasses(), { name: 'dogs/scan.tif', data: tiff }];
    expect(tiff.length / zip(specs).length).toBeGreaterThan(100); // the whole archive, the TIFF alone far more
    const limits = { ...LIMITS, maxImagePixels: 256 * 256, maxClassBytes: 256 * KiB };
    const dataset = await ingestZip(specs, limits);
    expect(dataset.classes.map((c) => c.images.length)).toEqual([2, 3]);
  });

  it('refuses entries that share one data stream, before inflating any', async () => {
    const shared = [2, 3].map((i) => ({ name: `cats/${i}.png`, sharesDataWith: 0 }));
    await expectRefusal(
      ingestZip([{ name: 'cats/1.png', data: png }, ...shared, ...images('dogs', 2)]),
      'dataset',
      /entries "cats\/1\.png" and "cats\/2\.png" overlap/,
    );
    expect(extracted()).toEqual([]);
  });

  it('refuses an entry whose CRC-32 does not match its data, naming it', async () => {
    const damaged = { name: 'dogs/3.png', data: png, crc: (crc32(png) ^ 1) >>> 0 };
    await expectRefusal(ingestZip([...twoClasses(), damaged]), 'dataset', /"dogs\/3\.png" is damaged: its CRC-32/);
  });

  it('refuses a ZIP whose files add up to more than the uncompressed limit', async () => {
    await expectRefusal(
      ingestZip([...noise('cats', 2, 200 * KiB), ...noise('dogs', 2, 200 * KiB)]),
      'dataset',
      /add up to 800 KiB uncompressed; at most 512 KiB/,
    );
  });

  it('refuses an entry that inflates to more than its header declares, while extracting', async () => {
    const liar = { name: 'dogs/3.png', data: Buffer.alloc(300 * KiB), declaredSize: 1000 };
    await expectRefusal(ingestZip([...twoClasses(), liar]), 'dataset', /"dogs\/3\.png" cannot be extracted/);
  });

  it('refuses an entry whose compressed data is corrupt', async () => {
    const corrupt = { name: 'dogs/3.png', data: png, body: Buffer.alloc(64, 0xff) };
    await expectRefusal(ingestZip([...twoClasses(), corrupt]), 'dataset', /"dogs\/3\.png" cannot be extracted/);
  });

  it.each([
    ['a PNG', () => png],
    ['text', () => Buffer.from('just some text, certainly not a zip')],
    ['a truncated ZIP', () => zip(twoClasses()).subarray(0, 300)],
  ])('refuses %s sent as the ZIP', async (_, content) => {
    await expectRefusal(
      ingestImageZip(upload('dataset.zip', content()), zipOptions()),
      'dataset',
      /"dataset\.zip" is not a readable ZIP archive/,
    );
  });

  it('refuses an empty upload', async () => {
    await expectRefusal(ingestImageZip(upload('dataset.zip', ''), zipOptions()), 'dataset', /"dataset\.zip" is empty/);
  });

  it('stops reading an upload as soon as it passes the size limit', async () => {
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 64 * KiB;
        this.push(Buffer.alloc(64 * KiB));
      },
    });
    const file = { filename: 'huge.zip', createReadStream: () => endless };
    await expectRefusal(ingestImageZip(file, zipOptions()), 'dataset', /"huge\.zip" is larger than the 1 MiB upload/);
    expect(endless.destroyed).toBe(true);
    expect(produced).toBeLessThan(2 * 1024 * KiB);
  });

  it('refuses a stream that its multipart parser cut at its own size limit', async () => {
    const file = {
      filename: 'cut.zip',
      createReadStream: () => Object.assign(Readable.from([zip(twoClasses())]), { truncated: true }),
    };
    await expectRefusal(ingestImageZip(file, zipOptions()), 'dataset', /"cut\.zip" is larger than/);
  });

  it.each([
    ['one class', images('cats', 2), /found 1 class folder \("cats"\); at least 2 are needed/],
    ['too many classes', ['a', 'b', 'c', 'd'].flatMap((c) => images(c, 2)), /found 4 class folders .*; at most 3/],
    ['too few images', [...images('cats', 1), ...images('dogs', 2)], /too few images in class "cats" \(1 image\)/],
    ['too many images', [...images('cats', 5), ...images('dogs', 2)], /too many images in class "cats" \(5 images\)/],
    ['two folders for one class', [...images('Cats', 2), ...images('cats', 2)], /"Cats" and "cats" name the same/],
    ['a class name too long', [...images('c'.repeat(21), 2), ...images('dogs', 2)], /"c{21}" is 21 characters long/],
  ])('refuses %s', async (_, specs, message) => {
    await expectRefusal(ingestZip(specs), 'dataset', message);
  });

  it('refuses a class whose images add up to more than the per-class limit', async () => {
    await expectRefusal(
      ingestZip([...noise('cats', 2, 40 * KiB), ...images('dogs', 2)]),
      'dataset',
      /images of class "cats" \(80 KiB\) add up to more than the 64 KiB allowed per class/,
    );
  });

  it('names every file that is not a usable image, with its reason, in one error', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32"/></svg>';
    const refusal = await expectRefusal(
      ingestZip([
        ...images('cats', 2),
        { name: 'cats/notes.jpg', data: 'not an image at all' },
        { name: 'cats/cut.jpg', data: jpeg.subarray(0, jpeg.length - 60) },
        { name: 'dogs/huge.png', data: hugePng },
        { name: 'dogs/vector.png', data: svg },
      ]),
      'dataset',
      /^dataset: 4 files cannot be used as images: /,
      /"cats\/notes\.jpg" \(not an image in a supported format\)/,
      /"cats\/cut\.jpg" \(the image is truncated or corrupt\)/,
      /"dogs\/huge\.png" \(100×100 pixels is more than the 4,096 pixels allowed\)/,
      /"dogs\/vector\.png" \(not an image in a supported format\)/,
      /Supported formats: JPEG, PNG, WebP, GIF, AVIF or TIFF/,
    );
    expect(refusal.message).not.toContain('"cats/1.png"');
  });

  it('caps the list of unusable files in the message', async () => {
    const limits = { ...LIMITS, maxImagesPerClass: 20 };
    const bad = Array.from({ length: 12 }, (_, i) => ({ name: `cats/bad-${i}.jpg`, data: `not an image ${i}` }));
    const refusal = await expectRefusal(
      ingestZip([...bad, ...images('dogs', 2)], limits),
      'dataset',
      /12 files cannot be used/,
      /and 2 more/,
    );
    expect(refusal.message).toContain('"cats/bad-9.jpg"');
    expect(refusal.message).not.toContain('"cats/bad-10.jpg"');
  });
});

describe('per-class image uploads', () => {
  const classUploads = (names: readonly string[]) =>
    names.map((name) => ({ name, images: [upload(`${name}-1.png`, png), upload(`${name}-2.png`, png)] }));

  it('gives the classes sorted by name, each image staged, awaiting upload promises in order', async () => {
    const dataset = await ingestImageClasses(
      [
        {
          name: ' zebras ',
          images: [Promise.resolve(upload('z1.webp', webp)), Promise.resolve(upload('z2.gif', animatedGif))],
        },
        { name: 'Café', images: [upload('c1.jpg', jpeg), upload('c2.png', png), upload('c3.png', png)] },
      ],
      zipOptions(),
    );
    expect(dataset.classes.map((c) => [c.name, c.images.map((i) => i.fileName)])).toEqual([
      ['Café', ['c1.jpg', 'c2.png', 'c3.png']],
      ['zebras', ['z1.webp', 'z2.gif']],
    ]);
    const first = dataset.classes[0]!.images[0]!;
    expect(readFileSync(first.path)).toEqual(jpeg);
    expect(first.bytes).toBe(jpeg.length);
  });

  it.each([
    ['a slash', 'cats/../dogs', /contains a slash, a backslash or a control character/],
    ['a backslash', 'cats\\dogs', /contains a slash/],
    ['a NUL', 'cats\u0000', /"cats\\u0000" contains a slash, a backslash or a control character/],
    ['a fullwidth slash', 'cats\uff0fdogs', /contains a slash/],
    ['a right-to-left override', 'gpj.\u202etac', /"gpj\.\\u202etac" contains a slash, a backslash or a control/],
    ['"..", spelled with fullwidth dots', '\uff0e\uff0e', /cannot be "\." or "\.\."/],
    ['only spaces', '   ', /is empty/],
    ['too many characters', 'x'.repeat(21), /is 21 characters long; at most 20/],
  ])('refuses a class name with %s, naming the field', async (_, name, message) => {
    await expectRefusal(ingestImageClasses(classUploads(['dogs', name]), zipOptions()), 'classes[1].name', message);
  });

  it('refuses two names for one class, ignoring case and Unicode composition', async () => {
    await expectRefusal(
      ingestImageClasses(classUploads(['Café', 'cafe\u0301']), zipOptions()),
      'classes[1].name',
      /names the same class as classes\[0\]\.name "Café"/,
    );
  });

  it('refuses too few classes and too few images before reading any file', async () => {
    const never = { filename: 'never.png', createReadStream: () => { throw new Error('must not be read'); } };
    const oneClass = [{ name: 'cats', images: [never, never] }];
    await expectRefusal(ingestImageClasses(oneClass, zipOptions()), 'classes', /found 1 class \("cats"\)/);
    await expectRefusal(
      ingestImageClasses([{ name: 'cats', images: [never] }, { name: 'dogs', images: [never, never] }], zipOptions()),
      'classes[0].images',
      /too few images in class "cats" \(1 image\)/,
    );
  });

  it('refuses an empty image, naming its field and file', async () => {
    const classes = classUploads(['cats', 'dogs']);
    classes[1]!.images = [upload('ok.png', png), upload('blank.png', '')];
    await expectRefusal(ingestImageClasses(classes, zipOptions()), 'classes[1].images[1]', /"blank\.png" is empty/);
  });

  it('refuses a truncated image, naming its field and file', async () => {
    const classes = classUploads(['cats', 'dogs']);
    classes[0]!.images = [upload('cut.jpg', jpeg.subarray(0, jpeg.length - 60)), upload('ok.png', png)];
    await expectRefusal(
      ingestImageClasses(classes, zipOptions()),
      'classes[0].images[0]',
      /^classes\[0\]\.images\[0\]: "cut\.jpg" cannot be used: the image is truncated or corrupt$/,
    );
  });

  it('stops a class at the per-class byte limit while streaming', async () => {
    const classes = classUploads(['cats', 'dogs']);
    classes[0]!.images = [upload('a.png', randomBytes(40 * KiB)), upload('b.png', randomBytes(40 * KiB))];
    await expectRefusal(
      ingestImageClasses(classes, zipOptions()),
      'classes[0].images',
      /the images of class "cats" add up to more than the 64 KiB allowed per class/,
      /\(passed at classes\[0\]\.images\[1\], "b\.png"\)/,
    );
  });
});

describe('text CSV', () => {
  const csv = (text: string) => upload('dataset.csv', text);
  const ingest = (text: string, limits: DatasetLimits = LIMITS) => ingestTextCsv(csv(text), { stagingDir, limits });

  it('reads a BOM, CRLF line ends, quoted commas and line breaks, and keeps every cell as text', async () => {
    const text =
      '\uFEFFid,Label,INPUT\r\n' +
      '1,positive,"Great, really great"\r\n' +
      '2,negative,"Bad.\r\nVery bad."\r\n' +
      '\r\n' +
      '3,, no label: dropped\r\n' +
      '4,negative,   \r\n' +
      '5,positive,=HYPERLINK("http://evil")\r\n' +
      '6,42,@SUM(A1)\r\n' +
      '7,42,-1 + 2 is "one"\r\n' +
      '8,negative,Awful\r\n' +
      ',,\r\n';
    const dataset = await ingest(text);
    expect(dataset).toEqual({
      kind: 'text',
      classes: ['42', 'negative', 'positive'],
      rows: [
        { input: 'Great, really great', label: 'positive' },
        { input: 'Bad.\r\nVery bad.', label: 'negative' },
        { input: '=HYPERLINK("http://evil")', label: 'positive' },
        { input: '@SUM(A1)', label: '42' },
        { input: '-1 + 2 is "one"', label: '42' },
        { input: 'Awful', label: 'negative' },
      ],
    });
  });

  it.each([
    ['only a header', 'input,label\n\n', /has a header row but no data rows/],
    ['no row with both cells', 'input,label\nhello,\n,world\n', /has no row with both an input and a label/],
    ['only blank lines', '\n \n', /has no header row; its first row must name the columns "input" and "label"/],
    ['other columns', 'text,category\nhi,a\n', /has no "input" or "label" column: .*found "text", "category"/],
    ['no label column', 'Input,Class\nhi,a\n', /has no "label" column: .*found "Input", "Class"/],
    ['semicolons', 'input;label\nhi;a\n', /found "input;label"; columns must be separated by commas/],
    ['a column twice', 'input,label,input\nhi,a,b\n', /names the column "input" twice/],
    ['one label', 'input,label\nhi,a\nho,a\n', /found 1 label \("a"\); at least 2 are needed/],
    ['too many labels', 'input,label\nx,a\ny,a\nx,b\ny,b\nx,c\ny,c\nx,d\ny,d\n', /found 4 labels .*; at most 3/],
    ['a label with one row', 'input,label\nhi,a\nho,a\nhey,b\n', /too few rows for label "b" \(1 row\); each/],
    ['labels that differ in case', 'input,label\nhi,Spam\nho,spam\n', /row 3: the label "spam" names the same class/],
    ['a label with a slash', 'input,label\nhi,a\nho,../b\n', /row 3: the label "\.\.\/b" contains a slash/],
    ['numbers only as input', 'input,label\n1,a\n2.5,a\n-3,b\n4e2,b\n', /the input column holds only numbers/],
    ['an unclosed quote', 'input,label\n"hi,a\nho,b\n', /is not a well-formed CSV: Quote Not Closed/],
    [
      'text after a closing quote',
      'input,label\nhi,a\n"said "hi" twice",b\n',
      /is not a well-formed CSV: Invalid Closing Quote: in row 3/,
    ],
  ])('refuses a CSV with %s', async (_, text, message) => {
    await expectRefusal(ingest(text), 'dataset', message);
  });

  it('reads old Mac CR line ends, and line ends mixed in one file', async () => {
    const rows = ['input,label', 'hi,a', 'ho,a', '"hey\r\nyou",b', 'yo,b'];
    const expected = {
      kind: 'text',
      classes: ['a', 'b'],
      rows: [
        { input: 'hi', label: 'a' },
        { input: 'ho', label: 'a' },
        { input: 'hey\r\nyou', label: 'b' },
        { input: 'yo', label: 'b' },
      ],
    };
    await expect(ingest(`${rows.join('\r')}\r`)).resolves.toEqual(expected);
    await expect(ingest(`${rows[0]}\r\n${rows[1]}\n${rows[2]}\r${rows[3]}\r\n${rows[4]}`)).resolves.toEqual(expected);
  });

  it('refuses a row too long for any input and label, naming it', async () => {
    const limits = { ...LIMITS, maxCsvBytes: 1024 * KiB };
    await expectRefusal(
      ingest(`input,label\nhi,a\n"${'x'.repeat(70_000)}",b\n`, limits),
      'dataset',
      /row 3 of "dataset\.csv" is longer than 65,536 characters/,
    );
  });

  it('refuses more rows than the limit, counting only rows that are kept', async () => {
    const rows = (count: number) =>
      Array.from({ length: count }, (_, i) => `text ${i},${i % 2 ? 'a' : 'b'}\n,dropped`).join('\n');
    await expect(ingest(`input,label\n${rows(20)}`)).resolves.toMatchObject({ classes: ['a', 'b'] });
    await expectRefusal(ingest(`input,label\n${rows(21)}`), 'dataset', /more than 20 rows/);
  });

  it('refuses a cell longer than the limit, naming its row', async () => {
    await expectRefusal(
      ingest(`input,label\nhi,a\nho,a\n"${'é'.repeat(201)}",b\n`),
      'dataset',
      /row 4: the input is 201 characters long; at most 200/,
    );
  });

  it('refuses bytes that are not UTF-8, naming the line', async () => {
    const latin1 = Buffer.concat([Buffer.from('input,label\nhi,a\n'), Buffer.from('caf\xe9,b\n', 'latin1')]);
    await expectRefusal(
      ingestTextCsv(upload('latin1.csv', latin1), { stagingDir, limits: LIMITS }),
      'dataset',
      /"latin1\.csv" is not UTF-8 text \(line 3/,
    );
  });

  it('refuses a CSV larger than its limit', async () => {
    const big = `input,label\n${'x,a\n'.repeat(17 * KiB)}`;
    await expectRefusal(ingest(big), 'dataset', /larger than the 64 KiB allowed for a CSV/);
  });
});

describe('server-side failures', () => {
  it('are not reported as bad input', async () => {
    const missing = path.join(tmp, 'no-such-folder');
    const csv = upload('dataset.csv', 'input,label\nhi,a\nho,a\nhey,b\nyo,b\n');
    const failure = ingestTextCsv(csv, { stagingDir: missing, limits: LIMITS });
    await expect(failure).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(failure).rejects.not.toBeInstanceOf(BadUserInputError);
    expect(existsSync(missing)).toBe(false);
  });
});
