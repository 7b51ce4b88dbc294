import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import pino from 'pino';

import { buildApp } from '../src/server/app';
import type { TestServer } from './helpers/server';
import { waitForState } from './helpers/training';

jest.setTimeout(240_000);

const ROOT = path.join(__dirname, '..');

interface Example {
  /** The heading the example stands under. */
  section: string;
  /** One command, its continuation lines joined, exactly as the README has it. */
  command: string;
}

/** The commands of the README's `sh` blocks, in order. */
function readmeExamples(markdown: string): Example[] {
  const examples: Example[] = [];
  let section = '';
  let block: string[] | undefined;
  for (const line of markdown.split('\n')) {
    if (block === undefined) {
      if (/^#{1,6} /.test(line)) section = line.replace(/^#+ /, '');
      else if (line.trim() === '```sh') block = [];
      continue;
    }
    if (line.trim() !== '```') {
      block.push(line);
      continue;
    }
    let command = '';
    for (const part of block) {
      command += part;
      if (command.endsWith('\\')) {
        command += '\n';
        continue;
      }
      if (command.trim() && !command.trim().startsWith('#')) examples.push({ section, command });
      command = '';
    }
    block = undefined;
  }
  return examples;
}

/** The examples a test can run: requests with curl, and the example CLI under npm. */
const runnable = (example: Example) => /^(curl |npm run flash )/.test(example.command);

const EXAMPLES = readmeExamples(readFileSync(path.join(ROOT, 'README.md'), 'utf8')).filter(runnable);

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The README's curl and CLI examples, run with bash as they are written, from a folder that
 * stands for the checkout's root: the repository's files, and as `data/` the server's own data
 * folder (where it keeps the admin key it generated). The server listens on a free port: the
 * only change made to a command is that `localhost:4000` becomes that port, and the CLI finds
 * it through `FLASH_URL`.
 */
describe("the README's examples, run as written", () => {
  let checkout: string;
  let server: TestServer & { adminKey: string };
  const queued: string[] = [];

  beforeAll(async () => {
    checkout = mkdtempSync(path.join(tmpdir(), 'flash-readme-'));
    for (const file of ['package.json', 'node_modules', 'tsconfig.json', 'examples']) {
      symlinkSync(path.join(ROOT, file), path.join(checkout, file));
    }
    const dataDir = path.join(checkout, 'data');
    mkdirSync(dataDir);
    // No admin key is configured, so the server generates one in data/.admin-key, as `npm start` does.
    const app = buildApp({
      env: {},
      config: { env: 'test', host: '127.0.0.1', port: 0, dataDir, training: { imageSize: 32 } },
      logger: pino({ level: 'silent' }),
    });
    const { url, adminKey } = await app.start();
    server = {
      url,
      origin: new URL(url).origin,
      dataDir,
      adminKey: adminKey.key,
      async graphql(query, { variables, key } = {}) {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
          body: JSON.stringify({ query, variables }),
        });
        return { status: response.status, ...((await response.json()) as object) };
      },
      stop: () => app.stop(),
    };
  });
  afterAll(async () => {
    await server.stop();
    rmSync(checkout, { recursive: true, force: true });
  });

  function run(command: string): Promise<Outcome> {
    const host = new URL(server.url).host;
    return new Promise((resolve) => {
      execFile(
        'bash',
        ['-c', command.replaceAll('localhost:4000', host)],
        { cwd: checkout, env: { ...process.env, FLASH_URL: server.url }, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  it('include the curl and CLI examples of "Training a model", with the sample datasets', () => {
    const training = EXAMPLES.filter((example) => example.section === 'Training a model').map((example) => example.command);
    expect(training.some((command) => command.startsWith('curl ') && command.includes('@examples/datasets/day-night.zip'))).toBe(true);
    expect(training).toContain('npm run flash -- train examples/datasets/reviews.csv --epochs 3');
    expect(training.some((command) => command.startsWith('npm run flash -- train examples/datasets/day-night.zip'))).toBe(true);
  });

  for (const { section, command } of EXAMPLES) {
    const name = command.split('\n')[0]?.replace(/\s*\\$/, '') ?? command;
    it(`${section}: \`${name.length > 90 ? `${name.slice(0, 89)}…` : name}\``, async () => {
      const outcome = await run(command);
      expect({ code: outcome.code, stderr: outcome.code === 0 ? '' : outcome.stderr }).toEqual({ code: 0, stderr: '' });

      if (command.startsWith('npm run flash -- train ')) {
        // The CLI followed the job to DEPLOYED and printed its token and accuracy.
        expect(outcome.stdout).toMatch(/^Token: \S+$/m);
        expect(outcome.stdout).toMatch(/^Accuracy: \d+\.\d\d%$/m);
        return;
      }
      const answer = JSON.parse(outcome.stdout) as { data?: Record<string, unknown>; errors?: unknown[] };
      expect(answer.errors).toBeUndefined();
      if (answer.data?.setDevMode) {
        expect(answer.data).toEqual({ setDevMode: { devMode: true } });
        // The examples after it submit work, which dev mode refuses.
        await server.graphql('mutation { setDevMode(enabled: false) { devMode } }', { key: server.adminKey });
      } else if (answer.data?.submitTraining) {
        const job = answer.data.submitTraining as { token: string; state: string; queuePosition: number };
        expect(job).toEqual({ token: expect.any(String), state: 'QUEUED', queuePosition: expect.any(Number) });
        queued.push(job.token);
      } else {
        throw new Error(`No check for the answer of this example: ${outcome.stdout}`);
      }
    });
  }

  it('trains the sample datasets to deployed models', async () => {
    expect(queued.length).toBeGreaterThan(0);
    for (const token of queued) expect((await waitForState(server, token, ['DEPLOYED', 'FAILED'], 180_000)).state).toBe('DEPLOYED');
  });
});
