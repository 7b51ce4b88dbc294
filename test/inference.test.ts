import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';

import pino from 'pino';
import sharp from 'sharp';

import type { InferenceEntry } from '../src/documents/schemas';
import { ErrorCode } from '../src/errors';
import {
  type DeployedModelRef,
  InferenceEngine,
  type InferenceOptions,
  cgroupCpuQuota,
  intraOpThreadsFor,
  type Prediction,
  usableCores,
} from '../src/inference';
import { centerCrop, prepareImage, preparedSize } from '../src/preprocessing/image';
import { Vocabulary } from '../src/preprocessing/text';
import { FsStore } from '../src/store/fs.store';
import { deployModel, type TrainedModel, trainImageModel, trainTextModel } from './helpers/trained-models';

jest.setTimeout(60_000);

const IMAGE_TOKEN = 'imageClassification-shapes-inferencetest0001';
const TEXT_TOKEN = 'textClassification-reviews-inferencetest0001';

let root: string;
let store: FsStore;
let imageModel: TrainedModel<Buffer>;
let textModel: TrainedModel<string>;
let image: DeployedModelRef;
let text: DeployedModelRef;
let shared: InferenceEngine;
const engines: InferenceEngine[] = [];

/**
 * An engine on the test store; closed after the test (or, for `shared`, after the file). Its
 * `imageSize` stays the default 224: the 32-pixel models work because the engine reads their
 * input size from the ONNX file.
 */
function newEngine(options: Partial<InferenceOptions> = {}): InferenceEngine {
  const logger = pino({ level: 'silent' });
  const engine = new InferenceEngine(store, { cacheDir: path.join(root, 'cache'), ...options }, logger);
  engines.push(engine);
  return engine;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'flash-inference-'));
  store = new FsStore(path.join(root, 'store'));
  await store.prepare();
  [imageModel, textModel] = await Promise.all([
    trainImageModel(path.join(root, 'jobs', 'image')),
    trainTextModel(path.join(root, 'jobs', 'text')),
  ]);
  image = { token: IMAGE_TOKEN, entry: await deployModel(store, IMAGE_TOKEN, imageModel, 'imageclassification') };
  text = { token: TEXT_TOKEN, entry: await deployModel(store, TEXT_TOKEN, textModel, 'textclassification') };
  shared = newEngine();
});

afterEach(async () => {
  await Promise.all(engines.splice(1).map((engine) => engine.close()));
});

afterAll(async () => {
  await Promise.all(engines.map((engine) => engine.close()));
  if (root) await rm(root, { recursive: true, force: true });
});

const softmax = (logits: number[]) => {
  const max = Math.max(...logits);
  const exps = logits.map((value) => Math.exp(value - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((value) => value / sum);
};

/** Probabilities in class order, from a prediction whose `top` lists every class. */
const probabilitiesOf = (prediction: Prediction, classes: string[]) =>
  classes.map((name) => prediction.top.find((entry) => entry.label === name)!.probability);

/** The served probabilities equal softmax(trainer logits), and their log-ratios equal the logit differences. */
function expectSameAsTrainer(predictions: Prediction[], logits: number[][], classes: string[], tolerance: number) {
  expect(predictions).toHaveLength(logits.length);
  predictions.forEach((prediction, row) => {
    const served = probabilitiesOf(prediction, classes);
    const expected = softmax(logits[row]!);
    served.forEach((probability, index) =>
      expect(Math.abs(probability - expected[index]!)).toBeLessThanOrEqual(tolerance),
    );
    for (let index = 1; index < classes.length; index++) {
      const servedDifference = Math.log(served[index]!) - Math.log(served[0]!);
      const trainerDifference = logits[row]![index]! - logits[row]![0]!;
      expect(Math.abs(servedDifference - trainerDifference)).toBeLessThanOrEqual(2 * tolerance);
    }
  });
}

/** Rejects with an AppError of `code` (and `field`, when given). */
async function expectCode(promise: Promise<unknown>, code: string, extensions: Record<string, unknown> = {}) {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toMatchObject({ extensions: { code, ...extensions } });
  return error as Error;
}

const expectNotServable = (promise: Promise<unknown>, reason: string) =>
  expectCode(promise, ErrorCode.MODEL_NOT_SERVABLE, { reason });

const runsOf = (engine: InferenceEngine) => engine.stats().runs;
/** One training picture, as a request's image list. */
const onePicture = () => [imageModel.sources[0]!.input];

describe('served predictions', () => {
  test('image predictions equal the trainer’s own logits on the same pictures', async () => {
    // Find the source pictures of the trainer's check batch by their crops: that the crops
    // match byte for byte shows the server prepares exactly what validation saw.
    const { check } = imageModel;
    expect(check.dtype).toBe('uint8');
    const side = check.shape[1]!;
    const crops = await Promise.all(
      imageModel.sources.map(async (source) =>
        centerCrop(await prepareImage(source.input, { imageSize: side }), preparedSize(side), side),
      ),
    );
    const matched = check.inputs.map((input) => {
      const pixels = Buffer.from(Uint8Array.from((input as number[]).flat(2)));
      const index = crops.findIndex((crop) => crop.equals(pixels));
      expect(index).toBeGreaterThanOrEqual(0);
      return imageModel.sources[index]!.input;
    });

    const predictions = await shared.classifyImages(image, matched, imageModel.classes.length);
    expectSameAsTrainer(predictions, check.logits, imageModel.classes, check.tolerance);
  });

  test('text predictions equal the trainer’s own logits on the same sentences', async () => {
    const { check } = textModel;
    expect(check.dtype).toBe('int64');
    const metadata = JSON.parse(await readFile(path.join(textModel.folder, 'metadata.json'), 'utf8')) as {
      vocab: string[];
    };
    const vocabulary = new Vocabulary(metadata.vocab);
    const matched = check.inputs.map((input) => {
      const ids = (input as number[]).filter((id) => id !== 0).join(',');
      const source = textModel.sources.find((candidate) => vocabulary.encode(candidate.input).join(',') === ids);
      expect(source).toBeDefined();
      return source!.input;
    });

    const predictions = await shared.classifyTexts(text, matched, textModel.classes.length);
    expectSameAsTrainer(predictions, check.logits, textModel.classes, check.tolerance);
  });

  test('probabilities sum to 1, `top` is sorted and holds topK classes, and the label is the first', async () => {
    const predictions = [
      ...(await shared.classifyImages(image, imageModel.sources.slice(0, 3).map((source) => source.input), 2)),
      ...(await shared.classifyTexts(text, ['a wonderful film', 'boring and sad'], 2)),
    ];
    for (const prediction of predictions) {
      const sum = prediction.top.reduce((total, entry) => total + entry.probability, 0);
      expect(sum).toBeCloseTo(1, 6);
      expect(prediction.top[0]).toEqual({ label: prediction.label, probability: prediction.probability });
      expect(prediction.top[0]!.probability).toBeGreaterThanOrEqual(prediction.top[1]!.probability);
    }
    const [single] = await shared.classifyTexts(text, ['love it'], 1);
    expect(single!.top).toHaveLength(1);
    const [byDefault] = await shared.classifyTexts(text, ['love it']);
    expect(byDefault!.top).toHaveLength(2); // min(DEFAULT_TOP_K, classes)
  });

  test('JPEG, WebP, grayscale and transparent pictures are all classified', async () => {
    const png = imageModel.sources[0]!.input;
    const inputs = await Promise.all([
      sharp(png).jpeg().toBuffer(),
      sharp(png).webp().toBuffer(),
      sharp(png).grayscale().png().toBuffer(),
      sharp(png).ensureAlpha(0.5).png().toBuffer(),
    ]);
    const predictions = await shared.classifyImages(image, inputs, 1);
    expect(predictions).toHaveLength(4);
    for (const prediction of predictions) expect(imageModel.classes).toContain(prediction.label);
  });

  test('padding a sentence into a batch with a longer one does not change its prediction', async () => {
    const short = 'superb';
    const long = 'a boring film, truly sad and dreadful acting, the hate was terrible and awful';
    const [alone] = await shared.classifyTexts(text, [short], 2);
    const [padded] = await shared.classifyTexts(text, [short, long], 2);
    // And padded by another request's sentence, when coalesced.
    const coalescing = newEngine({ batchWaitMillis: 20 });
    const [[merged], [other]] = await Promise.all([
      coalescing.classifyTexts(text, [short], 2),
      coalescing.classifyTexts(text, [long], 2),
    ]);
    expect(coalescing.stats().batchSizes).toEqual({ 2: 1 });
    expect(other).toBeDefined();
    for (const prediction of [padded!, merged!]) {
      expect(prediction.label).toBe(alone!.label);
      probabilitiesOf(prediction, textModel.classes).forEach((probability, index) =>
        expect(probability).toBeCloseTo(probabilitiesOf(alone!, textModel.classes)[index]!, 6),
      );
    }
  });
});

describe('batching', () => {
  test('concurrent predictions on one model run as one batch', async () => {
    // A wide window: the pictures are decoded concurrently and must all be ready within it.
    const engine = newEngine({ batchWaitMillis: 250 });
    await engine.classifyTexts(text, ['warm up']);
    await engine.classifyImages(image, onePicture());
    const before = runsOf(engine);

    const texts = ['great', 'awful', 'happy film', 'sad film', 'superb acting', 'boring'];
    const answers = await Promise.all(texts.map((sentence) => engine.classifyTexts(text, [sentence])));
    expect(answers.every((answer) => answer.length === 1)).toBe(true);
    expect(runsOf(engine) - before).toBe(1);

    const pictures = imageModel.sources.slice(0, 4).map((source) => source.input);
    await Promise.all(pictures.map((picture) => engine.classifyImages(image, [picture])));
    expect(runsOf(engine) - before).toBe(2);
    expect(engine.stats().batchSizes).toMatchObject({ 6: 1, 4: 1 });
  });

  test('a batch holds at most maxBatchSize inputs', async () => {
    const engine = newEngine({ batchWaitMillis: 20, maxBatchSize: 4 });
    const texts = Array.from({ length: 10 }, (_, i) => `sentence number ${i}`);
    await Promise.all(texts.map((sentence) => engine.classifyTexts(text, [sentence])));
    expect(engine.stats()).toMatchObject({ runs: 3, inputs: 10, batchSizes: { 4: 2, 2: 1 } });
  });

  test('predictions that find the worker busy gather until it is free, and then run as one batch', async () => {
    const engine = newEngine({ maxBatchSize: 512 });
    const picture = imageModel.sources[0]!.input;
    await engine.classifyTexts(text, ['warm up']);
    await engine.classifyImages(image, [picture]);
    expect(engine.stats().batchSizes).toEqual({ 1: 2 });

    // A long run of another model occupies the worker. Texts sent one by one, milliseconds
    // apart, while it runs (one run has started, none other) wait for it and go together.
    const long = engine.classifyImages(image, Array.from({ length: 512 }, () => picture));
    while (engine.stats().runs < 3) await new Promise((resolve) => setImmediate(resolve));
    const texts = ['great', 'awful', 'happy film', 'sad film', 'superb acting'];
    const answers: Promise<Prediction[]>[] = [];
    for (const sentence of texts) {
      answers.push(engine.classifyTexts(text, [sentence]));
      await sleep(5);
    }
    expect(engine.stats().runs).toBe(3); // the long run was still going when the last text came
    await Promise.all([long, ...answers]);
    expect(engine.stats()).toMatchObject({ runs: 4, batchSizes: { 1: 2, 512: 1, 5: 1 } });
  });

  test('with coalescing off each request runs alone, its own inputs together', async () => {
    const engine = newEngine({ coalesce: false });
    const texts = ['great', 'awful', 'happy film', 'sad film', 'superb acting'];
    await Promise.all(texts.map((sentence) => engine.classifyTexts(text, [sentence])));
    expect(engine.stats()).toMatchObject({ runs: 5, batchSizes: { 1: 5 } });
    await engine.classifyTexts(text, texts);
    expect(engine.stats()).toMatchObject({ runs: 6, batchSizes: { 1: 5, 5: 1 } });
  });

  test('a long batch does not stall the event loop', async () => {
    const engine = newEngine({ coalesce: false, maxBatchSize: 1024 });
    const picture = imageModel.sources[0]!.input;
    await engine.classifyImages(image, [picture]);
    const pictures = Array.from({ length: 768 }, () => picture);

    let ticks = 0;
    let longestGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
      ticks++;
    }, 5);
    const started = performance.now();
    try {
      await engine.classifyImages(image, pictures);
    } finally {
      clearInterval(timer);
    }
    const elapsed = performance.now() - started;
    expect(engine.stats().batchSizes).toMatchObject({ 768: 1 });
    // The one 768-image run takes about half a second (and would stall the loop that long on
    // the main thread); the timer kept firing all along.
    expect(ticks).toBeGreaterThan(elapsed / 5 / 4);
    expect(longestGap).toBeLessThan(250);
  });
});

describe('intra-op threads', () => {
  test("'auto' gives image models every core and text models one; a number gives every model that many", () => {
    expect(intraOpThreadsFor('imageclassification', 'auto')).toBe(usableCores());
    expect(intraOpThreadsFor('textclassification', 'auto')).toBe(1);
    expect(intraOpThreadsFor('textclassification', 3)).toBe(3);
    expect(() => newEngine({ intraOpThreads: 0 })).toThrow(RangeError);
  });
});

describe('a worker that stops', () => {
  test('costs the predictions waiting for it nothing: they run again on a fresh worker', async () => {
    // A long coalescing wait keeps the prediction between its model and its run.
    const engine = newEngine({ batchWaitMillis: 300 });
    await engine.classifyTexts(text, ['warm up']);
    const host = (engine as unknown as { host: { worker: Worker | null } }).host;
    const waiting = engine.classifyTexts(text, ['a great and happy film']);
    await sleep(50);
    await host.worker!.terminate(); // idle, so safe to stop from outside
    const [prediction] = await waiting;
    expect(textModel.classes).toContain(prediction!.label);
    expect(engine.stats()).toMatchObject({ loads: 2, runs: 2 });
  });
});

describe('CPU quotas', () => {
  const fakes: string[] = [];
  afterAll(() => Promise.all(fakes.map((fake) => rm(fake, { recursive: true, force: true }))));

  /** A fake /sys/fs/cgroup and /proc/self/cgroup: `files` maps paths under the root to contents. */
  async function fakeCgroup(self: string, files: Record<string, string>) {
    const fake = await mkdtemp(path.join(tmpdir(), 'flash-cgroup-'));
    fakes.push(fake);
    for (const [file, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(fake, 'sys', file)), { recursive: true });
      await writeFile(path.join(fake, 'sys', file), content);
    }
    await writeFile(path.join(fake, 'self'), self);
    return { root: path.join(fake, 'sys'), self: path.join(fake, 'self') };
  }

  test('come from the tightest limit on the group or above it, cgroup v2 or v1', async () => {
    // v2: 1.5 cores on a parent, none on the group itself.
    const v2 = await fakeCgroup('0::/system.slice/flash.service\n', {
      'cpu.max': 'max 100000',
      'system.slice/cpu.max': '150000 100000',
      'system.slice/flash.service/cpu.max': 'max 100000',
    });
    expect(cgroupCpuQuota(v2)).toBe(2);
    // v1, as Docker sets --cpus=1 without a cgroup namespace.
    const v1 = await fakeCgroup('4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n', {
      'cpu,cpuacct/cpu.cfs_quota_us': '-1',
      'cpu,cpuacct/cpu.cfs_period_us': '100000',
      'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '100000',
      'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000',
    });
    expect(cgroupCpuQuota(v1)).toBe(1);
  });

  test('are absent when nothing limits the group, or nothing can be read', async () => {
    expect(cgroupCpuQuota(await fakeCgroup('0::/\n', { 'cpu.max': 'max 100000' }))).toBeNull();
    expect(cgroupCpuQuota(await fakeCgroup('1:cpu:/\n', { 'cpu/cpu.cfs_quota_us': '-1' }))).toBeNull();
    expect(cgroupCpuQuota(await fakeCgroup('0::/../../x\n', {}))).toBeNull();
    expect(cgroupCpuQuota({ root: '/nonexistent', self: '/nonexistent/cgroup' })).toBeNull();
  });
});

describe('sessions', () => {
  test('concurrent first requests for a model share one load', async () => {
    const engine = newEngine();
    await Promise.all(Array.from({ length: 5 }, () => engine.classifyTexts(text, ['great film'])));
    expect(engine.stats()).toMatchObject({ loads: 1, loadedModels: 1 });
  });

  test('beyond maxLoadedModels the least recently used session is released and later reloaded', async () => {
    const engine = newEngine({ maxLoadedModels: 1 });
    const first = await engine.classifyImages(image, onePicture(), 2);
    await engine.classifyTexts(text, ['great']);
    const again = await engine.classifyImages(image, onePicture(), 2);
    await engine.classifyImages(image, onePicture(), 2);
    expect(engine.stats()).toMatchObject({ loads: 3, evictions: 2, loadedModels: 1 });
    expect(again).toEqual(first);
  });

  test('a model whose ONNX file name changes is loaded anew', async () => {
    const engine = newEngine();
    await engine.classifyImages(image, onePicture());
    const key = `imageclassification/${IMAGE_TOKEN}-v2.onnx`;
    await store.putFile(key, path.join(imageModel.folder, 'model.onnx'));
    const redeployed = { token: IMAGE_TOKEN, entry: { ...image.entry, model_filename_onnx: key } };
    await engine.classifyImages(redeployed, onePicture());
    expect(engine.stats().loads).toBe(2);
  });

  test('downloads are deleted once loaded, and evict releases the model’s session', async () => {
    const engine = newEngine();
    await engine.classifyTexts(text, ['great']);
    expect(engine.stats().loadedModels).toBe(1);
    const cached = await readdir(path.join(root, 'cache'), { recursive: true, withFileTypes: true });
    expect(cached.filter((entry) => entry.isFile())).toEqual([]);
    await engine.evict(TEXT_TOKEN);
    expect(engine.stats().loadedModels).toBe(0);
    await engine.classifyTexts(text, ['great']);
    expect(engine.stats().loads).toBe(2);
  });

  test('a model evicted while it loads is not cached, and its requests get MODEL_NOT_FOUND', async () => {
    const engine = newEngine();
    const request = engine.classifyTexts(text, ['great']);
    await engine.evict(TEXT_TOKEN);
    await expectCode(request, ErrorCode.MODEL_NOT_FOUND);
    expect(engine.stats()).toMatchObject({ loads: 0, loadedModels: 0 });
  });
});

describe('errors', () => {
  test('data that is not an image is BAD_USER_INPUT on its index, `images[1]`', async () => {
    const error = await expectCode(
      shared.classifyImages(image, [...onePicture(), Buffer.from('not a picture')]),
      ErrorCode.BAD_USER_INPUT,
      { field: 'images[1]' },
    );
    expect(error.message).toMatch(/^Image 2 cannot be used/);
  });

  test('a picture over the pixel limit is BAD_USER_INPUT', async () => {
    const engine = newEngine({ maxImagePixels: 1_000 });
    const error = await expectCode(engine.classifyImages(image, onePicture()), ErrorCode.BAD_USER_INPUT, {
      field: 'images[0]',
    });
    expect(error.message).toMatch(/more pixels than allowed/);
  });

  test('empty and whitespace-only texts are BAD_USER_INPUT on their index, `texts[1]`', async () => {
    await expectCode(shared.classifyTexts(text, ['']), ErrorCode.BAD_USER_INPUT, { field: 'texts[0]' });
    await expectCode(shared.classifyTexts(text, ['fine', ' \n\t ']), ErrorCode.BAD_USER_INPUT, { field: 'texts[1]' });
  });

  test.each([0, 3, 1.5, -1])('topK %p is BAD_USER_INPUT on `topK` for a 2-class model', async (topK) => {
    await expectCode(shared.classifyTexts(text, ['great'], topK), ErrorCode.BAD_USER_INPUT, { field: 'topK' });
    await expectCode(shared.classifyImages(image, onePicture(), topK), ErrorCode.BAD_USER_INPUT, { field: 'topK' });
  });

  test('asking a text model to classify images is BAD_USER_INPUT on `token`', async () => {
    await expectCode(shared.classifyImages(text, onePicture()), ErrorCode.BAD_USER_INPUT, { field: 'token' });
  });

  const withEntry = (ref: DeployedModelRef, entry: Partial<InferenceEntry>, token = ref.token): DeployedModelRef => ({
    token,
    entry: { ...ref.entry, ...entry },
  });

  test('a model without an ONNX export is MODEL_NOT_SERVABLE', async () => {
    const { model_filename_onnx: _omitted, ...entry } = image.entry;
    await expectNotServable(shared.classifyImages({ token: IMAGE_TOKEN, entry }, onePicture()), 'NO_ONNX_MODEL');
  });

  test('a text model of the original platform (pickled vocabulary) is MODEL_NOT_SERVABLE', async () => {
    const legacy = withEntry(text, { metadata_filename: `textclassification/${TEXT_TOKEN}_metadata.pkl` });
    await expectNotServable(shared.classifyTexts(legacy, ['great']), 'LEGACY_METADATA');
  });

  test('a model whose files are missing from the store is MODEL_NOT_SERVABLE', async () => {
    const missing = withEntry(image, { model_filename_onnx: 'imageclassification/nobody.onnx' }, 'nobody');
    await expectNotServable(shared.classifyImages(missing, onePicture()), 'ARTIFACT_MISSING');
    const noMetadata = withEntry(text, { metadata_filename: 'textclassification/nobody_metadata.json' }, 'nobody2');
    await expectNotServable(shared.classifyTexts(noMetadata, ['great']), 'ARTIFACT_MISSING');
  });

  test('damaged or mismatched artifacts are MODEL_NOT_SERVABLE, onnxruntime’s message stays inside', async () => {
    const garbage = path.join(root, 'garbage.onnx');
    await writeFile(garbage, 'this is not a protobuf at all');
    await store.putFile('imageclassification/damaged.onnx', garbage);
    const damaged = withEntry(image, { model_filename_onnx: 'imageclassification/damaged.onnx' }, 'damaged');
    const error = await expectNotServable(shared.classifyImages(damaged, onePicture()), 'ARTIFACT_INVALID');
    expect(error.message).not.toMatch(/onnx|protobuf|runtime/i);

    // A text model's ONNX listed as an image model: its input does not fit the contract.
    const swapped = withEntry(image, { model_filename_onnx: text.entry.model_filename_onnx! }, 'swapped');
    await expectNotServable(shared.classifyImages(swapped, onePicture()), 'ARTIFACT_INVALID');

    const badMetadata = path.join(root, 'bad_metadata.json');
    await writeFile(badMetadata, '{"vocab": ["a"], "classes": []}');
    await store.putFile('textclassification/bad_metadata.json', badMetadata);
    const broken = withEntry(text, { metadata_filename: 'textclassification/bad_metadata.json' }, 'broken');
    await expectNotServable(shared.classifyTexts(broken, ['great']), 'ARTIFACT_INVALID');

    // Nothing of it affected the engine.
    await expect(shared.classifyImages(image, onePicture())).resolves.toHaveLength(1);
  });
});
