import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { z } from 'zod';

import type { InferenceEntry } from '../documents/schemas';
import { StoreUnavailableError } from '../errors';
import { PAD_ID, PAD_TOKEN, UNK_ID, UNK_TOKEN, Vocabulary } from '../preprocessing/text';
import { InvalidKeyError, type ObjectStore } from '../store/object-store';
import { ModelNotServableError } from './errors';

/** `metadata.json` of a text model (trainer/README.md, "Job folder: outputs"). */
const textMetadataSchema = z.looseObject({
  vocab: z
    .array(z.string())
    .min(2)
    .refine((vocab) => vocab[PAD_ID] === PAD_TOKEN && vocab[UNK_ID] === UNK_TOKEN, 'must start with <pad> and <unk>'),
  classes: z.array(z.string()).min(2),
  pad_id: z.literal(PAD_ID).optional(),
});

export interface TextMetadata {
  vocabulary: Vocabulary;
  classes: string[];
}

/**
 * Checks that an entry names servable artifacts, before anything is downloaded: an ONNX
 * export, and for text models a JSON vocabulary (the original platform's `.pkl` files are
 * Python pickles, which we never load).
 */
export function servableFiles(entry: InferenceEntry): { onnx: string; metadata: string | null } {
  const onnx = entry.model_filename_onnx;
  if (!onnx) throw new ModelNotServableError('NO_ONNX_MODEL');
  if (entry.task_type === 'imageclassification') {
    if (!entry.classes || entry.classes.length < 2) throw new ModelNotServableError('ARTIFACT_INVALID');
    return { onnx, metadata: null };
  }
  const metadata = entry.metadata_filename;
  if (!metadata) throw new ModelNotServableError('ARTIFACT_INVALID');
  if (!metadata.toLowerCase().endsWith('.json')) throw new ModelNotServableError('LEGACY_METADATA');
  return { onnx, metadata };
}

/**
 * Streams `key` into `folder`; the local name is made here, never from the key. A missing
 * object or a key the store refuses means the model cannot be served; any other store failure
 * is the store's (`STORE_UNAVAILABLE`, retryable).
 */
export async function download(store: ObjectStore, key: string, folder: string, name: string): Promise<string> {
  const file = path.join(folder, name);
  let found: boolean;
  try {
    found = await store.getFile(key, file);
  } catch (error) {
    if (error instanceof InvalidKeyError) throw new ModelNotServableError('ARTIFACT_MISSING', { cause: error });
    throw new StoreUnavailableError(error);
  }
  if (!found) throw new ModelNotServableError('ARTIFACT_MISSING');
  return file;
}

export async function readTextMetadata(file: string): Promise<TextMetadata> {
  let parsed: z.infer<typeof textMetadataSchema>;
  try {
    parsed = textMetadataSchema.parse(JSON.parse(await readFile(file, 'utf8')));
  } catch (error) {
    throw new ModelNotServableError('ARTIFACT_INVALID', { cause: error });
  }
  return { vocabulary: new Vocabulary(parsed.vocab), classes: parsed.classes };
}
