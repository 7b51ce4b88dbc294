import type { FlashClient } from '../client';
import { CancelTrainingDocument, DeleteModelDocument, ModelsDocument } from '../../gql/graphql';
import { formatPercent, table, type Streams } from '../output';

/** Removes a queued job, or stops a running one. */
export async function cancel(client: FlashClient, token: string, io: Streams): Promise<number> {
  const { cancelTraining: job } = await client.request(CancelTrainingDocument, { token });
  io.stdout.write(`Job ${token}: ${job.state}\n`);
  return 0;
}

/** Deletes a deployed model and its files. */
export async function remove(client: FlashClient, token: string, io: Streams): Promise<number> {
  await client.request(DeleteModelDocument, { token });
  io.stdout.write(`Deleted model ${token}\n`);
  return 0;
}

/** Admin: every deployed model, newest first. */
export async function models(client: FlashClient, io: Streams): Promise<number> {
  const { models } = await client.request(ModelsDocument, {});
  if (models.length === 0) {
    io.stdout.write('No models are deployed.\n');
    return 0;
  }
  const rows = models.map((model) => [
    model.token,
    model.taskType === 'IMAGE_CLASSIFICATION' ? 'image' : 'text',
    formatPercent(model.accuracy, 2),
    model.createdAt,
    model.expiresAt ?? 'never',
  ]);
  io.stdout.write(table([['TOKEN', 'TASK', 'ACCURACY', 'CREATED', 'EXPIRES'], ...rows], new Set([2])));
  return 0;
}
