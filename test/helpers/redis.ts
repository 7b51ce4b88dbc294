import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const REDIS_SERVER = 'redis-server';
/** How long a starting redis-server may take to answer PING, in milliseconds. */
const START_TIMEOUT_MILLIS = 10_000;
/** Free ports picked and lost to another process before giving up. */
const PORT_ATTEMPTS = 5;

/** Servers still running; killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface RedisTestServer {
  /** `redis://127.0.0.1:<port>`, as `FLASH_REDIS_URL` takes it. */
  url: string;
  port: number;
  /** Stops the process (`SIGTERM`, or `SIGKILL` for a crash), keeping its port and folder. */
  halt(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts it again on the same port and folder, after `halt`; resolves once it answers PING. */
  resume(): Promise<void>;
  /** `halt` then `resume`. */
  restart(): Promise<void>;
  /** Stops it for good and deletes its folder. */
  stop(): Promise<void>;
}

export interface RedisTestServerOptions {
  /**
   * Keep the data across `halt`/`resume` (an append-only file, fsync'd on every write), for
   * restart tests. Default `false`: nothing is written to disk.
   */
  persistent?: boolean;
}

/** Whether `redis-server` can run here. */
export function redisServerInstalled(): boolean {
  return spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether the tests of `suite` can start Redis here. Without redis-server they are skipped,
 * with a message saying why; with `FLASH_TEST_REQUIRE_REDIS=1` (set by `.ci/run`) a missing
 * redis-server is an error instead. Use: `(redisTestsRun('…') ? describe : describe.skip)(…)`.
 */
export function redisTestsRun(suite: string): boolean {
  if (redisServerInstalled()) return true;
  const missing = 'redis-server is not installed (apt-get install redis-server; .ci/run installs it)';
  if (process.env.FLASH_TEST_REQUIRE_REDIS === '1') throw new Error(`${missing}, and FLASH_TEST_REQUIRE_REDIS=1`);
  // eslint-disable-next-line no-console
  console.warn(`Skipping "${suite}": ${missing}.`);
  return false;
}

/**
 * A real redis-server on loopback, on a free port, over a temporary folder. The port is found
 * by binding port 0 and closing it; another process can take it in between, so a server that
 * exits before answering is tried again on a new port.
 */
export async function startRedisServer(options: RedisTestServerOptions = {}): Promise<RedisTestServer> {
  const directory = mkdtempSync(path.join(tmpdir(), 'flash-redis-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await freePort();
    try {
      const first = await launch(port, directory, options);
      return control(port, directory, options, first);
    } catch (error) {
      lastError = error;
    }
  }
  rmSync(directory, { recursive: true, force: true });
  throw lastError;
}

function control(port: number, directory: string, options: RedisTestServerOptions, first: ChildProcess): RedisTestServer {
  let child: ChildProcess | undefined = first;
  const halt = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    const running = child;
    child = undefined;
    if (running) await terminate(running, signal);
  };
  const resume = async () => {
    if (child) throw new Error('redis-server is already running');
    child = await launch(port, directory, options);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    halt,
    resume,
    async restart() {
      await halt();
      await resume();
    },
    async stop() {
      await halt();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

async function launch(port: number, directory: string, { persistent = false }: RedisTestServerOptions): Promise<ChildProcess> {
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', directory,
    '--save', '',
    ...(persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    '--daemonize', 'no',
    '--loglevel', 'warning',
  ];
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<never>((_, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`redis-server on port ${port} exited (${signal ?? code}) before answering:\n${output}`)),
    );
  });
  exited.catch(() => undefined);
  const deadline = Date.now() + START_TIMEOUT_MILLIS;
  try {
    for (;;) {
      if (await Promise.race([answersPing(port), exited])) return child;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING:\n${output}`);
      await Promise.race([new Promise((resolve) => setTimeout(resolve, 50)), exited]);
    }
  } catch (error) {
    await terminate(child, 'SIGKILL');
    throw error;
  }
}

/** Whether something on the port answers a Redis PING with PONG. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

function terminate(child: ChildProcess, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** A port that was free a moment ago: bind port 0 on loopback, note the port, close. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
