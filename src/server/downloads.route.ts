import { pipeline } from 'node:stream/promises';

import { Router } from 'express';
import type { Logger } from 'pino';

import type { DownloadService } from '../models/download.service';
import { tokenLogger } from '../observability/token-id';

/**
 * `GET /downloads/:token/:file?expires=…&signature=…`: the download links `downloadModel`
 * hands out when the store cannot presign them (the fs store). Every refusal answers the same
 * 403, so a probe learns nothing about which tokens exist.
 */
export function downloadsRouter(downloads: DownloadService, logger: Logger): Router {
  const router = Router();
  router.get('/downloads/:token/:file', async (req, res) => {
    const { token, file } = req.params;
    const expires = Number(req.query.expires);
    const signature = typeof req.query.signature === 'string' ? req.query.signature : '';
    try {
      const download = await downloads.open(token, file, expires, signature);
      if (!download) {
        res.status(403).json({ error: 'This download link is invalid or has expired.' });
        return;
      }
      res.attachment(download.filename);
      res.setHeader('content-length', String(download.size));
      res.setHeader('cache-control', 'private, no-store');
      await pipeline(download.stream, res);
    } catch (error) {
      tokenLogger(logger, token).error({ err: error }, 'Download failed');
      if (!res.headersSent) res.status(500).json({ error: 'Internal server error' });
      else res.destroy();
    }
  });
  return router;
}
