import { performance } from 'node:perf_hooks';

export interface LoadOptions {
  /** Concurrent clients, each sending its next request as soon as its last one is answered. */
  clients: number;
  /** Requests sent (by all clients) before measuring, not recorded. */
  warmup: number;
  /** Requests measured: at least `minRequests`, then until `maxMillis` or `maxRequests`. */
  minRequests: number;
  maxRequests: number;
  maxMillis: number;
  /** Hard stop for the whole window, `minRequests` included. Default: `4 * maxMillis`, at least 30 s. */
  capMillis?: number;
}

export interface LoadResult {
  /** Milliseconds per measured request, in completion order. */
  latencies: number[];
  /** From the first measured request sent to the last one answered. */
  elapsedMillis: number;
}

/**
 * A closed loop: `clients` lanes, each calling `request` back to back. Bounded in requests and
 * in time. The first failure stops every lane and rejects: a benchmark of failing requests
 * measures nothing.
 */
export async function closedLoop(request: (lane: number) => Promise<void>, options: LoadOptions): Promise<LoadResult> {
  const { clients, warmup, minRequests, maxRequests, maxMillis } = options;
  const capMillis = options.capMillis ?? Math.max(4 * maxMillis, 30_000);
  let failure: unknown;

  let warmed = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, lane) => {
      while (warmed < warmup && failure === undefined) {
        warmed++;
        await request(lane).catch((error: unknown) => (failure ??= error));
      }
    }),
  );
  if (failure !== undefined) throw failure;

  const latencies: number[] = [];
  let sent = 0;
  const started = performance.now();
  const more = () => {
    if (failure !== undefined || sent >= maxRequests) return false;
    const elapsed = performance.now() - started;
    if (elapsed >= capMillis) return false;
    return sent < minRequests || elapsed < maxMillis;
  };
  await Promise.all(
    Array.from({ length: clients }, async (_, lane) => {
      while (more()) {
        sent++;
        const begin = performance.now();
        try {
          await request(lane);
          latencies.push(performance.now() - begin);
        } catch (error) {
          failure ??= error;
        }
      }
    }),
  );
  if (failure !== undefined) throw failure;
  return { latencies, elapsedMillis: performance.now() - started };
}
