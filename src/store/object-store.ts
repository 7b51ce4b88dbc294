import type { Readable } from 'node:stream';

/**
 * The object store knows bytes and keys, nothing of the platform. Two adapters implement it:
 * `FsStore` (a local folder, the embedded default) and `S3Store` (any S3-compatible bucket).
 * Both pass the same contract suite (`test/store.contract.test.ts`).
 */

export interface StoredObject {
  body: Buffer;
  /** Opaque version tag; pass it back as `ifMatch` to write only if nobody wrote since. */
  etag: string;
}

/** An inclusive span of an object's bytes, as HTTP ranges count them. */
export interface ByteRange {
  start: number;
  end: number;
}

/** What `openRead` answers: a stream of the bytes chosen, the object's whole size, and which bytes. */
export interface OpenedObject {
  stream: Readable;
  size: number;
  /** The bytes `stream` carries; `null`: all of them. */
  range: ByteRange | null;
}

/** What `getIfChanged` answers when the object still has the version tag the caller holds. */
export const UNCHANGED: unique symbol = Symbol('unchanged');

export interface PutOptions {
  /** Write only if the object's current version tag equals this one. */
  ifMatch?: string;
  /** `'*'`: write only if the object does not exist yet. */
  ifNoneMatch?: '*';
  contentType?: string;
}

export interface ObjectStore {
  /** Short name for logs and `/readyz`: `fs` or `s3`. */
  readonly kind: 'fs' | 's3';
  /** The object, or `null` when there is none under `key`. */
  get(key: string): Promise<StoredObject | null>;
  /**
   * `UNCHANGED` when the object's version tag is still `etag`, without reading its bytes (a
   * stat of the file, a conditional GET answered 304); otherwise what `get` answers.
   */
  getIfChanged(key: string, etag: string): Promise<StoredObject | typeof UNCHANGED | null>;
  /** Writes atomically: a reader sees the old bytes or the new ones, never a mix. */
  put(key: string, body: Buffer, options?: PutOptions): Promise<{ etag: string }>;
  /** Streams a local file into the store under `key` (model weights, large datasets). */
  putFile(key: string, file: string, options?: Pick<PutOptions, 'contentType'>): Promise<{ etag: string }>;
  /** Streams the object into a local file; `false` when there is no object under `key`. */
  getFile(key: string, file: string): Promise<boolean>;
  /**
   * A stream of the object's bytes and its size; `null` when there is no object under `key`.
   * `range`, called with the size before anything is read, picks the bytes to stream (a range
   * within the object, or `null` for all of them): a download resumed with an HTTP `Range`.
   */
  openRead(key: string, range?: (size: number) => ByteRange | null): Promise<OpenedObject | null>;
  /**
   * A URL that fetches the object straight from the store until it expires, offered to the
   * client as a download named `filename`; `null` when the store cannot make one (fs).
   */
  presignGet(key: string, options: { expiresInSeconds: number; filename: string }): Promise<string | null>;
  /** Deletes the object; deleting a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** Keys under `prefix` (folder markers excluded), in lexicographic order. */
  list(prefix: string): Promise<string[]>;
  /**
   * Makes `prefix` (ending in `/`) visible as a folder: a directory on disk, a zero-byte
   * `prefix/` marker object in a bucket (what the S3 console creates). Idempotent.
   */
  createFolder(prefix: string): Promise<void>;
  /** Creates the root (folder or bucket) when it does not exist yet. Idempotent. */
  prepare(): Promise<void>;
  /** Resolves when the store is reachable; rejects otherwise. For `/readyz`. */
  ping(): Promise<void>;
  /** Releases sockets or handles. */
  close(): Promise<void>;
}

/** A conditional write lost: someone else wrote (or created, or deleted) the object first. */
export class PreconditionFailedError extends Error {
  constructor(readonly key: string) {
    super(`Precondition failed for ${key}`);
    this.name = 'PreconditionFailedError';
  }
}

/** A key that could name something outside the store's root, or that no adapter can hold. */
export class InvalidKeyError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`Invalid store key ${JSON.stringify(key.slice(0, 200))}: ${reason}`);
    this.name = 'InvalidKeyError';
  }
}

const MAX_KEY_LENGTH = 1024;
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.@=+,-]*$/;

/**
 * Keys are relative, slash-separated paths of plain segments. This is the one check that keeps
 * keys from escaping the store root: no `..` or `.` segment, no leading or doubled slash, no
 * backslash, NUL or other control character, no segment starting with a dot (the fs adapter
 * keeps its temporary files there). Segments may hold letters, digits and `_ . @ = + , -`.
 */
export function assertValidKey(key: string, { folder = false } = {}): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError(String(key), 'empty');
  if (key.length > MAX_KEY_LENGTH) throw new InvalidKeyError(key, `longer than ${MAX_KEY_LENGTH} characters`);
  const body = folder ? key.replace(/\/$/, '') : key;
  if (folder && !key.endsWith('/')) throw new InvalidKeyError(key, 'a folder prefix must end with "/"');
  for (const segment of body.split('/')) {
    if (!SEGMENT.test(segment)) {
      throw new InvalidKeyError(key, `segment ${JSON.stringify(segment.slice(0, 100))} is not allowed`);
    }
  }
}

/** A `list` prefix is empty, a folder prefix, or the start of a key (`folder/name-`). */
export function assertValidPrefix(prefix: string): void {
  if (prefix !== '') assertValidKey(prefix, { folder: prefix.endsWith('/') });
}
