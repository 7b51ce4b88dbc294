import { createHash } from 'node:crypto';

import { Redis } from 'ioredis';
import type { Logger } from 'pino';

import type { RedisConfig, StoreConfig } from '../config';

/** Longest wait between two reconnection attempts, in milliseconds. */
const MAX_RECONNECT_DELAY_MILLIS = 2_000;
/** How long `close()` lets a connection finish what it sent before cutting it, in milliseconds. */
const QUIT_TIMEOUT_MILLIS = 1_000;

/**
 * The process's connections to Redis, each named (`flash:<name>` in `CLIENT LIST` and the logs).
 *
 * A lost connection never ends the process: ioredis reconnects for ever (at most every 2 s),
 * and commands wait in its offline queue meanwhile rather than failing after some retries
 * (`maxRetriesPerRequest: null`, which BullMQ's workers require too). An outage is logged once
 * at warn when it starts and once at info when it ends, not at every attempt. The URL may hold a
 * password and is never logged.
 */
export class RedisConnections {
  private readonly connections = new Map<string, Redis>();
  private closing = false;

  constructor(
    private readonly config: RedisConfig,
    private readonly logger: Logger,
  ) {}

  /** A new connection; it connects at once, in the background. */
  open(name: string): Redis {
    if (this.closing) throw new Error('The Redis connections are closed');
    if (this.connections.has(name)) throw new Error(`A Redis connection named ${name} is open already`);
    const connection = new Redis(this.config.url, {
      connectionName: `flash:${name}`,
      maxRetriesPerRequest: null,
      retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MILLIS),
    });
    const logger = this.logger.child({ component: 'redis', connection: name });
    let lost = false;
    const onLost = (error?: Error) => {
      if (this.closing || lost) return;
      lost = true;
      logger.warn({ err: error }, 'Redis is unreachable: reconnecting (events wait until it is back)');
    };
    connection.on('error', onLost);
    connection.on('close', () => onLost());
    connection.on('ready', () => {
      if (!lost) return;
      lost = false;
      logger.info('Redis connection restored');
    });
    this.connections.set(name, connection);
    return connection;
  }

  /** Resolves when every connection is up and Redis answers a PING; rejects saying which is not. */
  async check(): Promise<void> {
    for (const [name, connection] of this.connections) {
      if (connection.status !== 'ready') throw new Error(`Redis connection ${name} is ${connection.status}`);
    }
    const [first] = this.connections.values();
    await first?.ping();
  }

  /**
   * Closes every connection: politely (`QUIT`, which lets sent commands finish) when it is up,
   * at once when it is not. Commands still waiting are refused; their callers handle that.
   */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.connections.values()].map(async (connection) => {
        if (connection.status === 'ready') {
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<void>((resolve) => {
            timer = setTimeout(resolve, QUIT_TIMEOUT_MILLIS);
          });
          await Promise.race([connection.quit().catch(() => undefined), timeout]);
          clearTimeout(timer);
        }
        connection.disconnect();
      }),
    );
    this.connections.clear();
  }
}

/**
 * The prefix of everything one platform keeps in Redis (event channels now, queues later),
 * derived from its store: servers on one bucket share it, and two platforms on one Redis
 * (two buckets, or two data folders) never hear each other.
 */
export function redisNamespace(store: StoreConfig): string {
  const identity = store.kind === 's3' ? `s3|${store.endpoint ?? `aws:${store.region}`}|${store.bucket}` : `fs|${store.root}`;
  const digest = createHash('sha256').update(identity).digest('hex').slice(0, 12);
  return `flash:${store.kind === 's3' ? store.bucket : 'fs'}:${digest}`;
}
