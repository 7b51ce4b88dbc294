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

type Kind = 'platform' | 'request' | 'unexpected';

/** Ours (`AppError`), Apollo's about the request, or anything else: a store SDK error, a bug. */
function kindOf(error: unknown): { kind: Kind; original: unknown } {
  const original = unwrapResolverError(error);
  if (original instanceof AppError || original instanceof ArgumentValidationError) return { kind: 'platform', original };
  const code = (error as { extensions?: { code?: unknown } })?.extensions?.code;
  if (original === error && typeof code === 'string' && APOLLO_CODES.has(code)) return { kind: 'request', original };
  return { kind: 'unexpected', original };
}

/**
 * Apollo's `formatError` (and graphql-ws's): our errors and Apollo's request errors go out as
 * they are; anything else is masked as `INTERNAL_SERVER_ERROR`, so no internal message reaches
 * a client. Stack traces never go out (`includeStacktraceInErrorResponses` is off).
 */
export function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const { kind, original } = kindOf(error);
  if (original instanceof ArgumentValidationError) {
    return { ...formatted, extensions: { ...formatted.extensions, code: ErrorCode.BAD_USER_INPUT } };
  }
  if (kind !== 'unexpected') return withoutEchoedValue(formatted);
  return {
    message: 'Internal server error',
    ...(formatted.locations ? { locations: formatted.locations } : {}),
    ...(formatted.path ? { path: formatted.path } : {}),
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  };
}

/** Logs what operators need of an operation's errors: the unexpected ones in full, store trouble as warnings. */
export function logOperationErrors(logger: Logger, errors: readonly unknown[]): void {
  for (const error of errors) {
    const { kind, original } = kindOf(error);
    if (original instanceof DocumentInvalidError) {
      logger.warn({ document: original.document, problems: original.detail }, 'Invalid platform document');
    } else if (original instanceof StoreUnavailableError) {
      logger.warn({ err: original.cause }, 'Store unavailable');
    } else if (kind === 'unexpected') {
      logger.error({ err: original, path: (error as { path?: unknown }).path }, 'Unexpected error while executing an operation');
    }
  }
}

/** `Variable "$t" got invalid value <the value>[ at "input.x"]; <reason quoting the value>`, as graphql-js words it. */
const INVALID_VARIABLE = /^(Variable "\$[^"]+") got invalid value [\s\S]*?(?:( at "[^"]*"))?; [\s\S]*$/;

/**
 * graphql-js quotes the whole value of a variable it cannot coerce, twice: a token sent in the
 * wrong place would come back in the error (and in any log of it). Only the variable and the
 * path inside it are named.
 */
function withoutEchoedValue(formatted: GraphQLFormattedError): GraphQLFormattedError {
  const match = INVALID_VARIABLE.exec(formatted.message);
  if (!match) return formatted;
  return { ...formatted, message: `${match[1]} has an invalid value${match[2] ?? ''}.` };
}

/** graphql-js's suggestions, as `didYouMean` words them: of fields, arguments, types, enum values. */
const SUGGESTION = /\s*Did you mean [^?]*\?/g;

/**
 * The error without graphql-js's "Did you mean …?" suggestions, for a server whose
 * introspection is off: they name parts of the schema to whoever guesses near them, a field
 * (`Did you mean "status"?`) or an enum value (`Did you mean the enum value "ONNX"?`, from
 * validation and from variable coercion alike). GraphQL Armor's `blockFieldSuggestion` knows
 * only the first wording, and only on HTTP; this applies to every error sent, over HTTP and
 * WebSocket.
 */
export function withoutSuggestions(formatted: GraphQLFormattedError): GraphQLFormattedError {
  if (!formatted.message.includes('Did you mean')) return formatted;
  return { ...formatted, message: formatted.message.replace(SUGGESTION, '') };
}
