import 'reflect-metadata';

import { createServer, type IncomingMessage, type Server } from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';

import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginLandingPageLocalDefault,
  ApolloServerPluginLandingPageProductionDefault,
} from '@apollo/server/plugin/landingPage/default';
import { expressMiddleware } from '@as-integrations/express5';
import cors from 'cors';
import express from 'express';
import { graphqlUploadExpress } from 'graphql-upload-minimal';
import { useServer } from 'graphql-ws/use/ws';
import pino, { type Logger } from 'pino';
import { WebSocketServer } from 'ws';

import type { Context, Services } from '../../resolvers/context';
import { type Config, type ConfigOverrides, loadConfig } from '../config';
import { DocumentLoader, DocumentStore } from '../documents';
import { InferenceEngine } from '../inference';
import { PredictionService } from '../inference/prediction.service';
import { createPlatformPubSub } from '../events/pubsub';
import { CleanupService } from '../cleanup/cleanup.service';
import { DownloadService } from '../models/download.service';
import { ModelService } from '../models/model.service';
import { PlatformService } from '../platform/platform.service';
import { JobRepository } from '../training/job.repository';
import { TrainingSupervisor } from '../training/supervisor';
import { TrainingService } from '../training/training.service';
import { createStore, type ObjectStore } from '../store';
import { ErrorCode } from '../errors';
import { UnreachableCaseError } from '../unreachable';
import { type AdminKeySource, AdminKeyVerifier, deriveKey, resolveAdminKey } from './admin-key';
import { bearerFrom } from './auth';
import { downloadsRouter } from './downloads.route';
import { createErrorFormatter } from './format-error';
import { buildSchema } from './schema';

export interface AppOptions {
  /** Environment to read the configuration from. Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Settings that win over the environment (tests pass `{ port: 0 }`). */
  config?: ConfigOverrides;
  /** A ready store instead of the one the configuration describes. */
  store?: ObjectStore;
  /** A logger instead of a pino logger on stdout at the configured level. */
  logger?: Logger;
}

type AppState =
  | { state: 'idle' }
  | { state: 'starting' }
  | { state: 'listening'; url: string; port: number }
  | { state: 'stopping' }
  | { state: 'stopped' };

export interface App {
  readonly config: Config;
  readonly logger: Logger;
  readonly store: ObjectStore;
  /** Initialises the store (first start writes the seed's documents), then listens. */
  start(): Promise<{ url: string; port: number; adminKey: AdminKeySource }>;
  /** Stops accepting work, drains HTTP and WebSocket connections, closes the store. */
  stop(): Promise<void>;
}

/** How long `stop()` lets in-flight HTTP requests finish before closing their sockets. */
const STOP_GRACE_PERIOD_MILLIS = 10_000;
/** How long `/readyz` waits for the store before answering 503. */
const READINESS_TIMEOUT_MILLIS = 2_000;

/**
 * Wires the platform: store → documents → services → GraphQL (HTTP and graphql-ws on `/graphql`)
 * plus `/healthz` and `/readyz`. Nothing listens until `start()`.
 */
export function buildApp(options: AppOptions = {}): App {
  const config = loadConfig(options.env, options.config);
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'flash' } });
  const store = options.store ?? createStore(config.store);
  const documents = new DocumentStore(store);
  const pubsub = createPlatformPubSub();
  const platform = new PlatformService(documents, pubsub);
  const models = new ModelService(documents, store, pubsub, config.models, logger);
  const jobs = new JobRepository(documents, config.training.maxQueue);
  const supervisor = new TrainingSupervisor({
    documents,
    store,
    jobs,
    models,
    platform,
    pubsub,
    config: config.training,
    maxImagePixels: config.datasets.maxImagePixels,
    logger: logger.child({ component: 'supervisor' }),
  });
  const training = new TrainingService({
    documents,
    store,
    jobs,
    models,
    supervisor,
    pubsub,
    config: config.training,
    limits: config.datasets,
    logger,
  });
  const cleanup = new CleanupService(documents, models, config.models.cleanupIntervalMillis, logger);
  const engine = new InferenceEngine(
    store,
    {
      cacheDir: path.join(config.training.workDir, 'inference'),
      maxLoadedModels: config.inference.maxLoadedModels,
      intraOpThreads: config.inference.threads,
      maxBatchSize: config.inference.maxBatchSize,
      batchWaitMillis: config.inference.batchWaitMillis,
      imageSize: config.training.imageSize,
      maxImagePixels: config.datasets.maxImagePixels,
    },
    logger.child({ component: 'inference' }),
  );
  const predictions = new PredictionService(models, engine, pubsub, config.inference);
  // Made in start(), once the admin key (from which the download signing key derives) is known.
  let services: Services | undefined;

  let state: AppState = { state: 'idle' };
  let httpServer: Server | undefined;
  let apollo: ApolloServer<Context> | undefined;

  const makeContext = (authorization: unknown, origin: string): Context => ({
    services: services as Services,
    documents: new DocumentLoader(documents),
    bearer: bearerFrom(authorization),
    origin: config.models.publicUrl ?? origin,
  });

  async function start() {
    if (state.state !== 'idle') throw new Error(`Cannot start an app that is ${state.state}`);
    state = { state: 'starting' };
    try {
      return await listen();
    } catch (error) {
      // Leave nothing half-open: a failed start releases what it took, and cannot be retried.
      await cleanup.stop();
      await apollo?.stop().catch(() => undefined);
      await supervisor.stop();
      await predictions.close();
      httpServer?.close();
      await store.close();
      state = { state: 'stopped' };
      throw error;
    }
  }

  async function listen() {
    const adminKey = await resolveAdminKey(config.adminKey, config.dataDir);
    const downloads = new DownloadService(store, models, {
      signingKey: deriveKey(adminKey.key, 'flash download links'),
      ttlSeconds: config.models.downloadTtlSeconds,
    });
    services = { platform, models, training, cleanup, downloads, predictions };
    await documents.initialize();
    supervisor.start();
    cleanup.start();
    const formatError = createErrorFormatter(logger);
    const schema = await buildSchema({ pubsub, admin: new AdminKeyVerifier(adminKey.key) });

    const app = express();
    app.disable('x-powered-by');
    app.set('env', config.env);
    const server = createServer(app);
    httpServer = server;

    const wsServer = new WebSocketServer({ server, path: '/graphql' });
    const wsCleanup = useServer<{ authorization?: unknown }>(
      {
        schema,
        // Subscriptions authenticate with `{ authorization: "Bearer …" }` in connection params.
        context: (ctx) => makeContext(ctx.connectionParams?.authorization, originOf(ctx.extra.request)),
        // The same error masking as over HTTP.
        onNext: (_ctx, _id, _payload, _args, result) =>
          result.errors ? { ...result, errors: result.errors.map((error) => formatError(error.toJSON(), error)) } : result,
        onError: (_ctx, _id, _payload, errors) => errors.map((error) => formatError(error.toJSON(), error)),
      },
      wsServer,
    );

    const drainWebSockets: ApolloServerPlugin<Context> = {
      async serverWillStart() {
        return {
          async drainServer() {
            await wsCleanup.dispose();
          },
        };
      },
    };

    apollo = new ApolloServer<Context>({
      schema,
      introspection: config.introspection,
      includeStacktraceInErrorResponses: false,
      formatError,
      stopOnTerminationSignals: false,
      plugins: [
        ApolloServerPluginDrainHttpServer({ httpServer: server, stopGracePeriodMillis: STOP_GRACE_PERIOD_MILLIS }),
        drainWebSockets,
        config.env === 'production'
          ? ApolloServerPluginLandingPageProductionDefault({ footer: false })
          : ApolloServerPluginLandingPageLocalDefault({ footer: false, includeCookies: false }),
      ],
    });
    await apollo.start();

    app.get('/healthz', (_req, res) => {
      res.json({ status: 'ok' });
    });
    app.get('/readyz', async (_req, res) => {
      try {
        await withTimeout(store.ping(), READINESS_TIMEOUT_MILLIS);
        res.json({ status: 'ready', store: store.kind });
      } catch (error) {
        logger.warn({ err: error }, 'Readiness check failed: store unreachable');
        res.status(503).json({ status: 'unavailable', store: store.kind });
      }
    });
    // Room for one base64 image in the JSON body (4 characters per 3 bytes) besides the query.
    const bodyLimit = Math.ceil((config.inference.maxImageBytes * 4) / 3) + 1024 * 1024;
    app.use(downloadsRouter(downloads, logger));
    app.use(
      '/graphql',
      cors<cors.CorsRequest>(),
      closeConnectionAfterUploads,
      graphqlUploadExpress({
        maxFileSize: config.datasets.maxUploadBytes,
        maxFiles: config.datasets.maxClasses * config.datasets.maxImagesPerClass + 1,
        maxFieldSize: bodyLimit,
      }),
      express.json({ limit: bodyLimit }),
      expressMiddleware(apollo, { context: async ({ req }) => makeContext(req.headers.authorization, originOf(req)) }),
    );
    app.use(requestErrorHandler(logger));

    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/graphql`;
    state = { state: 'listening', url, port };
    logger.info({ url, store: store.kind, env: config.env }, 'Flash API listening');
    return { url, port, adminKey };
  }

  async function stop() {
    switch (state.state) {
      case 'idle':
      case 'stopped':
        return;
      case 'stopping':
      case 'starting':
        throw new Error(`Cannot stop an app that is ${state.state}`);
      case 'listening':
        state = { state: 'stopping' };
        // Apollo's drain plugins stop new connections, let in-flight requests finish and
        // close the WebSocket server; then the store's sockets go.
        await cleanup.stop();
        await apollo?.stop();
        await supervisor.stop();
        await predictions.close();
        await store.close();
        state = { state: 'stopped' };
        logger.info('Flash API stopped');
        return;
      default:
        throw new UnreachableCaseError(state);
    }
  }

  return { config, logger, store, start, stop };
}

/**
 * A multipart request may be answered before all of its files were read (a refused upload);
 * the unread rest of the body would then be taken for the next request on the connection.
 * So uploads close their connection after the response.
 */
const closeConnectionAfterUploads: express.RequestHandler = (req, res, next) => {
  if (req.is('multipart/form-data')) res.setHeader('connection', 'close');
  next();
};

/**
 * Errors before GraphQL runs (a body over the size limit, malformed JSON or multipart) answer
 * like GraphQL errors, with a code and without internals.
 */
function requestErrorHandler(logger: Logger): express.ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const status = (error as { status?: number; statusCode?: number }).status ?? (error as { statusCode?: number }).statusCode;
    const clientError = typeof status === 'number' && status >= 400 && status < 500;
    if (!clientError) logger.error({ err: error }, 'Request failed before GraphQL');
    const message =
      status === 413
        ? 'The request is larger than this server accepts.'
        : clientError
          ? 'The request is malformed.'
          : 'Internal server error';
    res.status(clientError ? status : 500).json({
      errors: [{ message, extensions: { code: clientError ? ErrorCode.BAD_REQUEST : ErrorCode.INTERNAL_SERVER_ERROR } }],
    });
  };
}

/** Scheme, host and port the request was sent to. */
function originOf(request: IncomingMessage): string {
  const encrypted = (request.socket as { encrypted?: boolean }).encrypted === true;
  return `${encrypted ? 'https' : 'http'}://${request.headers.host ?? 'localhost'}`;
}

function withTimeout<T>(promise: Promise<T>, millis: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${millis} ms`)), millis);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
