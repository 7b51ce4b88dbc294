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

  it('runs embedded without Redis, in the role that does everything, unless told otherwise', () => {
    expect(loadConfig({})).toMatchObject({ role: 'all', redis: undefined });
    expect(loadConfig({ FLASH_REDIS_URL: 'redis://:secret@10.0.0.5:6380/2', FLASH_ROLE: 'api' })).toMatchObject({
      role: 'api',
      redis: { url: 'redis://:secret@10.0.0.5:6380/2' },
    });
    expect(loadConfig({ FLASH_REDIS_URL: 'rediss://redis.example.com' }).redis).toEqual({ url: 'rediss://redis.example.com' });
  });

  it('refuses a Redis URL of another scheme without echoing it, and roles it cannot honour', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        return (error as ConfigError).problems;
      }
      throw new Error('expected a ConfigError');
    };
    const [url] = problems({ FLASH_REDIS_URL: 'http://user:hunter2@redis:6379' });
    expect(url).toMatch(/^FLASH_REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/);
    expect(url).not.toContain('hunter2');
    expect(problems({ FLASH_REDIS_URL: 'redis:6379' })).toEqual([expect.stringMatching(/^FLASH_REDIS_URL:/)]);
    expect(problems({ FLASH_ROLE: 'trainer' })).toEqual([expect.stringMatching(/^FLASH_ROLE:/)]);
    // An API replica alone would never hear about the jobs another server runs.
    expect(problems({ FLASH_ROLE: 'api' })).toEqual([expect.stringMatching(/^FLASH_ROLE: api needs FLASH_REDIS_URL/)]);
    // Reserved for the training workers, which do not exist yet: refused rather than run as `all`.
    expect(problems({ FLASH_ROLE: 'worker', FLASH_REDIS_URL: 'redis://127.0.0.1' })).toEqual([
      expect.stringMatching(/^FLASH_ROLE: worker is not available yet/),
    ]);
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
