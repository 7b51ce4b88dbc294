import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import sharp from 'sharp';

import { preparedSize } from '../src/preprocessing/image';
import { type DatasetEntry, inlineDataset, JobDataError, readDatasetFile, writeJobFolder } from '../src/training/job-folder';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'flash-job-folder-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const SETTINGS = {
  task_type: 'imageclassification' as const,
  num_classes: 2,
  model: 'resnet18' as const,
  learning_rate: 0.01,
  batch_size: 4,
  epochs: 1,
  data_split: '80 : 20',
  pretrain_dataset: 'scratch',
};

/** Whether this process has `file` open (Linux: its descriptors are links in /proc/self/fd). */
function holdsOpen(file: string): boolean {
  return readdirSync('/proc/self/fd').some((fd) => {
    try {
      return readlinkSync(path.join('/proc/self/fd', fd)) === file;
    } catch {
      return false; // closed while we looked
    }
  });
}

async function collect(entries: AsyncIterable<DatasetEntry>): Promise<DatasetEntry[]> {
  const all: DatasetEntry[] = [];
  for await (const entry of entries) all.push(entry);
  return all;
}

const png = (red: number) =>
  sharp({ create: { width: 40, height: 30, channels: 3, background: { r: red, g: 0, b: 0 } } }).png().toBuffer();

describe('staged datasets', () => {
  it('stream in document order, numeric class names and empty classes included', async () => {
    const file = path.join(root, 'staged.json');
    // Written as JSON.stringify would, with keys JavaScript objects would reorder ("10" before "b").
    writeFileSync(file, '{"b":["YQ==","Yg=="],"10":[],"a \\"quoted\\"":["Yw=="]}');
    expect(await collect(readDatasetFile(file))).toEqual([
      { kind: 'class', name: 'b' },
      { kind: 'item', base64: 'YQ==' },
      { kind: 'item', base64: 'Yg==' },
      { kind: 'class', name: '10' },
      { kind: 'class', name: 'a "quoted"' },
      { kind: 'item', base64: 'Yw==' },
    ]);
  });

  it.each([
    ['an array', '["YQ=="]'],
    ['a nested object', '{"a":{"b":["YQ=="]}}'],
    ['a number among the items', '{"a":["YQ==",3]}'],
    ['truncated JSON', '{"a":["YQ==","Yg'],
    ['a class listed twice', '{"a":["YQ=="],"b":[],"a":["Yg=="]}'],
  ])('refuse %s with a data error, not an internal one', async (_, text) => {
    const file = path.join(root, 'staged.json');
    writeFileSync(file, text);
    await expect(collect(readDatasetFile(file))).rejects.toBeInstanceOf(JobDataError);
  });
});

describe('job folders', () => {
  it('prepare every image in dataset order, labelled by its class', async () => {
    const dataset = { dark: [await png(10), await png(20)], '7': [], bright: [await png(250)] };
    const staged = path.join(root, 'staged.json');
    const base64 = Object.entries(dataset).map(([name, images]) => [name, images.map((image) => image.toString('base64'))]);
    writeFileSync(staged, JSON.stringify(Object.fromEntries(base64)));
    const folder = path.join(root, 'job');
    const { classes } = await writeJobFolder(folder, SETTINGS, readDatasetFile(staged), { imageSize: 32 });
    const side = preparedSize(32);
    const described = JSON.parse(readFileSync(path.join(folder, 'dataset.json'), 'utf8'));
    expect(classes).toEqual(['7', 'dark', 'bright']);
    expect(described).toEqual({ kind: 'image', classes, labels: [1, 1, 2], height: side, width: side });
    expect(statSync(path.join(folder, 'images.u8')).size).toBe(3 * side * side * 3);
    expect(JSON.parse(readFileSync(path.join(folder, 'config.json'), 'utf8'))).toEqual({ ...SETTINGS, image_size: 32 });
  });

  it('let go of the staged file when preparation stops at an image that cannot be decoded', async () => {
    const staged = path.join(root, 'staged.json');
    const good = (await png(1)).toString('base64');
    const bad = Buffer.from('not an image').toString('base64');
    // Megabytes after the bad image, so that the file is still being read when preparation stops.
    const filler = Array.from({ length: 32 }, () => randomBytes(64 * 1024).toString('base64'));
    writeFileSync(staged, JSON.stringify({ cats: [good, bad, good, good, ...filler] }));
    await expect(writeJobFolder(path.join(root, 'job'), SETTINGS, readDatasetFile(staged), { imageSize: 32 })).rejects.toThrow(
      /image 2 of class "cats" cannot be used/,
    );
    // The descriptor closes asynchronously once the stream is destroyed.
    for (let turn = 0; turn < 1000 && holdsOpen(staged); turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(holdsOpen(staged)).toBe(false);
  });

  it('name the image that cannot be decoded, by class and position', async () => {
    const dataset = { cats: [(await png(1)).toString('base64'), Buffer.from('not an image').toString('base64')] };
    await expect(
      writeJobFolder(path.join(root, 'job'), SETTINGS, inlineDataset(dataset), { imageSize: 32 }),
    ).rejects.toThrow(/image 2 of class "cats" cannot be used/);
  });
});
