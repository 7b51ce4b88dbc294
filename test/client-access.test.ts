import type { FormattedExecutionResult } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { ADMIN_KEY, startTestServer, type TestServer } from './helpers/server';

/**
 * What client developers meet at the edges of the API: credentials over WebSocket, CORS, and
 * the download route (ranges, aborted downloads).
 */

type Result = FormattedExecutionResult<Record<string, unknown>, { code?: string }>;

/** Runs one operation over graphql-ws with the connection params given. */
async function overWebSocket(server: TestServer, query: string, connectionParams: Record<string, unknown>): Promise<Result> {
  const client = createClient({ url: server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams });
  try {
    return await new Promise<Result>((resolve, reject) => {
      client.subscribe<Record<string, unknown>, { code?: string }>({ query }, { next: resolve, error: reject, complete: () => undefined });
    });
  } finally {
    await client.dispose();
  }
}

describe('admin credentials over WebSocket', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it.each(['authorization', 'Authorization', 'AUTHORIZATION', 'AuThOrIzAtIoN'])(
    'are taken from the connection param %s',
    async (name) => {
      const result = await overWebSocket(server, '{ models { token } }', { [name]: `Bearer ${ADMIN_KEY}` });
      expect(result).toEqual({ data: { models: [] } });
    },
  );

  it('when missing, answer UNAUTHENTICATED saying to send them in the connection params, not as a header', async () => {
    for (const params of [{}, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } }]) {
      const result = await overWebSocket(server, '{ models { token } }', params);
      expect(result.errors?.map((error) => error.extensions?.code)).toEqual(['UNAUTHENTICATED']);
      expect(result.errors?.[0]?.message).toContain('connection params');
      expect(result.errors?.[0]?.message).toContain('{ "authorization": "Bearer <key>" }');
    }
    // Over HTTP the header is the way, and the message says so.
    const http = await server.graphql('{ models { token } }');
    expect(http.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(http.errors?.[0]?.message).toContain('Authorization: Bearer <key>');
  });
});
