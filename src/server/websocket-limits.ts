import type { Logger } from 'pino';
import type { WebSocketServer } from 'ws';

/** What this limit needs of graphql-ws's connection context: the operations it runs, by id. */
interface Connection {
  readonly subscriptions: Readonly<Record<string, unknown>>;
}

/**
 * At most `max` operations at a time on one graphql-ws connection (subscriptions, and queries
 * or mutations sent over it while they run). Without a cap one socket could open subscriptions
 * until the server spent its memory and time on them alone (20,000 stalled it).
 *
 * Why it checks graphql-ws's own `subscriptions`: graphql-ws adds an operation there before
 * `onSubscribe` runs and removes it synchronously when the client completes it or when it ends.
 * A connection's frames are handled one after another up to `onSubscribe` (which is synchronous
 * here), so counting the admitted ids still listed there is exact even for a burst of frames,
 * and a slot is free as soon as the client's `complete` frame was read.
 */
export class SubscriptionLimit {
  private readonly admitted = new WeakMap<Connection, Set<string>>();

  constructor(private readonly max: number) {}

  /** Admits operation `id` on `connection`; `false` when the connection is at the limit. */
  admit(connection: Connection, id: string): boolean {
    let ids = this.admitted.get(connection);
    if (!ids) {
      ids = new Set();
      this.admitted.set(connection, ids);
    }
    for (const admitted of ids) if (!(admitted in connection.subscriptions)) ids.delete(admitted);
    if (ids.size >= this.max) return false;
    ids.add(id);
    return true;
  }
}

/**
 * ws reports what a client did wrong on its socket (a frame over `maxPayload`, an invalid
 * opcode or UTF-8) as an `error` event, after it has already started closing the connection
 * with the code that says why (1009, 1002, 1007). graphql-ws takes every such event for a bug
 * of the server and prints "Internal error … Please check your implementation" with a stack to
 * stderr, outside the JSON logs, once per hostile frame. This replaces its listener (it is
 * registered after `useServer`, so it runs after graphql-ws added its own) with one log line.
 */
export function logWebSocketErrors(wsServer: WebSocketServer, logger: Logger): void {
  wsServer.on('connection', (socket) => {
    socket.removeAllListeners('error');
    socket.on('error', (error: Error & { code?: unknown }) => {
      if (typeof error.code === 'string' && error.code.startsWith('WS_ERR_')) {
        logger.info({ code: error.code, reason: error.message }, 'WebSocket closed: the client broke the protocol or a limit');
      } else {
        logger.warn({ err: error }, 'WebSocket closed after an error');
      }
    });
  });
}
