import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';

import { type DatasetLimits, DEFAULT_DATASET_LIMITS } from './datasets/limits';

/**
 * The one place that reads `process.env`. Everything else receives a typed `Config`.
 * `loadConfig` reports every invalid variable at once; `main()` prints them and exits 1.
 */

/** An http(s) URL: `z.url()` alone takes `minio:9000` as a URL whose scheme is `minio:`. */
const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });

const booleanString = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

/** A Redis URL: `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS. */
const redisUrl = z.url({ protocol: /^rediss?$/, hostname: /^.+$/, error: 'expected a redis:// or rediss:// URL' });

/** `*`, or a comma-separated list of origins (`https://app.example.com,http://localhost:3000`). */
const corsOrigins = z.string().transform((value, ctx): '*' | string[] => {
  const entries = value.split(',').map((entry) => entry.trim()).filter(Boolean);
  if (entries.length === 1 && entries[0] === '*') return '*';
  const origins: string[] = [];
  for (const entry of entries) {
    const origin = URL.canParse(entry) ? new URL(entry) : undefined;
    if (!origin || !/^https?:$/.test(origin.protocol) || origin.origin !== entry.replace(/\/$/, '')) {
      ctx.addIssue({ code: 'custom', message: `"${entry}" is not an origin such as https://app.example.com (or give "*" alone)` });
      return z.NEVER;
    }
    origins.push(origin.origin);
  }
  return origins;
});

const checksumMode = z
  .enum(['when_supported', 'when_required', 'WHEN_SUPPORTED', 'WHEN_REQUIRED'])
  .transform((value) => value.toUpperCase() as 'WHEN_SUPPORTED' | 'WHEN_REQUIRED');

const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    HOST: z.string().min(1).default('0.0.0.0'),
    PORT: z.coerce.number().int().min(0).max(65_535).default(4000),
    FLASH_METRICS_PORT: z.coerce.number().int().min(0).max(65_535).optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    FLASH_STORE: z.enum(['fs', 's3']).default('fs'),
    FLASH_DATA_DIR: z.string().min(1).default('./data'),
    FLASH_ADMIN_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
    FLASH_INTROSPECTION: booleanString.optional(),
    FLASH_S3_BUCKET: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name')
      .optional(),
    FLASH_S3_FORCE_PATH_STYLE: booleanString.default(false),
    FLASH_S3_CHECKSUMS: checksumMode.default('WHEN_SUPPORTED'),
    FLASH_S3_PUBLIC_ENDPOINT: httpUrl.optional(),
    FLASH_WORK_DIR: z.string().min(1).optional(),
    FLASH_REDIS_URL: redisUrl.optional(),
    FLASH_ROLE: z.enum(['api', 'worker', 'all']).default('all'),
    FLASH_WORKER_ID: z.string().regex(/^[\w.@:-]{1,100}$/, 'letters, digits and . _ @ : - only').optional(),
    FLASH_TRAINER_PYTHON: z.string().min(1).default('/usr/bin/python3'),
    FLASH_TRAINER_DEVICE: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
    FLASH_WEIGHTS_DIR: z.string().min(1).optional(),
    FLASH_TRAINER_TIMEOUT: z.coerce.number().int().positive().max(7 * 24 * 3600).default(7200),
    FLASH_MAX_QUEUE: z.coerce.number().int().min(0).max(1000).default(10),
    FLASH_IMAGE_SIZE: z.coerce.number().int().min(32).max(512).default(224),
    FLASH_MAX_EPOCHS: z.coerce.number().int().positive().default(10),
    FLASH_MAX_BATCH_SIZE: z.coerce.number().int().positive().default(32),
    FLASH_MIN_CLASSES: z.coerce.number().int().min(2).default(2),
    FLASH_MAX_CLASSES: z.coerce.number().int().min(2).default(10),
    FLASH_MIN_IMAGES_PER_CLASS: z.coerce.number().int().min(1).default(10),
    FLASH_MAX_IMAGES_PER_CLASS: z.coerce.number().int().min(1).default(100),
    FLASH_MAX_CLASS_MB: z.coerce.number().positive().default(10),
    FLASH_MAX_CSV_ROWS: z.coerce.number().int().positive().default(10_000),
    FLASH_MAX_UPLOAD_MB: z.coerce.number().positive().default(110),
    FLASH_MODEL_TTL: z.coerce.number().int().positive().default(7200),
    FLASH_CLEANUP_INTERVAL: z.coerce.number().int().positive().default(7200),
    FLASH_JOB_RETENTION: z.coerce.number().int().positive().default(7 * 24 * 3600),
    FLASH_PINNED_TOKENS: z.string().default(''),
    FLASH_DOWNLOAD_TTL: z.coerce.number().int().min(10).max(7 * 24 * 3600).default(900),
    FLASH_PUBLIC_URL: httpUrl.optional(),
    FLASH_CORS_ORIGINS: corsOrigins.optional(),
    FLASH_MAX_LOADED_MODELS: z.coerce.number().int().positive().default(8),
    FLASH_INFERENCE_THREADS: z
      .union([z.literal('auto'), z.coerce.number().int().positive()], { error: 'expected "auto" or a positive integer' })
      .default('auto'),
    FLASH_MAX_PREDICT_INPUTS: z.coerce.number().int().positive().default(64),
    FLASH_MAX_IMAGE_MB: z.coerce.number().positive().default(10),
    FLASH_BATCH_MAX: z.coerce.number().int().positive().default(16),
    FLASH_BATCH_COALESCE: booleanString.default(true),
    FLASH_BATCH_WAIT_MS: z.coerce.number().min(0).max(100).default(0),
    FLASH_MAX_QUERY_DEPTH: z.coerce.number().int().positive().default(10),
    FLASH_MAX_QUERY_COST: z.coerce.number().int().positive().default(5000),
    FLASH_MAX_QUERY_ALIASES: z.coerce.number().int().positive().default(15),
    FLASH_MAX_QUERY_TOKENS: z.coerce.number().int().positive().default(2000),
    FLASH_MAX_SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().positive().default(100),
    AWS_REGION: z.string().min(1).optional(),
    AWS_DEFAULT_REGION: z.string().min(1).optional(),
    AWS_ENDPOINT_URL_S3: httpUrl.optional(),
    AWS_ENDPOINT_URL: httpUrl.optional(),
    AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
    AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    AWS_SESSION_TOKEN: z.string().min(1).optional(),
  })
  .superRefine((env, ctx) => {
    if (env.FLASH_STORE === 's3' && !env.FLASH_S3_BUCKET) {
      ctx.addIssue({ code: 'custom', path: ['FLASH_S3_BUCKET'], message: 'is required when FLASH_STORE=s3' });
    }
    if (env.FLASH_MIN_CLASSES > env.FLASH_MAX_CLASSES) {
      ctx.addIssue({ code: 'custom', path: ['FLASH_MIN_CLASSES'], message: 'must not exceed FLASH_MAX_CLASSES' });
    }
    if (env.FLASH_MIN_IMAGES_PER_CLASS > env.FLASH_MAX_IMAGES_PER_CLASS) {
      ctx.addIssue({
        code: 'custom',
        path: ['FLASH_MIN_IMAGES_PER_CLASS'],
        message: 'must not exceed FLASH_MAX_IMAGES_PER_CLASS',
      });
    }
    if (env.FLASH_ROLE === 'worker') {
      ctx.addIssue({
        code: 'custom',
        path: ['FLASH_ROLE'],
        message: 'worker is not available yet (it comes with the BullMQ queue); use all for a server that trains',
      });
    }
    if (env.FLASH_ROLE === 'api' && !env.FLASH_REDIS_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['FLASH_ROLE'],
        message: 'api needs FLASH_REDIS_URL: an API replica hears about jobs other servers run only through Redis',
      });
    }
    if (Boolean(env.AWS_ACCESS_KEY_ID) !== Boolean(env.AWS_SECRET_ACCESS_KEY)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.AWS_ACCESS_KEY_ID ? 'AWS_SECRET_ACCESS_KEY' : 'AWS_ACCESS_KEY_ID'],
        message: 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together',
      });
    }
  });

export interface S3Config {
  bucket: string;
  region: string;
  /** Custom endpoint for MinIO, R2 or another S3-compatible server; `undefined` means AWS. */
  endpoint: string | undefined;
  /**
   * Where clients reach the bucket, when not at `endpoint` (MinIO inside a compose network,
   * behind a proxy): download links are signed for it. `undefined`: `endpoint`.
   */
  publicEndpoint?: string | undefined;
  /** Path-style addressing (`endpoint/bucket/key`), which most self-hosted servers need. */
  forcePathStyle: boolean;
  /**
   * Checksum behaviour of the AWS SDK. `WHEN_REQUIRED` is for older S3-compatible servers
   * (s3rver among them) that reject the SDK's default CRC32 checksums.
   */
  checksums: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  /** Explicit credentials; when absent the SDK's default provider chain is used. */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
}

export type StoreConfig = { kind: 'fs'; root: string } | ({ kind: 's3' } & S3Config);

export interface TrainingConfig {
  /** Python interpreter with PyTorch for the trainer. Default `/usr/bin/python3` (Debian's). */
  python: string;
  /** Folder that holds the `trainer/` package (the trainer runs with it as working directory). */
  trainerRoot: string;
  device: 'auto' | 'cpu' | 'cuda';
  /** Folder of torchvision ImageNet weight files; default: torchvision's cache. */
  weightsDir: string | undefined;
  /** A job running longer than this is killed and fails, in milliseconds. Default 2 h. */
  timeoutMillis: number;
  /** Jobs that may wait behind the running one; `0`: a busy server refuses (`SERVER_BUSY`). */
  maxQueue: number;
  /** Local scratch folder for uploads being checked and jobs being trained. */
  workDir: string;
  /** Names this host in job leases (default: the host name); a job whose supervisor process on this host is gone is taken over at once. */
  workerId: string;
  /** Network input size in pixels. Default `224`. */
  imageSize: number;
  maxEpochs: number;
  maxBatchSize: number;
  /** Least time between batch progress events, in seconds. Default `1`. */
  batchProgressSeconds: number;
}


export interface ModelsConfig {
  /** A model is deleted this long after it was deployed, in milliseconds. Default 2 h. */
  ttlMillis: number;
  /** How often expired models are deleted, in milliseconds. Default 2 h. */
  cleanupIntervalMillis: number;
  /** Tokens that never expire. */
  pinnedTokens: ReadonlySet<string>;
  /**
   * How long cleanup keeps the record of a finished job whose model is gone (or never was),
   * counted from its expiry or its end, in milliseconds. Default 7 days.
   */
  jobRetentionMillis: number;
  /** How long a download link works, in seconds. Default `900`. */
  downloadTtlSeconds: number;
  /**
   * Public origin for download links the server serves itself; default: the server's own URL
   * (`http://localhost:<port>` when it listens on every interface), never the request's `Host`.
   */
  publicUrl: string | undefined;
}

export interface InferenceConfig {
  /** Model sessions kept open (LRU). Default `8`. */
  maxLoadedModels: number;
  /** onnxruntime threads per session, or `'auto'`: every usable core for image models, one for text models. Default `'auto'`. */
  threads: number | 'auto';
  /** Most images or texts one prediction request may carry. Default `64`. */
  maxInputsPerRequest: number;
  /** Largest image a prediction takes, in bytes. Default 10 MiB. */
  maxImageBytes: number;
  /** Most inputs one coalesced run takes. Default `16`. */
  maxBatchSize: number;
  /** Merge concurrent predictions on one model into one run. Default `true`. */
  coalesce: boolean;
  /** With the inference worker idle, how long a prediction waits for others to share its run, in milliseconds. Default `0`. */
  batchWaitMillis: number;
}

/** Limits on the shape of GraphQL operations (GraphQL Armor); introspection is exempt. */
export interface QueryLimits {
  /** Deepest field nesting. Default `10`. */
  depth: number;
  /** Highest estimated cost (each field 1, lists multiplied). Default `5000`. */
  cost: number;
  /** Most aliases in one operation. Default `15`. */
  aliases: number;
  /** Most tokens in one document. Default `2000`. */
  tokens: number;
}

/**
 * What a process does. `all` (the default) serves the API and runs the training supervisor;
 * `api` serves the API and never runs the trainer (needs Redis); `worker` is reserved for the
 * training workers of the distributed mode and refused until they exist.
 */
export type Role = 'api' | 'worker' | 'all';

export interface RedisConfig {
  /** `redis://` or `rediss://` URL; it may hold a password, so it is never logged. */
  url: string;
}

export interface Config {
  env: 'development' | 'production' | 'test';
  host: string;
  /** TCP port; `0` picks a free one. Default `4000`. */
  port: number;
  /**
   * A port of its own for `/metrics` (with `/healthz` and `/readyz`), for an internal network;
   * `/metrics` then leaves the main port. `0` picks a free one. Default: none.
   */
  metricsPort: number | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  store: StoreConfig;
  /** Local folder for the fs store and for server-private files such as a generated admin key. */
  dataDir: string;
  /** Admin bearer key; when absent one is generated at first start and kept in `dataDir`. */
  adminKey: string | undefined;
  /** Schema introspection; default on outside production. */
  introspection: boolean;
  /**
   * Browser origins allowed to call the API and download models (CORS): `'*'` for any, or a
   * list. Default: any outside production, none in production (same-origin pages only).
   */
  corsOrigins: '*' | readonly string[];
  training: TrainingConfig;
  datasets: DatasetLimits;
  models: ModelsConfig;
  inference: InferenceConfig;
  queryLimits: QueryLimits;
  /** Default `all`. */
  role: Role;
  /** The distributed mode's Redis: events go through it. `undefined`: everything in this process. */
  redis: RedisConfig | undefined;
  /** Most operations one WebSocket connection may run at a time. Default `100`. */
  maxSubscriptionsPerConnection: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Deep-partial overrides that tests and embedders pass to `buildApp`. */
export type ConfigOverrides = Partial<
  Omit<Config, 'store' | 'training' | 'datasets' | 'models' | 'inference' | 'queryLimits'>
> & {
  queryLimits?: Partial<QueryLimits>;
  store?: StoreConfig;
  training?: Partial<TrainingConfig>;
  datasets?: Partial<DatasetLimits>;
  models?: Partial<ModelsConfig>;
  inference?: Partial<InferenceConfig>;
};

const MIB = 1024 * 1024;

export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: ConfigOverrides = {},
): Config {
  // Empty strings count as unset, as they do for most twelve-factor tools.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`));
  }
  const e = parsed.data;
  const dataDir = path.resolve(overrides.dataDir ?? e.FLASH_DATA_DIR);
  const nodeEnv = overrides.env ?? e.NODE_ENV;
  const store: StoreConfig =
    e.FLASH_STORE === 's3'
      ? {
          kind: 's3',
          bucket: e.FLASH_S3_BUCKET as string,
          region: e.AWS_REGION ?? e.AWS_DEFAULT_REGION ?? 'us-east-1',
          endpoint: e.AWS_ENDPOINT_URL_S3 ?? e.AWS_ENDPOINT_URL,
          publicEndpoint: e.FLASH_S3_PUBLIC_ENDPOINT,
          forcePathStyle: e.FLASH_S3_FORCE_PATH_STYLE,
          checksums: e.FLASH_S3_CHECKSUMS,
          credentials:
            e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY
              ? {
                  accessKeyId: e.AWS_ACCESS_KEY_ID,
                  secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
                  ...(e.AWS_SESSION_TOKEN ? { sessionToken: e.AWS_SESSION_TOKEN } : {}),
                }
              : undefined,
        }
      : { kind: 'fs', root: dataDir };

  return {
    env: nodeEnv,
    host: e.HOST,
    port: e.PORT,
    metricsPort: e.FLASH_METRICS_PORT,
    maxSubscriptionsPerConnection: e.FLASH_MAX_SUBSCRIPTIONS_PER_CONNECTION,
    logLevel: e.LOG_LEVEL,
    adminKey: e.FLASH_ADMIN_KEY,
    introspection: e.FLASH_INTROSPECTION ?? nodeEnv !== 'production',
    role: e.FLASH_ROLE,
    redis: e.FLASH_REDIS_URL ? { url: e.FLASH_REDIS_URL } : undefined,
    corsOrigins: e.FLASH_CORS_ORIGINS ?? (nodeEnv === 'production' ? [] : '*'),
    ...overrides,
    training: {
      python: e.FLASH_TRAINER_PYTHON,
      trainerRoot: projectRoot(),
      device: e.FLASH_TRAINER_DEVICE,
      weightsDir: e.FLASH_WEIGHTS_DIR ? path.resolve(e.FLASH_WEIGHTS_DIR) : undefined,
      timeoutMillis: e.FLASH_TRAINER_TIMEOUT * 1000,
      maxQueue: e.FLASH_MAX_QUEUE,
      workDir: path.resolve(e.FLASH_WORK_DIR ?? path.join(dataDir, '.work')),
      workerId: e.FLASH_WORKER_ID ?? hostname(),
      imageSize: e.FLASH_IMAGE_SIZE,
      maxEpochs: e.FLASH_MAX_EPOCHS,
      maxBatchSize: e.FLASH_MAX_BATCH_SIZE,
      batchProgressSeconds: 1,
      ...overrides.training,
    },
    datasets: {
      ...DEFAULT_DATASET_LIMITS,
      minClasses: e.FLASH_MIN_CLASSES,
      maxClasses: e.FLASH_MAX_CLASSES,
      minImagesPerClass: e.FLASH_MIN_IMAGES_PER_CLASS,
      maxImagesPerClass: e.FLASH_MAX_IMAGES_PER_CLASS,
      maxClassBytes: Math.round(e.FLASH_MAX_CLASS_MB * MIB),
      maxUploadBytes: Math.round(e.FLASH_MAX_UPLOAD_MB * MIB),
      maxCsvRows: e.FLASH_MAX_CSV_ROWS,
      ...overrides.datasets,
    },
    models: {
      ttlMillis: e.FLASH_MODEL_TTL * 1000,
      cleanupIntervalMillis: e.FLASH_CLEANUP_INTERVAL * 1000,
      jobRetentionMillis: e.FLASH_JOB_RETENTION * 1000,
      pinnedTokens: new Set(
        e.FLASH_PINNED_TOKENS.split(',')
          .map((token) => token.trim())
          .filter(Boolean),
      ),
      downloadTtlSeconds: e.FLASH_DOWNLOAD_TTL,
      publicUrl: e.FLASH_PUBLIC_URL?.replace(/\/+$/, ''),
      ...overrides.models,
    },
    inference: {
      maxLoadedModels: e.FLASH_MAX_LOADED_MODELS,
      threads: e.FLASH_INFERENCE_THREADS,
      maxInputsPerRequest: e.FLASH_MAX_PREDICT_INPUTS,
      maxImageBytes: Math.round(e.FLASH_MAX_IMAGE_MB * MIB),
      maxBatchSize: e.FLASH_BATCH_MAX,
      coalesce: e.FLASH_BATCH_COALESCE,
      batchWaitMillis: e.FLASH_BATCH_WAIT_MS,
      ...overrides.inference,
    },
    queryLimits: {
      depth: e.FLASH_MAX_QUERY_DEPTH,
      cost: e.FLASH_MAX_QUERY_COST,
      aliases: e.FLASH_MAX_QUERY_ALIASES,
      tokens: e.FLASH_MAX_QUERY_TOKENS,
      ...overrides.queryLimits,
    },
    dataDir,
    store: overrides.store ?? (overrides.dataDir && store.kind === 'fs' ? { kind: 'fs', root: dataDir } : store),
  };
}

/** The folder holding package.json (and `trainer/`), from `src/` or from the build in `dist/src/`. */
function projectRoot(): string {
  let folder = __dirname;
  while (!existsSync(path.join(folder, 'package.json'))) {
    const parent = path.dirname(folder);
    if (parent === folder) throw new Error(`No package.json above ${__dirname}`);
    folder = parent;
  }
  return folder;
}
