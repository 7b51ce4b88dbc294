import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import path from 'node:path';

import type { S3Config } from '../src/config';
import { DocumentStore, formatCreated, INFERENCE } from '../src/documents';
import { FsStore, type PutOptions, S3Store } from '../src/store';
import { writeDeployedJobRecord, writeJobRecord } from './helpers/records';
import { startS3Server } from './helpers/s3';
import { ADMIN_KEY, makeDataDir, startTestServer, type TestServer, type TestServerOptions } from './helpers/server';
import { subscribe } from './helpers/training';

const HOUR = 3_600_000;
const codes = (response: { errors?: { extensions?: { code?: string } }[] }) =>
  response.errors?.map((error) => error.extensions?.code);
const readJson = (server: TestServer, key: string) => JSON.parse(readFileSync(path.join(server.dataDir, key), 'utf8'));

interface SeedModel {
  token: string;
  task: 'imageclassification' | 'textclassification';
  createdHoursAgo: number;
  downloadable?: boolean;
}

/** Writes deployed models straight into a data folder: entries plus distinct bytes per file. */
function seedModels(dataDir: string, models: SeedModel[]): void {
  const inference: Record<string, unknown> = {};
  for (const { token, task, createdHoursAgo, downloadable = true } of models) {
    mkdirSync(path.join(dataDir, task), { recursive: true });
    writeFileSync(path.join(dataDir, task, `${token}.pt`), `torchscript of ${token}`);
    writeFileSync(path.join(dataDir, task, `${token}.onnx`), `onnx of ${token}`);
    const text = task === 'textclassification';
    if (text) writeFileSync(path.join(dataDir, task, `${token}_metadata.json`), JSON.stringify({ vocab: ['<pad>', '<unk>'] }));
    inference[token] = {
      task_type: task,
      model_filename: `${task}/${token}.pt`,
      model_filename_onnx: `${task}/${token}.onnx`,
      ...(text ? { metadata_filename: `${task}/${token}_metadata.json` } : { classes: ['a', 'b'] }),
      downloadable,
      accuracy: 0.9,
      accuracy_plot: 'iVBORw0KGgo=',
      created: formatCreated(new Date(Date.now() - createdHoursAgo * HOUR)),
    };
  }
  writeFileSync(path.join(dataDir, 'inference.json'), JSON.stringify(inference, null, 2));
}

/** Deploys an image model straight into a bucket, with the same bytes `seedModels` writes. */
async function deployToBucket(config: S3Config, token: string): Promise<void> {
  const store = new S3Store(config);
  try {
    await store.put(`imageclassification/${token}.pt`, Buffer.from(`torchscript of ${token}`));
    await store.put(`imageclassification/${token}.onnx`, Buffer.from(`onnx of ${token}`));
    await new DocumentStore(store).update(INFERENCE, (inference) => ({
      ...inference,
      [token]: {
        task_type: 'imageclassification' as const,
        model_filename: `imageclassification/${token}.pt`,
        model_filename_onnx: `imageclassification/${token}.onnx`,
        classes: ['a', 'b'],
        downloadable: true,
        accuracy: 0.5,
        accuracy_plot: '',
        created: formatCreated(new Date()),
      },
    }));
  } finally {
    await store.close();
  }
}

/**
 * An fs store where another writer deploys a model right when cleanup is about to write
 * `inference.json`: cleanup's compare-and-swap must fail, re-read and keep the new model.
 */
class DeployDuringCleanupStore extends FsStore {
  deployed = false;
  private readonly other: DocumentStore;

  constructor(folder: string) {
    super(folder);
    this.other = new DocumentStore(new FsStore(folder));
  }

  override async put(key: string, body: Buffer, options: PutOptions = {}) {
    if (key === 'inference.json' && options.ifMatch && !this.deployed) {
      this.deployed = true;
      await this.other.update(INFERENCE, (inference) => ({
        ...inference,
        'imageClassification-new-5555': { ...inference['imageClassification-fresh-4444']!, created: formatCreated(new Date()) },
      }));
    }
    return super.put(key, body, options);
  }
}

async function serverWith(models: SeedModel[], options: TestServerOptions = {}): Promise<TestServer> {
  const server = await startTestServer(options);
  seedModels(server.dataDir, models);
  return server;
}

const DOWNLOAD = `mutation($t: ID!, $f: ModelFormat!) {
  downloadModel(token: $t, format: $f) { url expiresAt filename vocabularyUrl }
}`;
type Link = { downloadModel: { url: string; expiresAt: string; filename: string; vocabularyUrl: string | null } };

describe('downloads from the fs store', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await serverWith([
      { token: 'imageClassification-cats-aaaa', task: 'imageclassification', createdHoursAgo: 0 },
      { token: 'textClassification-reviews-bbbb', task: 'textclassification', createdHoursAgo: 0 },
      { token: 'imageClassification-locked-cccc', task: 'imageclassification', createdHoursAgo: 0, downloadable: false },
    ]);
  });
  afterAll(() => server.stop());

  const link = (token: string, format = 'ONNX') => server.graphql<Link>(DOWNLOAD, { variables: { t: token, f: format } });

  it('serve the weights through a signed link on this server', async () => {
    const response = await link('imageClassification-cats-aaaa');
    const download = response.data?.downloadModel;
    expect(download?.url.startsWith(`${server.origin}/downloads/imageClassification-cats-aaaa/model.onnx?`)).toBe(true);
    expect(download?.filename).toBe('imageClassification-cats-aaaa.onnx');
    expect(download?.vocabularyUrl).toBeNull();
    expect(Date.parse(download?.expiresAt ?? '') - Date.now()).toBeGreaterThan(800_000);

    const file = await fetch(download?.url ?? '');
    expect(file.status).toBe(200);
    expect(await file.text()).toBe('onnx of imageClassification-cats-aaaa');
    expect(file.headers.get('content-disposition')).toContain('imageClassification-cats-aaaa.onnx');

    const pytorch = await link('imageClassification-cats-aaaa', 'PYTORCH');
    expect(await (await fetch(pytorch.data?.downloadModel.url ?? '')).text()).toBe('torchscript of imageClassification-cats-aaaa');
  });

  it('give text models their vocabulary too', async () => {
    const response = await link('textClassification-reviews-bbbb', 'PYTORCH');
    const vocabulary = await fetch(response.data?.downloadModel.vocabularyUrl ?? '');
    expect(vocabulary.status).toBe(200);
    expect(await vocabulary.json()).toEqual({ vocab: ['<pad>', '<unk>'] });
  });

  it('refuse links that were tampered with or turned to another model or file', async () => {
    const url = new URL((await link('imageClassification-cats-aaaa')).data?.downloadModel.url ?? '');
    const variants = [
      url.href.replace('signature=', 'signature=x'),
      url.href.replace(/expires=\d+/, (m) => `expires=${Number(m.slice(8)) + 3600}`),
      url.href.replace('imageClassification-cats-aaaa', 'textClassification-reviews-bbbb'),
      url.href.replace('model.onnx', 'model.pt'),
      url.href.replace('model.onnx', '..%2F..%2Fstatus.json'),
    ];
    for (const variant of variants) expect((await fetch(variant)).status).toBe(403);
  });

  it('answer FORBIDDEN for a model that is not downloadable', async () => {
    expect(codes(await link('imageClassification-locked-cccc'))).toEqual(['FORBIDDEN']);
  });

  it('answer MODEL_NOT_FOUND for an unknown token', async () => {
    expect(codes(await link('imageClassification-none-dddd'))).toEqual(['MODEL_NOT_FOUND']);
  });
});

describe('download links', () => {
  it('stop working when they expire', async () => {
    const server = await serverWith([{ token: 'imageClassification-cats-aaaa', task: 'imageclassification', createdHoursAgo: 0 }], {
      config: { models: { downloadTtlSeconds: 1 } },
    });
    try {
      const response = await server.graphql<Link>(DOWNLOAD, { variables: { t: 'imageClassification-cats-aaaa', f: 'ONNX' } });
      const url = response.data?.downloadModel.url ?? '';
      expect((await fetch(url)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      expect((await fetch(url)).status).toBe(403);
    } finally {
      await server.stop();
    }
  });

  it('are presigned by the bucket on the S3 store', async () => {
    const s3 = await startS3Server();
    const server = await startTestServer({ env: s3.envFor('downloads') });
    try {
      await deployToBucket(s3.configFor('downloads'), 'imageClassification-s3-eeee');
      const response = await server.graphql<Link>(DOWNLOAD, { variables: { t: 'imageClassification-s3-eeee', f: 'ONNX' } });
      const url = new URL(response.data?.downloadModel.url ?? '');
      expect(url.searchParams.get('X-Amz-Signature')).toBeTruthy();
      expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
      const file = await fetch(url);
      expect(file.status).toBe(200);
      expect(await file.text()).toBe('onnx of imageClassification-s3-eeee');
    } finally {
      await server.stop();
      await s3.stop();
    }
  });

  it('are signed for the public S3 endpoint when clients reach the bucket elsewhere', async () => {
    const s3 = await startS3Server();
    const internal = new URL(s3.configFor('public').endpoint!);
    // The clients' way to the bucket: a proxy on another port that forwards the bytes as they are.
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = connect(Number(internal.port), internal.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      }
      client.pipe(upstream).pipe(client);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const publicEndpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const server = await startTestServer({ env: { ...s3.envFor('public'), FLASH_S3_PUBLIC_ENDPOINT: publicEndpoint } });
    try {
      await deployToBucket(s3.configFor('public'), 'imageClassification-s3-ffff');
      const response = await server.graphql<Link>(DOWNLOAD, { variables: { t: 'imageClassification-s3-ffff', f: 'ONNX' } });
      const url = new URL(response.data?.downloadModel.url ?? '');
      // s3rver does not check signatures, so this shows the link names the public endpoint, is
      // signed over its host, and reaches the bucket through it; AWS or MinIO would check more.
      expect(url.origin).toBe(publicEndpoint);
      expect(url.searchParams.get('X-Amz-SignedHeaders')).toBe('host');
      const file = await fetch(url);
      expect(file.status).toBe(200);
      expect(await file.text()).toBe('onnx of imageClassification-s3-ffff');
    } finally {
      await server.stop();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
      await s3.stop();
    }
  });
});

describe('deleteModel', () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await serverWith([
      { token: 'imageClassification-cats-aaaa', task: 'imageclassification', createdHoursAgo: 0 },
      { token: 'textClassification-reviews-bbbb', task: 'textclassification', createdHoursAgo: 0 },
    ]);
  });
  afterEach(() => server.stop());

  const remove = (token: string) => server.graphql(`mutation($t: ID!) { deleteModel(token: $t) }`, { variables: { t: token } });

  it('deletes the entry and its files, and nothing else', async () => {
    expect((await remove('textClassification-reviews-bbbb')).data).toEqual({ deleteModel: true });
    expect(Object.keys(readJson(server, 'inference.json'))).toEqual(['imageClassification-cats-aaaa']);
    for (const suffix of ['.pt', '.onnx', '_metadata.json']) {
      expect(existsSync(path.join(server.dataDir, 'textclassification', `textClassification-reviews-bbbb${suffix}`))).toBe(false);
    }
    expect(existsSync(path.join(server.dataDir, 'imageclassification', 'imageClassification-cats-aaaa.pt'))).toBe(true);
    expect(codes(await server.graphql(`{ model(token: "textClassification-reviews-bbbb") { token } }`))).toEqual(['MODEL_NOT_FOUND']);
  });

  it('answers MODEL_NOT_FOUND for an unknown token and MODEL_TRAINING for the running job', async () => {
    expect(codes(await remove('nope'))).toEqual(['MODEL_NOT_FOUND']);
    const status = readJson(server, 'status.json');
    writeFileSync(
      path.join(server.dataDir, 'status.json'),
      JSON.stringify({ ...status, status: 'active', token: 'imageClassification-now-ffff', task_type: 'imageclassification' }),
    );
    expect(codes(await remove('imageClassification-now-ffff'))).toEqual(['MODEL_TRAINING']);
  });
});

describe('model expiry', () => {
  const models: SeedModel[] = [
    { token: 'imageClassification-old-1111', task: 'imageclassification', createdHoursAgo: 3 },
    { token: 'textClassification-old-2222', task: 'textclassification', createdHoursAgo: 2.5 },
    { token: 'imageClassification-pinned-3333', task: 'imageclassification', createdHoursAgo: 5 },
    { token: 'imageClassification-fresh-4444', task: 'imageclassification', createdHoursAgo: 1 },
  ];
  const pinned = { FLASH_PINNED_TOKENS: 'imageClassification-pinned-3333, someOther-token' };

  it('deletes exactly the expired, unpinned models and their files when an admin runs cleanup', async () => {
    const server = await serverWith(models, { env: pinned });
    try {
      // A model this platform trained keeps its job record, which remembers the expiry.
      const token = 'imageClassification-old-1111';
      writeDeployedJobRecord(server.dataDir, token, 'imageclassification');

      expect(codes(await server.graphql('mutation { runCleanup }'))).toEqual(['UNAUTHENTICATED']);
      const response = await server.graphql<{ runCleanup: string[] }>('mutation { runCleanup }', { key: ADMIN_KEY });
      expect(response.data?.runCleanup.sort()).toEqual(['imageClassification-old-1111', 'textClassification-old-2222']);
      expect(Object.keys(readJson(server, 'inference.json')).sort()).toEqual([
        'imageClassification-fresh-4444',
        'imageClassification-pinned-3333',
      ]);
      expect(existsSync(path.join(server.dataDir, 'imageclassification', 'imageClassification-old-1111.onnx'))).toBe(false);
      expect(existsSync(path.join(server.dataDir, 'textclassification', 'textClassification-old-2222_metadata.json'))).toBe(false);
      expect(existsSync(path.join(server.dataDir, 'imageclassification', 'imageClassification-pinned-3333.onnx'))).toBe(true);
      const again = await server.graphql<{ runCleanup: string[] }>('mutation { runCleanup }', { key: ADMIN_KEY });
      expect(again.data?.runCleanup).toEqual([]);
      const expired = await server.graphql(`{ model(token: "${token}") { token } }`);
      expect(codes(expired)).toEqual(['MODEL_EXPIRED']);
      expect(codes(await server.graphql(`{ model(token: "textClassification-old-2222") { token } }`))).toEqual([
        'MODEL_NOT_FOUND',
      ]);
    } finally {
      await server.stop();
    }
  });

  it('deletes the records of jobs that ended before FLASH_JOB_RETENTION, and only those', async () => {
    const server = await serverWith(models, { env: { ...pinned, FLASH_JOB_RETENTION: String(24 * 3600) } });
    try {
      const ago = (hours: number) => new Date(Date.now() - hours * HOUR).toISOString();
      const jobs = path.join(server.dataDir, 'training', 'jobs');
      // Ended two days ago, with a staged dataset left behind: goes.
      writeJobRecord(server.dataDir, { token: 'imageClassification-failed-aaaa', state: 'FAILED', finished_at: ago(48) });
      writeFileSync(path.join(jobs, 'imageClassification-failed-aaaa', 'dataset.json'), '{}');
      // Ended an hour ago: stays.
      writeJobRecord(server.dataDir, { token: 'imageClassification-cancelled-bbbb', state: 'CANCELLED', finished_at: ago(1) });
      // Deployed long ago, its model still served (pinned): stays.
      writeJobRecord(server.dataDir, { token: 'imageClassification-pinned-3333', finished_at: ago(120) });
      // Deployed long ago, its model expires in this very run: the retention starts now.
      writeJobRecord(server.dataDir, { token: 'imageClassification-old-1111', finished_at: ago(120) });
      // Expired three days ago: goes.
      writeJobRecord(server.dataDir, { token: 'imageClassification-expired-eeee', expired_at: ago(72) });
      // Not finished, however old: stays. A folder without a record (a dataset being staged): stays.
      writeJobRecord(server.dataDir, { token: 'textClassification-stuck-cccc', state: 'TRAINING', finished_at: null });
      mkdirSync(path.join(jobs, 'imageClassification-staging-dddd'));
      writeFileSync(path.join(jobs, 'imageClassification-staging-dddd', 'dataset.json'), '{}');

      await server.graphql('mutation { runCleanup }', { key: ADMIN_KEY });
      expect(readdirSync(jobs).sort()).toEqual([
        'imageClassification-cancelled-bbbb',
        'imageClassification-old-1111',
        'imageClassification-pinned-3333',
        'imageClassification-staging-dddd',
        'textClassification-stuck-cccc',
      ]);
      expect(codes(await server.graphql('{ model(token: "imageClassification-old-1111") { token } }'))).toEqual([
        'MODEL_EXPIRED',
      ]);
    } finally {
      await server.stop();
    }
  });

  it('tells each model when it expires, and pinned ones never', async () => {
    const server = await serverWith(models, { env: pinned });
    try {
      const response = await server.graphql<{ models: { token: string; createdAt: string; expiresAt: string | null }[] }>(
        '{ models { token createdAt expiresAt } }',
        { key: ADMIN_KEY },
      );
      expect(response.data?.models).toHaveLength(4);
      for (const model of response.data?.models ?? []) {
        if (model.token === 'imageClassification-pinned-3333') expect(model.expiresAt).toBeNull();
        else expect(Date.parse(model.expiresAt ?? '') - Date.parse(model.createdAt)).toBe(2 * HOUR);
      }
    } finally {
      await server.stop();
    }
  });

  it('runs on its schedule while cleanup.json is active, and not while it sleeps', async () => {
    const server = await serverWith(models, { env: { FLASH_CLEANUP_INTERVAL: '1' } });
    try {
      await server.graphql('mutation { setCleanup(active: false) { cleanupActive } }', { key: ADMIN_KEY });
      await new Promise((resolve) => setTimeout(resolve, 2_200));
      expect(Object.keys(readJson(server, 'inference.json'))).toHaveLength(4);

      await server.graphql('mutation { setCleanup(active: true) { cleanupActive } }', { key: ADMIN_KEY });
      const deadline = Date.now() + 5_000;
      while (Object.keys(readJson(server, 'inference.json')).length !== 1 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(Object.keys(readJson(server, 'inference.json'))).toEqual(['imageClassification-fresh-4444']);
    } finally {
      await server.stop();
    }
  });

  it('still reports the expired models when the job records cannot be listed', async () => {
    const dataDir = makeDataDir();
    seedModels(dataDir, models);
    const store = new (class extends FsStore {
      override async list(prefix: string): Promise<string[]> {
        if (prefix.startsWith('training/jobs/')) throw new Error('listing failed');
        return super.list(prefix);
      }
    })(dataDir);
    const server = await startTestServer({ dataDir, store, env: pinned });
    try {
      const response = await server.graphql<{ runCleanup: string[] }>('mutation { runCleanup }', { key: ADMIN_KEY });
      expect(response.errors).toBeUndefined();
      expect(response.data?.runCleanup.sort()).toEqual(['imageClassification-old-1111', 'textClassification-old-2222']);
    } finally {
      await server.stop();
    }
  });

  it('never loses a model deployed between its read and its write', async () => {
    const dataDir = makeDataDir();
    seedModels(dataDir, models);
    const store = new DeployDuringCleanupStore(dataDir);
    const server = await startTestServer({ dataDir, store });
    try {
      const cleanup = await server.graphql<{ runCleanup: string[] }>('mutation { runCleanup }', { key: ADMIN_KEY });
      expect(store.deployed).toBe(true);
      expect(cleanup.data?.runCleanup).toHaveLength(3);
      expect(Object.keys(readJson(server, 'inference.json')).sort()).toEqual([
        'imageClassification-fresh-4444',
        'imageClassification-new-5555',
      ]);
    } finally {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the job of a deleted model', () => {
  const TOKEN = 'imageClassification-cats-aaaa';
  const JOB = `query($t: ID!) { trainingJob(token: $t) { state history { epoch } model { token } } }`;
  let server: TestServer;
  beforeEach(async () => {
    server = await serverWith([{ token: TOKEN, task: 'imageclassification', createdHoursAgo: 0 }]);
    writeDeployedJobRecord(server.dataDir, TOKEN, 'imageclassification');
  });
  afterEach(() => server.stop());

  it('is DELETED, with no model, and keeps its record and history', async () => {
    const before = await server.graphql<{ trainingJob: { state: string; model: { token: string } | null } }>(JOB, {
      variables: { t: TOKEN },
    });
    expect(before.data?.trainingJob).toMatchObject({ state: 'DEPLOYED', model: { token: TOKEN } });

    expect((await server.graphql(`mutation { deleteModel(token: "${TOKEN}") }`)).data).toEqual({ deleteModel: true });
    const after = await server.graphql(JOB, { variables: { t: TOKEN } });
    expect(after.errors).toBeUndefined();
    expect(after.data).toEqual({ trainingJob: { state: 'DELETED', history: [], model: null } });
    expect(readJson(server, `training/jobs/${TOKEN}/job.json`)).toMatchObject({ state: 'DEPLOYED', deleted_at: expect.any(String) });
  });

  it('is DELETED once its model expired, too', async () => {
    const stale = await serverWith([{ token: 'imageClassification-old-1111', task: 'imageclassification', createdHoursAgo: 3 }]);
    try {
      writeDeployedJobRecord(stale.dataDir, 'imageClassification-old-1111', 'imageclassification');
      await stale.graphql('mutation { runCleanup }', { key: ADMIN_KEY });
      const job = await stale.graphql(JOB, { variables: { t: 'imageClassification-old-1111' } });
      expect(job.data).toEqual({ trainingJob: { state: 'DELETED', history: [], model: null } });
    } finally {
      await stale.stop();
    }
  });

  it('tells a late trainingProgress subscriber DELETED, and ends', async () => {
    await server.graphql(`mutation { deleteModel(token: "${TOKEN}") }`);
    const subscription = subscribe<{ trainingProgress: { state: string; model: unknown } }>(
      server,
      'subscription($t: ID!) { trainingProgress(token: $t) { state model { token } } }',
      { t: TOKEN },
    );
    try {
      await subscription.completed;
      expect(subscription.events).toEqual([{ trainingProgress: { state: 'DELETED', model: null } }]);
    } finally {
      await subscription.close();
    }
  });
});
