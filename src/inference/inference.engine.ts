import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import DataLoader from 'dataloader';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';

import type { InferenceEntry, TaskTypeValue } from '../documents/schemas';
import { BadUserInputError, ModelNotFoundError } from '../errors';
import {
  centerCrop,
  DEFAULT_IMAGE_SIZE,
  DEFAULT_MAX_INPUT_PIXELS,
  ImageDecodeError,
  prepareImage,
  preparedSize,
} from '../preprocessing/image';
import { PAD_ID, type Vocabulary } from '../preprocessing/text';
import { tokenId, tokenLogger } from '../observability/token-id';
import type { ObjectStore } from '../store/object-store';
import { ModelNotServableError } from './errors';
import { download, readTextMetadata, servableFiles, type TextMetadata } from './model-artifacts';
import { type Prediction, resolveTopK, toPrediction } from './prediction';
import type { LoadResult, WireSessionOptions, WireTensor, WireValueMetadata } from './protocol';
import { OrtError, SessionHost, WorkerStoppedError } from './session-host';

/** A deployed model as the caller read it from `inference.json`. */
export interface DeployedModelRef {
  token: string;
  entry: InferenceEntry;
}

export interface InferenceOptions {
  /**
   * Local folder for artifacts being downloaded. Each load downloads into its own subfolder and
   * deletes it once the session is made (or the load failed): nothing stays on disk, so a
   * reload after an eviction downloads again.
   */
  cacheDir: string;
  /** Most sessions open at once; the least recently used is released beyond it. Default `8`. */
  maxLoadedModels: number;
  /**
   * onnxruntime intra-op threads per session, or `'auto'` (the default): every core the process
   * may use for image models (`usableCores`), one for text models. A convolutional network's run splits well over threads (on
   * 2 cores, resnet18 and resnet34 answered in 0.63–0.67× the time with 1.5× the throughput,
   * mobilenet v2 in 0.87× with 1.1×); a text model's run is a fraction of a millisecond, where
   * a second thread only adds hand-offs (0.7–0.9× the throughput). See BENCHMARKS.md.
   */
  intraOpThreads: number | 'auto';
  /** Most inputs in one `session.run`. Default `16`. */
  maxBatchSize: number;
  /**
   * Merge concurrent predictions on one model into one run. Default `true`. `false`: each
   * request runs alone (its own inputs still run together, in chunks of `maxBatchSize`).
   */
  coalesce: boolean;
  /**
   * With the worker idle, how long the first prediction of a batch waits for others, in
   * milliseconds. Default `0`: it runs at once. While the worker is busy, predictions gather
   * until it is free whatever this is.
   */
  batchWaitMillis: number;
  /** Network input size for a model whose ONNX input does not state it, in pixels. Default `224`. */
  imageSize: number;
  /** Images with more pixels than this are refused (decompression bombs). Default `40_000_000`. */
  maxImagePixels: number;
  /** Longest text accepted, in UTF-16 code units; only its first 256 tokens count. Default `100_000`. */
  maxTextLength: number;
  /** Told of every onnxruntime run, for metrics. */
  onRun?: (run: { taskType: TaskTypeValue; batchSize: number; seconds: number }) => void;
}

/** What the engine is given: `cacheDir`, and any option to set apart from its default. */
export type InferenceSettings = Partial<InferenceOptions> & Pick<InferenceOptions, 'cacheDir'>;

/** The intra-op threads of a model's session: `setting` itself, or what `'auto'` picks for the task. */
export function intraOpThreadsFor(taskType: TaskTypeValue, setting: number | 'auto'): number {
  if (setting !== 'auto') return setting;
  return taskType === 'imageclassification' ? usableCores() : 1;
}

let cores: number | undefined;

/**
 * The cores this process may use: the CPUs it may run on, capped by the CPU quota of its
 * cgroup (a container's `--cpus`, systemd's `CPUQuota=`), which Node 20's
 * `availableParallelism()` does not see.
 */
export function usableCores(): number {
  cores ??= Math.max(1, Math.min(availableParallelism(), cgroupCpuQuota() ?? Infinity));
  return cores;
}

/**
 * The tightest CPU quota on this process's cgroup or any group above it, in cores rounded up;
 * `null` when there is none. Reads cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us` over
 * `cpu.cfs_period_us`) as `/proc/self/cgroup` places the process; files that are missing or
 * unreadable count as no limit.
 */
export function cgroupCpuQuota({ root = '/sys/fs/cgroup', self = '/proc/self/cgroup' } = {}): number | null {
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const quotas: number[] = [];
  const collect = (mount: string, group: string, quotaOf: (folder: string) => [string | null, string | null]) => {
    // The group's folder, then each parent up to the mount itself.
    for (let folder = path.join(mount, group); ; folder = path.dirname(folder)) {
      const [quota, period] = quotaOf(folder);
      const cpus = Number(quota) / Number(period);
      if (Number.isFinite(cpus) && cpus > 0) quotas.push(Math.ceil(cpus));
      if (path.relative(mount, folder) === '' || folder === path.dirname(folder)) break;
    }
  };
  for (const line of read(self)?.split('\n') ?? []) {
    const [, controllers, group] = line.split(':');
    if (group === undefined) continue;
    if (controllers === '') {
      const v2 = (folder: string) => (read(path.join(folder, 'cpu.max'))?.split(/\s+/) ?? [null, null]) as [string, string];
      collect(root, group, v2);
      collect(path.join(root, 'unified'), group, v2); // hybrid hierarchies mount v2 there
    } else if (controllers?.split(',').includes('cpu')) {
      collect(path.join(root, controllers), group, (folder) => [
        read(path.join(folder, 'cpu.cfs_quota_us')),
        read(path.join(folder, 'cpu.cfs_period_us')),
      ]);
    }
  }
  return quotas.length > 0 ? Math.min(...quotas) : null;
}

/** How the engine opens every session (the benchmark opens its own with the same options). */
export function sessionOptions(intraOpThreads: number): WireSessionOptions {
  return {
    intraOpNumThreads: intraOpThreads,
    // Only the parallel executor uses inter-op threads; the trainer's graphs are chains.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // The arena keeps the largest batch's buffers for the next run; maxBatchSize bounds it.
    enableCpuMemArena: true,
    logSeverityLevel: 3,
    // Idle intra-op threads sleep instead of spinning for the next run. Spinning makes short
    // runs a little faster but burns the cores the event loop and sharp need: measured here,
    // a 0.2 ms lstm run cost 2.7 ms of CPU with 2 spinning threads, 0.5 ms without.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

export const DEFAULT_INFERENCE_OPTIONS: Readonly<Omit<InferenceOptions, 'cacheDir'>> = Object.freeze({
  maxLoadedModels: 8,
  intraOpThreads: 'auto',
  maxBatchSize: 16,
  coalesce: true,
  batchWaitMillis: 0,
  imageSize: DEFAULT_IMAGE_SIZE,
  maxImagePixels: DEFAULT_MAX_INPUT_PIXELS,
  maxTextLength: 100_000,
});

/** Counters since the engine started, for tests and metrics. */
export interface InferenceStats {
  /** Models loaded (a session made and cached): first loads and reloads after an eviction. */
  loads: number;
  /** Sessions dropped because `maxLoadedModels` were open (not counting `evict`). */
  evictions: number;
  /** Sessions of loaded models released (after `evictions` or `evict`); `loads - releases` are open or in use. */
  releases: number;
  /** `session.run` calls. */
  runs: number;
  /** Inputs predicted. */
  inputs: number;
  /** Number of runs by batch size, e.g. `{ 1: 12, 4: 3 }`. */
  batchSizes: Record<number, number>;
  /** Sessions open now. */
  loadedModels: number;
}

/** The model I/O contract (trainer/README.md, "Model input and output"). */
const IMAGE_INPUT = 'input';
const TEXT_INPUT = 'input_ids';
const OUTPUT = 'logits';
/** Image sizes a model may declare; the trainer's range (≥ 32) with room on both sides. */
const MIN_MODEL_IMAGE_SIZE = 8;
const MAX_MODEL_IMAGE_SIZE = 2048;
/**
 * Images of one request decoded at once. Decoding runs on libuv's pool (4 threads by default),
 * but setting up each sharp pipeline costs the event loop about 0.2 ms: starting hundreds at
 * once would stall it as long as a batch on the main thread would.
 */
const DECODE_CONCURRENCY = 4;

/** Runs batches of one model: directly, or through a DataLoader that coalesces concurrent inputs. */
interface Batcher<Input> {
  run(inputs: readonly Input[]): Promise<Float32Array[]>;
  loader: DataLoader<Input, Float32Array> | null;
}

interface ModelBase {
  key: string;
  token: string;
  session: number;
  /** The worker generation that made `session`. */
  generation: number;
  classes: string[];
  /** Requests using the model now; its session is released only when none are. */
  refs: number;
  /** Out of the LRU (evicted, deleted or closed): released when `refs` reaches 0. */
  retired: boolean;
  released: boolean;
}

interface ImageModel extends ModelBase {
  kind: 'image';
  /** Side of the square crop the network takes, read from the ONNX input. */
  imageSize: number;
  batcher: Batcher<Uint8Array>;
}

interface TextModel extends ModelBase {
  kind: 'text';
  vocabulary: Vocabulary;
  batcher: Batcher<number[]>;
}

type LoadedModel = ImageModel | TextModel;

interface PendingLoad {
  token: string;
  /** Requests waiting for this load; each gets a reference the moment the model is cached. */
  waiters: number;
  /** Set by `evict` or `close`: the model must not be cached when its load ends. */
  cancelled: boolean;
  promise: Promise<LoadedModel>;
}

/**
 * Serves predictions of deployed models with onnxruntime-node. No GraphQL and no HTTP: the
 * resolvers find the entry in `inference.json` (and answer `MODEL_NOT_FOUND` and the like),
 * this engine does the rest.
 *
 * Sessions. One per model (keyed by token and artifact names, so a model whose files change
 * is loaded anew), made on first use and kept in an LRU of `maxLoadedModels`; never one per
 * request. Concurrent first requests for a model share one load. A session leaving the LRU is
 * released once the requests using it have finished. Repeated create/release of onnxruntime
 * sessions is known to grow the process's memory (microsoft/onnxruntime#25325), so the bound
 * should hold every model in regular use; thrashing it costs a download, a load and memory.
 *
 * Threads. onnxruntime-node 1.30 runs inference synchronously on the calling thread (see
 * `session.worker.ts`), so sessions live in one worker thread and the event loop stays free
 * while a batch runs. Image decoding runs on libuv's pool (sharp); tokenizing is cheap.
 *
 * Batching. With `coalesce`, every loaded model has a DataLoader (no cache) that merges the
 * inputs of concurrent requests into runs of at most `maxBatchSize`. The worker runs one batch
 * at a time, so a batch made while it is busy waits for the run in flight to end, gathering
 * everything that arrives meanwhile; with the worker idle a batch goes at once (after
 * `batchWaitMillis`, when set). A lone request never waits, and the busier the worker the
 * larger the batches (what Triton calls dynamic batching with no queue delay). Text batches
 * are right-padded with id 0 to their longest sequence; the trainer's models read each row up
 * to its last real token, so padding changes nothing.
 *
 * Errors. Bad inputs are `BadUserInputError`s naming the field (`images`, `texts`, `topK`,
 * `token` for the wrong kind of model); unusable models are `ModelNotServableError`s; store
 * outages `StoreUnavailableError`s. Anything else (an onnxruntime failure during a run) is a
 * plain `Error`, which the server masks.
 */
export class InferenceEngine {
  private readonly options: InferenceOptions;
  private readonly host: SessionHost;
  private readonly models: LRUCache<string, LoadedModel>;
  private readonly loading = new Map<string, PendingLoad>();
  private readonly counters = { loads: 0, evictions: 0, releases: 0, runs: 0, inputs: 0 };
  private readonly batchSizes = new Map<number, number>();
  /** Runs sent to the worker and not answered yet, of every model. */
  private runsInFlight = 0;
  /** Batches waiting for the worker to finish a run. */
  private readonly waitingBatches: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly store: ObjectStore,
    options: InferenceSettings,
    private readonly logger: Logger,
  ) {
    this.options = { ...DEFAULT_INFERENCE_OPTIONS, ...options };
    if (this.options.intraOpThreads !== 'auto' && !(Number.isInteger(this.options.intraOpThreads) && this.options.intraOpThreads >= 1)) {
      throw new RangeError("InferenceOptions.intraOpThreads must be a positive integer or 'auto'");
    }
    for (const name of ['maxLoadedModels', 'maxBatchSize', 'imageSize', 'maxTextLength'] as const) {
      if (!Number.isInteger(this.options[name]) || this.options[name] < 1) {
        throw new RangeError(`InferenceOptions.${name} must be a positive integer`);
      }
    }
    if (!(this.options.batchWaitMillis >= 0)) throw new RangeError('InferenceOptions.batchWaitMillis must be ≥ 0');
    this.host = new SessionHost(logger, () => this.models.clear());
    this.models = new LRUCache<string, LoadedModel>({
      max: this.options.maxLoadedModels,
      dispose: (model, _key, reason) => {
        if (reason === 'evict') this.counters.evictions++;
        this.retire(model);
      },
    });
  }

  /**
   * Classifies each image (any format sharp decodes) exactly as validation saw it during
   * training. `field` names the input each image came in, for errors (`images[3]`, or `image`
   * for a single one); every image that cannot be used is named in one error.
   */
  async classifyImages(
    model: DeployedModelRef,
    images: readonly Buffer[],
    topK?: number,
    field: (index: number) => string = (index) => `images[${index}]`,
  ): Promise<Prediction[]> {
    assertTask(model, 'imageclassification');
    return this.using(model, async (loaded) => {
      if (loaded.kind !== 'image') throw new Error('An image model loaded as a text model');
      const k = resolveTopK(topK, loaded.classes.length);
      const crops = await mapLimit(images, DECODE_CONCURRENCY, (image, index) =>
        this.crop(image, loaded.imageSize, describe('Image', index, images.length), field(index)).catch(
          (error: unknown) => (error instanceof BadUserInputError ? error : Promise.reject(error)),
        ),
      );
      const refused = crops.filter((crop): crop is BadUserInputError => crop instanceof BadUserInputError);
      if (refused.length > 0) throw BadUserInputError.merge(refused);
      const logits = await this.infer(loaded.batcher, crops as Uint8Array[]);
      return logits.map((row) => toPrediction(row, loaded.classes, k));
    });
  }

  /** Classifies each text, tokenized by the vocabulary the model was trained with. */
  async classifyTexts(
    model: DeployedModelRef,
    texts: readonly string[],
    topK?: number,
    field: (index: number) => string = (index) => `texts[${index}]`,
  ): Promise<Prediction[]> {
    assertTask(model, 'textclassification');
    const refused = texts.flatMap((text, index) => {
      const which = describe('Text', index, texts.length);
      if (text.trim() === '') return [new BadUserInputError(`${which} is empty.`, field(index))];
      if (text.length > this.options.maxTextLength) {
        return [new BadUserInputError(`${which} is longer than ${this.options.maxTextLength} characters.`, field(index))];
      }
      return [];
    });
    if (refused.length > 0) throw BadUserInputError.merge(refused);
    return this.using(model, async (loaded) => {
      if (loaded.kind !== 'text') throw new Error('A text model loaded as an image model');
      const k = resolveTopK(topK, loaded.classes.length);
      const rows = texts.map((text) => loaded.vocabulary.encode(text));
      const logits = await this.infer(loaded.batcher, rows);
      return logits.map((row) => toPrediction(row, loaded.classes, k));
    });
  }

  /**
   * Forgets a model (deleted or expired): its sessions are released (after the requests using
   * them finish), and a load in progress is discarded (its requests get `MODEL_NOT_FOUND`).
   * The next request for the token loads it anew.
   */
  async evict(token: string): Promise<void> {
    // Loads in progress are discarded, and later requests start a fresh one.
    for (const [key, pending] of this.loading) {
      if (pending.token !== token) continue;
      pending.cancelled = true;
      this.loading.delete(key);
    }
    const keys = [...this.models.entries()].filter(([, model]) => model.token === token).map(([key]) => key);
    for (const key of keys) this.models.delete(key);
    // Nothing on disk to delete: every load deletes its own downloads when it ends (deleting
    // them from here would race the downloads of a load started after this call).
  }

  /** Releases every session and stops the worker thread; later calls fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const pending of this.loading.values()) pending.cancelled = true;
    this.models.clear();
    await this.host.close();
  }

  stats(): InferenceStats {
    return {
      ...this.counters,
      batchSizes: Object.fromEntries(this.batchSizes),
      loadedModels: this.models.size,
    };
  }

  // --- Models ---------------------------------------------------------------------------

  private async using<T>(ref: DeployedModelRef, use: (model: LoadedModel) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new Error('The inference engine is closed');
      let model: LoadedModel | undefined;
      try {
        model = await this.acquire(ref);
        return await use(model);
      } catch (error) {
        // The worker stopped under this request, taking the model's session with it: once more,
        // on a fresh worker with the model loaded anew.
        if (!(error instanceof WorkerStoppedError) || attempt > 1 || this.closed) throw error;
        this.logger.warn({ tokenId: tokenId(ref.token) }, 'The inference worker stopped during a prediction; running it again');
      } finally {
        if (model) this.unref(model);
      }
    }
  }

  /**
   * Resolves with the model and one reference taken for the caller. The reference is taken
   * synchronously with the lookup (cached) or with the insertion into the LRU (loaded), so no
   * eviction can release the session between the two.
   */
  private acquire(ref: DeployedModelRef): Promise<LoadedModel> {
    const files = servableFiles(ref.entry);
    const key = JSON.stringify([ref.token, files.onnx, files.metadata]);
    let cached = this.models.get(key);
    if (cached && cached.generation !== this.host.generation) {
      // Its session went with a worker that stopped after the load: load it anew.
      this.models.delete(key);
      cached = undefined;
    }
    if (cached) {
      cached.refs++;
      return Promise.resolve(cached);
    }
    let pending = this.loading.get(key);
    if (!pending) {
      const created = { token: ref.token, waiters: 0, cancelled: false } as PendingLoad;
      created.promise = this.load(ref, key, files, created);
      this.loading.set(key, created);
      pending = created;
    }
    pending.waiters++;
    return pending.promise;
  }

  private async load(
    ref: DeployedModelRef,
    key: string,
    files: { onnx: string; metadata: string | null },
    pending: PendingLoad,
  ): Promise<LoadedModel> {
    const started = performance.now();
    const folder = path.join(this.options.cacheDir, randomUUID());
    let loaded: { result: LoadResult; generation: number } | null = null;
    try {
      await mkdir(folder, { recursive: true });
      const onnxFile = await download(this.store, files.onnx, folder, 'model.onnx');
      const metadata = files.metadata
        ? await readTextMetadata(await download(this.store, files.metadata, folder, 'metadata.json'))
        : null;
      const generation = this.host.generation;
      try {
        const threads = intraOpThreadsFor(ref.entry.task_type, this.options.intraOpThreads);
        loaded = { result: await this.host.load(onnxFile, sessionOptions(threads)), generation };
      } catch (error) {
        // Only onnxruntime refusing the file makes the model unservable; a stopped worker does not.
        if (error instanceof OrtError) throw new ModelNotServableError('ARTIFACT_INVALID', { cause: error });
        throw error;
      }
      const model = this.describe(ref, key, loaded.result, loaded.generation, metadata);
      if (this.closed) throw new Error('The inference engine is closed');
      if (pending.cancelled) throw new ModelNotFoundError();

      // Synchronously: leave `loading`, hand every waiter its reference, enter the LRU.
      this.loading.delete(key);
      model.refs = pending.waiters;
      this.models.set(key, model);
      this.counters.loads++;
      this.logger.info(
        { tokenId: tokenId(ref.token), kind: model.kind, millis: Math.round(performance.now() - started) },
        'Inference model loaded',
      );
      return model;
    } catch (caught) {
      // Evicted meanwhile: whatever else went wrong, for its requests the model is gone.
      const error = pending.cancelled && !this.closed ? new ModelNotFoundError() : caught;
      if (this.loading.get(key) === pending) this.loading.delete(key);
      if (loaded) this.releaseSession(loaded.result.session, loaded.generation);
      if (error instanceof ModelNotServableError) {
        tokenLogger(this.logger, ref.token).warn({ reason: error.reason, err: error.cause }, 'Model cannot be served');
      }
      throw error;
    } finally {
      // onnxruntime holds the model in memory once the session exists: the files can go.
      await rm(folder, { recursive: true, force: true }).catch((error: unknown) =>
        this.logger.warn({ err: error }, 'Could not delete a model download'),
      );
    }
  }

  /** Checks the session against the I/O contract and builds the model, with its batcher. */
  private describe(
    ref: DeployedModelRef,
    key: string,
    loaded: LoadResult,
    generation: number,
    metadata: TextMetadata | null,
  ): LoadedModel {
    const classes = metadata ? metadata.classes : (ref.entry.classes ?? []);
    const output = tensorShape(loaded.outputs, OUTPUT, 'float32', 2);
    if (typeof output[1] === 'number' && output[1] !== classes.length) {
      throw new ModelNotServableError('ARTIFACT_INVALID');
    }
    const base = {
      key,
      token: ref.token,
      session: loaded.session,
      generation,
      classes,
      refs: 0,
      retired: false,
      released: false,
    };

    if (!metadata) {
      const [, height, width, channels] = tensorShape(loaded.inputs, IMAGE_INPUT, 'uint8', 4);
      const side = typeof height === 'number' ? height : this.options.imageSize;
      const valid =
        channels === 3 &&
        (typeof width !== 'number' || width === side) &&
        side >= MIN_MODEL_IMAGE_SIZE &&
        side <= MAX_MODEL_IMAGE_SIZE;
      if (!valid) throw new ModelNotServableError('ARTIFACT_INVALID');
      const model: ImageModel = {
        ...base,
        kind: 'image',
        imageSize: side,
        batcher: this.batcher((crops) => this.runImages(model, crops)),
      };
      return model;
    }
    tensorShape(loaded.inputs, TEXT_INPUT, 'int64', 2);
    const model: TextModel = {
      ...base,
      kind: 'text',
      vocabulary: metadata.vocabulary,
      batcher: this.batcher((rows) => this.runTexts(model, rows)),
    };
    return model;
  }

  private retire(model: LoadedModel): void {
    model.retired = true;
    if (model.refs === 0) this.release(model);
  }

  private unref(model: LoadedModel): void {
    model.refs--;
    if (model.retired && model.refs === 0) this.release(model);
  }

  private release(model: LoadedModel): void {
    if (model.released) return;
    model.released = true;
    if (!this.closed) this.counters.releases++;
    this.releaseSession(model.session, model.generation);
  }

  private releaseSession(session: number, generation: number): void {
    if (this.closed) return; // Closing stops the worker, which frees every session at once.
    this.host
      .release(session, generation)
      .catch((error: unknown) => this.logger.warn({ err: error }, 'Could not release an inference session'));
  }

  // --- Batches --------------------------------------------------------------------------

  private batcher<Input>(run: (inputs: readonly Input[]) => Promise<Float32Array[]>): Batcher<Input> {
    const { coalesce, batchWaitMillis, maxBatchSize } = this.options;
    if (!coalesce) return { run, loader: null };
    const loader = new DataLoader<Input, Float32Array>(run, {
      cache: false,
      maxBatchSize,
      batchScheduleFn: (dispatch) => {
        if (this.runsInFlight > 0) this.waitingBatches.push(dispatch);
        else if (batchWaitMillis > 0) setTimeout(dispatch, batchWaitMillis);
        // The next turn of the event loop: inputs decoded in this one join the batch.
        else setImmediate(dispatch);
      },
    });
    return { run, loader };
  }

  private async infer<Input>(batcher: Batcher<Input>, inputs: readonly Input[]): Promise<Float32Array[]> {
    const { loader } = batcher;
    if (loader) return Promise.all(inputs.map((input) => loader.load(input)));
    const runs: Promise<Float32Array[]>[] = [];
    for (let start = 0; start < inputs.length; start += this.options.maxBatchSize) {
      runs.push(batcher.run(inputs.slice(start, start + this.options.maxBatchSize)));
    }
    return (await Promise.all(runs)).flat();
  }

  private runImages(model: ImageModel, crops: readonly Uint8Array[]): Promise<Float32Array[]> {
    const side = model.imageSize;
    const pixels = side * side * 3;
    // A fresh buffer the worker can take over (Buffer.concat may hand out Node's shared pool).
    const data = new Uint8Array(crops.length * pixels);
    crops.forEach((crop, index) => data.set(crop, index * pixels));
    return this.run(model, IMAGE_INPUT, { type: 'uint8', data, dims: [crops.length, side, side, 3] });
  }

  private runTexts(model: TextModel, rows: readonly number[][]): Promise<Float32Array[]> {
    const length = Math.max(1, ...rows.map((row) => row.length));
    const data = new BigInt64Array(rows.length * length).fill(BigInt(PAD_ID));
    rows.forEach((row, index) => row.forEach((id, offset) => (data[index * length + offset] = BigInt(id))));
    return this.run(model, TEXT_INPUT, { type: 'int64', data, dims: [rows.length, length] });
  }

  private async run(model: LoadedModel, input: string, tensor: WireTensor): Promise<Float32Array[]> {
    // A batch that waited while the worker stopped: its session is gone, and asking a fresh
    // worker for it would only start one to hear so.
    if (model.generation !== this.host.generation) throw new WorkerStoppedError();
    const batch = tensor.dims[0]!;
    this.counters.runs++;
    this.counters.inputs += batch;
    this.batchSizes.set(batch, (this.batchSizes.get(batch) ?? 0) + 1);
    const started = performance.now();
    this.runsInFlight++;
    let output: WireTensor;
    try {
      output = await this.host.run(model.session, { [input]: tensor }, OUTPUT);
    } finally {
      this.runsInFlight--;
      // The worker is free (or about to be): what gathered meanwhile goes now.
      for (const dispatch of this.waitingBatches.splice(0)) dispatch();
    }
    this.options.onRun?.({
      taskType: model.kind === 'image' ? 'imageclassification' : 'textclassification',
      batchSize: batch,
      seconds: (performance.now() - started) / 1000,
    });
    const classes = model.classes.length;
    if (output.dims.length !== 2 || output.dims[0] !== batch || output.dims[1] !== classes) {
      throw new Error(`Model ${model.key} returned logits of shape [${output.dims.join(', ')}]`);
    }
    const logits = output.data as Float32Array;
    return Array.from({ length: batch }, (_, row) => logits.subarray(row * classes, (row + 1) * classes));
  }

  /** The prepared square's centre crop, as the trainer validated on; undecodable input is the user's. */
  private async crop(image: Buffer, imageSize: number, which: string, field: string): Promise<Uint8Array> {
    try {
      const prepared = await prepareImage(image, { imageSize, maxInputPixels: this.options.maxImagePixels });
      return centerCrop(prepared, preparedSize(imageSize), imageSize);
    } catch (error) {
      if (error instanceof ImageDecodeError) {
        throw new BadUserInputError(`${which} cannot be used: ${error.message}.`, field);
      }
      throw error;
    }
  }
}

function assertTask(model: DeployedModelRef, expected: TaskTypeValue): void {
  if (model.entry.task_type === expected) return;
  const kind = model.entry.task_type === 'imageclassification' ? 'images' : 'texts';
  throw new BadUserInputError(`This model classifies ${kind}.`, 'token');
}

/**
 * `fn` over `items` with at most `limit` calls pending at once; results in input order. The
 * first failure rejects, and no further item is started.
 */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (error) {
        next = items.length;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** "The image" for a single input, "Image 3" among several. */
function describe(noun: string, index: number, count: number): string {
  return count === 1 ? `The ${noun.toLowerCase()}` : `${noun} ${index + 1}`;
}

/** The shape of a tensor the contract requires, or `ARTIFACT_INVALID`. */
function tensorShape(
  metadata: readonly WireValueMetadata[],
  name: string,
  type: string,
  rank: number,
): readonly (number | string)[] {
  const value = metadata.find((candidate) => candidate.name === name);
  if (!value || !value.isTensor || value.type !== type || value.shape.length !== rank) {
    throw new ModelNotServableError('ARTIFACT_INVALID');
  }
  return value.shape;
}
