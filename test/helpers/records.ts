import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { formatCreated, type JobRecord, type TaskTypeValue } from '../../src/documents';

/** Writes a job record straight into a data folder: a finished job unless `record` says otherwise. */
export function writeJobRecord(dataDir: string, record: Partial<JobRecord> & Pick<JobRecord, 'token'>): void {
  const at = new Date(0).toISOString();
  const full: JobRecord = {
    task_type: 'imageclassification',
    task_name: 'old',
    model: 'resnet18',
    state: 'DEPLOYED',
    epochs: 1,
    history: [],
    error: null,
    submitted_at: at,
    started_at: at,
    finished_at: at,
    worker: null,
    heartbeat_at: null,
    attempts: 1,
    cancel_requested: false,
    ...record,
  };
  const folder = path.join(dataDir, 'training', 'jobs', record.token);
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, 'job.json'), JSON.stringify(full));
}

/**
 * Writes the job record of a model this platform trained and deployed long ago, as the
 * supervisor leaves it; cleanup marks it when the model expires (MODEL_EXPIRED).
 */
export function writeDeployedJobRecord(dataDir: string, token: string, taskType: TaskTypeValue): void {
  writeJobRecord(dataDir, { token, task_type: taskType, model: taskType === 'imageclassification' ? 'resnet18' : 'gru' });
}

const HOUR = 3_600_000;

/**
 * Writes deployed image models straight into a data folder: their `inference.json` entries and
 * stand-in `.pt` and `.onnx` files (enough for listing, downloading, deleting and expiry).
 */
export function seedModels(dataDir: string, models: { token: string; createdHoursAgo?: number }[]): void {
  const inference: Record<string, unknown> = {};
  mkdirSync(path.join(dataDir, 'imageclassification'), { recursive: true });
  for (const { token, createdHoursAgo = 0 } of models) {
    for (const extension of ['pt', 'onnx']) {
      writeFileSync(path.join(dataDir, 'imageclassification', `${token}.${extension}`), `${extension} of ${token}`);
    }
    inference[token] = {
      task_type: 'imageclassification',
      model_filename: `imageclassification/${token}.pt`,
      model_filename_onnx: `imageclassification/${token}.onnx`,
      classes: ['a', 'b'],
      downloadable: true,
      accuracy: 0.9,
      accuracy_plot: 'iVBORw0KGgo=',
      created: formatCreated(new Date(Date.now() - createdHoursAgo * HOUR)),
    };
  }
  writeFileSync(path.join(dataDir, 'inference.json'), JSON.stringify(inference, null, 2));
}
