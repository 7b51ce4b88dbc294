import { createHmac, timingSafeEqual } from 'node:crypto';
import { AppError, BadUserInputError, ErrorCode } from '../errors';
import type { ByteRange, ObjectStore, OpenedObject } from '../store';
import { type DeployedModel, isModelFileKey, type ModelService } from './model.service';

export type ModelFormat = 'pytorch' | 'onnx';

/** The files of a model a link can name. */
export type ModelFile = 'model.pt' | 'model.onnx' | 'metadata.json';

export interface DownloadLink {
  url: string;
  expiresAt: Date;
  /** The name the file downloads as. */
  filename: string;
  /** Text models: a link to the vocabulary and label names (JSON), which the weights need. */
  vocabularyUrl: string | null;
}

export class DownloadForbiddenError extends AppError {
  constructor() {
    super('Downloads are turned off for this model.', { code: ErrorCode.FORBIDDEN });
  }
}

export interface DownloadOptions {
  /** Key for the HMAC that signs the links the server serves itself. */
  signingKey: Buffer;
  /** How long a link works, in seconds. */
  ttlSeconds: number;
}

/**
 * Expiring download links for a model's weights. On S3 they are presigned GETs, served by the
 * bucket; on the fs store they point at the server's `/downloads` route and carry an HMAC of
 * token, file and expiry, so a link can be neither forged, nor extended, nor turned to another
 * model or file.
 */
export class DownloadService {
  constructor(
    private readonly store: ObjectStore,
    private readonly models: ModelService,
    private readonly options: DownloadOptions,
  ) {}

  /** A link to the model's weights in `format`; `origin` is where the server is reached. */
  async link(token: string, format: ModelFormat, origin: string): Promise<DownloadLink> {
    const model = await this.models.deployed(token);
    if (!model.entry.downloadable) throw new DownloadForbiddenError();
    const file: ModelFile = format === 'onnx' ? 'model.onnx' : 'model.pt';
    if (!keyOf(model, file)) {
      throw new BadUserInputError(`This model has no ${format === 'onnx' ? 'ONNX' : 'PyTorch'} file to download.`, 'format');
    }
    const expires = Math.floor(Date.now() / 1000) + this.options.ttlSeconds;
    const metadata = model.entry.metadata_filename;
    const vocabulary = metadata?.endsWith('.json') ? await this.url(model, 'metadata.json', expires, origin) : null;
    return {
      url: await this.url(model, file, expires, origin),
      expiresAt: new Date(expires * 1000),
      filename: filenameOf(token, file),
      vocabularyUrl: vocabulary,
    };
  }

  /**
   * Opens the file a signed link names, after checking its signature and expiry and that the
   * model is still there and downloadable; `null` for any link that must not be served.
   * `range` picks the bytes to stream once the size is known (`ObjectStore.openRead`).
   */
  async open(
    token: string,
    file: string,
    expires: number,
    signature: string,
    range?: (size: number) => ByteRange | null,
  ): Promise<(OpenedObject & { filename: string }) | null> {
    if (!isModelFile(file) || !Number.isSafeInteger(expires) || expires * 1000 < Date.now()) return null;
    const expected = this.sign(token, file, expires);
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    const model = await this.models.deployed(token).catch(() => null); // gone since: refused like any other link
    const key = model?.entry.downloadable ? keyOf(model, file) : undefined;
    const object = key ? await this.store.openRead(key, range) : null;
    return object ? { ...object, filename: filenameOf(token, file) } : null;
  }

  private async url(model: DeployedModel, file: ModelFile, expires: number, origin: string): Promise<string> {
    const key = keyOf(model, file) as string;
    const filename = filenameOf(model.token, file);
    const presigned = await this.store.presignGet(key, {
      expiresInSeconds: expires - Math.floor(Date.now() / 1000),
      filename,
    });
    if (presigned) return presigned;
    const signature = this.sign(model.token, file, expires).toString('base64url');
    const path = `/downloads/${encodeURIComponent(model.token)}/${file}`;
    return `${origin}${path}?expires=${expires}&signature=${signature}`;
  }

  private sign(token: string, file: ModelFile, expires: number): Buffer {
    return createHmac('sha256', this.options.signingKey).update(`${token}\n${file}\n${expires}`).digest();
  }
}

function isModelFile(file: string): file is ModelFile {
  return file === 'model.pt' || file === 'model.onnx' || file === 'metadata.json';
}

function keyOf({ entry }: DeployedModel, file: ModelFile): string | undefined {
  const key = {
    'model.pt': entry.model_filename,
    'model.onnx': entry.model_filename_onnx,
    'metadata.json': entry.metadata_filename?.endsWith('.json') ? entry.metadata_filename : undefined,
  }[file];
  return isModelFileKey(key) ? key : undefined;
}

function filenameOf(token: string, file: ModelFile): string {
  return file === 'metadata.json' ? `${token}_metadata.json` : `${token}${file.slice('model'.length)}`;
}
