import type { FlashClient } from '../client';
import { PlatformStatusDocument, TrainingJobDocument, type TrainingJobQuery } from '../../gql/graphql';
import { formatPercent, unreachable, type Streams } from '../output';

/** The platform's status, or with a token the job's state. */
export async function status(client: FlashClient, token: string | undefined, io: Streams): Promise<number> {
  if (token === undefined) {
    const { status } = await client.request(PlatformStatusDocument, {});
    const task = status.taskType ? ` (${status.taskType === 'IMAGE_CLASSIFICATION' ? 'image' : 'text'} classification)` : '';
    io.stdout.write(
      `Training server: ${status.status.toLowerCase()}${task}\n` +
        `Dev mode: ${status.devMode ? 'on (new jobs are refused)' : 'off'}\n` +
        `Model cleanup: ${status.cleanupActive ? 'on' : 'paused'}\n`,
    );
    return 0;
  }
  const { trainingJob: job } = await client.request(TrainingJobDocument, { token });
  io.stdout.write(`Token: ${job.token}\nState: ${job.state}${jobDetail(job)}\n`);
  return 0;
}

type Job = NonNullable<TrainingJobQuery['trainingJob']>;

function jobDetail(job: Job): string {
  switch (job.state) {
    case 'QUEUED':
      return job.queuePosition ? ` (${job.queuePosition} job(s) ahead)` : ' (next)';
    case 'PREPARING':
    case 'EXPORTING':
      return '';
    case 'TRAINING':
      return ` (epoch ${job.history.length}/${job.epochs} done)`;
    case 'DEPLOYED':
      return ` (accuracy ${formatPercent(job.model?.accuracy ?? null, 2)})`;
    case 'FAILED':
    case 'CANCELLED':
      return job.error ? `: ${job.error}` : '';
    case 'DELETED':
      return ' (its model has been deleted)';
    default:
      return unreachable(job.state);
  }
}
