import type { Readable } from 'node:stream';

import { type DocumentDefinition, DocumentStore } from '../../src/documents';
import type { ObjectStore, PutOptions, StoredObject } from '../../src/store';

/**
 * Prototypes of a cross-request cache of the platform documents, measured by the API area
 * (`npm run bench -- api`) against the current behaviour (every request reads the store).
 * Bench-only: they are valid for one server on its own fs folder, where every write goes
 * through this process; several servers on one bucket would need revalidation (a conditional
 * GET with the ETag, or a short time to live) instead of invalidation on write.
 */

/** Delegates everything to `inner`; subclasses hear about every write and delete. */
class ForwardingStore implements ObjectStore {
  readonly kind: 'fs' | 's3';

  constructor(protected readonly inner: ObjectStore) {
    this.kind = inner.kind;
  }

  protected changed(_key: string): void {}

  get(key: string): Promise<StoredObject | null> {
    return this.inner.get(key);
  }

  async put(key: string, body: Buffer, options?: PutOptions): Promise<{ etag: string }> {
    this.changed(key);
    try {
      return await this.inner.put(key, body, options);
    } finally {
      this.changed(key);
    }
  }

  async putFile(key: string, file: string, options?: Pick<PutOptions, 'contentType'>): Promise<{ etag: string }> {
    this.changed(key);
    try {
      return await this.inner.putFile(key, file, options);
    } finally {
      this.changed(key);
    }
  }

  getFile(key: string, file: string): Promise<boolean> {
    return this.inner.getFile(key, file);
  }

  openRead(key: string): Promise<{ stream: Readable; size: number } | null> {
    return this.inner.openRead(key);
  }

  presignGet(key: string, options: { expiresInSeconds: number; filename: string }): Promise<string | null> {
    return this.inner.presignGet(key, options);
  }

  async delete(key: string): Promise<void> {
    this.changed(key);
    try {
      await this.inner.delete(key);
    } finally {
      this.changed(key);
    }
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

/** The four JSON documents every request reads. */
const CACHED_KEYS = new Set(['status.json', 'cleanup.json', 'inference.json', 'training/queue.json']);

/**
 * Prototype A, at the store: the bytes and ETag of the platform documents are kept after the
 * first read and dropped on any write or delete of the key. Saves the file system round trips
 * (open, fstat, read, close); every request still parses and validates the JSON.
 */
export class CachingStore extends ForwardingStore {
  private readonly cache = new Map<string, Promise<StoredObject | null>>();

  protected override changed(key: string): void {
    this.cache.delete(key);
  }

  override get(key: string): Promise<StoredObject | null> {
    if (!CACHED_KEYS.has(key)) return this.inner.get(key);
    let cached = this.cache.get(key);
    if (!cached) {
      cached = this.inner.get(key);
      this.cache.set(key, cached);
      cached.catch(() => this.cache.delete(key));
    }
    return cached;
  }
}

/**
 * Prototype B, at the documents: `DocumentStore.read` keeps the parsed, validated value per
 * store and document, dropped when the store hears of a write or delete of its key. Saves the
 * file system round trips and the JSON parse and schema validation. Readers share one object,
 * which is safe only because nothing mutates what it read (a real version would freeze it).
 */
export class DocumentCache extends ForwardingStore {
  private static installed = false;
  readonly values = new Map<string, Promise<unknown>>();

  protected override changed(key: string): void {
    this.values.delete(key);
  }

  /** Wraps `store`, and patches `DocumentStore.prototype.read` (once) to use the wrapper's cache. */
  static install(store: ObjectStore): DocumentCache {
    const cache = new DocumentCache(store);
    if (!DocumentCache.installed) {
      DocumentCache.installed = true;
      const read = DocumentStore.prototype.read;
      DocumentStore.prototype.read = function cachedRead<T>(this: DocumentStore, document: DocumentDefinition<T>) {
        const owner = this.store;
        if (!(owner instanceof DocumentCache)) return read.call(this, document) as Promise<T>;
        let value = owner.values.get(document.key) as Promise<T> | undefined;
        if (!value) {
          value = read.call(this, document) as Promise<T>;
          owner.values.set(document.key, value);
          value.catch(() => owner.values.delete(document.key));
        }
        return value;
      };
    }
    return cache;
  }
}
