import { performance } from 'node:perf_hooks';

import type { ApolloServerPlugin } from '@apollo/server';

import type { Context } from '../../resolvers/context';
import type { Metrics } from '../observability/metrics';
import { logOperationErrors } from './format-error';

/**
 * Per operation: its duration by name and type, the codes of the errors it answered with, and
 * its unexpected errors logged with the request's logger (so with its request id).
 * `operationLabel` maps the name a client chose to one of a bounded set of labels
 * (`operationLabeller`).
 */
export function observabilityPlugin(
  metrics: Metrics,
  operationLabel: (name: string | null | undefined) => string,
): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      const started = performance.now();
      return {
        async didEncounterErrors({ errors, contextValue }) {
          logOperationErrors(contextValue.logger, errors);
        },
        async willSendResponse({ operationName, operation, response }) {
          const labels = { operation: operationLabel(operationName), type: operation?.operation ?? 'unknown' };
          metrics.requestDuration.observe(labels, (performance.now() - started) / 1000);
          const errors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
          for (const error of errors ?? []) metrics.errors.inc({ code: String(error.extensions?.code ?? 'UNKNOWN') });
        },
      };
    },
  };
}

/** Apollo's drain step for the graphql-ws server: closes subscriptions on `stop()`. */
export function drainWebSockets(dispose: () => Promise<void>): ApolloServerPlugin<Context> {
  return {
    async serverWillStart() {
      return {
        async drainServer() {
          await dispose();
        },
      };
    },
  };
}
