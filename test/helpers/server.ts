import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import pino, { type Logger } from 'pino';

import type { ConfigOverrides } from '../../src/config';
import { buildApp } from '../../src/server/app';
import type { ObjectStore } from '../../src/store';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';
export const FLASH_SAMPLES = path.join(__dirname, '..', 'fixtures', 'flash-config');

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; path?: string[]; extensions?: { code?: string; [key: string]: unknown } }[];
}

export interface TestServer {
  url: string;
  origin: string;
  dataDir: string;
  /** POSTs an operation; `key` is sent as `Authorization: Bearer <key>`. */
  graphql<T = Record<string, unknown>>(
    query: string,
    options?: { variables?: Record<string, unknown>; key?: string },
  ): Promise<GraphQLResponse<T>>;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  env?: Record<string, string>;
  config?: ConfigOverrides;
  store?: ObjectStore;
  /** Copies the Flash sample documents into the fresh data folder before start. */
  withFlashSamples?: boolean;
  dataDir?: string;
  /** A logger instead of a silent one. */
  logger?: Logger;
}

/** A new temporary data folder; removed by the server's `stop()` when the server made it. */
export function makeDataDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'flash-data-'));
}

/** The real server, on port 0 over loopback, with a fresh data folder and a known admin key. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? makeDataDir();
  if (options.withFlashSamples) cpSync(FLASH_SAMPLES, dataDir, { recursive: true });
  const app = buildApp({
    env: { FLASH_ADMIN_KEY: ADMIN_KEY, ...options.env },
    config: { env: 'test', host: '127.0.0.1', port: 0, dataDir, ...options.config },
    ...(options.store ? { store: options.store } : {}),
    logger: options.logger ?? pino({ level: 'silent' }),
  });
  const { url } = await app.start();
  return {
    url,
    origin: new URL(url).origin,
    dataDir,
    async graphql(query, { variables, key } = {}) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, ...((await response.json()) as object) };
    },
    async stop() {
      await app.stop();
      if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
