import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { JobRecord, TaskTypeValue } from '../../src/documents';

/**
 * Writes the job record of a model this platform trained and deployed long ago, as the
 * supervisor leaves it; cleanup marks it when the model expires (MODEL_EXPIRED).
 */
export function writeDeployedJobRecord(dataDir: string, token: string, taskType: TaskTypeValue): void {
  const at = new Date(0).toISOString();
  const record: JobRecord = {
    token,
    task_type: taskType,
    task_name: 'old',
    model: taskType === 'imageclassification' ? 'resnet18' : 'gru',
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
  };
  const folder = path.join(dataDir, 'training', 'jobs', token);
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, 'job.json'), JSON.stringify(record));
}
