import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub, type PubSub, type PubSubEventTarget } from '@graphql-yoga/subscription';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

import type { PlatformState } from '../platform/platform.service';
import type { TrainingProgress } from '../training/job';

/**
 * Topics and payloads of platform events. Services publish here; GraphQL subscriptions listen.
 * In one process the events stay in memory; with Redis (`createRedisPubSub`) every server hears
 * every server's events, and publishers and subscribers do not know the difference.
 */
export type PlatformEvents = {
  STATUS_CHANGED: [PlatformState];
  /** Progress of one job; subscribers listen by token. */
  TRAINING_PROGRESS: [token: string, progress: TrainingProgress];
  /** A model was deleted or expired: whoever holds it in memory lets it go. */
  MODEL_REMOVED: [token: string];
};

export interface PlatformPubSub extends PubSub<PlatformEvents> {
  /**
   * Resolves once the subscriptions made so far hear every server's events: at once in one
   * process; through Redis, once Redis has confirmed them (or at once while it is unreachable:
   * nothing arrives before it is back anyway). A subscriber that then reads the state it
   * follows misses no event published after that read.
   */
  listening(): Promise<void>;
}

/** Events within this process only: the embedded default. */
export function createPlatformPubSub(): PlatformPubSub {
  return { ...createPubSub<PlatformEvents>(), listening: () => Promise.resolve() };
}

export interface RedisPubSubOptions {
  /** Sends events. */
  publisher: Redis;
  /** Receives events; Redis gives a subscribing connection to nothing else. */
  subscriber: Redis;
  /** Prefix of every channel (`<namespace>:TRAINING_PROGRESS:<token>`), one per platform. */
  namespace: string;
  logger: Logger;
}

/** How often a failing publish or subscribe is logged at warn, at most, in milliseconds. */
const FAILURE_LOG_INTERVAL_MILLIS = 60_000;
/** Longest wait in `listening()` for Redis to confirm subscriptions, in milliseconds. */
const LISTENING_TIMEOUT_MILLIS = 2_000;

/**
 * Events through Redis pub/sub, on one channel per topic under the platform's namespace, with
 * graphql-yoga's Redis event target. Redis keeps the order of the messages one connection
 * publishes, so a job's events (all published by the server that runs it) arrive in order.
 * Events published while Redis is unreachable wait in the publisher's offline queue; a
 * subscriber that was cut off misses what was published meanwhile, and catches up from the
 * store (a new `trainingProgress` subscription starts with the job's state and history).
 */
export function createRedisPubSub({ publisher, subscriber, namespace, logger }: RedisPubSubOptions): PlatformPubSub {
  let lastWarning = -Infinity;
  const onFailure = (error: unknown) => {
    const now = Date.now();
    const level = now - lastWarning >= FAILURE_LOG_INTERVAL_MILLIS ? 'warn' : 'debug';
    if (level === 'warn') lastWarning = now;
    logger[level]({ err: error }, 'A Redis event command failed');
  };
  // The event target drops the promises of SUBSCRIBE and UNSUBSCRIBE. One that fails (Redis
  // refuses it, or our own shutdown cuts the connection before it was sent) would be an
  // unhandled rejection, which ends a Node.js process; here it is logged instead.
  for (const command of ['subscribe', 'unsubscribe'] as const) {
    const send = subscriber[command].bind(subscriber) as (...args: unknown[]) => Promise<unknown>;
    Object.assign(subscriber, {
      [command]: (...args: unknown[]) => {
        const reply = send(...args);
        reply.catch(onFailure);
        return reply;
      },
    });
  }

  type Target = PubSubEventTarget<PlatformEvents>;
  const shared = createRedisEventTarget<Parameters<Target['dispatchEvent']>[0]>({
    publishClient: publisher,
    subscribeClient: subscriber,
    serializer: eventSerializer,
  });
  const prefix = `${namespace}:`;
  const target = {
    addEventListener: (type, callback) => shared.addEventListener(prefix + type, callback),
    removeEventListener: (type, callback) => shared.removeEventListener(prefix + type, callback),
    // Published here rather than by the shared target, which drops the promise (see above).
    dispatchEvent: (event) => {
      publisher.publish(prefix + event.type, eventSerializer.stringify(event.detail)).catch(onFailure);
      return true;
    },
  } as Target;

  return {
    ...createPubSub<PlatformEvents>({ eventTarget: target }),
    // Redis answers a connection's commands in order: once it answers a PING sent after the
    // SUBSCRIBEs, they are in force.
    listening: async () => {
      if (subscriber.status !== 'ready') return;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, LISTENING_TIMEOUT_MILLIS);
      });
      await Promise.race([subscriber.ping().catch(onFailure), timeout]);
      clearTimeout(timer);
    },
  };
}

const DATE = '$date';

/**
 * JSON that keeps `Date`s, for events that leave the process: a deployed model's `createdAt` and
 * `expiresAt` are Dates, as they are for subscribers in the same process.
 */
export const eventSerializer = {
  stringify(value: unknown): string {
    return JSON.stringify(value, function replace(this: Record<string, unknown>, key: string, replaced: unknown) {
      const original = this[key];
      if (!(original instanceof Date)) return replaced;
      return { [DATE]: Number.isNaN(original.getTime()) ? null : original.toISOString() };
    });
  },
  parse(text: string): unknown {
    return JSON.parse(text, (_key, value: unknown) => {
      if (typeof value !== 'object' || value === null || Object.keys(value).length !== 1 || !(DATE in value)) return value;
      const iso = (value as { [DATE]: unknown })[DATE];
      return typeof iso === 'string' ? new Date(iso) : new Date(Number.NaN);
    });
  },
};
