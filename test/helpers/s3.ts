import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import S3rver from 's3rver';

import type { S3Config } from '../../src/config';

export interface S3TestServer {
  /** Store settings pointing at the server, for a bucket of the given name. */
  configFor(bucket: string): S3Config;
  /** The same settings as environment variables, as an operator would write them. */
  envFor(bucket: string): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * A real S3-compatible server (s3rver) on loopback, on a free port, over a temporary folder.
 * s3rver rejects the SDK's default CRC32 checksums and ignores If-Match/If-None-Match.
 */
export async function startS3Server(): Promise<S3TestServer> {
  const directory = mkdtempSync(path.join(tmpdir(), 'flash-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    configFor: (bucket) => ({
      bucket,
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      checksums: 'WHEN_REQUIRED',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    }),
    envFor: (bucket) => ({
      FLASH_STORE: 's3',
      FLASH_S3_BUCKET: bucket,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_S3: endpoint,
      FLASH_S3_FORCE_PATH_STYLE: 'true',
      FLASH_S3_CHECKSUMS: 'when_required',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    }),
    stop: async () => {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
