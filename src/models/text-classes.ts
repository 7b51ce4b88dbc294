import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { z } from 'zod';

import { type InferenceEntry, storeOperation } from '../documents';
import type { ObjectStore } from '../store';

/** What this needs of a text model's `<token>_metadata.json` (trainer/README.md): its labels in output order. */
const metadataSchema = z.looseObject({ classes: z.array(z.string()).min(1) });

/** Text models whose class names are kept in memory; each costs a few hundred bytes. */
const MAX_CACHED = 1_000;

/**
 * The class names of text models, whose `inference.json` entries (in the seed's shape) name
 * only their metadata file: read from that file (which also holds the vocabulary) once per
 * token, then kept. A model's metadata never changes under its token, so nothing goes stale; a
 * deleted model is forgotten. A file that is missing, not JSON (the original platform's
 * `.pkl`), or without classes gives `null`: the names are unknown, the model still serves.
 */
export class TextClassNames {
  private readonly cache = new LRUCache<string, Promise<{ classes: string[] | null }>>({ max: MAX_CACHED });

  constructor(
    private readonly store: ObjectStore,
    private readonly logger: Logger,
  ) {}

  async of(token: string, entry: InferenceEntry): Promise<string[] | null> {
    let pending = this.cache.get(token);
    if (!pending) {
      pending = this.read(token, entry);
      this.cache.set(token, pending);
      // A store failure is not remembered: the next request asks again.
      pending.catch(() => this.cache.delete(token));
    }
    return (await pending).classes;
  }

  forget(token: string): void {
    this.cache.delete(token);
  }

  private async read(token: string, entry: InferenceEntry): Promise<{ classes: string[] | null }> {
    const key = entry.metadata_filename;
    if (!key || !key.startsWith('textclassification/') || !key.toLowerCase().endsWith('.json')) return { classes: null };
    const stored = await storeOperation(() => this.store.get(key));
    if (!stored) return { classes: null };
    try {
      return { classes: metadataSchema.parse(JSON.parse(stored.body.toString('utf8'))).classes };
    } catch (error) {
      this.logger.warn({ token, err: error }, 'A text model’s metadata file names no classes');
      return { classes: null };
    }
  }
}
