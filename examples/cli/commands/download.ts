import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';

import type { FlashClient } from '../client';
import { formatBytes } from '../dataset';
import { DownloadModelDocument, type ModelFormat } from '../../gql/graphql';
import type { Streams } from '../output';

export interface DownloadOptions {
  format: ModelFormat;
  /** A file, or a folder to save into; default: the link's file name in the current folder. */
  output?: string;
}

/**
 * Asks for an expiring link and saves what it points at; a text model's vocabulary, which its
 * weights need, is saved beside them as `<name>_metadata.json`.
 */
export async function download(client: FlashClient, token: string, { format, output }: DownloadOptions, io: Streams): Promise<number> {
  const { downloadModel: link } = await client.request(DownloadModelDocument, { token, format });
  if (!link) throw new Error('The server sent no download link.');
  const isFolder = output !== undefined && (await stat(output).catch(() => null))?.isDirectory();
  const target = output === undefined ? link.filename : isFolder ? path.join(output, link.filename) : output;
  await save(client, link.url, target, io);
  if (link.vocabularyUrl) {
    const { dir, name } = path.parse(target);
    await save(client, link.vocabularyUrl, path.join(dir, `${name}_metadata.json`), io);
  }
  return 0;
}

/** Streams a download to a temporary file and renames it, so no half file is ever left. */
async function save(client: FlashClient, url: string, target: string, io: Streams): Promise<void> {
  const response = await client.download(url);
  if (!response.body) throw new Error(`The download of ${path.basename(target)} is empty.`);
  const partial = `${target}.part`;
  try {
    await pipeline(Readable.fromWeb(response.body as ReadableStream<Uint8Array>), createWriteStream(partial));
    await rename(partial, target);
  } finally {
    await rm(partial, { force: true });
  }
  io.stdout.write(`Saved ${target} (${formatBytes((await stat(target)).size)})\n`);
}
