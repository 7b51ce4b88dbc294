import type { InferenceConfig } from '../config';
import { readUpload, type UploadInput } from '../datasets/uploads';
import type { DocumentReader } from '../documents';
import { BadUserInputError } from '../errors';
import type { ModelService } from '../models/model.service';
import type { InferenceEngine } from './inference.engine';
import type { Prediction } from './prediction';

/** An image as a request brings it: an upload, or base64 text. */
export type ImageInput = { upload: UploadInput } | { base64: string };

/**
 * Predictions for a token: finds the deployed model (`MODEL_NOT_FOUND`, `MODEL_TRAINING`,
 * `MODEL_EXPIRED` first), reads the inputs within their limits, and asks the engine.
 */
export class PredictionService {
  constructor(
    private readonly models: ModelService,
    private readonly engine: InferenceEngine,
    private readonly limits: Pick<InferenceConfig, 'maxInputsPerRequest' | 'maxImageBytes'>,
  ) {}

  async classifyImages(token: string, images: ImageInput[], topK: number | undefined, reader?: DocumentReader) {
    this.checkCount(images.length, 'images');
    const model = await this.models.deployed(token, reader);
    const buffers: Buffer[] = [];
    // Multipart files arrive in order: each upload is read only once the earlier ones are.
    for (const [index, image] of images.entries()) buffers.push(await this.readImage(image, images.length > 1 ? index : undefined));
    return this.engine.classifyImages(model, buffers, topK);
  }

  async classifyTexts(token: string, texts: string[], topK: number | undefined, reader?: DocumentReader): Promise<Prediction[]> {
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

  private async readImage(image: ImageInput, index: number | undefined): Promise<Buffer> {
    const field = index === undefined ? 'image' : `images[${index}]`;
    const tooLarge = () =>
      new BadUserInputError(`The image is larger than ${Math.round(this.limits.maxImageBytes / 1024 / 1024)} MB.`, field);
    if ('base64' in image) {
      // Base64 takes 4 characters for 3 bytes: refuse by length before decoding anything.
      if (image.base64.length > Math.ceil(this.limits.maxImageBytes / 3) * 4 + 4) throw tooLarge();
      const bytes = Buffer.from(image.base64, 'base64');
      if (bytes.length === 0) throw new BadUserInputError('imageBase64 holds no image.', 'imageBase64');
      return bytes;
    }
    return readUpload(await image.upload, { field, maxBytes: this.limits.maxImageBytes, tooLarge });
  }
}
