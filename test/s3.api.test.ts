import { readFileSync } from 'node:fs';
import path from 'node:path';

import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

import { S3Store } from '../src/store';
import { startS3Server, type S3TestServer } from './helpers/s3';
import { ADMIN_KEY, FLASH_SAMPLES, startTestServer } from './helpers/server';

describe('the server on an S3 bucket', () => {
  let s3: S3TestServer;
  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(() => s3.stop());

  const readDocument = async (bucket: string, key: string) => {
    const store = new S3Store(s3.configFor(bucket));
    try {
      const object = await store.get(key);
      return object ? JSON.parse(object.body.toString('utf8')) : null;
    } finally {
      await store.close();
    }
  };

  it('creates a missing bucket with the seed documents and folders at first start', async () => {
    const server = await startTestServer({ env: s3.envFor('fresh-bucket') });
    try {
      const response = await server.graphql('{ status { status taskType devMode cleanupActive } }');
      expect(response.data).toEqual({
        status: { status: 'SLEEPING', taskType: null, devMode: false, cleanupActive: true },
      });
      expect(await fetch(`${server.origin}/readyz`).then((r) => r.json())).toEqual({ status: 'ready', store: 's3' });
    } finally {
      await server.stop();
    }
    expect(await readDocument('fresh-bucket', 'status.json')).toEqual({
      status: 'sleeping',
      token: '',
      task_type: '',
      dev_mode: false,
    });
    expect(await readDocument('fresh-bucket', 'cleanup.json')).toEqual({ status: 'active' });
    expect(await readDocument('fresh-bucket', 'inference.json')).toEqual({});
    // The folders are zero-byte `prefix/` markers, as the S3 console makes them.
    const config = s3.configFor('fresh-bucket');
    const client = new S3Client({ ...config, requestChecksumCalculation: 'WHEN_REQUIRED' });
    try {
      const listing = await client.send(new ListObjectsV2Command({ Bucket: 'fresh-bucket' }));
      expect(listing.Contents?.map((object) => [object.Key, object.Size]).sort()).toEqual([
        ['cleanup.json', expect.any(Number)],
        ['imageclassification/', 0],
        ['inference.json', expect.any(Number)],
        ['status.json', expect.any(Number)],
        ['textclassification/', 0],
        ['training/', 0],
      ]);
    } finally {
      client.destroy();
    }
  });

  it('serves an existing Flash bucket unchanged and writes admin changes into it', async () => {
    const store = new S3Store(s3.configFor('flash-bucket'));
    await store.prepare();
    for (const key of ['status.json', 'cleanup.json', 'inference.json', 'training/training.json']) {
      await store.put(key, readFileSync(path.join(FLASH_SAMPLES, key)));
    }
    await store.close();

    const server = await startTestServer({ env: s3.envFor('flash-bucket') });
    try {
      const model = await server.graphql('{ model(token: "imageClassification-tinyimgnet-demo-dbasb") { accuracy } }');
      expect(model.data).toEqual({ model: { accuracy: 0.9667 } });
      const response = await server.graphql('mutation { setDevMode(enabled: true) { devMode } }', { key: ADMIN_KEY });
      expect(response.data).toEqual({ setDevMode: { devMode: true } });
    } finally {
      await server.stop();
    }
    const sample = JSON.parse(readFileSync(path.join(FLASH_SAMPLES, 'status.json'), 'utf8'));
    expect(await readDocument('flash-bucket', 'status.json')).toEqual({ ...sample, dev_mode: true });
    expect(await readDocument('flash-bucket', 'inference.json')).toEqual(
      JSON.parse(readFileSync(path.join(FLASH_SAMPLES, 'inference.json'), 'utf8')),
    );
  });
});
