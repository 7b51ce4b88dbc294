import type { EpochRecord, JobRecord } from '../documents';
import type { PlatformPubSub } from '../events/pubsub';
import type { Model } from '../models/model.service';
import { estimateEta, jobState, type TrainingProgress } from './job';
import type { JobRepository } from './job.repository';

/**
 * One progress event: the job's state and history, plus whatever this step adds. Every
 * publisher builds events here, so subscribers always get the same complete shape.
 */
export function progressEvent(
  job: { token: string; epochs: number; history: readonly EpochRecord[] },
  step: Partial<Omit<TrainingProgress, 'token' | 'epochs' | 'history' | 'epoch'>> & Pick<TrainingProgress, 'state'>,
): TrainingProgress {
  return {
    token: job.token,
    epoch: job.history.length,
    epochs: job.epochs,
    metrics: null,
    batch: null,
    etaSeconds: step.state === 'TRAINING' ? estimateEta(job.history, job.epochs) : null,
    message: null,
    queuePosition: null,
    model: null,
    ...step,
    history: [...job.history],
  };
}

/** The event that describes a stored job as it is now (late subscribers start with it). */
export function recordEvent(record: JobRecord, queuePosition: number | null, model: Model | null): TrainingProgress {
  return progressEvent(record, {
    state: jobState(record),
    metrics: record.history.at(-1) ?? null,
    message: record.error,
    queuePosition: record.state === 'QUEUED' ? queuePosition : null,
    model,
  });
}

/** Tells the subscribers of every waiting job its place, after the queue moved. */
export async function publishQueuePositions(jobs: JobRepository, pubsub: PlatformPubSub): Promise<void> {
  const queue = await jobs.queue();
  await Promise.all(
    queue.map(async (entry, position) => {
      if (entry.running) return;
      const record = await jobs.record(entry.token);
      if (record?.state === 'QUEUED') pubsub.publish('TRAINING_PROGRESS', entry.token, recordEvent(record, position, null));
    }),
  );
}
