import { createHash } from 'node:crypto';

import pino, { type Logger } from 'pino';

/**
 * What logs say instead of a model token. A token is the only credential for its job and its
 * model, and logs travel further than credentials should (log shippers, support tickets), so
 * no log line carries one: it carries this id, the first 12 hex digits of the token's SHA-256.
 * Operators can still follow one job through the logs, and tell whose it is by hashing a token
 * they were given; the id does not lead back to a token this platform made (103 random bits).
 */
export function tokenId(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12);
}

/**
 * A logger for work on one token's job or model: its lines carry `tokenId`, and errors logged
 * with it (`{ err }`) have the token replaced by its id wherever it appears in them (a store
 * key, a file path in an I/O error's message).
 */
export function tokenLogger(logger: Logger, token: string, bindings: Record<string, unknown> = {}): Logger {
  const id = tokenId(token);
  return logger.child(
    { tokenId: id, ...bindings },
    { serializers: { err: (error: unknown) => replaceInError(serialized(error), (text) => text.replaceAll(token, id)) } },
  );
}

/**
 * Tokens this platform makes (`createToken`), found in free text. The random part is 20
 * characters; a `_metadata` suffix (a text model's vocabulary file) is not part of the token.
 */
const PLATFORM_TOKEN = /(?:image|text)Classification-[A-Za-z0-9_-]*?-[a-z0-9]{20}(?![A-Za-z0-9-])/g;

/**
 * The error serializer of every logger the server makes: the last line of defence for errors
 * that name a token and are logged where no one knows which (an unexpected error in an
 * operation). It finds the tokens this platform makes by their shape; `tokenLogger` covers any.
 */
export function serializeErrorHidingTokens(error: unknown): unknown {
  return replaceInError(serialized(error), (text) => text.replace(PLATFORM_TOKEN, (token) => tokenId(token)));
}

/** The logger with `serializeErrorHidingTokens` for `err`. */
export function withTokensHidden(logger: Logger): Logger {
  return logger.child({}, { serializers: { err: serializeErrorHidingTokens } });
}

/** pino's serialization of an error; pino-http hands its serializers errors it has serialized already. */
function serialized(error: unknown): unknown {
  return error instanceof Error ? pino.stdSerializers.err(error) : error;
}

/**
 * A copy of the serialized error with `replace` applied to each string in it (message, stack,
 * causes, an SDK error's fields). Other values stay as they are; a cycle is cut, as pino's own
 * serializer cuts it.
 */
function replaceInError(serialized: unknown, replace: (text: string) => string): unknown {
  const seen = new WeakSet<object>();
  const copy = (value: unknown): unknown => {
    if (typeof value === 'string') return replace(value);
    if (typeof value !== 'object' || value === null) return value;
    if (seen.has(value)) return '[Circular]';
    seen.add(value);
    if (Array.isArray(value)) return value.map(copy);
    if (ArrayBuffer.isView(value) || value instanceof Date) return value;
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, copy(inner)]));
  };
  return copy(serialized);
}
