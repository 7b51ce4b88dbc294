import path from 'node:path';
import { z } from 'zod';

/**
 * The one place that reads `process.env`. Everything else receives a typed `Config`.
 * `loadConfig` reports every invalid variable at once; `main()` prints them and exits 1.
 */

const booleanString = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const checksumMode = z
  .enum(['when_supported', 'when_required', 'WHEN_SUPPORTED', 'WHEN_REQUIRED'])
  .transform((value) => value.toUpperCase() as 'WHEN_SUPPORTED' | 'WHEN_REQUIRED');

const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    HOST: z.string().min(1).default('0.0.0.0'),
    PORT: z.coerce.number().int().min(0).max(65_535).default(4000),
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
    AWS_REGION: z.string().min(1).optional(),
    AWS_DEFAULT_REGION: z.string().min(1).optional(),
    AWS_ENDPOINT_URL_S3: z.url().optional(),
    AWS_ENDPOINT_URL: z.url().optional(),
    AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
    AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    AWS_SESSION_TOKEN: z.string().min(1).optional(),
  })
  .superRefine((env, ctx) => {
    if (env.FLASH_STORE === 's3' && !env.FLASH_S3_BUCKET) {
      ctx.addIssue({ code: 'custom', path: ['FLASH_S3_BUCKET'], message: 'is required when FLASH_STORE=s3' });
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

export interface Config {
  env: 'development' | 'production' | 'test';
  host: string;
  /** TCP port; `0` picks a free one. Default `4000`. */
  port: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  store: StoreConfig;
  /** Local folder for the fs store and for server-private files such as a generated admin key. */
  dataDir: string;
  /** Admin bearer key; when absent one is generated at first start and kept in `dataDir`. */
  adminKey: string | undefined;
  /** Schema introspection; default on outside production. */
  introspection: boolean;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Deep-partial overrides that tests and embedders pass to `buildApp`. */
export type ConfigOverrides = Partial<Omit<Config, 'store'>> & { store?: StoreConfig };

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
    logLevel: e.LOG_LEVEL,
    adminKey: e.FLASH_ADMIN_KEY,
    introspection: e.FLASH_INTROSPECTION ?? nodeEnv !== 'production',
    ...overrides,
    dataDir,
    store: overrides.store ?? (overrides.dataDir && store.kind === 'fs' ? { kind: 'fs', root: dataDir } : store),
  };
}
