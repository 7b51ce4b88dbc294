import { createWriteStream } from 'node:fs';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { AppError, BadUserInputError } from '../errors';
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
  const source = openUpload(upload, options.field);
  let bytes = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (bytes > options.maxBytes) callback(options.tooLarge());
      else callback(null, chunk);
    },
  });
  // At its own size limit, graphql-upload-minimal unpipes the file stream from every reader:
  // the pipeline below would then wait forever. Its "limit" event is the one sign left.
  source.once('limit', () => cap.destroy(options.tooLarge()));
  try {
    await pipeline(source, cap, createWriteStream(destination, { flags: 'wx', mode: 0o600 }));
  } catch (error) {
    throw transferError(error, options.field, uploadName(upload));
  }
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
  const source = openUpload(upload, options.field);
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of source) {
      bytes += (chunk as Buffer).length;
      if (bytes > options.maxBytes) {
        (source as Readable).destroy();
        throw options.tooLarge();
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    throw transferError(error, options.field, uploadName(upload));
  }
  if ((source as { truncated?: unknown }).truncated === true) throw options.tooLarge();
  if (bytes === 0) {
    throw new BadUserInputError(`${options.field}: ${quote(uploadName(upload))} is empty`, options.field);
  }
  return Buffer.concat(chunks);
}

/**
 * The upload an input names, once the multipart parser has reached it. A map entry whose file
 * the body never sends rejects here (graphql-upload-minimal's "File missing in the request").
 */
export async function receiveUpload(upload: UploadInput, field: string): Promise<UploadedFile> {
  try {
    return await upload;
  } catch (error) {
    throw transferError(error, field, 'the uploaded file');
  }
}

function openUpload(upload: UploadedFile, field: string): NodeJS.ReadableStream | Readable {
  try {
    return upload.createReadStream();
  } catch (error) {
    // graphql-upload-minimal refuses to read one file part twice (one part mapped to two inputs).
    throw transferError(error, field, uploadName(upload));
  }
}

/**
 * Failures of the multipart transfer are the client's: a body that ends or breaks off inside a
 * file (busboy's "Unexpected end of form"), a file the map names but the body lacks, one part
 * mapped to two inputs. Our own refusals and the server's I/O errors (they carry a `syscall`)
 * stay what they are.
 */
function transferError(error: unknown, field: string, name: string): unknown {
  if (error instanceof AppError) return error;
  if (typeof error === 'object' && error !== null && 'syscall' in error) return error;
  return new BadUserInputError(
    `${field}: ${quote(name)} did not arrive whole (the request ended or broke off inside it, or sent it for two inputs)`,
    field,
  );
}
