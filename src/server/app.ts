import 'reflect-metadata';

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginLandingPageLocalDefault,
  ApolloServerPluginLandingPageProductionDefault,
} from '@apollo/server/plugin/landingPage/default';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import express from 'express';
import { type DocumentNode, GraphQLError, parse, specifiedRules, validate } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import pino, { type Logger } from 'pino';
import { WebSocketServer } from 'ws';

import type { Registry } from 'prom-client';

import type { Context } from '../../resolvers/context';
import { type Config, type ConfigOverrides, loadConfig } from '../config';
import { DocumentLoader } from '../documents';
import { ErrorCode } from '../errors';
import type { RedisConnections } from '../redis/connections';
import { withTokensHidden } from '../observability/token-id';
import { createStore, type ObjectStore } from '../store';
import { UnreachableCaseError } from '../unreachable';
import { type AdminKeySource, AdminKeyVerifier, deriveKey, resolveAdminKey } from './admin-key';
import { authorizationParam, bearerFrom } from './auth';
import { crossOrigin } from './cors';
import { downloadsRouter } from './downloads.route';
import { formatError, logOperationErrors } from './format-error';
import { graphqlUploads, requestErrorHandler, requestLogging } from './http';
import { drainWebSockets, observabilityPlugin } from './plugins';
import { buildSchema } from './schema';
import { createPlatform } from './services';

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
 * Wires the platform (`createPlatform`) to HTTP: GraphQL over HTTP and graphql-ws on
 * `/graphql`, downloads, `/healthz`, `/readyz` and `/metrics`. Nothing listens until `start()`.
 */
export function buildApp(options: AppOptions = {}): App {
  const config = loadConfig(options.env, options.config);
  const logger = withTokensHidden(options.logger ?? pino({ level: config.logLevel, base: { service: 'flash' } }));
  const store = options.store ?? createStore(config.store);
  const platform = createPlatform(config, store, logger);

  let state: AppState = { state: 'idle' };
  let httpServer: Server | undefined;
  let apollo: ApolloServer<Context> | undefined;

  async function start() {
    if (state.state !== 'idle') throw new Error(`Cannot start an app that is ${state.state}`);
    state = { state: 'starting' };
    try {
      return await listen();
    } catch (error) {
      // Leave nothing half-open: a failed start releases what it took, and cannot be retried.
      await apollo?.stop().catch(() => undefined);
      await platform.stop();
      httpServer?.close();
      await store.close();
      state = { state: 'stopped' };
      throw error;
    }
  }

  async function listen() {
    const adminKey = await resolveAdminKey(config.adminKey, config.dataDir);
    const services = platform.withDownloads(deriveKey(adminKey.key, 'flash download links'));
    await platform.documents.initialize();
    await platform.start();
    const schema = await buildSchema({ pubsub: platform.pubsub, admin: new AdminKeyVerifier(adminKey.key) });

    // Where the download links the server serves itself point: FLASH_PUBLIC_URL, else the
    // server's own URL (known once it listens). Never the request's Host header: anyone can
    // send one, and the link would send the model's token to whatever host it names.
    let ownOrigin = '';
    const makeContext = (transport: Context['transport'], authorization: unknown, requestLogger: Logger): Context => ({
      services,
      documents: new DocumentLoader(platform.documents),
      bearer: bearerFrom(authorization),
      transport,
      origin: config.models.publicUrl ?? ownOrigin,
      logger: requestLogger,
    });

    const app = express();
    app.disable('x-powered-by');
    app.set('env', config.env);
    const server = createServer(app);
    httpServer = server;

    // Depth, cost and alias limits, and no field suggestions (which reveal the schema when
    // introspection is off); batched HTTP requests stay refused, as is Apollo's default. The
    // token limit is graphql-js's own parse option, so that it answers as a parse error (400).
    const armor = new ApolloArmor({
      maxDepth: { n: config.queryLimits.depth, ignoreIntrospection: true },
      costLimit: { maxCost: config.queryLimits.cost, ignoreIntrospection: true },
      maxAliases: { n: config.queryLimits.aliases },
      maxTokens: { enabled: false },
      blockFieldSuggestion: { enabled: !config.introspection },
    }).protect();
    const validationRules = [...specifiedRules, ...armor.validationRules];
    const parseOptions = { maxTokens: config.queryLimits.tokens };

    const wsServer = new WebSocketServer({ server, path: '/graphql' });
    const wsCleanup = useServer<Record<string, unknown>, { logger?: Logger }>(
      {
        schema,
        // Subscriptions authenticate with `{ authorization: "Bearer …" }` (any case) in connection params.
        context: (ctx) => makeContext('websocket', authorizationParam(ctx.connectionParams), logger.child({ ws: true })),
        // The same operation limits as over HTTP (graphql-ws validates again after this: cheap).
        onSubscribe: (_ctx, _id, payload) => {
          let document: DocumentNode;
          try {
            document = parse(payload.query, parseOptions);
          } catch (error) {
            return [withCode(error as GraphQLError, ErrorCode.GRAPHQL_PARSE_FAILED)];
          }
          const errors = validate(schema, document, validationRules);
          return errors.length > 0 ? errors.map((error) => withCode(error, ErrorCode.GRAPHQL_VALIDATION_FAILED)) : undefined;
        },
        // The same error masking (and logging) as over HTTP.
        onNext: (_ctx, _id, _payload, _args, result) => {
          if (!result.errors) return result;
          logOperationErrors(logger, result.errors);
          return { ...result, errors: result.errors.map((error) => formatError(error.toJSON(), error)) };
        },
        onError: (_ctx, _id, _payload, errors) => {
          logOperationErrors(logger, errors);
          return errors.map((error) => formatError(error.toJSON(), error));
        },
      },
      wsServer,
    );

    apollo = new ApolloServer<Context>({
      schema,
      introspection: config.introspection,
      includeStacktraceInErrorResponses: false,
      allowBatchedHttpRequests: false,
      validationRules: armor.validationRules,
      parseOptions,
      formatError,
      stopOnTerminationSignals: false,
      plugins: [
        ApolloServerPluginDrainHttpServer({ httpServer: server, stopGracePeriodMillis: STOP_GRACE_PERIOD_MILLIS }),
        drainWebSockets(async () => {
          await wsCleanup.dispose();
        }),
        observabilityPlugin(platform.metrics),
        ...armor.plugins,
        config.env === 'production'
          ? ApolloServerPluginLandingPageProductionDefault({ footer: false })
          : ApolloServerPluginLandingPageLocalDefault({ footer: false, includeCookies: false }),
      ],
    });
    await apollo.start();

    app.use(requestLogging(logger));
    mountProbes(app, store, platform.redis, platform.metrics.registry, logger);
    // Room for one base64 image in the JSON body (4 characters per 3 bytes) besides the query.
    const bodyLimit = Math.ceil((config.inference.maxImageBytes * 4) / 3) + 1024 * 1024;
    const cors = crossOrigin(config.corsOrigins);
    app.use('/downloads', cors);
    app.use(downloadsRouter(services.downloads, logger));
    app.use(
      '/graphql',
      cors,
      graphqlUploads({
        maxFileSize: config.datasets.maxUploadBytes,
        maxFiles: config.datasets.maxClasses * config.datasets.maxImagesPerClass + 1,
        maxFieldSize: bodyLimit,
      }),
      express.json({ limit: bodyLimit }),
      expressMiddleware(apollo, {
        context: async ({ req }) => makeContext('http', req.headers.authorization, req.log),
      }),
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
    ownOrigin = new URL(url).origin;
    state = { state: 'listening', url, port };
    logger.info({ url, store: store.kind, env: config.env, role: config.role, redis: Boolean(config.redis) }, 'Flash API listening');
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
        // Apollo's drain plugins stop new connections, let in-flight requests finish and close
        // the WebSocket server; then the background work stops and the store's sockets go.
        await apollo?.stop();
        await platform.stop();
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
 * `/healthz` (the process is up), `/readyz` (the store answers, and Redis when configured:
 * `redis: 'up' | 'down'`) and `/metrics` (Prometheus).
 */
function mountProbes(
  app: express.Express,
  store: ObjectStore,
  redis: RedisConnections | undefined,
  registry: Registry,
  logger: Logger,
): void {
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const [storeCheck, redisCheck] = await Promise.allSettled([
      withTimeout(store.ping(), READINESS_TIMEOUT_MILLIS),
      redis ? withTimeout(redis.check(), READINESS_TIMEOUT_MILLIS) : Promise.resolve(),
    ]);
    if (storeCheck.status === 'rejected') logger.warn({ err: storeCheck.reason }, 'Readiness check failed: store unreachable');
    if (redisCheck.status === 'rejected') logger.warn({ err: redisCheck.reason }, 'Readiness check failed: Redis unreachable');
    const ready = storeCheck.status === 'fulfilled' && redisCheck.status === 'fulfilled';
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'unavailable',
      store: store.kind,
      ...(redis ? { redis: redisCheck.status === 'fulfilled' ? 'up' : 'down' } : {}),
    });
  });
  app.get('/metrics', async (_req, res) => {
    res.setHeader('content-type', registry.contentType);
    res.send(await registry.metrics());
  });
}

function withTimeout<T>(promise: Promise<T>, millis: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${millis} ms`)), millis);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The error with Apollo's code for its kind, as Apollo gives it over HTTP. */
function withCode(error: GraphQLError, code: ErrorCode): GraphQLError {
  return new GraphQLError(error.message, {
    ...(error.nodes ? { nodes: error.nodes } : {}),
    ...(error.source ? { source: error.source } : {}),
    ...(error.positions ? { positions: error.positions } : {}),
    extensions: { ...error.extensions, code },
  });
}
