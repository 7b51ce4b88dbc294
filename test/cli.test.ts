import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';

import { main } from '../examples/cli/main';
import { startTestServer, type TestServer } from './helpers/server';
import { classImage, multipart, sentimentCsv } from './helpers/training';

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

  /** Runs the CLI in-process against the test server. */
  async function flash(args: string[], { tty = false } = {}) {
    const stdout = new Capture();
    const stderr = new Capture(tty);
    const code = await main([...args, '--url', server.url], { stdout, stderr });
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
