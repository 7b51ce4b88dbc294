import { createPubSub } from '@graphql-yoga/subscription';

import type { PlatformState } from '../platform/platform.service';
import type { TrainingProgress } from '../training/job';

/**
 * Topics and payloads of platform events. Services publish here; GraphQL subscriptions listen.
 * The in-process implementation can be swapped for a shared one (Redis, …) when the training
 * supervisor runs as a separate worker, without touching publishers or subscribers.
 */
export type PlatformEvents = {
  STATUS_CHANGED: [PlatformState];
  /** Progress of one job; subscribers listen by token. */
  TRAINING_PROGRESS: [token: string, progress: TrainingProgress];
  /** A model was deleted or expired: whoever holds it in memory lets it go. */
  MODEL_REMOVED: [token: string];
};

export type PlatformPubSub = ReturnType<typeof createPlatformPubSub>;

export function createPlatformPubSub() {
  return createPubSub<PlatformEvents>();
}
