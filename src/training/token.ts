import { randomInt } from 'node:crypto';

import type { TaskTypeValue } from '../documents';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** 20 characters of 36 symbols: log2(36^20) ≈ 103 bits, against the original's five (≈ 26). */
const RANDOM_LENGTH = 20;

const PREFIX: Record<TaskTypeValue, string> = {
  imageclassification: 'imageClassification',
  textclassification: 'textClassification',
};

/**
 * A model token in the samples' shape, `imageClassification-<task_name>-<random>`, with spaces
 * in the task name as `_`. The random part comes from the CSPRNG (`randomInt` draws without
 * modulo bias); the token is the only credential for its model.
 */
export function createToken(taskType: TaskTypeValue, taskName: string): string {
  let random = '';
  for (let i = 0; i < RANDOM_LENGTH; i++) random += ALPHABET[randomInt(ALPHABET.length)];
  return `${PREFIX[taskType]}-${taskName.trim().replace(/\s+/g, '_')}-${random}`;
}
