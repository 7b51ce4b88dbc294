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

import type { Context } from '../../resolvers/context';
import { type Config, type ConfigOverrides, loadConfig } from '../config';
import { DocumentLoader } from '../documents';
import { ErrorCode, TooManySubscriptionsError } from '../errors';
import { operationLabeller } from '../observability/operation-labels';
import { withTokensHidden } from '../observability/token-id';
import { createStore, type ObjectStore } from '../store';
import { UnreachableCaseError } from '../unreachable';
import { type AdminKeySource, AdminKeyVerifier, deriveKey, resolveAdminKey } from './admin-key';
import { authorizationParam, bearerFrom } from './auth';
import { crossOrigin } from './cors';
import { downloadsRouter } from './downloads.route';
import { formatError, logOperationErrors, withoutSuggestions } from './format-error';
import { graphqlUploads, requestErrorHandler, requestLogging } from './http';
import { drainWebSockets, observabilityPlugin } from './plugins';
import { listenProbes, type MetricsAccess, mountProbes, type ProbeServer } from './probes';
import { buildSchema } from './schema';
import { createPlatform } from './services';
import { logWebSocketErrors, SubscriptionLimit } from './websocket-limits';

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
  start(): Promise<{ url: string; port: number; adminKey: AdminKeySource; metricsPort: number | undefined }>;
  /** Stops accepting work, drains HTTP and WebSocket connections, closes the store. */
  stop(): Promise<void>;
}

/** How long `stop()` lets in-flight HTTP requests finish before closing their sockets. */
const STOP_GRACE_PERIOD_MILLIS = 10_000;

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
  let metricsServer: ProbeServer | undefined;

  async function start() {
    if (state.state !== 'idle') throw new Error(`Cannot start an app that is ${state.state}`);
    state = { state: 'starting' };
    try {
      return await listen();
    } catch (error) {
      // Leave nothing half-open: a failed start releases what it took, and cannot be retried.
      await apollo?.stop().catch(() => undefined);
      await metricsServer?.close();
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
    const admin = new AdminKeyVerifier(adminKey.key);
    const schema = await buildSchema({ pubsub: platform.pubsub, admin });

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

    // Depth, cost and alias limits; batched HTTP requests stay refused, as is Apollo's default.
    // The token limit is graphql-js's own parse option, so that it answers as a parse error
    // (400). No suggestions (which reveal the schema when introspection is off): Armor's
    // blockFieldSuggestion misses enum values and WebSocket, `withoutSuggestions` does not.
    const armor = new ApolloArmor({
      maxDepth: { n: config.queryLimits.depth, ignoreIntrospection: true },
      costLimit: { maxCost: config.queryLimits.cost, ignoreIntrospection: true },
      maxAliases: { n: config.queryLimits.aliases },
      maxTokens: { enabled: false },
      blockFieldSuggestion: { enabled: false },
    }).protect();
    const formatErrorOut: typeof formatError = config.introspection
      ? formatError
      : (formatted, error) => withoutSuggestions(formatError(formatted, error));
    const validationRules = [...specifiedRules, ...armor.validationRules];
    const parseOptions = { maxTokens: config.queryLimits.tokens };
    // Room for one base64 image in the JSON body (4 characters per 3 bytes) besides the query.
    const bodyLimit = Math.ceil((config.inference.maxImageBytes * 4) / 3) + 1024 * 1024;

    // The body limit holds for a WebSocket frame too: ws closes the connection with 1009 as soon
    // as a frame header announces more, before buffering it.
    const wsServer = new WebSocketServer({ server, path: '/graphql', maxPayload: bodyLimit });
    const subscriptionLimit = new SubscriptionLimit(config.maxSubscriptionsPerConnection);
    const wsCleanup = useServer<Record<string, unknown>, { logger?: Logger }>(
      {
        schema,
        // Subscriptions authenticate with `{ authorization: "Bearer …" }` (any case) in connection params.
        context: (ctx) => makeContext('websocket', authorizationParam(ctx.connectionParams), logger.child({ ws: true })),
        // A cap on the operations one connection runs, then the same operation limits as over
        // HTTP (graphql-ws validates again after this: cheap).
        onSubscribe: (ctx, id, payload) => {
          if (!subscriptionLimit.admit(ctx, id)) return [new TooManySubscriptionsError(config.maxSubscriptionsPerConnection)];
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
          return { ...result, errors: result.errors.map((error) => formatErrorOut(error.toJSON(), error)) };
        },
        onError: (_ctx, _id, _payload, errors) => {
          logOperationErrors(logger, errors);
          return errors.map((error) => formatErrorOut(error.toJSON(), error));
        },
      },
      wsServer,
    );
    logWebSocketErrors(wsServer, logger);

    apollo = new ApolloServer<Context>({
      schema,
      introspection: config.introspection,
      includeStacktraceInErrorResponses: false,
      allowBatchedHttpRequests: false,
      validationRules: armor.validationRules,
      parseOptions,
      formatError: formatErrorOut,
      stopOnTerminationSignals: false,
      plugins: [
        ApolloServerPluginDrainHttpServer({ httpServer: server, stopGracePeriodMillis: STOP_GRACE_PERIOD_MILLIS }),
        drainWebSockets(async () => {
          await wsCleanup.dispose();
        }),
        observabilityPlugin(platform.metrics, operationLabeller(schema)),
        ...armor.plugins,
        config.env === 'production'
          ? ApolloServerPluginLandingPageProductionDefault({ footer: false })
          : ApolloServerPluginLandingPageLocalDefault({ footer: false, includeCookies: false }),
      ],
    });
    await apollo.start();

    app.use(requestLogging(logger));
    const probes = { store, redis: platform.redis, registry: platform.metrics.registry, logger };
    mountProbes(app, { ...probes, metrics: metricsAccess(config, admin) });
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
    if (config.metricsPort !== undefined) {
      metricsServer = await listenProbes({ ...probes, metrics: { kind: 'open' }, port: config.metricsPort, host: config.host });
    }
    const metricsPort = metricsServer?.port;
    const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/graphql`;
    ownOrigin = new URL(url).origin;
    state = { state: 'listening', url, port };
    logger.info(
      { url, store: store.kind, env: config.env, role: config.role, redis: Boolean(config.redis), metricsPort },
      'Flash API listening',
    );
    return { url, port, adminKey, metricsPort };
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
        await metricsServer?.close();
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
 * `/metrics` on the main port: absent when it has a port of its own (`FLASH_METRICS_PORT`, for
 * an internal network), behind the admin key in production, open in development.
 */
function metricsAccess(config: Config, admin: AdminKeyVerifier): MetricsAccess {
  if (config.metricsPort !== undefined) return { kind: 'elsewhere' };
  return config.env === 'production' ? { kind: 'admin', admin } : { kind: 'open' };
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
