import path from 'node:path';

import { ConfigError, loadConfig } from '../src/config';

describe('configuration', () => {
  it('has embedded defaults: port 4000, fs store in ./data', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 4000,
      env: 'development',
      store: { kind: 'fs', root: path.resolve('data') },
      dataDir: path.resolve('data'),
      adminKey: undefined,
      introspection: true,
    });
  });

  it('reports every invalid variable at once', () => {
    const attempt = () =>
      loadConfig({ PORT: 'eighty', FLASH_STORE: 'gcs', FLASH_ADMIN_KEY: 'short', AWS_ENDPOINT_URL_S3: 'not a url' });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const problems = (error as ConfigError).problems;
      expect(problems).toHaveLength(4);
      for (const name of ['PORT', 'FLASH_STORE', 'FLASH_ADMIN_KEY', 'AWS_ENDPOINT_URL_S3']) {
        expect(problems.some((problem) => problem.startsWith(`${name}:`))).toBe(true);
      }
    }
  });

  it('reads the inference settings: threads auto or a count, coalescing on unless turned off', () => {
    expect(loadConfig({}).inference).toMatchObject({ threads: 'auto', coalesce: true, batchWaitMillis: 0 });
    expect(loadConfig({ FLASH_INFERENCE_THREADS: '3', FLASH_BATCH_COALESCE: 'false' }).inference).toMatchObject({
      threads: 3,
      coalesce: false,
    });
    expect(() => loadConfig({ FLASH_INFERENCE_THREADS: 'many' })).toThrow(
      /FLASH_INFERENCE_THREADS: expected "auto" or a positive integer/,
    );
  });

  it('needs a bucket for the s3 store, and both halves of explicit credentials', () => {
    expect(() => loadConfig({ FLASH_STORE: 's3' })).toThrow(/FLASH_S3_BUCKET: is required/);
    expect(() => loadConfig({ FLASH_STORE: 's3', FLASH_S3_BUCKET: 'b-1', AWS_ACCESS_KEY_ID: 'x' })).toThrow(
      /AWS_SECRET_ACCESS_KEY/,
    );
  });

  it('reads an S3-compatible endpoint with path-style addressing and legacy checksums', () => {
    const config = loadConfig({
      FLASH_STORE: 's3',
      FLASH_S3_BUCKET: 'flash-models',
      AWS_REGION: 'eu-central-1',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
      FLASH_S3_PUBLIC_ENDPOINT: 'https://files.example.com',
      FLASH_S3_FORCE_PATH_STYLE: 'true',
      FLASH_S3_CHECKSUMS: 'when_required',
      AWS_ACCESS_KEY_ID: 'id',
      AWS_SECRET_ACCESS_KEY: 'secret',
    });
    expect(config.store).toEqual({
      kind: 's3',
      bucket: 'flash-models',
      region: 'eu-central-1',
      endpoint: 'http://127.0.0.1:9000',
      publicEndpoint: 'https://files.example.com',
      forcePathStyle: true,
      checksums: 'WHEN_REQUIRED',
      credentials: { accessKeyId: 'id', secretAccessKey: 'secret' },
    });
  });

  it('takes only http(s) endpoints, not a bare host and port', () => {
    expect(() => loadConfig({ FLASH_STORE: 's3', FLASH_S3_BUCKET: 'b-1', AWS_ENDPOINT_URL_S3: 'minio:9000' })).toThrow(
      /AWS_ENDPOINT_URL_S3: expected an http:\/\/ or https:\/\/ URL/,
    );
    expect(() => loadConfig({ FLASH_S3_PUBLIC_ENDPOINT: 'ftp://files.example.com' })).toThrow(/FLASH_S3_PUBLIC_ENDPOINT/);
  });

  it('turns introspection off in production unless asked for', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).introspection).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', FLASH_INTROSPECTION: 'true' }).introspection).toBe(true);
  });

  it('lets explicit options win over the environment', () => {
    const config = loadConfig({ PORT: '8080', FLASH_DATA_DIR: '/var/flash' }, { port: 0, dataDir: '/tmp/x' });
    expect(config.port).toBe(0);
    expect(config.store).toEqual({ kind: 'fs', root: '/tmp/x' });
  });
});
