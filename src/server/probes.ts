import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import express from 'express';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

import { ForbiddenError, UnauthenticatedError } from '../errors';
import type { RedisConnections } from '../redis/connections';
import type { ObjectStore } from '../store';
import type { AdminKeyVerifier } from './admin-key';
import { bearerFrom } from './auth';

/** How long `/readyz` waits for the store (and Redis) before answering 503. */
const READINESS_TIMEOUT_MILLIS = 2_000;

/**
 * Who may read `/metrics` where the probes are mounted: anyone (`open`), only a request with
 * the admin key as its bearer (`admin`), or nobody because it is served elsewhere (`elsewhere`).
 */
export type MetricsAccess = { kind: 'open' } | { kind: 'admin'; admin: AdminKeyVerifier } | { kind: 'elsewhere' };

export interface ProbeOptions {
  store: ObjectStore;
  /** Redis, when the platform runs distributed: `/readyz` reports it too. */
  redis: RedisConnections | undefined;
  registry: Registry;
  logger: Logger;
  metrics: MetricsAccess;
}

/**
 * `/healthz` (the process is up), `/readyz` (the store answers, and Redis when configured:
 * `redis: 'up' | 'down'`) and `/metrics` (Prometheus), on the main app or on a port of their
 * own (`listenProbes`).
 */
export function mountProbes(app: express.Express, { store, redis, registry, logger, metrics }: ProbeOptions): void {
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const [storeCheck, redisCheck] = await Promise.allSettled([
      withTimeout(store.ping(), READINESS_TIMEOUT_MILLIS),
      redis ? withTimeout(redis.check(), READINESS_TIMEOUT_MILLIS) : Promise.resolve(),
    ]);
    if (storeCheck.status === 'rejected') logger.warn({ err: storeCheck.reason }, 'Readiness check failed: store unreachable');
    if (redisCheck.status === 'rejected') logger.warn({ err: redisCheck.reason }, 'Readiness check failed: Redis unreachable');
    const ready = storeCheck.status === 'fulfilled' && redisCheck.status === 'fulfilled';
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'unavailable',
      store: store.kind,
      ...(redis ? { redis: redisCheck.status === 'fulfilled' ? 'up' : 'down' } : {}),
    });
  });
  if (metrics.kind === 'elsewhere') return;
  app.get('/metrics', async (req, res) => {
    if (metrics.kind === 'admin') {
      // The metrics name operations, codes and volumes: in production they are the operator's.
      const bearer = bearerFrom(req.headers.authorization);
      if (bearer === undefined || !metrics.admin.matches(bearer)) {
        const error =
          bearer === undefined
            ? new UnauthenticatedError('/metrics needs the admin key: send "Authorization: Bearer <key>".')
            : new ForbiddenError();
        if (bearer === undefined) res.setHeader('www-authenticate', 'Bearer');
        res.status(bearer === undefined ? 401 : 403).json({ errors: [error.toJSON()] });
        return;
      }
    }
    res.setHeader('content-type', registry.contentType);
    res.send(await registry.metrics());
  });
}

export interface ProbeServer {
  port: number;
  /** Stops listening and closes its connections (a scraper's keep-alive one included). */
  close(): Promise<void>;
}

/**
 * The probes on an HTTP server of their own, for a port that only an internal network reaches
 * (`FLASH_METRICS_PORT`), or a process without the GraphQL API.
 */
export async function listenProbes(options: ProbeOptions & { port: number; host: string }): Promise<ProbeServer> {
  const app = express();
  app.disable('x-powered-by');
  mountProbes(app, options);
  const server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function withTimeout<T>(promise: Promise<T>, millis: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${millis} ms`)), millis);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
