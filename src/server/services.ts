import path from 'node:path';

import type { Logger } from 'pino';

import type { Services } from '../../resolvers/context';
import { CleanupService } from '../cleanup/cleanup.service';
import type { Config } from '../config';
import { DocumentStore } from '../documents';
import { createPlatformPubSub, createRedisPubSub, type PlatformPubSub } from '../events/pubsub';
import { InferenceEngine, type InferenceSettings } from '../inference';
import { PredictionService } from '../inference/prediction.service';
import { DownloadService } from '../models/download.service';
import { ModelService } from '../models/model.service';
import { Metrics } from '../observability/metrics';
import { PlatformService } from '../platform/platform.service';
import { RedisConnections, redisNamespace } from '../redis/connections';
import type { ObjectStore } from '../store';
import { JobRepository } from '../training/job.repository';
import { TrainingSupervisor } from '../training/supervisor';
import { TrainingService } from '../training/training.service';

export interface Platform {
  documents: DocumentStore;
  pubsub: PlatformPubSub;
  metrics: Metrics;
  /** The connections to Redis in the distributed mode (`FLASH_REDIS_URL`); closed by `stop()`. */
  redis: RedisConnections | undefined;
  /** What resolvers use; complete once `withDownloads` gave it the signing key. */
  services: Omit<Services, 'downloads'>;
  /** The download service, which needs the admin key the server resolves at start. */
  withDownloads(signingKey: Buffer): Services;
  /**
   * Removes what a killed predecessor left of its submissions, then starts the background
   * work: the training supervisor and the cleanup schedule.
   */
  start(): Promise<void>;
  /** Stops the background work, lets running predictions finish, frees the models, closes Redis. */
  stop(): Promise<void>;
}

/** The inference engine's options as the configuration sets them (the benchmark uses them too). */
export function inferenceOptions(config: Config): InferenceSettings {
  return {
    cacheDir: path.join(config.training.workDir, 'inference'),
    maxLoadedModels: config.inference.maxLoadedModels,
    intraOpThreads: config.inference.threads,
    maxBatchSize: config.inference.maxBatchSize,
    coalesce: config.inference.coalesce,
    batchWaitMillis: config.inference.batchWaitMillis,
    imageSize: config.training.imageSize,
    maxImagePixels: config.datasets.maxImagePixels,
  };
}

/** The platform's singletons, wired store → documents → services; nothing of HTTP or GraphQL. */
export function createPlatform(config: Config, store: ObjectStore, logger: Logger): Platform {
  const documents = new DocumentStore(store);
  const redis = config.redis ? new RedisConnections(config.redis, logger) : undefined;
  const pubsub = redis
    ? createRedisPubSub({
        publisher: redis.open('events:publish'),
        subscriber: redis.open('events:subscribe'),
        namespace: redisNamespace(config.store),
        logger: logger.child({ component: 'events' }),
      })
    : createPlatformPubSub();
  const jobs = new JobRepository(documents, config.training.maxQueue);
  const metrics = new Metrics({ queueLength: async () => (await jobs.queue()).length });
  const platform = new PlatformService(documents, pubsub);
  const models = new ModelService(documents, store, pubsub, config.models, logger);
  // An API replica never runs the trainer: a job it admits is taken from the queue by the
  // supervisor of another server (they look at it every few seconds), and a cancellation reaches
  // that server through the job record.
  const supervisor =
    config.role === 'api'
      ? undefined
      : new TrainingSupervisor({
          documents,
          store,
          jobs,
          models,
          platform,
          pubsub,
          config: config.training,
          metrics,
          maxImagePixels: config.datasets.maxImagePixels,
          logger: logger.child({ component: 'supervisor' }),
        });
  const training = new TrainingService({
    documents,
    store,
    jobs,
    models,
    supervisor: supervisor ?? { wake: () => undefined, cancel: () => Promise.resolve(false) },
    pubsub,
    config: config.training,
    limits: config.datasets,
    logger,
  });
  const cleanup = new CleanupService(
    documents,
    models,
    jobs,
    config.models.cleanupIntervalMillis,
    config.models.jobRetentionMillis,
    metrics,
    logger,
  );
  const engine = new InferenceEngine(
    store,
    {
      ...inferenceOptions(config),
      onRun: ({ taskType, batchSize, seconds }) => {
        metrics.inferenceDuration.observe({ task_type: taskType }, seconds);
        metrics.batchSize.observe({ task_type: taskType }, batchSize);
      },
    },
    logger.child({ component: 'inference' }),
  );
  const predictions = new PredictionService(models, engine, pubsub, config.inference);
  const services = { platform, models, training, cleanup, predictions };

  return {
    documents,
    pubsub,
    metrics,
    redis,
    services,
    withDownloads: (signingKey) => ({
      ...services,
      downloads: new DownloadService(store, models, { signingKey, ttlSeconds: config.models.downloadTtlSeconds }),
    }),
    async start() {
      // Before the supervisor and any submission of this server: what is unqueued now is not theirs.
      await training.removeAbandonedSubmissions().then(
        ({ folders, jobs: removed }) => {
          if (folders + removed > 0) logger.info({ folders, jobs: removed }, 'Removed submissions a stopped server left');
        },
        (error: unknown) => logger.warn({ err: error }, 'Could not remove the submissions a stopped server left'),
      );
      supervisor?.start();
      cleanup.start();
    },
    async stop() {
      await cleanup.stop();
      await supervisor?.stop();
      await predictions.close();
      await redis?.close();
    },
  };
}
