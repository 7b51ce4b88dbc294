import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';

import type { z } from 'zod';

import { DocumentInvalidError, StoreUnavailableError } from '../errors';
import { InvalidKeyError, type ObjectStore, PreconditionFailedError, UNCHANGED } from '../store';
import { KeyedMutex } from '../store/keyed-mutex';
import {
  cleanupSchema,
  type CleanupDocument,
  inferenceSchema,
  type InferenceDocument,
  statusSchema,
  type StatusDocument,
  trainingSchema,
  type TrainingDocument,
} from './schemas';

export interface DocumentDefinition<T> {
  /** Store key. */
  readonly key: string;
  /** Name in error messages: the key, or a pattern when the key holds a token. */
  readonly name: string;
  readonly schema: z.ZodType<T>;
  /** The seed's initial content, written at first start; a missing document reads as this. */
  readonly initial: T | undefined;
  /** The top-level keys are credentials (model tokens): error messages must not show them. */
  readonly secretKeys: boolean;
  /**
   * Keep the parsed value between reads, revalidated by version tag: for the few documents
   * every request reads, never for the unbounded per-job ones.
   */
  readonly cached: boolean;
}

export function defineDocument<T>(
  key: string,
  schema: z.ZodType<T>,
  initial?: T,
  { secretKeys = false, name = key, cached = false }: { secretKeys?: boolean; name?: string; cached?: boolean } = {},
): DocumentDefinition<T> {
  return Object.freeze({ key, name, schema, initial, secretKeys, cached });
}

export const STATUS = defineDocument<StatusDocument>(
  'status.json',
  statusSchema,
  { status: 'sleeping', token: '', task_type: '', dev_mode: false },
  { cached: true },
);
export const CLEANUP = defineDocument<CleanupDocument>('cleanup.json', cleanupSchema, { status: 'active' }, { cached: true });
export const INFERENCE = defineDocument<InferenceDocument>(
  'inference.json',
  inferenceSchema,
  {},
  { secretKeys: true, cached: true },
);
// Not cached: it holds the running job's whole dataset inline.
export const TRAINING = defineDocument<TrainingDocument>('training/training.json', trainingSchema);

/** Documents created at first start, in this order. */
export const INITIAL_DOCUMENTS: readonly DocumentDefinition<unknown>[] = [STATUS, CLEANUP, INFERENCE];
/** The "folders" the seed asks for in a new bucket. */
export const INITIAL_FOLDERS = ['training/', 'imageclassification/', 'textclassification/'] as const;

export interface Snapshot<T> {
  value: T;
  /** Version tag of what was read. */
  etag: string;
}

/** Read access to documents: `DocumentStore` itself, or a per-request `DocumentLoader`. */
export interface DocumentReader {
  read<T>(document: DocumentDefinition<T>): Promise<T>;
}

export interface UpdateOptions {
  /** Attempts before giving up under contention. Default `20`. */
  maxAttempts?: number;
}

/**
 * Typed, validated access to the platform documents in an `ObjectStore`.
 *
 * Every read validates against the document's schema; an invalid document raises
 * `DocumentInvalidError` naming the file and the keys at fault, and is never overwritten.
 * Every write is a compare-and-swap on the version read, retried on conflict, so two writers
 * never lose each other's update.
 *
 * Documents marked `cached` keep their parsed value between reads, and every read asks the store
 * whether the version tag is still the one parsed (`getIfChanged`: a stat, a conditional GET).
 * Whoever wrote meanwhile, this process, another server on the bucket or a person editing the
 * file, the next read sees it; an unchanged document costs no read, parse or validation. Values
 * are deep-frozen, since every reader shares them.
 */
export class DocumentStore implements DocumentReader {
  /**
   * Updates of one document from this process take turns, so they never race each other:
   * compare-and-swap is left to settle races with other processes, where retries are rare.
   */
  private readonly updates = new KeyedMutex();
  /** The last snapshot read or written of each `cached` document, by key. */
  private readonly snapshots = new Map<string, Snapshot<unknown>>();

  constructor(readonly store: ObjectStore) {}

  /** Creates the store root, the seed's folders and any missing initial document. */
  async initialize(): Promise<void> {
    await this.guard(async () => {
      await this.store.prepare();
      for (const folder of INITIAL_FOLDERS) await this.store.createFolder(folder);
      for (const document of INITIAL_DOCUMENTS) {
        // Look first: servers that ignore If-None-Match would otherwise overwrite real state.
        if (await this.store.get(document.key)) continue;
        try {
          await this.store.put(document.key, serialize(document.initial), { ifNoneMatch: '*' });
        } catch (error) {
          if (!(error instanceof PreconditionFailedError)) throw error;
        }
      }
    });
  }

  async read<T>(document: DocumentDefinition<T>): Promise<T> {
    const snapshot = await this.snapshot(document);
    if (snapshot) return snapshot.value;
    if (document.initial !== undefined) return cloneJson(document.initial);
    throw new DocumentInvalidError(document.name, ['the document does not exist']);
  }

  /** The document and its version tag, or `null` when it does not exist. */
  async snapshot<T>(document: DocumentDefinition<T>): Promise<Snapshot<T> | null> {
    if (!document.cached) {
      const stored = await this.guard(() => this.store.get(document.key));
      return stored && { value: parse(document, stored.body), etag: stored.etag };
    }
    const cached = this.snapshots.get(document.key) as Snapshot<T> | undefined;
    const stored = await this.guard(() =>
      cached ? this.store.getIfChanged(document.key, cached.etag) : this.store.get(document.key),
    );
    if (stored === UNCHANGED) return cached as Snapshot<T>;
    if (!stored) {
      this.snapshots.delete(document.key);
      return null;
    }
    return this.remember(document, deepFreeze(parse(document, stored.body)), stored.etag);
  }

  /**
   * Read-modify-write under compare-and-swap. `mutate` gets a private copy of the current value
   * (the initial content when the document is missing) and returns the next one; it may run
   * several times, so it must not have side effects. A result equal to the current value is
   * not written. Returns the value now stored.
   */
  update<T>(document: DocumentDefinition<T>, mutate: (current: T) => T, options: UpdateOptions = {}): Promise<T> {
    return this.updates.run(document.key, () => this.compareAndSwap(document, mutate, options));
  }

  private async compareAndSwap<T>(
    document: DocumentDefinition<T>,
    mutate: (current: T) => T,
    { maxAttempts = 20 }: UpdateOptions,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const snapshot = await this.snapshot(document);
      const current = snapshot?.value ?? document.initial;
      if (current === undefined) throw new DocumentInvalidError(document.name, ['the document does not exist']);
      const next = mutate(cloneJson(current));
      if (snapshot && isDeepStrictEqual(next, snapshot.value)) return snapshot.value;
      assertValid(document, next);
      try {
        const { etag } = await this.guard(() =>
          this.store.put(
            document.key,
            serialize(next),
            snapshot ? { ifMatch: snapshot.etag } : { ifNoneMatch: '*' },
          ),
        );
        // The cache gets its own copy: `next` may hold objects the caller still owns.
        if (document.cached) this.remember(document, deepFreeze(cloneJson(next)), etag);
        return next;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        if (attempt >= maxAttempts) throw new StoreUnavailableError(error);
        // Jittered exponential backoff, so that contending writers spread out instead of colliding again.
        await sleep(Math.random() * Math.min(200, 5 * 2 ** attempt));
      }
    }
  }

  /** Replaces the document without looking at what is there (a job's own training.json). */
  async write<T>(document: DocumentDefinition<T>, value: T): Promise<void> {
    assertValid(document, value);
    await this.guard(() => this.store.put(document.key, serialize(value)));
  }

  async remove(document: DocumentDefinition<unknown>): Promise<void> {
    await this.guard(() => this.store.delete(document.key));
  }

  private remember<T>(document: DocumentDefinition<T>, value: T, etag: string): Snapshot<T> {
    const snapshot = { value, etag };
    this.snapshots.set(document.key, snapshot);
    return snapshot;
  }

  private guard<R>(operation: () => Promise<R>): Promise<R> {
    return storeOperation(operation);
  }
}

/**
 * Runs a store operation so that its failures, other than lost races and invalid keys, become
 * `StoreUnavailableError`, whose message says nothing of the SDK or the file system; the
 * original stays attached as `cause` for the logs.
 */
export async function storeOperation<R>(operation: () => Promise<R>): Promise<R> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof PreconditionFailedError || error instanceof DocumentInvalidError) throw error;
    if (error instanceof InvalidKeyError) throw error;
    throw new StoreUnavailableError(error);
  }
}

/** Freezes `value` and everything in it: a shared cached document must not be changed by a reader. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** Documents are JSON, so a JSON round trip is a faithful private copy. */
function cloneJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function serialize(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
}

function parse<T>(document: DocumentDefinition<T>, body: Buffer): T {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new DocumentInvalidError(document.name, ['it is not valid JSON']);
  }
  const result = document.schema.safeParse(json);
  if (!result.success) {
    throw new DocumentInvalidError(document.name, describeIssues(result.error, document.secretKeys), {
      detail: describeIssues(result.error, false),
    });
  }
  return result.data;
}

function assertValid<T>(document: DocumentDefinition<T>, value: T): void {
  const result = document.schema.safeParse(value);
  // A write that fails its own schema is a bug in the platform, not a user error.
  if (!result.success) {
    throw new Error(`Refusing to write invalid ${document.name}: ${describeIssues(result.error, false).join('; ')}`);
  }
}

/**
 * `key "dev_mode": Invalid input: expected boolean, received string` — keys, never values.
 * With `redactTopLevel`, the first key (a model token) shows as `<token>`.
 */
function describeIssues(error: z.ZodError, redactTopLevel: boolean): string[] {
  return error.issues.slice(0, 5).map((issue) => {
    const parts = issue.path.map((part, index) => (redactTopLevel && index === 0 ? '<token>' : JSON.stringify(String(part))));
    return `${parts.length ? `key ${parts.join('.')}` : 'document'}: ${issue.message}`;
  });
}
