import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import type express from 'express';
import { processRequest, type UploadOptions } from 'graphql-upload-minimal';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';

import { ErrorCode } from '../errors';
import { serializeErrorHidingTokens, tokenId } from '../observability/token-id';

/**
 * One log line per request, and a request id on every line logged while serving it: the
 * client's `x-request-id` when it is a sane one, else a new UUID, echoed in the response.
 * Credentials never reach the log: the Authorization header (and cookies, and the referring
 * page, whose address may hold a token) is redacted, query strings (download signatures) are
 * dropped from the logged URL, a download's token is logged as its id (`tokenId`) in the URL,
 * and the response's `content-disposition` (a file name made of the token) is left out.
 */
export function requestLogging(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId(req: IncomingMessage, res: ServerResponse) {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && /^[\w.:-]{1,100}$/.test(given) ? given : randomUUID();
      res.setHeader('x-request-id', id);
      return id;
    },
    // Lines logged while serving carry only the request id; the request itself is on the last line.
    quietReqLogger: true,
    autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' },
    redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers.referer'],
    serializers: {
      // pino-http sets its own serializers on its loggers (`req.log`), over the ones of `logger`.
      err: serializeErrorHidingTokens,
      req: (req: { id: unknown; method: string; url: string; headers: Record<string, unknown> }) => ({
        id: req.id,
        method: req.method,
        url: loggedUrl(req.url),
        headers: { ...req.headers },
      }),
      res: (res: { statusCode: number; headers: Record<string, unknown> }) => {
        const { 'content-disposition': _filename, ...headers } = res.headers ?? {};
        return { statusCode: res.statusCode, headers };
      },
    },
  });
}

/** The path of a request URL, with the token of a `/downloads/<token>/<file>` path as its id. */
function loggedUrl(url: string): string {
  const pathname = url.split('?')[0] ?? '';
  return pathname.replace(/^\/downloads\/([^/]+)/, (_match, token: string) => `/downloads/${tokenId(safeDecode(token))}`);
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * Errors before GraphQL runs (a body over the size limit, malformed JSON or multipart) answer
 * like GraphQL errors, with a code and without internals.
 */
export function requestErrorHandler(logger: Logger): express.ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const { status, statusCode } = error as { status?: number; statusCode?: number };
    const code = status ?? statusCode;
    const clientError = typeof code === 'number' && code >= 400 && code < 500;
    if (!clientError) (req.log ?? logger).error({ err: error }, 'Request failed before GraphQL');
    const message =
      code === 413 ? 'The request is larger than this server accepts.' : clientError ? 'The request is malformed.' : 'Internal server error';
    res.status(clientError ? code : 500).json({
      errors: [{ message, extensions: { code: clientError ? ErrorCode.BAD_REQUEST : ErrorCode.INTERNAL_SERVER_ERROR } }],
    });
  };
}

/**
 * graphql-upload-minimal's Express middleware, except that a malformed multipart body answers
 * 400: the library answers 500 to a body in which it finds neither operations nor map (taking it
 * for a body another middleware already read, which cannot happen here) and passes busboy's
 * parse errors on without a status. Its answer waits for the rest of the body (`answerAfterBody`).
 */
export function graphqlUploads(options: UploadOptions & { maxFileSize: number }): express.RequestHandler {
  return (req, res, next) => {
    if (!req.is('multipart/form-data')) {
      next();
      return;
    }
    answerAfterBody(req, res, options.maxFileSize);
    processRequest(req, res, options).then(
      (body) => {
        req.body = body;
        next();
      },
      (error: { status?: number }) => {
        // Parsing reads the request and nothing else, so every failure is the request's: busboy's
        // own errors ("Unexpected end of form", "Malformed part header") carry no status at all.
        const status = typeof error?.status === 'number' && error.status >= 400 && error.status < 500 ? error.status : 400;
        next(Object.assign(error instanceof Error ? error : new Error(String(error)), { status, statusCode: status }));
      },
    );
  };
}

/**
 * Holds the answer to a multipart request until the request's body has been read, discarding
 * what nobody read, at most `maxUnreadBytes` of it.
 *
 * Why: a refusal (dev mode, a full queue, a bad input field, an unknown model, a map with too
 * many files) is ready before the files were read, while the client is still sending them. A
 * server that answers and closes then has unread data on the socket, and closing such a socket
 * sends a TCP reset, which makes Node's fetch, browsers and Apollo Client report a network error
 * ("fetch failed", EPIPE) instead of the answer; only curl shows it. Answering early and reading
 * on is no cure either: a response that asks to close the connection (the client's
 * `Connection: close`, HTTP/1.0) closes it as soon as it is written. So the answer goes out once
 * the body has ended, and the connection stays usable: Node's HTTP parser frames the body, so
 * nothing of it is ever taken for the next request.
 *
 * The files nobody read hold busboy back (their streams stay full), so the body is unpiped from
 * the multipart parser and read here. A body that goes on past `maxUnreadBytes` after the answer
 * is ready gets the answer with `Connection: close`; the connection may then break under it.
 */
function answerAfterBody(req: IncomingMessage, res: ServerResponse, maxUnreadBytes: number): void {
  const end = res.end;
  let held = false;
  res.end = function endAfterBody(this: ServerResponse, ...args: unknown[]) {
    if (req.readableEnded || req.destroyed) return Reflect.apply(end, this, args) as ServerResponse;
    // Only the first answer goes out.
    if (held) return this;
    held = true;
    discardRest(req, maxUnreadBytes).then((whole) => {
      if (!whole && !res.headersSent) res.setHeader('connection', 'close');
      Reflect.apply(end, res, args);
    });
    return this;
  } as typeof res.end;
}

/** Reads and drops the rest of `req`; resolves true once it ended, false past `maxBytes` or when it broke off. */
function discardRest(req: IncomingMessage, maxBytes: number): Promise<boolean> {
  return new Promise((resolve) => {
    let bytes = 0;
    const settle = (whole: boolean) => {
      req.off('data', count).off('end', ended).off('close', closed);
      resolve(whole);
    };
    const count = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        req.pause();
        settle(false);
      }
    };
    const ended = () => settle(true);
    const closed = () => settle(false);
    req.unpipe();
    req.on('data', count).once('end', ended).once('close', closed);
    req.resume();
  });
}
