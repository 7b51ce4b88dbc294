import { createWriteStream } from 'node:fs';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { BadUserInputError } from '../errors';
import { quote } from './messages';

/** What an upload looks like here; graphql-upload-minimal's `FileUpload` fits it. */
export interface UploadedFile {
  filename: string;
  mimetype?: string;
  createReadStream(): NodeJS.ReadableStream | Readable;
}

/**
 * An upload or the promise of one, as the `Upload` scalar hands it to a resolver. Multipart
 * files arrive one after another, so a later file's promise only settles once the earlier
 * files have been read: the ingest functions await each one just before reading it.
 */
export type UploadInput = UploadedFile | PromiseLike<UploadedFile>;

export interface SaveUploadOptions {
  /** The input field the file came in, for messages (`dataset`, `classes[1].images[4]`). */
  field: string;
  /** Most bytes accepted; the stream is aborted as soon as one more arrives. */
  maxBytes: number;
  /** The error for a file over `maxBytes`. */
  tooLarge: () => BadUserInputError;
}

/** The name shown in messages for an upload. */
export function uploadName(upload: UploadedFile): string {
  return upload.filename || 'the uploaded file';
}

/**
 * Streams an upload into `destination` (which must not exist) and returns its size. Nothing is
 * held in memory beyond the stream's buffers; the read stops at `maxBytes + 1` bytes.
 */
export async function saveUpload(
  upload: UploadedFile,
  destination: string,
  options: SaveUploadOptions,
): Promise<number> {
  const source = upload.createReadStream();
  let bytes = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (bytes > options.maxBytes) callback(options.tooLarge());
      else callback(null, chunk);
    },
  });
  await pipeline(source, cap, createWriteStream(destination, { flags: 'wx', mode: 0o600 }));
  // A multipart parser with its own size limit (busboy's `limit`) ends the stream early and
  // marks it truncated instead of failing it; a cut file must not pass as a complete one.
  if ((source as { truncated?: unknown }).truncated === true) throw options.tooLarge();
  if (bytes === 0) {
    throw new BadUserInputError(`${options.field}: ${quote(uploadName(upload))} is empty`, options.field);
  }
  return bytes;
}

/**
 * Reads a small upload (one image to classify) into memory, stopping as soon as it passes
 * `maxBytes`; the same checks as `saveUpload`.
 */
export async function readUpload(upload: UploadedFile, options: SaveUploadOptions): Promise<Buffer> {
  const source = upload.createReadStream();
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of source) {
    bytes += (chunk as Buffer).length;
    if (bytes > options.maxBytes) {
      (source as Readable).destroy();
      throw options.tooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  if ((source as { truncated?: unknown }).truncated === true) throw options.tooLarge();
  if (bytes === 0) {
    throw new BadUserInputError(`${options.field}: ${quote(uploadName(upload))} is empty`, options.field);
  }
  return Buffer.concat(chunks);
}
