import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  CLEANUP,
  DocumentStore,
  formatCreated,
  INFERENCE,
  parseCreated,
  STATUS,
  TRAINING,
} from '../src/documents';
import { DocumentInvalidError, ErrorCode } from '../src/errors';
import { normalizeAccuracy } from '../src/models/model.service';
import { FsStore } from '../src/store';
import { FLASH_SAMPLES } from './helpers/server';

let root: string;
let documents: DocumentStore;

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'flash-docs-'));
  documents = new DocumentStore(new FsStore(root));
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

const readJson = (key: string) => JSON.parse(readFileSync(path.join(root, key), 'utf8'));

describe('first start', () => {
  it('writes the seed initial documents and folders into an empty store', async () => {
    await documents.initialize();
    expect(readJson('status.json')).toEqual({ status: 'sleeping', token: '', task_type: '', dev_mode: false });
    expect(readJson('cleanup.json')).toEqual({ status: 'active' });
    expect(readJson('inference.json')).toEqual({});
    for (const folder of ['training', 'imageclassification', 'textclassification']) {
      expect(statSync(path.join(root, folder)).isDirectory()).toBe(true);
    }
    expect(readdirSync(path.join(root, 'training'))).toEqual([]);
  });

  it('never overwrites documents that already exist, valid or not', async () => {
    writeFileSync(path.join(root, 'status.json'), '{ "status": "active", "token": "t", "task_type": "", "dev_mode": true }');
    writeFileSync(path.join(root, 'cleanup.json'), 'not json at all');
    await documents.initialize();
    expect(readJson('status.json')).toMatchObject({ status: 'active', dev_mode: true });
    expect(readFileSync(path.join(root, 'cleanup.json'), 'utf8')).toBe('not json at all');
    expect(readJson('inference.json')).toEqual({});
  });
});

describe('the Flash sample documents', () => {
  beforeEach(() => cpSync(FLASH_SAMPLES, root, { recursive: true }));

  it('load unchanged, training.json included', async () => {
    await documents.initialize();
    expect(await documents.read(STATUS)).toEqual(readJson('status.json'));
    expect(await documents.read(CLEANUP)).toEqual(readJson('cleanup.json'));
    expect(await documents.read(INFERENCE)).toEqual(readJson('inference.json'));
    const training = await documents.read(TRAINING);
    expect(training).toEqual(readJson('training/training.json'));
    expect(training).toMatchObject({ model: 'mobilenet v2', data_split: '70 : 30', pretrain_dataset: 'imagenet' });
  });

  it('keep every other key, and unknown keys, through a read-modify-write', async () => {
    const before = readJson('status.json');
    writeFileSync(path.join(root, 'status.json'), JSON.stringify({ ...before, region: 'eu-west-1' }));
    await documents.update(STATUS, (status) => ({ ...status, dev_mode: true }));
    expect(readJson('status.json')).toEqual({ ...before, region: 'eu-west-1', dev_mode: true });
  });
});

describe('invalid documents', () => {
  it('name the file and the key, and are never overwritten by an update', async () => {
    const broken = '{ "status": "sleeping", "token": "", "task_type": "", "dev_mode": "yes" }';
    writeFileSync(path.join(root, 'status.json'), broken);
    const failure = documents.update(STATUS, (status) => ({ ...status, dev_mode: false }));
    await expect(failure).rejects.toBeInstanceOf(DocumentInvalidError);
    await expect(failure).rejects.toMatchObject({
      extensions: { code: ErrorCode.DOCUMENT_INVALID, document: 'status.json' },
      message: expect.stringContaining('key "dev_mode"'),
    });
    expect(readFileSync(path.join(root, 'status.json'), 'utf8')).toBe(broken);
  });

  it('say when a document is not JSON', async () => {
    writeFileSync(path.join(root, 'cleanup.json'), '{"status": ');
    await expect(documents.read(CLEANUP)).rejects.toThrow('Platform document cleanup.json is invalid: it is not valid JSON');
  });

  it('hide model tokens from the message but keep them in the detail for the log', async () => {
    const entry = { ...JSON.parse(readFileSync(path.join(FLASH_SAMPLES, 'inference.json'), 'utf8'))['textClassification-test-sa-demo-xjfsf'] };
    delete entry.metadata_filename;
    writeFileSync(path.join(root, 'inference.json'), JSON.stringify({ 'secret-token-123': entry }));
    const error = (await documents.read(INFERENCE).catch((caught: unknown) => caught)) as DocumentInvalidError;
    expect(error).toBeInstanceOf(DocumentInvalidError);
    expect(error.message).toContain('key <token>."metadata_filename"');
    expect(error.message).not.toContain('secret-token-123');
    expect(error.detail.join()).toContain('"secret-token-123"');
  });

  it('refuse entries whose created date is not "dd-mm-yy HH:MM"', async () => {
    const entry = { ...JSON.parse(readFileSync(path.join(FLASH_SAMPLES, 'inference.json'), 'utf8'))['imageClassification-tinyimgnet-demo-dbasb'] };
    writeFileSync(path.join(root, 'inference.json'), JSON.stringify({ t: { ...entry, created: '2021-01-10T18:13' } }));
    await expect(documents.read(INFERENCE)).rejects.toThrow('key <token>."created"');
  });
});

describe('read-modify-write', () => {
  it('loses no update when many writers change the same document at once', async () => {
    await documents.initialize();
    // Several document stores, as several server processes would have: they race by CAS.
    const stores = Array.from({ length: 5 }, () => new DocumentStore(new FsStore(root)));
    const writers = 25;
    await Promise.all(
      Array.from({ length: writers }, (_, i) =>
        (stores[i % stores.length] as DocumentStore).update(STATUS, (status) => ({
          ...status,
          writes: Number(status.writes ?? 0) + 1,
        })),
      ),
    );
    expect(readJson('status.json')).toMatchObject({ writes: writers, status: 'sleeping' });
  });

  it('does not write when nothing changes', async () => {
    await documents.initialize();
    const before = statSync(path.join(root, 'cleanup.json'), { bigint: true }).mtimeNs;
    await documents.update(CLEANUP, (cleanup) => ({ ...cleanup, status: 'active' as const }));
    expect(statSync(path.join(root, 'cleanup.json'), { bigint: true }).mtimeNs).toBe(before);
  });

  it('creates a missing document from its initial content', async () => {
    await documents.update(CLEANUP, () => ({ status: 'sleeping' }));
    expect(readJson('cleanup.json')).toEqual({ status: 'sleeping' });
  });
});

describe('the document cache', () => {
  /** An fs store that counts full reads (bytes read and parsed) per key. */
  class CountingStore extends FsStore {
    fullReads = 0;
    override async get(key: string) {
      this.fullReads++;
      return super.get(key);
    }
  }

  it('parses an unchanged document once, and sees every change, whoever made it', async () => {
    const store = new CountingStore(root);
    const cached = new DocumentStore(store);
    await cached.initialize();
    store.fullReads = 0;
    expect((await cached.read(STATUS)).dev_mode).toBe(false);
    expect((await cached.read(STATUS)).dev_mode).toBe(false);
    expect(store.fullReads).toBe(1);

    // Another server on the same folder, then a person editing the file by hand.
    await new DocumentStore(new FsStore(root)).update(STATUS, (status) => ({ ...status, dev_mode: true }));
    expect((await cached.read(STATUS)).dev_mode).toBe(true);
    writeFileSync(path.join(root, 'status.json'), JSON.stringify({ ...readJson('status.json'), dev_mode: false }));
    expect((await cached.read(STATUS)).dev_mode).toBe(false);
    // An edit in place that keeps the size and puts the modification time back (as `cp -p` would).
    const file = path.join(root, 'status.json');
    const when = 1_700_000_000; // whole seconds: set back exactly
    utimesSync(file, when, when);
    expect((await cached.read(STATUS)).status).toBe('sleeping');
    await sleep(20); // a later tick of the kernel's clock, which older kernels keep ctimes to
    writeFileSync(file, readFileSync(file, 'utf8').replace('"sleeping"', '"active"  '));
    utimesSync(file, when, when);
    expect((await cached.read(STATUS)).status).toBe('active');
    rmSync(path.join(root, 'status.json'));
    expect(await cached.snapshot(STATUS)).toBeNull();
  });

  it('keeps what this process wrote without reading it back', async () => {
    const store = new CountingStore(root);
    const cached = new DocumentStore(store);
    await cached.initialize();
    await cached.update(CLEANUP, () => ({ status: 'sleeping' }));
    store.fullReads = 0;
    expect(await cached.read(CLEANUP)).toEqual({ status: 'sleeping' });
    expect(store.fullReads).toBe(0);
  });

  it('hands out frozen values, so that no reader can change what the others see', async () => {
    await documents.initialize();
    const status = await documents.read(STATUS);
    expect(() => {
      (status as { dev_mode: boolean }).dev_mode = true;
    }).toThrow(TypeError);
    expect((await documents.read(STATUS)).dev_mode).toBe(false);
  });

  it('never shows an invalid document from the cache: the error comes back on every read', async () => {
    await documents.initialize();
    await documents.read(STATUS);
    writeFileSync(path.join(root, 'status.json'), '{"status": 42}');
    await expect(documents.read(STATUS)).rejects.toBeInstanceOf(DocumentInvalidError);
    await expect(documents.read(STATUS)).rejects.toBeInstanceOf(DocumentInvalidError);
  });
});

describe('stored values', () => {
  it('read created as UTC and write it back in the same form', () => {
    expect(parseCreated('10-01-21 18:13')?.toISOString()).toBe('2021-01-10T18:13:00.000Z');
    expect(formatCreated(new Date('2026-11-26T07:05:59Z'))).toBe('26-11-26 07:05');
    expect(parseCreated('31-02-21 10:00')).toBeNull();
    expect(parseCreated('10-01-21 24:00')).toBeNull();
  });

  it('read accuracy stored as a percentage or as a fraction', () => {
    expect(normalizeAccuracy(96.67)).toBeCloseTo(0.9667, 6);
    expect(normalizeAccuracy(0.6666666865348816)).toBeCloseTo(0.6667, 4);
    expect(normalizeAccuracy(1)).toBe(1);
  });
});
