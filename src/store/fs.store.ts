import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';

import { KeyedMutex } from './keyed-mutex';
import {
  assertValidKey,
  assertValidPrefix,
  type ByteRange,
  InvalidKeyError,
  type ObjectStore,
  type OpenedObject,
  type PutOptions,
  PreconditionFailedError,
  type StoredObject,
  UNCHANGED,
} from './object-store';

/** Shared by every FsStore of the process, so that two instances on one folder also serialise. */
const FILE_LOCKS = new KeyedMutex();

/**
 * Object store on a local folder: one file per key, the embedded default.
 *
 * Writes go to a hidden temporary file in the target's folder, are fsynced, then renamed over
 * the target, so a reader (or a crash) sees the old bytes or the new ones, never a mix.
 *
 * Version tags come from `fstat` of the open file (inode, ctime and mtime in ns, size). Rename
 * installs a new inode, so every write changes the tag, and a read takes tag and bytes from the
 * same open descriptor, so they always agree even if a writer renames in between.
 *
 * Conditional writes hold a per-key mutex from the tag check to the rename. That makes
 * compare-and-swap atomic among the writers of this process, which is how the fs store is
 * meant to be used (one server on its own data folder); several servers sharing state need the
 * S3 store, whose conditional writes the bucket itself enforces.
 */
export class FsStore implements ObjectStore {
  readonly kind = 'fs';
  private readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  async get(key: string): Promise<StoredObject | null> {
    const handle = await this.openIfPresent(key);
    if (!handle) return null;
    try {
      const stat = await handle.stat({ bigint: true });
      if (!stat.isFile()) return null;
      const body = await handle.readFile();
      return { body, etag: versionTag(stat) };
    } finally {
      await handle.close();
    }
  }

  async getIfChanged(key: string, etag: string): Promise<StoredObject | typeof UNCHANGED | null> {
    // One stat by path: the tag of the file the path names now, as `get` would read it.
    if ((await this.currentTag(this.resolve(key))) === etag) return UNCHANGED;
    return this.get(key);
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<{ etag: string }> {
    const file = this.resolve(key);
    return FILE_LOCKS.run(file, async () => {
      if (options.ifMatch !== undefined || options.ifNoneMatch !== undefined) {
        const current = await this.currentTag(file);
        if (options.ifNoneMatch === '*' && current !== null) throw new PreconditionFailedError(key);
        if (options.ifMatch !== undefined && current !== options.ifMatch) throw new PreconditionFailedError(key);
      }
      await this.replace(file, async (temp) => {
        const handle = await fs.open(temp, 'wx', 0o644);
        try {
          await handle.writeFile(body);
          await handle.sync();
        } finally {
          await handle.close();
        }
      });
      const tag = await this.currentTag(file);
      if (tag === null) throw new Error(`Object ${key} vanished right after it was written`);
      return { etag: tag };
    });
  }

  async putFile(key: string, source: string): Promise<{ etag: string }> {
    const file = this.resolve(key);
    return FILE_LOCKS.run(file, async () => {
      await this.replace(file, async (temp) => {
        await fs.copyFile(source, temp, constants.COPYFILE_EXCL);
        const handle = await fs.open(temp, 'r+');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
      });
      return { etag: versionTag(await fs.stat(file, { bigint: true })) };
    });
  }

  async getFile(key: string, destination: string): Promise<boolean> {
    const file = this.resolve(key);
    try {
      await fs.copyFile(file, destination);
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  async openRead(key: string, range?: (size: number) => ByteRange | null): Promise<OpenedObject | null> {
    const handle = await this.openIfPresent(key);
    if (!handle) return null;
    let size: number;
    let chosen: ByteRange | null;
    try {
      ({ size } = await handle.stat());
      chosen = range?.(size) ?? null;
    } catch (error) {
      await handle.close();
      throw error;
    }
    // The stream owns the descriptor: a rename over the file cannot change what it reads.
    return { stream: handle.createReadStream(chosen ?? {}), size, range: chosen };
  }

  async presignGet(): Promise<null> {
    return null;
  }

  async delete(key: string): Promise<void> {
    const file = this.resolve(key);
    await FILE_LOCKS.run(file, () => fs.rm(file, { force: true }));
    await this.pruneEmptyFolders(path.dirname(file));
  }

  async list(prefix: string): Promise<string[]> {
    assertValidPrefix(prefix);
    // Walk only the deepest folder the prefix names, then filter on the rest of the prefix.
    const folder = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
    const keys: string[] = [];
    await this.walk(folder, keys);
    return keys.filter((key) => key.startsWith(prefix)).sort();
  }

  async createFolder(prefix: string): Promise<void> {
    assertValidKey(prefix, { folder: true });
    await fs.mkdir(this.resolve(prefix.slice(0, -1)), { recursive: true });
  }

  async prepare(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
  }

  async ping(): Promise<void> {
    await fs.access(this.root, constants.R_OK | constants.W_OK);
  }

  async close(): Promise<void> {}

  /**
   * Removes folders left empty by a delete, as a bucket has no folder once its last key goes.
   * Folders directly under the root stay: they are the seed's `training/`, `imageclassification/`
   * and `textclassification/`, which exist even when empty.
   */
  private async pruneEmptyFolders(folder: string): Promise<void> {
    for (let current = folder; path.dirname(current) !== this.root && current.startsWith(this.root + path.sep); ) {
      try {
        await fs.rmdir(current);
      } catch {
        return; // not empty (or already gone): stop here
      }
      current = path.dirname(current);
    }
  }

  private async walk(folder: string, into: string[]): Promise<void> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(path.join(this.root, folder), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue; // temporary files and other private files
      if (entry.isDirectory()) await this.walk(`${folder}${entry.name}/`, into);
      else if (entry.isFile()) into.push(`${folder}${entry.name}`);
    }
  }

  private async currentTag(file: string): Promise<string | null> {
    try {
      return versionTag(await fs.stat(file, { bigint: true }));
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  /** The object's file opened for reading, or `null` when there is none. */
  private async openIfPresent(key: string): Promise<fs.FileHandle | null> {
    try {
      return await fs.open(this.resolve(key), constants.O_RDONLY);
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  /**
   * Writes a hidden sibling of `file` with `write`, then renames it over `file`: same folder, so
   * the rename is atomic. A concurrent delete may prune the folder between our mkdir and our
   * write; the folder is then made again and the write retried.
   */
  private async replace(file: string, write: (temp: string) => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await fs.mkdir(path.dirname(file), { recursive: true });
      const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await write(temp);
        await fs.rename(temp, file);
        return;
      } catch (error) {
        await fs.rm(temp, { force: true });
        if (!isMissing(error) || attempt >= 3) {
          // A write refused (a full or read-only disk) leaves no folder made only for it.
          await this.pruneEmptyFolders(path.dirname(file));
          throw error;
        }
      }
    }
  }

  private resolve(key: string): string {
    assertValidKey(key);
    const file = path.join(this.root, key);
    // Defence in depth: the key check above already rules this out.
    if (!file.startsWith(this.root + path.sep)) throw new InvalidKeyError(key, 'escapes the store root');
    return file;
  }
}

/**
 * Inode, change time and modification time (ns), size. The change time is the kernel's, which
 * no tool can set back, so even an edit in place that keeps the size and restores the mtime
 * (`cp -p`, `rsync -t`) gets a new tag, and the documents cache sees it, as long as the edit
 * falls in a later tick of the kernel's clock than the previous change (kernels before 6.13
 * keep change times to a few milliseconds).
 */
function versionTag(stat: import('node:fs').BigIntStats): string {
  return [stat.ino, stat.ctimeNs, stat.mtimeNs, stat.size].map((part) => part.toString(36)).join('-');
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}
