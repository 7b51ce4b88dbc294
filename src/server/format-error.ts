import { unwrapResolverError } from '@apollo/server/errors';
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import { ArgumentValidationError } from 'type-graphql';

import { AppError, DocumentInvalidError, ErrorCode, StoreUnavailableError } from '../errors';

/** Codes Apollo Server gives its own request errors; their messages describe the request only. */
const APOLLO_CODES = new Set<string>([
  ErrorCode.GRAPHQL_PARSE_FAILED,
  ErrorCode.GRAPHQL_VALIDATION_FAILED,
  ErrorCode.PERSISTED_QUERY_NOT_FOUND,
  ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED,
  ErrorCode.OPERATION_RESOLUTION_FAILURE,
  ErrorCode.BAD_REQUEST,
  ErrorCode.BAD_USER_INPUT,
  ErrorCode.INTROSPECTION_DISABLED,
]);

/**
 * Apollo's `formatError`: our `AppError`s and Apollo's request errors go out as they are;
 * anything else (a store SDK error, a bug) is logged in full and masked as
 * `INTERNAL_SERVER_ERROR`, so no internal message reaches a client. Stack traces never go
 * out (`includeStacktraceInErrorResponses` is off); the log has them.
 */
export function createErrorFormatter(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrapResolverError(error);
    if (original instanceof AppError) {
      if (original instanceof DocumentInvalidError) {
        logger.warn({ document: original.document, problems: original.detail }, 'Invalid platform document');
      } else if (original instanceof StoreUnavailableError) {
        logger.warn({ err: original.cause }, 'Store unavailable');
      }
      return formatted;
    }
    if (original instanceof ArgumentValidationError) {
      return { ...formatted, extensions: { ...formatted.extensions, code: ErrorCode.BAD_USER_INPUT } };
    }
    const code = formatted.extensions?.code;
    if (original === error && typeof code === 'string' && APOLLO_CODES.has(code)) return formatted;

    logger.error({ err: original, path: formatted.path }, 'Unexpected error while executing an operation');
    return {
      message: 'Internal server error',
      ...(formatted.locations ? { locations: formatted.locations } : {}),
      ...(formatted.path ? { path: formatted.path } : {}),
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    };
  };
}
