import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';

import { EtaEstimator, type TrainingEvent } from '../examples/cli/progress';
import { type Environment, main } from '../examples/cli/main';
import { ADMIN_KEY, startTestServer, type TestServer } from './helpers/server';
import { classImage, multipart, sentimentCsv, SUBMIT, textInput, waitForState } from './helpers/training';

jest.setTimeout(120_000);

/** Collects what the CLI writes; `isTTY` makes it look like a terminal, for the live bar. */
class Capture extends Writable {
  text = '';
  readonly columns = 120;
  constructor(readonly isTTY = false) {
    super();
  }
  override _write(chunk: Buffer, _encoding: string, done: () => void) {
    this.text += chunk.toString();
    done();
  }
}

const ROOT = path.join(__dirname, '..');

describe('the flash command-line client', () => {
  let server: TestServer;
  let work: string;

  /**
   * Runs the CLI in-process against the test server (`--url`, unless `url` is false), in an
   * environment of only `env`.
   */
  async function flash(args: string[], { tty = false, env = {}, url = true }: { tty?: boolean; env?: Environment; url?: boolean } = {}) {
    const stdout = new Capture();
    const stderr = new Capture(tty);
    const code = await main([...args, ...(url ? ['--url', server.url] : [])], { stdout, stderr }, env);
    return { code, stdout: stdout.text, stderr: stderr.text };
  }

  const tokenIn = (stdout: string) => /^Token: (\S+)$/m.exec(stdout)?.[1] as string;
  // Digests, not buffers: Jest compares buffers byte by byte, which takes seconds per megabyte.
  const digest = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
  const stored = (key: string) => digest(path.join(server.dataDir, key));
  const modelAccuracy = async (token: string) =>
    (await server.graphql<{ model: { accuracy: number } }>('query($t: ID!) { model(token: $t) { accuracy } }', { variables: { t: token } }))
      .data?.model.accuracy as number;

  beforeAll(async () => {
    server = await startTestServer({
      config: {
        // Small, fast jobs; no ImageNet weights, so that an IMAGENET job fails.
        training: { imageSize: 32, batchProgressSeconds: 0, weightsDir: '/nonexistent/weights' },
        datasets: { minImagesPerClass: 4 },
      },
    });
    work = mkdtempSync(path.join(tmpdir(), 'flash-cli-'));
    writeFileSync(path.join(work, 'reviews.csv'), sentimentCsv());
    for (const megabytes of [3, 20]) writeFileSync(path.join(work, `big-${megabytes}.csv`), Buffer.alloc(megabytes * 1024 * 1024, 0x61));
    for (const [index, name] of ['circles', 'squares'].entries()) {
      mkdirSync(path.join(work, 'shapes', name), { recursive: true });
      for (let i = 0; i < 5; i++) writeFileSync(path.join(work, 'shapes', name, `${i}.png`), await classImage(index, i));
    }
  });
  afterAll(async () => {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  });

  describe('with a text model trained from a CSV', () => {
    let token: string;
    let train: { code: number; stdout: string; stderr: string };

    beforeAll(async () => {
      train = await flash([
        'train', path.join(work, 'reviews.csv'), '--name', 'reviews', '--model', 'GRU',
        '--lr', '0.01', '--batch-size', '4', '--epochs', '3', '--split', '75:25',
      ]);
      token = tokenIn(train.stdout);
    });

    it('exits 0 and prints the token and the deployed accuracy', async () => {
      expect(train.code).toBe(0);
      expect(token).toMatch(/reviews/);
      const accuracy = await modelAccuracy(token);
      expect(train.stdout).toContain(`Accuracy: ${(accuracy * 100).toFixed(2)}%\n`);
    });

    it('shows each state and epoch as lines when stderr is not a terminal', () => {
      const states = train.stderr.split('\n').filter((line) => /^(queued|preparing|training|exporting|deployed)/.test(line));
      expect(states.map((line) => line.split(/[,:]/)[0])).toEqual(['queued', 'preparing', 'training', 'exporting', 'deployed']);
      expect(train.stderr).toMatch(/^epoch 1\/3 .*val acc \d+\.\d%/m);
      expect(train.stderr).toMatch(/^epoch 3\/3 /m);
    });

    it('prints the top-k table of texts, as the API classifies them', async () => {
      const texts = ['wonderful great film, love', 'awful boring film, hate'];
      const result = await flash(['predict', token, '--text', texts[0] as string, '--text', texts[1] as string, '--top-k', '2']);
      expect(result.code).toBe(0);
      const api = await server.graphql<{ classifyTexts: { label: string; top: { label: string }[] }[] }>(
        'mutation($t: ID!, $x: [String!]!) { classifyTexts(token: $t, texts: $x, topK: 2) { label top { label } } }',
        { variables: { t: token, x: texts } },
      );
      const [header, ...rows] = result.stdout.trimEnd().split('\n');
      expect(header).toMatch(/^INPUT +# +LABEL +PROBABILITY$/);
      expect(rows).toHaveLength(4);
      const labels = rows.map((row) => row.split(/\s{2,}/).at(-2));
      expect(labels).toEqual(api.data?.classifyTexts.flatMap((prediction) => prediction.top.map((top) => top.label)));
      expect(rows[0]).toMatch(/^wonderful great film, love +1 +\S+ +\d+\.\d\d%$/);
    });

    it('downloads the ONNX weights and the vocabulary exactly as stored', async () => {
      const folder = mkdtempSync(path.join(work, 'download-'));
      const result = await flash(['download', token, '--format', 'onnx', '-o', folder]);
      expect(result.code).toBe(0);
      expect(readdirSync(folder).sort()).toEqual([`${token}.onnx`, `${token}_metadata.json`]);
      expect(digest(path.join(folder, `${token}.onnx`))).toBe(stored(`textclassification/${token}.onnx`));
      expect(digest(path.join(folder, `${token}_metadata.json`))).toBe(stored(`textclassification/${token}_metadata.json`));
      expect(result.stdout).toContain(`Saved ${path.join(folder, `${token}.onnx`)}`);
    });
    it('prints how to predict with the token and download the model after DEPLOYED', () => {
      expect(train.stderr).toContain(`flash predict ${token} --text "what a wonderful film" --url ${server.url}\n`);
      expect(train.stderr).toContain(`flash download ${token} --format onnx --url ${server.url}`);
    });

    it('saves a download named by a relative path in the folder the user ran npm from (INIT_CWD)', async () => {
      const folder = mkdtempSync(path.join(work, 'here-'));
      const result = await flash(['download', token, '-o', 'reviews.onnx'], { env: { INIT_CWD: folder } });
      expect(result.code).toBe(0);
      expect(readdirSync(folder).sort()).toEqual(['reviews.onnx', 'reviews_metadata.json']);
      expect(digest(path.join(folder, 'reviews.onnx'))).toBe(stored(`textclassification/${token}.onnx`));
    });

    it('shows the job of a token as DEPLOYED with its accuracy', async () => {
      const result = await flash(['status', token]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`Token: ${token}\nState: DEPLOYED (accuracy ${((await modelAccuracy(token)) * 100).toFixed(2)}%)\n`);
    });
  });

  describe('with an image model trained from a folder of class folders', () => {
    let token: string;
    let train: { code: number; stdout: string; stderr: string };

    beforeAll(async () => {
      train = await flash(
        ['train', path.join(work, 'shapes'), '--model', 'MOBILENET_V2', '--batch-size', '4', '--epochs', '2', '--split', '70 : 30'],
        { tty: true },
      );
      token = tokenIn(train.stdout);
    });

    it('uploads the classes, draws a live progress bar on a terminal and deploys', async () => {
      expect(train.code).toBe(0);
      expect(token).toMatch(/shapes/);
      expect(train.stderr).toContain('(2 classes, 10 images)');
      // cli-progress redraws at a limited rate, so which updates get a frame of their own varies:
      // batch progress, and an epoch with its ETA and accuracy, each show at some point.
      expect(train.stderr).toMatch(/\| training \| epoch \d\/2 \| batch \d+\/\d+ \|/);
      expect(train.stderr).toMatch(/\| training \| epoch [12]\/2 \| batch \S+ \| ETA \S+ \| val acc \d+\.\d%/);
      expect(train.stderr).toMatch(/100% \| deployed \| epoch 2\/2/);
      // Every event gets a frame: the validation after each epoch's last batch, the export after
      // the last epoch, and an ETA from the first batches, before the first epoch has ended.
      expect(train.stderr).toMatch(/\| validating \| epoch 1\/2 \| batch (\d+)\/\1 \| ETA \d+s \| val acc -/);
      expect(train.stderr).toMatch(/\| validating \| epoch 2\/2 \| batch (\d+)\/\1 \|/);
      expect(train.stderr).toMatch(/\| exporting \| epoch 2\/2 \|/);
      const accuracy = await modelAccuracy(token);
      expect(train.stdout).toContain(`Accuracy: ${(accuracy * 100).toFixed(2)}%\n`);
    });

    it('classifies image files when run as a child process', async () => {
      const images = ['0.png', '1.png'].map((file, i) => path.join(work, 'shapes', i === 0 ? 'circles' : 'squares', file));
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['-r', 'ts-node/register/transpile-only', 'examples/cli/main.ts', 'predict', token, ...images, '--top-k', '1', '--url', server.url],
        { cwd: ROOT },
      );
      const api = await multipart<{ classifyImages: { label: string }[] }>(
        server,
        'mutation($t: ID!, $i: [Upload!]!) { classifyImages(token: $t, images: $i, topK: 1) { label } }',
        { t: token, i: [null, null] },
        images.map((file, i) => ({ path: `variables.i.${i}`, filename: path.basename(file), content: readFileSync(file) })),
      );
      const labels = api.data?.classifyImages.map((prediction) => prediction.label) ?? [];
      expect(stdout).toMatch(new RegExp(`^0\\.png +1 +${labels[0]} +\\d+\\.\\d\\d%$`, 'm'));
      expect(stdout).toMatch(new RegExp(`^1\\.png +1 +${labels[1]} +\\d+\\.\\d\\d%$`, 'm'));
    });

    it('downloads the TorchScript weights to the file named, without a vocabulary', async () => {
      const folder = mkdtempSync(path.join(work, 'download-'));
      const result = await flash(['download', token, '--format', 'pytorch', '-o', path.join(folder, 'shapes.pt')]);
      expect(result.code).toBe(0);
      expect(readdirSync(folder)).toEqual(['shapes.pt']);
      expect(digest(path.join(folder, 'shapes.pt'))).toBe(stored(`imageclassification/${token}.pt`));
    });
  });

  it('exits 1 with the reason when the job fails', async () => {
    const result = await flash(['train', path.join(work, 'shapes'), '--name', 'doomed', '--epochs', '1', '--pretrain', 'IMAGENET']);
    expect(result.code).toBe(1);
    expect(tokenIn(result.stdout)).toMatch(/doomed/);
    expect(result.stderr).toMatch(/^Training failed: ImageNet weights .* not installed/m);
  });

  it('prints errors with their code and field, and exits 1', async () => {
    const unknown = await flash(['predict', 'textClassification-none-0000', '--text', 'hello']);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toMatch(/^error: \[MODEL_NOT_FOUND\] /m);

    const split = await flash(['train', path.join(work, 'reviews.csv'), '--split', '70 : 20']);
    expect(split.code).toBe(1);
    expect(split.stderr).toMatch(/^error: \[BAD_USER_INPUT\] .*\(field: dataSplit\)$/m);
  });

  it('reads the server URL from FLASH_URL, and --url wins over it', async () => {
    const fromEnv = await flash(['status'], { env: { FLASH_URL: server.url }, url: false });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stdout).toMatch(/^Training server: (sleeping|active)/);

    const overridden = await flash(['status'], { env: { FLASH_URL: 'http://127.0.0.1:59999/graphql' } });
    expect(overridden.code).toBe(0);

    const unreachable = await flash(['status'], { env: { FLASH_URL: 'http://127.0.0.1:59999/graphql' }, url: false });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^error: Cannot reach http:\/\/127\.0\.0\.1:59999/m);

    const malformed = await flash(['status'], { env: { FLASH_URL: 'localhost 4000' }, url: false });
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/FLASH_URL is not a URL/);
  });

  it('shows the coded error, never "Cannot reach", when the server refuses uploads of 3 and 20 MB', async () => {
    // The client runs in its own process, as a user's does: a refusal answered while it was
    // still sending used to reach it as "Cannot reach …: EPIPE" (the connection was reset under
    // it), in about one run of four. Eight runs, one process.
    const files = [3, 20, 3, 20, 3, 20, 3, 20].map((megabytes) => path.join(work, `big-${megabytes}.csv`));
    const script = `
      const { main } = require('./examples/cli/main');
      const [url, ...files] = JSON.parse(process.argv.at(-1));
      (async () => {
        const runs = [];
        for (const file of files) {
          let stderr = '';
          const stream = (append) => ({ write: (text) => (append(text), true) });
          const io = { stdout: stream(() => {}), stderr: stream((text) => (stderr += text)) };
          runs.push({ code: await main(['train', file, '--batch-size', '1000', '--url', url], io, {}), stderr });
        }
        process.stdout.write(JSON.stringify(runs));
      })();`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', '-e', script, JSON.stringify([server.url, ...files])],
      { cwd: ROOT },
    );
    const runs = JSON.parse(stdout) as { code: number; stderr: string }[];
    expect(runs.map((run) => run.code)).toEqual(files.map(() => 1));
    for (const run of runs) {
      expect(run.stderr).not.toMatch(/Cannot reach/);
      expect(run.stderr).toMatch(/^error: \[BAD_USER_INPUT\] .*batchSize/m);
    }
  });

  it('runs under npm run from another folder: paths from that folder, the server from FLASH_URL', async () => {
    const folder = mkdtempSync(path.join(work, 'npm-'));
    writeFileSync(path.join(folder, 'reviews.csv'), sentimentCsv());
    const child = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'npm',
        ['run', '--silent', '--prefix', ROOT, 'flash', '--', 'train', 'reviews.csv', '--batch-size', '1000'],
        { cwd: folder, env: { ...process.env, FLASH_URL: server.url } },
        (error, stdout, stderr) => resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
      );
    });
    // The file was found and sent (the server refuses the batch size, which nothing checks before).
    expect(child.code).toBe(1);
    expect(child.stderr).toMatch(/^Uploading reviews\.csv \(\d+ B\)/m);
    expect(child.stderr).toMatch(/^error: \[BAD_USER_INPUT\] .*batchSize/m);
  });

  it('shows the status of the training server as the API does', async () => {
    const result = await flash(['status']);
    const api = await server.graphql<{ status: { status: string; devMode: boolean; cleanupActive: boolean } }>(
      '{ status { status devMode cleanupActive } }',
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^Training server: ${api.data?.status.status.toLowerCase()}\\b`));
    expect(result.stdout).toContain(`Dev mode: ${api.data?.status.devMode ? 'on' : 'off'}`);
    expect(result.stdout).toContain(`Model cleanup: ${api.data?.status.cleanupActive ? 'on' : 'paused'}`);
  });

  it('lists the deployed models for the admin key from --admin-key or FLASH_ADMIN_KEY, and refuses without it', async () => {
    const api = await server.graphql<{ models: { token: string }[] }>('{ models { token } }', { key: ADMIN_KEY });
    const tokens = api.data?.models.map((model) => model.token) ?? [];
    expect(tokens.length).toBeGreaterThanOrEqual(2);

    for (const result of [
      await flash(['models', '--admin-key', ADMIN_KEY]),
      await flash(['models'], { env: { FLASH_ADMIN_KEY: ADMIN_KEY } }),
    ]) {
      expect(result.code).toBe(0);
      const [header, ...rows] = result.stdout.trimEnd().split('\n');
      expect(header).toMatch(/^TOKEN +TASK +ACCURACY +CREATED +EXPIRES$/);
      expect(rows.map((row) => row.split(/\s+/)[0])).toEqual(tokens);
    }

    const missing = await flash(['models']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/--admin-key or set FLASH_ADMIN_KEY/);
    const wrong = await flash(['models', '--admin-key', 'not-the-admin-key-at-all']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^error: \[FORBIDDEN\] /m);
  });

  it('cancels a job by its token', async () => {
    const submitted = await multipart<{ submitTraining: { token: string } }>(server, SUBMIT, { input: textInput({ epochs: 10 }) }, [
      { path: 'variables.input.dataset', filename: 'reviews.csv', content: sentimentCsv() },
    ]);
    const token = submitted.data?.submitTraining.token as string;
    const result = await flash(['cancel', token]);
    expect(result).toEqual({ code: 0, stdout: `Job ${token}: CANCELLED\n`, stderr: '' });
    expect(await waitForState(server, token, ['CANCELLED'])).toMatchObject({ state: 'CANCELLED' });

    const again = await flash(['status', token]);
    expect(again.stdout).toMatch(/^State: CANCELLED/m);
  });

  it('deletes a model by its token', async () => {
    const api = await server.graphql<{ models: { token: string }[] }>('{ models { token } }', { key: ADMIN_KEY });
    const token = api.data?.models[0]?.token as string;
    const result = await flash(['delete', token]);
    expect(result).toEqual({ code: 0, stdout: `Deleted model ${token}\n`, stderr: '' });
    const model = await server.graphql('query($t: ID!) { model(token: $t) { token } }', { variables: { t: token } });
    expect(model.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
    expect((await flash(['delete', token])).stderr).toMatch(/^error: \[MODEL_NOT_FOUND\] /m);
  });

  it('prints usage on --help and exits 0, and refuses bad options with 1', async () => {
    const help = await flash(['train', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: flash train \[options\] <dataset>/);
    expect(help.stdout).toContain('--batch-size <size>');

    const bad = await flash(['download', 'x', '--format', 'tflite']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/Allowed choices are onnx, pytorch/);
  });
});

describe('the flash client’s ETA', () => {
  const event = (batch: { epoch: number; batch: number; batches: number } | null, etaSeconds: number | null = null): TrainingEvent => ({
    state: 'TRAINING',
    epoch: batch ? batch.epoch - 1 : 0,
    epochs: 4,
    etaSeconds,
    message: null,
    queuePosition: null,
    batch,
    metrics: null,
    model: null,
  });

  it('comes from the pace of the first batches, before the first epoch ends', () => {
    let now = 0;
    const eta = new EtaEstimator(() => now);
    expect(eta.next(event(null))).toBeNull();
    expect(eta.next(event({ epoch: 1, batch: 1, batches: 10 }))).toBeNull();
    now = 2_000; // one tenth of an epoch in 2 s: 2 s per tenth, 38 tenths to go
    expect(eta.next(event({ epoch: 1, batch: 2, batches: 10 }))).toBe(76);
    now = 20_000;
    expect(eta.next(event({ epoch: 2, batch: 1, batches: 10 }, 50))).toBe(58);
  });

  it('is the server’s until two batches were seen, and none outside training', () => {
    const eta = new EtaEstimator(() => 0);
    expect(eta.next(event(null, 120))).toBe(120);
    expect(eta.next({ ...event(null, 30), state: 'EXPORTING' })).toBeNull();
  });
});
