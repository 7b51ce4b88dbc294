import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

import sharp from 'sharp';

import { tokenId } from '../src/observability/token-id';
import { ADMIN_KEY, makeDataDir, startTestServer, type TestServer, type TestServerOptions } from './helpers/server';
import {
  classImage,
  imageInput,
  imageZip,
  multipart,
  sentimentCsv,
  SUBMIT,
  subscribe,
  textInput,
  waitForState,
} from './helpers/training';
import { zip } from './helpers/zip';

jest.setTimeout(180_000);

/** Small, fast jobs: 32-pixel crops, progress on every batch, four images per class suffice. */
const trainingServer = (options: TestServerOptions = {}) =>
  startTestServer({
    ...options,
    config: {
      ...options.config,
      training: { imageSize: 32, batchProgressSeconds: 0, ...options.config?.training },
      datasets: { minImagesPerClass: 4, ...options.config?.datasets },
    },
  });

const readJson = (server: TestServer, key: string) => JSON.parse(readFileSync(path.join(server.dataDir, key), 'utf8'));
const codes = (response: { errors?: { extensions?: { code?: string } }[] }) =>
  response.errors?.map((error) => error.extensions?.code);

type Submitted = { submitTraining: { token: string; state: string; queuePosition: number | null } };

async function submitZip(server: TestServer, overrides: Record<string, unknown> = {}, classes = { circles: 5, squares: 5 }) {
  return multipart<Submitted>(server, SUBMIT, { input: imageInput(overrides) }, [
    { path: 'variables.input.dataset', filename: 'shapes.zip', content: await imageZip(classes) },
  ]);
}

async function submitCsv(server: TestServer, overrides: Record<string, unknown> = {}, csv = sentimentCsv()) {
  return multipart<Submitted>(server, SUBMIT, { input: textInput(overrides) }, [
    { path: 'variables.input.dataset', filename: 'reviews.csv', content: csv },
  ]);
}

const tokenOf = (response: { data?: Submitted | null; errors?: unknown }) => {
  if (!response.data?.submitTraining) throw new Error(`submitTraining failed: ${JSON.stringify(response.errors)}`);
  return response.data.submitTraining.token;
};

const PROGRESS = `subscription($t: ID!) { trainingProgress(token: $t) {
  token state epoch epochs queuePosition etaSeconds message
  metrics { epoch trainLoss trainAccuracy valLoss valAccuracy learningRate seconds }
  batch { epoch batch batches }
  history { epoch valAccuracy }
  model { token accuracy taskType classes history { epoch } }
} }`;

type ProgressEvent = {
  trainingProgress: {
    state: string;
    epoch: number;
    epochs: number;
    metrics: { epoch: number; valAccuracy: number; learningRate: number } | null;
    batch: { epoch: number; batch: number; batches: number } | null;
    history: { epoch: number }[];
    model: { token: string; accuracy: number; classes: string[] | null; history: { epoch: number }[] } | null;
  };
};

const ORDER = ['QUEUED', 'PREPARING', 'TRAINING', 'EXPORTING', 'DEPLOYED'];

/** Waits until the trainer process of `token` runs (in a job folder named by the token's id), then returns its pid. */
async function trainerPid(token: string, timeoutMillis = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    try {
      const out = execFileSync('pgrep', ['-f', `trainer run .*${tokenId(token)}`], { encoding: 'utf8' }).trim();
      if (out) return Number(out.split('\n')[0]);
    } catch {
      // pgrep exits 1 while there is no such process yet
    }
    if (Date.now() > deadline) throw new Error(`No trainer process for ${token}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('an image job from a ZIP', () => {
  let server: TestServer;
  let token: string;
  let events: ProgressEvent[];

  beforeAll(async () => {
    server = await trainingServer();
    const response = await submitZip(server, { epochs: 3, stepLr: { stepSize: 1, gamma: 0.5 } });
    token = tokenOf(response);
    expect(response.data?.submitTraining).toMatchObject({ state: 'QUEUED', queuePosition: 0 });
    const subscription = subscribe<ProgressEvent>(server, PROGRESS, { t: token });
    await subscription.completed;
    events = subscription.events;
    await subscription.close();
  });
  afterAll(() => server.stop());

  it('streams its progress in order and ends DEPLOYED with the model', () => {
    const states = events.map((event) => event.trainingProgress.state);
    expect(states.at(-1)).toBe('DEPLOYED');
    const ranks = states.map((state) => ORDER.indexOf(state));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(states).toContain('TRAINING');
    expect(states).toContain('EXPORTING');

    const epochs = events.flatMap((event) => (event.trainingProgress.metrics ? [event.trainingProgress.metrics] : []));
    expect(epochs.map((metrics) => metrics.epoch)).toEqual([1, 2, 3]);
    // stepLr halves the rate after every epoch.
    expect(epochs.map((metrics) => metrics.learningRate)).toEqual([0.003, 0.0015, 0.00075]);
    expect(events.some((event) => event.trainingProgress.batch !== null)).toBe(true);

    const deployed = events.at(-1)?.trainingProgress;
    expect(deployed?.history.map((epoch) => epoch.epoch)).toEqual([1, 2, 3]);
    expect(deployed?.model).toMatchObject({ token, classes: ['circles', 'squares'], history: [{ epoch: 1 }, { epoch: 2 }, { epoch: 3 }] });
  });

  it('deploys the best validation accuracy of its epochs', async () => {
    const response = await server.graphql<{ model: { accuracy: number; history: { valAccuracy: number }[] } }>(
      `query($t: ID!) { model(token: $t) { accuracy history { valAccuracy } } }`,
      { variables: { t: token } },
    );
    const model = response.data?.model;
    expect(model?.history).toHaveLength(3);
    expect(model?.accuracy).toBe(Math.max(...(model?.history ?? []).map((epoch) => epoch.valAccuracy)));
  });

  it('writes an inference.json entry with the seed keys and uploads the artifacts', async () => {
    const entry = readJson(server, 'inference.json')[token];
    expect(entry).toMatchObject({
      task_type: 'imageclassification',
      model_filename: `imageclassification/${token}.pt`,
      model_filename_onnx: `imageclassification/${token}.onnx`,
      classes: ['circles', 'squares'],
      downloadable: true,
    });
    expect(entry.created).toMatch(/^\d{2}-\d{2}-\d{2} \d{2}:\d{2}$/);
    expect(entry.accuracy).toBeGreaterThanOrEqual(0);
    expect(entry.accuracy).toBeLessThanOrEqual(1);
    for (const file of [entry.model_filename, entry.model_filename_onnx]) {
      expect(readFileSync(path.join(server.dataDir, file)).length).toBeGreaterThan(10_000);
    }
    const plot = await sharp(Buffer.from(entry.accuracy_plot, 'base64')).metadata();
    expect(plot).toMatchObject({ format: 'png', width: 640, height: 400 });
  });

  it('releases the lock and cleans up after itself', () => {
    expect(readJson(server, 'status.json')).toEqual({ status: 'sleeping', token: '', task_type: '', dev_mode: false });
    expect(existsSync(path.join(server.dataDir, 'training', 'training.json'))).toBe(false);
    expect(readJson(server, 'training/queue.json')).toEqual({ jobs: [] });
    expect(readdirSync(path.join(server.dataDir, 'training', 'jobs', token))).toEqual(['job.json']);
    expect(readdirSync(path.join(server.dataDir, '.work', 'jobs'))).toEqual([]);
  });

  it('answers trainingJob with the final state, and a late subscriber with it at once', async () => {
    const job = await server.graphql(
      `query($t: ID!) { trainingJob(token: $t) { state queuePosition architecture history { epoch } model { token } } }`,
      { variables: { t: token } },
    );
    expect(job.data).toEqual({
      trainingJob: {
        state: 'DEPLOYED',
        queuePosition: null,
        architecture: 'RESNET18',
        history: [{ epoch: 1 }, { epoch: 2 }, { epoch: 3 }],
        model: { token },
      },
    });
    const late = subscribe<ProgressEvent>(server, PROGRESS, { t: token });
    await late.completed;
    await late.close();
    expect(late.events.map((event) => event.trainingProgress.state)).toEqual(['DEPLOYED']);
    expect(late.events[0]?.trainingProgress.history).toHaveLength(3);
  });
});

describe('other datasets', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await trainingServer();
  });
  afterAll(() => server.stop());

  it('trains an image model from images uploaded per class', async () => {
    const files = [];
    const classes = [];
    for (const [classIndex, name] of ['red', 'blue'].entries()) {
      const images = [];
      for (let i = 0; i < 5; i++) {
        const at = `variables.input.classes.${classIndex}.images.${i}`;
        files.push({ path: at, filename: `${name}-${i}.png`, content: await classImage(classIndex, i) });
        images.push(null);
      }
      classes.push({ name, images });
    }
    const response = await multipart<Submitted>(
      server,
      SUBMIT,
      { input: imageInput({ model: 'MOBILENET_V2', classes, dataset: undefined, epochs: 1 }) },
      files,
    );
    const token = tokenOf(response);
    await waitForState(server, token, ['DEPLOYED']);
    expect(readJson(server, 'inference.json')[token]).toMatchObject({ classes: ['blue', 'red'] });
  });

  it('trains a text model from a CSV and deploys its vocabulary as JSON', async () => {
    const token = tokenOf(await submitCsv(server));
    const job = await waitForState(server, token, ['DEPLOYED', 'FAILED']);
    expect(job).toMatchObject({ state: 'DEPLOYED', error: null });
    const entry = readJson(server, 'inference.json')[token];
    expect(entry).toMatchObject({
      task_type: 'textclassification',
      model_filename: `textclassification/${token}.pt`,
      metadata_filename: `textclassification/${token}_metadata.json`,
    });
    expect(entry.classes).toBeUndefined();
    const metadata = readJson(server, entry.metadata_filename);
    expect(metadata).toMatchObject({ classes: ['negative', 'positive'], pad_id: 0, unk_id: 1 });
    expect(metadata.vocab.slice(0, 2)).toEqual(['<pad>', '<unk>']);
    expect(entry.accuracy).toBeGreaterThan(0.5);
    // The entry keeps the seed's shape; the API reads the labels from the metadata file.
    const model = await server.graphql(`query($t: ID!) { model(token: $t) { classes } }`, { variables: { t: token } });
    expect(model.data).toEqual({ model: { classes: ['negative', 'positive'] } });
  });
});

describe('the queue', () => {
  it('runs one job and queues the next when two arrive at once', async () => {
    const server = await trainingServer();
    try {
      const [first, second] = await Promise.all([submitCsv(server), submitCsv(server, { taskName: 'second one' })]);
      const positions = [first, second].map((response) => response.data?.submitTraining.queuePosition).sort();
      expect(positions).toEqual([0, 1]);
      const tokens = [tokenOf(first), tokenOf(second)];
      const queue = readJson(server, 'training/queue.json').jobs.map((job: { token: string }) => job.token);
      expect(queue.sort()).toEqual([...tokens].sort());
      for (const token of tokens) await waitForState(server, token, ['DEPLOYED']);
      expect(readJson(server, 'training/queue.json')).toEqual({ jobs: [] });
      // One at a time: the second started after the first had finished.
      const [a, b] = tokens
        .map((token) => readJson(server, `training/jobs/${token}/job.json`))
        .sort((x, y) => Date.parse(x.started_at) - Date.parse(y.started_at));
      expect(Date.parse(b.started_at)).toBeGreaterThanOrEqual(Date.parse(a.finished_at));
      expect(Object.keys(readJson(server, 'inference.json')).sort()).toEqual([...tokens].sort());
    } finally {
      await server.stop();
    }
  });

  it('answers SERVER_BUSY to all but one of concurrent jobs when FLASH_MAX_QUEUE is 0', async () => {
    const server = await trainingServer({ env: { FLASH_MAX_QUEUE: '0' } });
    try {
      const responses = await Promise.all([submitCsv(server), submitCsv(server), submitCsv(server)]);
      const accepted = responses.filter((response) => response.data?.submitTraining);
      expect(accepted).toHaveLength(1);
      expect(responses.flatMap(codes).filter(Boolean)).toEqual(['SERVER_BUSY', 'SERVER_BUSY']);

      const token = tokenOf(accepted[0] as { data: Submitted });
      expect(readdirSync(path.join(server.dataDir, 'training', 'jobs'))).toEqual([token]);
      await waitForState(server, token, ['DEPLOYED']);
    } finally {
      await server.stop();
    }
  });

  it('removes a queued job on cancelTraining and stops a running one', async () => {
    const server = await trainingServer();
    try {
      const running = tokenOf(await submitZip(server, { epochs: 10 }, { circles: 8, squares: 8 }));
      const queued = tokenOf(await submitCsv(server));
      const cancel = `mutation($t: ID!) { cancelTraining(token: $t) { state queuePosition } }`;

      const removed = await server.graphql(cancel, { variables: { t: queued } });
      expect(removed.data).toEqual({ cancelTraining: { state: 'CANCELLED', queuePosition: null } });
      expect(readJson(server, 'training/queue.json').jobs.map((job: { token: string }) => job.token)).toEqual([running]);
      expect(existsSync(path.join(server.dataDir, 'training', 'jobs', queued, 'dataset.json'))).toBe(false);

      await trainerPid(running);
      const stopped = await server.graphql(cancel, { variables: { t: running } });
      expect(stopped.data).toEqual({ cancelTraining: { state: 'CANCELLED', queuePosition: null } });
      expect(readJson(server, 'status.json')).toMatchObject({ status: 'sleeping', token: '' });
      expect(readJson(server, 'training/queue.json')).toEqual({ jobs: [] });
      expect(readJson(server, 'inference.json')).toEqual({});
    } finally {
      await server.stop();
    }
  });
});

describe('failures', () => {
  it('fails a job whose trainer is killed, releases the lock and runs the next job', async () => {
    const server = await trainingServer();
    try {
      const doomed = tokenOf(await submitZip(server, { epochs: 10 }));
      const next = tokenOf(await submitCsv(server));
      process.kill(await trainerPid(doomed), 'SIGKILL');
      const failed = await waitForState(server, doomed, ['FAILED', 'DEPLOYED']);
      expect(failed).toMatchObject({ state: 'FAILED', error: 'The trainer was killed.' });
      await waitForState(server, next, ['DEPLOYED']);
      expect(readJson(server, 'inference.json')[doomed]).toBeUndefined();
      expect(existsSync(path.join(server.dataDir, 'imageclassification', `${doomed}.pt`))).toBe(false);
      expect(readJson(server, 'status.json')).toMatchObject({ status: 'sleeping', token: '', task_type: '' });
    } finally {
      await server.stop();
    }
  });

  it('fails a job that runs past the timeout', async () => {
    const server = await trainingServer({ config: { training: { timeoutMillis: 1_000 } } });
    try {
      const token = tokenOf(await submitZip(server, { epochs: 10 }));
      const job = await waitForState(server, token, ['FAILED', 'DEPLOYED']);
      expect(job.state).toBe('FAILED');
      expect(job.error).toMatch(/longer than/);
      expect(readJson(server, 'status.json')).toMatchObject({ status: 'sleeping' });
    } finally {
      await server.stop();
    }
  });

  it('fails a job whose ImageNet weights are not installed, without showing server paths', async () => {
    const server = await trainingServer({ config: { training: { weightsDir: '/nonexistent/weights' } } });
    try {
      const token = tokenOf(await submitZip(server, { pretrainDataset: 'IMAGENET' }));
      const job = await waitForState(server, token, ['FAILED', 'DEPLOYED']);
      expect(job.state).toBe('FAILED');
      expect(job.error).toMatch(/ImageNet weights .* not installed/);
      expect(job.error).not.toContain('/nonexistent');
    } finally {
      await server.stop();
    }
  });

  it('recovers a job interrupted by a restart and runs it again', async () => {
    const dataDir = makeDataDir();
    const first = await trainingServer({ dataDir });
    const token = tokenOf(await submitZip(first, { epochs: 10 }));
    const waiting = tokenOf(await submitCsv(first));
    await trainerPid(token);
    await first.stop();
    expect(readJson(first, 'status.json')).toMatchObject({ status: 'active', token });
    expect(readJson(first, 'training/training.json')).toMatchObject({ token, data_split: '70 : 30' });

    const second = await trainingServer({ dataDir });
    try {
      const job = await waitForState(second, token, ['DEPLOYED', 'FAILED']);
      expect(job.state).toBe('DEPLOYED');
      expect(readJson(second, `training/jobs/${token}/job.json`).attempts).toBe(2);
      expect(await waitForState(second, waiting, ['DEPLOYED', 'FAILED'])).toMatchObject({ state: 'DEPLOYED' });
      expect(readJson(second, 'status.json')).toMatchObject({ status: 'sleeping', token: '' });
    } finally {
      await second.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('refused submissions', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await trainingServer();
  });
  afterAll(() => server.stop());

  afterEach(() => {
    // Nothing of a refused submission stays: no job, no staged upload, an empty queue.
    const uploads = path.join(server.dataDir, '.work', 'uploads');
    expect(existsSync(path.join(server.dataDir, 'training', 'jobs'))).toBe(false);
    expect(existsSync(uploads) ? readdirSync(uploads) : []).toEqual([]);
    expect(existsSync(path.join(server.dataDir, 'training', 'queue.json'))).toBe(false);
  });

  it.each([
    ['a text model for images', { model: 'LSTM' }, 'model'],
    ['a batch size over the limit', { batchSize: 64 }, 'batchSize'],
    ['too many epochs', { epochs: 11 }, 'epochs'],
    ['a split that does not add up', { dataSplit: '70 : 20' }, 'dataSplit'],
    ['a task name with a slash', { taskName: '../etc' }, 'taskName'],
    ['a negative learning rate', { learningRate: -0.1 }, 'learningRate'],
    ['a plateau floor above the rate', { reduceLrOnPlateau: { factor: 0.5, patience: 1, minLr: 0.1 } }, 'reduceLrOnPlateau.minLr'],
  ])('refuses %s with BAD_USER_INPUT naming the field', async (_label, overrides, field) => {
    const response = await submitZip(server, overrides);
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe(field);
  });

  it('refuses a ZIP with a file that is not an image, naming it', async () => {
    const entries = [];
    for (let i = 0; i < 4; i++) entries.push({ name: `a/${i}.png`, data: await classImage(0, i) });
    for (let i = 0; i < 4; i++) entries.push({ name: `b/${i}.png`, data: await classImage(1, i) });
    entries.push({ name: 'b/notes.jpg', data: 'just some text' });
    const response = await multipart(server, SUBMIT, { input: imageInput() }, [
      { path: 'variables.input.dataset', filename: 'x.zip', content: zip(entries) },
    ]);
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.message).toContain('b/notes.jpg');
  });

  it('refuses a CSV without a label column', async () => {
    const response = await submitCsv(server, {}, 'text,category\nnice,positive\nbad,negative\n');
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.message).toMatch(/label/);
  });

  it('refuses a job without a dataset, and one with both forms', async () => {
    const none = await server.graphql(SUBMIT, { variables: { input: imageInput() } });
    expect(codes(none)).toEqual(['BAD_USER_INPUT']);
    const both = await multipart(
      server,
      SUBMIT,
      { input: imageInput({ classes: [{ name: 'a', images: [null] }] }) },
      [
        { path: 'variables.input.dataset', filename: 'x.zip', content: await imageZip({ a: 4, b: 4 }) },
        { path: 'variables.input.classes.0.images.0', filename: 'a.png', content: await classImage(0, 0) },
      ],
    );
    expect(codes(both)).toEqual(['BAD_USER_INPUT']);
  });

  it('refuses uploads without the CSRF-preventing header', async () => {
    const response = await multipart(server, SUBMIT, { input: textInput() }, [
      { path: 'variables.input.dataset', filename: 'reviews.csv', content: sentimentCsv() },
    ], {});
    expect(response.status).toBe(400);
  });

  it('answers JOB_NOT_FOUND for unknown and malformed tokens, over HTTP and WebSocket', async () => {
    for (const token of ['textClassification-none-0000', '../status', 'x'.repeat(5000), 'a\u0000b']) {
      const response = await server.graphql(`query($t: ID!) { trainingJob(token: $t) { state } }`, { variables: { t: token } });
      expect(codes(response)).toEqual(['JOB_NOT_FOUND']);
    }
    const subscription = subscribe(server, PROGRESS, { t: '../status' });
    await expect(subscription.completed).rejects.toThrow('JOB_NOT_FOUND');
    await subscription.close();
  });

  it('answers MAINTENANCE in dev mode and writes nothing', async () => {
    await server.graphql('mutation { setDevMode(enabled: true) { devMode } }', { key: ADMIN_KEY });
    try {
      const response = await submitCsv(server);
      expect(codes(response)).toEqual(['MAINTENANCE']);
    } finally {
      await server.graphql('mutation { setDevMode(enabled: false) { devMode } }', { key: ADMIN_KEY });
    }
  });
});
