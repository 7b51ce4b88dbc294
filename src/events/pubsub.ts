import { createPubSub } from '@graphql-yoga/subscription';

import type { PlatformState } from '../platform/platform.service';

/**
 * Topics and payloads of platform events. Services publish here; GraphQL subscriptions listen.
 * The in-process implementation can be swapped for a shared one (Redis, …) when parts of the
 * platform run in other processes, without touching publishers or subscribers.
 */
export type PlatformEvents = {
  STATUS_CHANGED: [PlatformState];
};

export type PlatformPubSub = ReturnType<typeof createPlatformPubSub>;

export function createPlatformPubSub() {
  return createPubSub<PlatformEvents>();
}
