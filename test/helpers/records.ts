import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { JobRecord, TaskTypeValue } from '../../src/documents';

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
