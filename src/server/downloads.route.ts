import { pipeline } from 'node:stream/promises';

import { type Request, Router } from 'express';
import type { Logger } from 'pino';

import type { DownloadService } from '../models/download.service';
import { tokenLogger } from '../observability/token-id';
import type { ByteRange } from '../store';

/**
 * `GET /downloads/:token/:file?expires=…&signature=…`: the download links `downloadModel`
 * hands out when the store cannot presign them (the fs store). Every refusal answers the same
 * 403, so a probe learns nothing about which tokens exist.
 *
 * A `Range` of one span of bytes (overlapping spans are merged) answers 206 with those bytes,
 * so an interrupted download resumes; a range past the end answers 416; any other range (several
 * spans, another unit, a malformed header, an `If-Range`, which there is no validator to check
 * against) gets the whole file, as HTTP allows. The route streams from the store rather than
 * from a file, so it parses with Express's own `req.range` (range-parser) instead of
 * `res.sendFile`.
 */
export function downloadsRouter(downloads: DownloadService, logger: Logger): Router {
  const router = Router();
  router.get('/downloads/:token/:file', async (req, res) => {
    const { token, file } = req.params;
    const expires = Number(req.query.expires);
    const signature = typeof req.query.signature === 'string' ? req.query.signature : '';
    let unsatisfiable = false;
    const rangeOf = (size: number): ByteRange | null => {
      const range = rangeToServe(req, size);
      unsatisfiable = range === 'unsatisfiable';
      return range === 'unsatisfiable' ? null : range;
    };
    try {
      const download = await downloads.open(token, file, expires, signature, rangeOf);
      if (!download) {
        res.status(403).json({ error: 'This download link is invalid or has expired.' });
        return;
      }
      res.attachment(download.filename);
      res.setHeader('accept-ranges', 'bytes');
      res.setHeader('cache-control', 'private, no-store');
      if (unsatisfiable) {
        download.stream.destroy();
        res.status(416).setHeader('content-range', `bytes */${download.size}`).end();
        return;
      }
      const { range, size } = download;
      if (range) {
        res.status(206).setHeader('content-range', `bytes ${range.start}-${range.end}/${size}`);
        res.setHeader('content-length', String(range.end - range.start + 1));
      } else {
        res.setHeader('content-length', String(size));
      }
      await pipeline(download.stream, res);
    } catch (error) {
      // A client that goes away mid-download (a cancelled or paused transfer) is no failure of
      // the server's: the access log says "request aborted", and that is all.
      if (res.destroyed && !res.writableFinished) {
        tokenLogger(logger, token).debug('Download cut off by the client');
        return;
      }
      tokenLogger(logger, token).error({ err: error }, 'Download failed');
      if (!res.headersSent) res.status(500).json({ error: 'Internal server error' });
      else res.destroy();
    }
  });
  return router;
}

/** The one span of bytes the request's `Range` asks for, `'unsatisfiable'`, or `null` for the whole file. */
function rangeToServe(req: Request, size: number): ByteRange | 'unsatisfiable' | null {
  if (req.headers.range === undefined || req.headers['if-range'] !== undefined) return null;
  const ranges = req.range(size, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  if (ranges === undefined || ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return null;
  const { start, end } = ranges[0] as ByteRange;
  return { start, end };
}
