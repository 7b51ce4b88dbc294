import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { types } from 'node:util';
import { crc32 } from 'node:zlib';

import { type Entry, getFileNameLowLevel, openPromise, type ZipFile } from 'yauzl';

import { BadUserInputError } from '../errors';
import { quote } from './messages';

/** One entry of the central directory, its name decoded and already checked to be safe. */
export interface ZipEntry {
  /** `/`-separated relative path inside the archive (a folder's ends with `/`). */
  path: string;
  isDirectory: boolean;
  /** Sizes as the central directory declares them; extraction enforces the uncompressed one. */
  compressedSize: number;
  uncompressedSize: number;
  readonly raw: Entry;
}

/** Size of a local file header before its name and extra field: the least an entry takes before its data. */
const LOCAL_HEADER_BYTES = 30;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const STORED = 0;
const DEFLATED = 8;

/**
 * A ZIP file on disk read defensively with yauzl: entries one at a time (`lazyEntries`), names
 * decoded here rather than by yauzl so a hostile name is reported by name instead of failing
 * the whole archive, and every entry refused unless it is a plain relative path, a regular
 * file or folder, unencrypted, stored or deflated.
 *
 * Only errors caused by the archive's bytes become `BadUserInputError`; I/O failures of the
 * server (a full disk, a vanished staging folder) propagate unchanged.
 */
export class ZipArchive {
  private constructor(
    private readonly zip: ZipFile,
    private readonly field: string,
    private readonly name: string,
  ) {}

  /** `name` is the upload's file name, for messages. */
  static async open(file: string, { field, name }: { field: string; name: string }): Promise<ZipArchive> {
    try {
      const zip = await openPromise(file, {
        autoClose: false,
        lazyEntries: true,
        decodeStrings: false,
        // Zip-bomb guard: yauzl fails an entry's stream as soon as it inflates to more (or
        // fewer) bytes than the central directory declares, so the sizes checked before
        // extraction are also the sizes extraction can produce — headers cannot lie.
        validateEntrySizes: true,
      });
      return new ZipArchive(zip, field, name);
    } catch (error) {
      throw archiveError(error, () => notAZip(field, name));
    }
  }

  /** Entries the end-of-central-directory record announces; known before any is read. */
  get entryCount(): number {
    return this.zip.entryCount;
  }

  /**
   * Reads the central directory (no file data), refusing the first unsafe entry and entries
   * whose data overlap.
   */
  async readEntries(): Promise<ZipEntry[]> {
    const entries: ZipEntry[] = [];
    try {
      for await (const raw of this.zip.eachEntry()) entries.push(this.checkEntry(raw));
    } catch (error) {
      throw archiveError(error, () => notAZip(this.field, this.name));
    }
    this.checkNoOverlap(entries);
    return entries;
  }

  /**
   * Inflates one file entry into `destination`, which must not exist, and checks its CRC-32:
   * a damaged entry is refused by name rather than handed on as an image.
   */
  async extract(entry: ZipEntry, destination: string): Promise<void> {
    let crc = 0;
    const checksum = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        crc = crc32(chunk, crc);
        callback(null, chunk);
      },
    });
    try {
      const stream = await this.zip.openReadStreamPromise(entry.raw);
      await pipeline(stream, checksum, createWriteStream(destination, { flags: 'wx', mode: 0o600 }));
    } catch (error) {
      throw archiveError(
        error,
        () =>
          new BadUserInputError(
            `${this.field}: ZIP entry ${quote(entry.path)} cannot be extracted: its data is damaged or does not ` +
              'match the size its header declares',
            this.field,
          ),
      );
    }
    if (crc !== entry.raw.crc32) {
      throw new BadUserInputError(
        `${this.field}: ZIP entry ${quote(entry.path)} is damaged: its CRC-32 checksum does not match its data`,
        this.field,
      );
    }
  }

  close(): void {
    this.zip.close();
  }

  /**
   * ZIP-bomb guard: every byte of data belongs to one entry. Entries whose central directory
   * records point into the same data (one stream shared by 1,000 entries) would each inflate it
   * again, so that neither the archive's size nor any per-entry ratio bounds what extracting
   * costs; an honest zipper never writes them. With no overlap, what extraction inflates is the
   * sum of the declared sizes, which yauzl's `validateEntrySizes` holds each entry to.
   */
  private checkNoOverlap(entries: readonly ZipEntry[]): void {
    const byOffset = [...entries].sort((a, b) => a.raw.relativeOffsetOfLocalHeader - b.raw.relativeOffsetOfLocalHeader);
    for (let i = 1; i < byOffset.length; i++) {
      const before = byOffset[i - 1]!;
      const entry = byOffset[i]!;
      // A lower bound on where the earlier entry ends: its header's fixed part, then its data.
      const end = before.raw.relativeOffsetOfLocalHeader + LOCAL_HEADER_BYTES + before.compressedSize;
      if (entry.raw.relativeOffsetOfLocalHeader < end) {
        throw new BadUserInputError(
          `${this.field}: ZIP entries ${quote(before.path)} and ${quote(entry.path)} overlap (they share their ` +
            'data); the archive looks like a ZIP bomb',
          this.field,
        );
      }
    }
  }

  private checkEntry(raw: Entry): ZipEntry {
    // strictFileNames: keep backslashes as they are, so that they are refused below rather
    // than silently turned into folder separators.
    const path = getFileNameLowLevel(raw.generalPurposeBitFlag, raw.fileNameRaw, raw.extraFields, true);
    const refuse = (problem: string) =>
      new BadUserInputError(`${this.field}: ZIP entry ${quote(path)} ${problem}`, this.field);

    const pathProblem = unsafePathProblem(path);
    if (pathProblem) throw refuse(`${pathProblem}; entries must be relative paths such as cats/1.jpg`);
    // Unix modes live in the high 16 bits; extracting a symlink could point anywhere.
    if (((raw.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) {
      throw refuse('is a symbolic link; only regular files and folders are accepted');
    }
    const isDirectory = path.endsWith('/');
    if (!isDirectory) {
      if (raw.isEncrypted()) throw refuse('is encrypted; zip the images without a password');
      if (raw.compressionMethod !== STORED && raw.compressionMethod !== DEFLATED) {
        throw refuse(
          `uses compression method ${raw.compressionMethod}, which is not supported; ` +
            'use standard (deflate) compression',
        );
      }
    }
    return { path, isDirectory, compressedSize: raw.compressedSize, uncompressedSize: raw.uncompressedSize, raw };
  }
}

/**
 * Why an entry path could write outside the extraction folder, or `undefined` when it cannot.
 * Nothing is extracted under these names (files are staged under generated names), but an
 * archive built to traverse paths is hostile and is refused outright.
 */
function unsafePathProblem(path: string): string | undefined {
  if (/\p{Cc}/u.test(path)) return 'contains a NUL or control character';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'is an absolute path';
  if (/^[a-zA-Z]:/.test(path)) return 'starts with a drive letter';
  const segments = path.endsWith('/') ? path.slice(0, -1).split('/') : path.split('/');
  if (segments.includes('..')) return 'has a ".." segment that leads out of its folder';
  if (segments.some((segment) => segment === '' || segment === '.')) return 'has an empty or "." path segment';
  return undefined;
}

function notAZip(field: string, name: string): BadUserInputError {
  return new BadUserInputError(
    `${field}: ${quote(name)} is not a readable ZIP archive ` +
      '(it is damaged, not a ZIP file, or uses unsupported ZIP features)',
    field,
  );
}

/**
 * yauzl and zlib report bad archive bytes as plain `Error`s (zlib's from another realm under
 * Jest, hence `isNativeError`); system errors carry a `syscall`, bugs are `TypeError`s and the
 * like, and our own refusals are already `BadUserInputError`s. Only the first kind is the
 * user's.
 */
function archiveError(error: unknown, userError: () => BadUserInputError): unknown {
  if (error instanceof BadUserInputError) return error;
  const isArchiveProblem = types.isNativeError(error) && error.name === 'Error' && !('syscall' in error);
  return isArchiveProblem ? userError() : error;
}
