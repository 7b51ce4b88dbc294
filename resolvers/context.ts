import type { Logger } from 'pino';

import type { CleanupService } from '../src/cleanup/cleanup.service';
import type { DocumentLoader } from '../src/documents';
import type { PredictionService } from '../src/inference/prediction.service';
import type { DownloadService } from '../src/models/download.service';
import type { ModelService } from '../src/models/model.service';
import type { PlatformService } from '../src/platform/platform.service';
import type { TrainingService } from '../src/training/training.service';

/** Singletons shared by every request. */
export interface Services {
  platform: PlatformService;
  models: ModelService;
  downloads: DownloadService;
  cleanup: CleanupService;
  training: TrainingService;
  predictions: PredictionService;
}

/** Roles checked by `@Authorized(...)`; the server's auth checker decides who holds them. */
export enum Role {
  ADMIN = 'ADMIN',
}

/** Built for every HTTP request and every subscription event by the server's context factory. */
export interface Context {
  services: Services;
  /** Per-request document reads (DataLoader): one store read per document per request. */
  documents: DocumentLoader;
  /** The bearer credential the client presented, if any. */
  bearer: string | undefined;
  /** How the operation came: an HTTP request, or a graphql-ws connection (credentials in its connection params). */
  transport: 'http' | 'websocket';
  /** Where clients reach this server (for links it serves itself), e.g. `http://localhost:4000`. */
  origin: string;
  /** The request's logger: every line carries its request id. */
  logger: Logger;
}
