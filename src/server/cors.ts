import cors from 'cors';
import type express from 'express';

/**
 * Response headers a page on another origin may read besides the CORS-safelisted ones: the
 * request id (to quote in a bug report), and for downloads the file name and the range served.
 */
const EXPOSED_HEADERS = ['x-request-id', 'content-disposition', 'content-range', 'accept-ranges'];

/**
 * The CORS policy of the API and of the download route (`FLASH_CORS_ORIGINS`): any origin
 * (`'*'`), the origins listed (echoed back, with `Vary: Origin`), or none (an empty list: no
 * CORS headers, so only pages of the server's own origin can read its answers). Credentials
 * travel in the `Authorization` header, never in cookies, so no origin is ever sent
 * `Access-Control-Allow-Credentials`.
 */
export function crossOrigin(origins: '*' | readonly string[]): express.RequestHandler {
  return cors({ origin: origins === '*' ? '*' : [...origins], exposedHeaders: EXPOSED_HEADERS });
}
