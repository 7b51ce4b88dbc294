import type { ByteRange, ObjectStore, OpenedObject, PutOptions, StoredObject, UNCHANGED } from '../../src/store';

/**
 * A store that never answers `UNCHANGED`: `getIfChanged` reads the object like `get`, so the
 * documents layer reads, parses and validates every cached document on every request, as the
 * server did before its document cache. The API area's "store read per request" baseline.
 */
export class UncachedStore implements ObjectStore {
  readonly kind: 'fs' | 's3';

  constructor(private readonly inner: ObjectStore) {
    this.kind = inner.kind;
  }

  get(key: string): Promise<StoredObject | null> {
    return this.inner.get(key);
  }

  getIfChanged(key: string): Promise<StoredObject | typeof UNCHANGED | null> {
    return this.inner.get(key);
  }

  put(key: string, body: Buffer, options?: PutOptions): Promise<{ etag: string }> {
    return this.inner.put(key, body, options);
  }

  putFile(key: string, file: string, options?: Pick<PutOptions, 'contentType'>): Promise<{ etag: string }> {
    return this.inner.putFile(key, file, options);
  }

  getFile(key: string, file: string): Promise<boolean> {
    return this.inner.getFile(key, file);
  }

  openRead(key: string, range?: (size: number) => ByteRange | null): Promise<OpenedObject | null> {
    return this.inner.openRead(key, range);
  }

  presignGet(key: string, options: { expiresInSeconds: number; filename: string }): Promise<string | null> {
    return this.inner.presignGet(key, options);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }

  createFolder(prefix: string): Promise<void> {
    return this.inner.createFolder(prefix);
  }

  prepare(): Promise<void> {
    return this.inner.prepare();
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
