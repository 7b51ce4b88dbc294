import { mkdir, mkdtemp } from 'node:fs/promises';
import path from 'node:path';

import { StoreUnavailableError } from '../errors';

/**
 * What the file system says when the server's own storage refuses a write: read-only, full,
 * over quota, or not writable by the server. While an upload is staged in the work folder these
 * are the platform's storage failing, not the request, and they pass once an operator frees or
 * fixes it: `STORE_UNAVAILABLE`, as the object store's failures are.
 */
const STORAGE_REFUSALS = new Set(['EROFS', 'ENOSPC', 'EDQUOT', 'EACCES', 'EPERM']);

/** `error` as a client sees it: `StoreUnavailableError` for a storage refusal, else unchanged. */
export function stagingFailure(error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && STORAGE_REFUSALS.has(code) ? new StoreUnavailableError(error) : error;
}

/** Runs a step of staging an upload in the work folder, its storage refusals as `STORE_UNAVAILABLE`. */
export async function staging<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw stagingFailure(error);
  }
}

/**
 * A new private folder `<parent>/<prefix>XXXXXX`, `parent` made first where missing. Node's
 * recursive `mkdir` reports `ENOENT` when it cannot make a missing parent, whatever the reason
 * (a read-only disk says `EROFS`): the folders are then made one at a time, so that the real
 * reason shows.
 */
export async function makeStagingFolder(parent: string, prefix: string): Promise<string> {
  return staging(async () => {
    try {
      await mkdir(parent, { recursive: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await makeEachFolder(parent);
    }
    return mkdtemp(path.join(parent, prefix));
  });
}

async function makeEachFolder(folder: string): Promise<void> {
  const missing: string[] = [];
  for (let current = path.resolve(folder); current !== path.dirname(current); current = path.dirname(current)) {
    missing.unshift(current);
  }
  for (const current of missing) {
    await mkdir(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
}
