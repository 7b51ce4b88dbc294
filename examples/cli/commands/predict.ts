import path from 'node:path';

import type { FlashClient } from '../client';
import { openFile } from '../dataset';
import { ClassifyImagesDocument, ClassifyTextsDocument } from '../../gql/graphql';
import { formatPercent, table, type Streams } from '../output';

export interface PredictOptions {
  texts: string[];
  topK?: number;
}

/** Classifies images (uploads) or texts in one request and prints the top classes of each. */
export async function predict(
  client: FlashClient,
  token: string,
  files: string[],
  { texts, topK }: PredictOptions,
  io: Streams,
): Promise<number> {
  const predictions =
    files.length > 0
      ? (await client.request(ClassifyImagesDocument, { token, images: await Promise.all(files.map(openFile)), topK })).classifyImages
      : (await client.request(ClassifyTextsDocument, { token, texts, topK })).classifyTexts;
  const inputs = files.length > 0 ? files.map((file) => path.basename(file)) : texts.map(shorten);
  const rows = (predictions ?? []).flatMap((prediction, i) =>
    prediction.top.map(({ label, probability }, rank) => [rank === 0 ? (inputs[i] ?? '') : '', String(rank + 1), label, formatPercent(probability, 2)]),
  );
  io.stdout.write(table([['INPUT', '#', 'LABEL', 'PROBABILITY'], ...rows], new Set([1, 3])));
  return 0;
}

function shorten(text: string): string {
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}
