import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { FsStore, InvalidKeyError, type ObjectStore, PreconditionFailedError, S3Store, UNCHANGED } from '../src/store';
import { startS3Server, type S3TestServer } from './helpers/s3';

interface Adapter {
  name: string;
  /** Whether the server behind the adapter enforces If-Match / If-None-Match. */
  enforcesConditionalWrites: boolean;
  setup(): Promise<ObjectStore>;
  teardown(): Promise<void>;
}

let s3: S3TestServer | undefined;
let fsRoot: string | undefined;
let bucketCount = 0;

const adapters: Adapter[] = [
  {
    name: 'fs',
    enforcesConditionalWrites: true,
    async setup() {
      fsRoot = mkdtempSync(path.join(tmpdir(), 'flash-store-'));
      const store = new FsStore(path.join(fsRoot, 'root'));
      await store.prepare();
      return store;
    },
    async teardown() {
      if (fsRoot) rmSync(fsRoot, { recursive: true, force: true });
    },
  },
  {
    name: 's3 (s3rver on loopback)',
    // s3rver ignores conditional headers; the CAS contract is proven on the fs adapter.
    enforcesConditionalWrites: false,
    async setup() {
      s3 ??= await startS3Server();
      const store = new S3Store(s3.configFor(`contract-${++bucketCount}`));
      await store.prepare();
      return store;
    },
    async teardown() {},
  },
];

afterAll(async () => {
  await s3?.stop();
});

describe.each(adapters)('object store contract: $name', (adapter) => {
  let store: ObjectStore;

  beforeEach(async () => {
    store = await adapter.setup();
  });

  afterEach(async () => {
    await store.close();
    await adapter.teardown();
  });

  it('returns null for a key that was never written', async () => {
    await expect(store.get('nothing/here.json')).resolves.toBeNull();
  });

  it('returns the bytes that were put, with a version tag', async () => {
    const body = Buffer.from([0, 1, 2, 250, 255]);
    const { etag } = await store.put('a/b/c.bin', body);
    const read = await store.get('a/b/c.bin');
    expect(read?.body.equals(body)).toBe(true);
    expect(read?.etag).toBe(etag);
  });

  it('changes the version tag on every write, even of the same bytes', async () => {
    const first = await store.put('doc.json', Buffer.from('{}'));
    const second = await store.put('doc.json', Buffer.from('{"a":1}'));
    expect(second.etag).not.toBe(first.etag);
    expect((await store.get('doc.json'))?.body.toString()).toBe('{"a":1}');
  });

  it('answers UNCHANGED to a read conditional on the current version tag, else the object', async () => {
    const first = await store.put('doc.json', Buffer.from('{"v":1}'));
    await expect(store.getIfChanged('doc.json', first.etag)).resolves.toBe(UNCHANGED);
    const second = await store.put('doc.json', Buffer.from('{"v":2}'));
    const changed = await store.getIfChanged('doc.json', first.etag);
    expect(changed).not.toBe(UNCHANGED);
    expect(changed).toMatchObject({ etag: second.etag });
    expect(changed !== UNCHANGED && changed?.body.toString()).toBe('{"v":2}');
    await store.delete('doc.json');
    await expect(store.getIfChanged('doc.json', second.etag)).resolves.toBeNull();
  });

  it('streams files in and out', async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), 'flash-files-'));
    try {
      const source = path.join(scratch, 'weights.pt');
      const body = Buffer.alloc(3 * 1024 * 1024 + 7, 'w');
      writeFileSync(source, body);
      const { etag } = await store.putFile('models/weights.pt', source);
      expect((await store.get('models/weights.pt'))?.etag).toBe(etag);
      const copy = path.join(scratch, 'copy.pt');
      await expect(store.getFile('models/weights.pt', copy)).resolves.toBe(true);
      expect(readFileSync(copy).equals(body)).toBe(true);
      await expect(store.getFile('models/missing.pt', path.join(scratch, 'none'))).resolves.toBe(false);
      expect(existsSync(path.join(scratch, 'none'))).toBe(false);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('streams an object, or the range of it chosen once its size is known', async () => {
    const body = Buffer.from('0123456789abcdef');
    await store.put('models/range.onnx', body);
    const read = async (opened: Awaited<ReturnType<ObjectStore['openRead']>>) => {
      const chunks: Buffer[] = [];
      for await (const chunk of opened!.stream) chunks.push(chunk as Buffer);
      return { size: opened!.size, range: opened!.range, body: Buffer.concat(chunks).toString() };
    };
    expect(await read(await store.openRead('models/range.onnx'))).toEqual({ size: 16, range: null, body: '0123456789abcdef' });
    const sizes: number[] = [];
    const tail = await store.openRead('models/range.onnx', (size) => {
      sizes.push(size);
      return { start: size - 4, end: size - 1 };
    });
    expect(await read(tail)).toEqual({ size: 16, range: { start: 12, end: 15 }, body: 'cdef' });
    expect(sizes).toEqual([16]);
    expect(await read(await store.openRead('models/range.onnx', () => null))).toMatchObject({ range: null, body: '0123456789abcdef' });
    await expect(store.openRead('models/none.onnx', () => null)).resolves.toBeNull();
  });

  it('deletes objects, and deleting a missing object is not an error', async () => {
    await store.put('gone.txt', Buffer.from('x'));
    await store.delete('gone.txt');
    await expect(store.get('gone.txt')).resolves.toBeNull();
    await expect(store.delete('gone.txt')).resolves.toBeUndefined();
  });

  it('lists keys under a prefix in order, without folder markers', async () => {
    await store.createFolder('models/');
    await store.put('models/b.pt', Buffer.from('b'));
    await store.put('models/a.pt', Buffer.from('a'));
    await store.put('models/deep/c.onnx', Buffer.from('c'));
    await store.put('other/d.pt', Buffer.from('d'));
    await expect(store.list('models/')).resolves.toEqual(['models/a.pt', 'models/b.pt', 'models/deep/c.onnx']);
    await expect(store.list('models/a')).resolves.toEqual(['models/a.pt']);
    await expect(store.list('empty/')).resolves.toEqual([]);
    expect(await store.list('')).toEqual(['models/a.pt', 'models/b.pt', 'models/deep/c.onnx', 'other/d.pt']);
  });

  it('creates folders idempotently', async () => {
    await store.createFolder('training/');
    await store.createFolder('training/');
    await expect(store.list('training/')).resolves.toEqual([]);
  });

  it.each([
    { label: 'parent segments', key: '../escape.json' },
    { label: 'parent segments deeper down', key: 'a/../../escape.json' },
    { label: 'an absolute path', key: '/etc/passwd' },
    { label: 'a NUL byte', key: 'a\u0000b' },
    { label: 'an empty segment', key: 'a//b' },
    { label: 'backslashes', key: 'a\\..\\b' },
    { label: 'a hidden name', key: '.hidden' },
    { label: 'a dot segment', key: 'a/./b' },
    { label: 'nothing', key: '' },
    { label: 'over 1024 characters', key: 'x'.repeat(1025) },
  ])('refuses a key with $label on every operation', async ({ key }) => {
    await expect(store.get(key)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(store.put(key, Buffer.from('x'))).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('answers ping when reachable', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });

  const cas = adapter.enforcesConditionalWrites ? it : it.skip;

  cas('refuses If-None-Match: * when the object exists', async () => {
    await store.put('once.json', Buffer.from('1'), { ifNoneMatch: '*' });
    await expect(store.put('once.json', Buffer.from('2'), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect((await store.get('once.json'))?.body.toString()).toBe('1');
  });

  cas('refuses If-Match with a stale version tag', async () => {
    const { etag } = await store.put('doc.json', Buffer.from('v1'));
    await store.put('doc.json', Buffer.from('v2'), { ifMatch: etag });
    await expect(store.put('doc.json', Buffer.from('v3'), { ifMatch: etag })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect((await store.get('doc.json'))?.body.toString()).toBe('v2');
  });

  cas('lets exactly one of many concurrent writers with the same version tag win', async () => {
    const { etag } = await store.put('race.json', Buffer.from('start'));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.put('race.json', Buffer.from(`writer ${i}`), { ifMatch: etag })),
    );
    const winners = results.filter((result) => result.status === 'fulfilled');
    expect(winners).toHaveLength(1);
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(PreconditionFailedError);
    }
  });
});

describe('fs store specifics', () => {
  let root: string;

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'flash-fs-'));
  });

  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('never writes outside its root, whatever the key', async () => {
    const store = new FsStore(path.join(root, 'inner'));
    await store.prepare();
    for (const key of ['../outside.json', '../../outside.json', '/tmp/outside.json', 'a/../../outside.json']) {
      await expect(store.put(key, Buffer.from('x'))).rejects.toBeInstanceOf(InvalidKeyError);
    }
    expect(readdirSync(root)).toEqual(['inner']);
    expect(existsSync('/tmp/outside.json')).toBe(false);
  });

  it('leaves no temporary files behind and hides dot-files from listings', async () => {
    const store = new FsStore(root);
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.put('doc.json', Buffer.from(String(i)))));
    expect(readdirSync(root)).toEqual(['doc.json']);
    writeFileSync(path.join(root, '.admin-key'), 'secret');
    await expect(store.list('')).resolves.toEqual(['doc.json']);
  });

  it('reports an unreachable root on ping', async () => {
    const store = new FsStore(path.join(root, 'missing'));
    await expect(store.ping()).rejects.toThrow();
  });
});

describe('s3 store specifics', () => {
  it('sends If-Match and If-None-Match on conditional writes (s3rver itself ignores them)', async () => {
    const server = await startS3Server();
    const seen: Record<string, string>[] = [];
    // A loopback proxy in front of s3rver that records what the adapter sends.
    const proxy = createServer((request, response) => {
      if (request.method === 'PUT' && request.url?.startsWith('/headers/doc.json')) {
        seen.push({
          ifMatch: String(request.headers['if-match'] ?? ''),
          ifNoneMatch: String(request.headers['if-none-match'] ?? ''),
        });
      }
      const target = new URL(server.configFor('x').endpoint as string);
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, path: request.url, method: request.method, headers: request.headers },
        (reply) => {
          response.writeHead(reply.statusCode ?? 502, reply.headers);
          reply.pipe(response);
        },
      );
      request.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const { port } = proxy.address() as AddressInfo;
    const store = new S3Store({ ...server.configFor('headers'), endpoint: `http://127.0.0.1:${port}` });
    try {
      await store.prepare();
      const { etag } = await store.put('doc.json', Buffer.from('1'), { ifNoneMatch: '*' });
      await store.put('doc.json', Buffer.from('2'), { ifMatch: etag });
      expect(seen).toEqual([
        { ifMatch: '', ifNoneMatch: '*' },
        { ifMatch: etag, ifNoneMatch: '' },
      ]);
    } finally {
      await store.close();
      await new Promise((resolve) => proxy.close(resolve));
      await server.stop();
    }
  });
});
