import { unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError, type GraphQLFormattedError, Kind } from 'graphql';
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

type ErrorKind = 'platform' | 'request' | 'unexpected';

/**
 * Ours (`AppError`), Apollo's about the request, or anything else: a store SDK error, a bug.
 * `code` is the code a request error goes out with where it came without one.
 */
function kindOf(error: unknown): { kind: ErrorKind; original: unknown; code?: ErrorCode } {
  const original = unwrapResolverError(error);
  if (original instanceof AppError || original instanceof ArgumentValidationError) return { kind: 'platform', original };
  const code = (error as { extensions?: { code?: unknown } })?.extensions?.code;
  if (original === error && typeof code === 'string' && APOLLO_CODES.has(code)) return { kind: 'request', original };
  if (code === undefined && isVariableError(error)) return { kind: 'request', original, code: ErrorCode.BAD_USER_INPUT };
  if (code === undefined && isApolloRequestError(error)) return { kind: 'request', original, code: ErrorCode.BAD_REQUEST };
  return { kind: 'unexpected', original };
}

/**
 * Apollo Server raises these about a request's automatic persisted query as plain
 * `GraphQLError`s without a code (and so would answer them as `INTERNAL_SERVER_ERROR`), with
 * HTTP status 400: they are the client's mistake, answered `BAD_REQUEST` with Apollo's message.
 */
const APOLLO_UNCODED_MESSAGES = new Set(['provided sha does not match query', 'Unsupported persisted query version']);

function isApolloRequestError(error: unknown): boolean {
  if (!(error instanceof GraphQLError) || error.path !== undefined || error.originalError) return false;
  const http = error.extensions.http as { status?: unknown } | undefined;
  return http?.status === 400 && APOLLO_UNCODED_MESSAGES.has(error.message);
}

/**
 * graphql-js's errors about a variable it cannot coerce. Over HTTP Apollo codes them
 * `BAD_USER_INPUT` (the same test as Apollo's `isBadUserInputGraphQLError`); graphql-ws passes
 * them on without a code.
 */
function isVariableError(error: unknown): boolean {
  if (!(error instanceof GraphQLError) || error.path !== undefined || error.nodes?.length !== 1) return false;
  const node = error.nodes[0]!;
  return node.kind === Kind.VARIABLE_DEFINITION && error.message.startsWith(`Variable "$${node.variable.name.value}" `);
}

/**
 * Apollo's `formatError` (and graphql-ws's): our errors and Apollo's request errors go out as
 * they are; anything else is masked as `INTERNAL_SERVER_ERROR`, so no internal message reaches
 * a client. Stack traces never go out (`includeStacktraceInErrorResponses` is off).
 */
export function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const { kind, original, code } = kindOf(error);
  if (original instanceof ArgumentValidationError) {
    return { ...formatted, extensions: { ...formatted.extensions, code: ErrorCode.BAD_USER_INPUT } };
  }
  if (kind !== 'unexpected') {
    return withoutEchoedValue(code ? { ...formatted, extensions: { ...formatted.extensions, code } } : formatted, error);
  }
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

/** graphql-js's `Variable "$t" got invalid value <the value>[ at "t.x"]; <reason>`: the part that names the variable. */
const INVALID_VARIABLE = /^(Variable "\$([_A-Za-z][_0-9A-Za-z]*)") got invalid value /;

/** The path inside the variable's value, as graphql-js prints it: schema field names and list indices only. */
const AT_PATH = / at "([_A-Za-z][_0-9A-Za-z]*)((?:\.[_A-Za-z][_0-9A-Za-z]*|\[\d+\])*)"$/;

/** graphql-js's reason for a missing input field: it names the schema's field and type, never a value. */
const MISSING_FIELD = /^Field "([_A-Za-z][_0-9A-Za-z]*)" of required type "[_A-Za-z][_0-9A-Za-z!\[\]]*" was not provided\.$/;

/**
 * graphql-js quotes the whole value of a variable it cannot coerce, twice: a token sent in the
 * wrong place would come back in the error (and in any log of it). Only the variable, the path
 * inside it and, for a missing field, the reason (which names the schema's field and type, and
 * nothing the client sent) are kept. `extensions.field` then names the field at fault relative
 * to the variable's value (`epochs`, `reduceLrOnPlateau.minLr`), as the platform's own
 * validation names fields relative to the input.
 */
function withoutEchoedValue(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const match = INVALID_VARIABLE.exec(formatted.message);
  if (!match) return formatted;
  const [, variable, name] = match;
  // The reason is graphql-js's own error, kept as the coercion error's original error.
  const reason = (error as { originalError?: { message?: unknown } } | null)?.originalError?.message;
  const head =
    typeof reason === 'string' && formatted.message.endsWith(`; ${reason}`)
      ? formatted.message.slice(0, -(reason.length + 2))
      : undefined;
  const at = head === undefined ? null : AT_PATH.exec(head);
  const path = at && at[1] === name ? at[2]!.replace(/^\./, '') : '';
  const missing = typeof reason === 'string' ? MISSING_FIELD.exec(reason) : null;
  const field = missing ? (path ? `${path}.${missing[1]}` : missing[1]!) : path;
  const where = at && at[1] === name ? ` at "${at[1]}${at[2]}"` : '';
  return {
    ...formatted,
    message: missing ? `${variable} has an invalid value${where}: ${reason}` : `${variable} has an invalid value${where}.`,
    ...(field
      ? {
          extensions: {
            ...formatted.extensions,
            field,
            fields: [{ field, message: missing ? `${reason}` : 'has an invalid value' }],
          },
        }
      : {}),
  };
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
