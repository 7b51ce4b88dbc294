import type { InferenceConfig } from '../config';
import { readUpload, receiveUpload, type UploadInput } from '../datasets/uploads';
import type { DocumentReader } from '../documents';
import { BadUserInputError } from '../errors';
import type { PlatformPubSub } from '../events/pubsub';
import type { ModelService } from '../models/model.service';
import type { InferenceEngine } from './inference.engine';
import type { Prediction } from './prediction';

/** One image as `classifyImage` takes it: an upload, or base64 text, exactly one of them. */
export interface SingleImage {
  image?: UploadInput | null;
  imageBase64?: string | null;
}

/**
 * Predictions for a token: finds the deployed model (`MODEL_NOT_FOUND`, `MODEL_TRAINING`,
 * `MODEL_EXPIRED` first), reads the inputs within their limits, and asks the engine. Error
 * fields name the argument at fault (`image`, `imageBase64`, `images[3]`, `text`, `texts[2]`).
 */
export class PredictionService {
  private readonly removals: AsyncIterator<string>;
  private readonly forgetting: Promise<void>;

  constructor(
    private readonly models: ModelService,
    private readonly engine: InferenceEngine,
    pubsub: PlatformPubSub,
    private readonly limits: Pick<InferenceConfig, 'maxInputsPerRequest' | 'maxImageBytes'>,
  ) {
    // A deleted or expired model's session goes at once, rather than when the LRU pushes it out.
    const removals = pubsub.subscribe('MODEL_REMOVED')[Symbol.asyncIterator]();
    this.removals = removals;
    this.forgetting = (async () => {
      for (let next = await removals.next(); !next.done; next = await removals.next()) {
        await this.engine.evict(next.value).catch(() => undefined);
      }
    })();
  }

  /** Lets running predictions finish, then frees every model. */
  async close(): Promise<void> {
    await this.removals.return?.();
    await this.forgetting;
    await this.engine.close();
  }

  async classifyImage(token: string, { image, imageBase64 }: SingleImage, topK?: number, reader?: DocumentReader) {
    if (Boolean(image) === Boolean(imageBase64)) {
      throw new BadUserInputError('Send the image either as "image" or as "imageBase64".', 'image');
    }
    const model = await this.models.deployed(token, reader);
    const [bytes, field] = image
      ? [await this.readImage(image, 'image'), 'image']
      : [this.decodeBase64(imageBase64 as string), 'imageBase64'];
    const [prediction] = await this.engine.classifyImages(model, [bytes], topK, () => field);
    return prediction as Prediction;
  }

  async classifyImages(token: string, images: UploadInput[], topK?: number, reader?: DocumentReader) {
    this.checkCount(images.length, 'images');
    const model = await this.models.deployed(token, reader);
    const buffers: Buffer[] = [];
    // Multipart files arrive in order: each upload is read only once the earlier ones are.
    for (const [index, image] of images.entries()) buffers.push(await this.readImage(image, `images[${index}]`));
    return this.engine.classifyImages(model, buffers, topK);
  }

  async classifyText(token: string, text: string, topK?: number, reader?: DocumentReader): Promise<Prediction> {
    const model = await this.models.deployed(token, reader);
    const [prediction] = await this.engine.classifyTexts(model, [text], topK, () => 'text');
    return prediction as Prediction;
  }

  async classifyTexts(token: string, texts: string[], topK?: number, reader?: DocumentReader): Promise<Prediction[]> {
    this.checkCount(texts.length, 'texts');
    const model = await this.models.deployed(token, reader);
    return this.engine.classifyTexts(model, texts, topK);
  }

  private checkCount(count: number, field: string): void {
    if (count === 0) throw new BadUserInputError(`Send at least one of ${field}.`, field);
    if (count > this.limits.maxInputsPerRequest) {
      throw new BadUserInputError(`Send at most ${this.limits.maxInputsPerRequest} ${field} per request.`, field);
    }
  }

  private readImage(upload: UploadInput, field: string): Promise<Buffer> {
    return receiveUpload(upload, field).then((file) =>
      readUpload(file, { field, maxBytes: this.limits.maxImageBytes, tooLarge: () => this.tooLarge(field) }),
    );
  }

  /** Base64, bare or as a `data:image/…;base64,` URL (what browsers' `readAsDataURL` and `toDataURL` give). */
  private decodeBase64(value: string): Buffer {
    const base64 = withoutDataUrlPrefix(value);
    // Base64 takes 4 characters for 3 bytes: refuse by length before decoding anything.
    if (base64.length > Math.ceil(this.limits.maxImageBytes / 3) * 4 + 4) throw this.tooLarge('imageBase64');
    const bytes = Buffer.from(base64, 'base64');
    if (bytes.length === 0) throw new BadUserInputError('imageBase64 holds no image.', 'imageBase64');
    return bytes;
  }

  private tooLarge(field: string): BadUserInputError {
    const megabytes = Math.round((this.limits.maxImageBytes / 1024 / 1024) * 10) / 10;
    return new BadUserInputError(`The image is larger than ${megabytes} MB.`, field);
  }
}

/** `data:image/png;base64,` and the like: an image media type, optional parameters, base64 (RFC 2397). */
const IMAGE_DATA_URL = /^data:image\/[a-z0-9.+-]+(?:;[^,;]*)*;base64,/i;

/** The base64 of a bare value, or of an image `data:` URL; any other `data:` URL is refused. */
function withoutDataUrlPrefix(value: string): string {
  if (!/^data:/i.test(value)) return value;
  const prefix = IMAGE_DATA_URL.exec(value.slice(0, 256));
  if (!prefix) {
    throw new BadUserInputError(
      'imageBase64 holds a data: URL that is not a base64 image; send "data:image/<type>;base64,<data>" or the base64 alone.',
      'imageBase64',
    );
  }
  return value.slice(prefix[0].length);
}
