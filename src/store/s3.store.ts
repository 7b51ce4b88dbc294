import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

import type { S3Config } from '../config';
import {
  assertValidKey,
  assertValidPrefix,
  type ByteRange,
  type ObjectStore,
  type OpenedObject,
  type PutOptions,
  PreconditionFailedError,
  type StoredObject,
  UNCHANGED,
} from './object-store';

/**
 * Object store on an S3 bucket (AWS S3, MinIO, R2 or any S3-compatible server).
 *
 * Compare-and-swap uses S3 conditional writes: `If-Match: <etag>` to replace only the version
 * we read, `If-None-Match: *` to create only if absent. A lost race answers 412 Precondition
 * Failed, or 409 ConditionalRequestConflict while another conditional write is in flight; both
 * become `PreconditionFailedError`, on which the documents layer re-reads and retries.
 *
 * Servers that ignore the conditional headers (s3rver, used by the tests, is one) turn these
 * writes into plain last-writer-wins puts; the CAS contract is then only as good as the server.
 */
export class S3Store implements ObjectStore {
  readonly kind = 's3';
  private readonly client: S3Client;
  /** Signs download links: `client`, or one for the endpoint clients use (`publicEndpoint`). */
  private readonly presigner: S3Client;
  private readonly bucket: string;

  constructor(config: S3Config) {
    this.bucket = config.bucket;
    const options = (endpoint: string | undefined): S3ClientConfig => ({
      region: config.region,
      ...(endpoint ? { endpoint } : {}),
      forcePathStyle: config.forcePathStyle,
      ...(config.credentials ? { credentials: config.credentials } : {}),
      requestChecksumCalculation: config.checksums,
      responseChecksumValidation: config.checksums,
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 3_000, requestTimeout: 30_000 },
    });
    this.client = new S3Client(options(config.endpoint));
    // Only signs: it shares the main client's credentials (and their refreshing), so it never
    // sends a request of its own.
    this.presigner = config.publicEndpoint
      ? new S3Client({ ...options(config.publicEndpoint), credentials: this.client.config.credentials })
      : this.client;
  }

  get(key: string): Promise<StoredObject | null> {
    return this.fetch(key);
  }

  getIfChanged(key: string, etag: string): Promise<StoredObject | typeof UNCHANGED | null> {
    return this.fetch(key, etag);
  }

  /** GetObject, conditional on `ifNoneMatch` when given: 304 Not Modified answers `UNCHANGED`. */
  private fetch(key: string): Promise<StoredObject | null>;
  private fetch(key: string, ifNoneMatch: string): Promise<StoredObject | typeof UNCHANGED | null>;
  private async fetch(key: string, ifNoneMatch?: string): Promise<StoredObject | typeof UNCHANGED | null> {
    assertValidKey(key);
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(ifNoneMatch ? { IfNoneMatch: ifNoneMatch } : {}) }),
      );
      const body = Buffer.from((await response.Body?.transformToByteArray()) ?? new Uint8Array());
      return { body, etag: response.ETag ?? '' };
    } catch (error) {
      if (isNotFound(error)) return null;
      if (ifNoneMatch && statusOf(error) === 304) return UNCHANGED;
      throw error;
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<{ etag: string }> {
    assertValidKey(key);
    try {
      const response = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: options.contentType ?? contentTypeFor(key),
          ...(options.ifMatch !== undefined ? { IfMatch: options.ifMatch } : {}),
          ...(options.ifNoneMatch !== undefined ? { IfNoneMatch: options.ifNoneMatch } : {}),
        }),
      );
      return { etag: response.ETag ?? '' };
    } catch (error) {
      if (isPreconditionFailure(error)) throw new PreconditionFailedError(key);
      throw error;
    }
  }

  async putFile(key: string, file: string, options: Pick<PutOptions, 'contentType'> = {}): Promise<{ etag: string }> {
    assertValidKey(key);
    const { size } = await stat(file);
    const response = await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: createReadStream(file),
        ContentLength: size,
        ContentType: options.contentType ?? contentTypeFor(key),
      }),
    );
    return { etag: response.ETag ?? '' };
  }

  async getFile(key: string, file: string): Promise<boolean> {
    assertValidKey(key);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      await pipeline(response.Body as Readable, createWriteStream(file));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async openRead(key: string, range?: (size: number) => ByteRange | null): Promise<OpenedObject | null> {
    assertValidKey(key);
    try {
      if (!range) {
        const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
        return { stream: response.Body as Readable, size: response.ContentLength ?? 0, range: null };
      }
      // The range depends on the size: ask for it first, then read that version of the object only.
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      const size = head.ContentLength ?? 0;
      const chosen = range(size);
      const response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          ...(head.ETag ? { IfMatch: head.ETag } : {}),
          ...(chosen ? { Range: `bytes=${chosen.start}-${chosen.end}` } : {}),
        }),
      );
      return { stream: response.Body as Readable, size, range: chosen };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async presignGet(key: string, { expiresInSeconds, filename }: { expiresInSeconds: number; filename: string }) {
    assertValidKey(key);
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ResponseContentDisposition: contentDisposition(filename),
    });
    return getSignedUrl(this.presigner, command, { expiresIn: expiresInSeconds });
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async list(prefix: string): Promise<string[]> {
    assertValidPrefix(prefix);
    const keys: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: continuationToken }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key && !object.Key.endsWith('/')) keys.push(object.Key);
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
    return keys.sort();
  }

  async createFolder(prefix: string): Promise<void> {
    assertValidKey(prefix, { folder: true });
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: prefix, Body: Buffer.alloc(0), IfNoneMatch: '*' }),
      );
    } catch (error) {
      if (!isPreconditionFailure(error)) throw error;
    }
  }

  /** Creates the bucket when it does not exist yet (first start on an empty account). */
  async prepare(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    }
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  async close(): Promise<void> {
    this.client.destroy();
    if (this.presigner !== this.client) this.presigner.destroy();
  }
}

function statusOf(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
}

function isNotFound(error: unknown): boolean {
  return statusOf(error) === 404;
}

function isPreconditionFailure(error: unknown): boolean {
  const status = statusOf(error);
  return status === 412 || status === 409;
}

/** `attachment; filename="…"` with an RFC 5987 UTF-8 form for names beyond ASCII. */
function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

function contentTypeFor(key: string): string {
  if (key.endsWith('.json')) return 'application/json';
  if (key.endsWith('.png')) return 'image/png';
  if (key.endsWith('.onnx')) return 'application/onnx';
  return 'application/octet-stream';
}
