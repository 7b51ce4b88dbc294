import sharp from 'sharp';

/**
 * The one home of image preprocessing: training preparation and inference both call it, so a
 * served prediction sees exactly the pixels validation saw.
 *
 * An image becomes a square RGB uint8 array (HWC) of `preparedSize(imageSize)` pixels a side:
 * EXIF orientation applied, alpha flattened onto white, grey expanded to RGB, the shorter side
 * resized to `round(imageSize * 256 / 224)` and the centre cropped square (torchvision's
 * classic "resize 256, crop 224" ratio). The trainer takes random crops of that square for
 * training and its centre `imageSize` crop for validation; inference takes `centerCrop`.
 */

/** Network input size in pixels (the crop the model sees). Default `224`. */
export const DEFAULT_IMAGE_SIZE = 224;
/** Decompression-bomb guard: images with more input pixels than this are refused. */
export const DEFAULT_MAX_INPUT_PIXELS = 40_000_000;

export function preparedSize(imageSize: number): number {
  return Math.round((imageSize * 256) / 224);
}

export interface PrepareOptions {
  /** Network input size; the prepared square is `preparedSize(imageSize)`. */
  imageSize: number;
  /** Refuse images with more pixels than this. Default `DEFAULT_MAX_INPUT_PIXELS`. */
  maxInputPixels?: number;
}

export class ImageDecodeError extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'ImageDecodeError';
  }
}

/**
 * Decodes any format sharp reads (JPEG, PNG, WebP, GIF — first frame —, AVIF, TIFF, …) into
 * the prepared square. Rejects with `ImageDecodeError` for anything that is not a complete,
 * decodable image within the pixel limit.
 */
export async function prepareImage(input: Buffer | string, options: PrepareOptions): Promise<Buffer> {
  const side = preparedSize(options.imageSize);
  try {
    const { data, info } = await sharp(input, {
      limitInputPixels: options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS,
      failOn: 'truncated',
      pages: 1,
    })
      .rotate()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .resize(side, side, { fit: 'cover', position: 'centre', kernel: 'lanczos3' })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.width !== side || info.height !== side || info.channels !== 3) {
      throw new ImageDecodeError(`unexpected decoded shape ${info.width}x${info.height}x${info.channels}`);
    }
    return data;
  } catch (error) {
    if (error instanceof ImageDecodeError) throw error;
    throw new ImageDecodeError(describeSharpFailure(error), { cause: error });
  }
}

/** The centre `crop`×`crop` of a prepared square, with the trainer's offsets (`(side - crop) // 2`). */
export function centerCrop(prepared: Buffer, side: number, crop: number): Buffer {
  if (crop > side) throw new RangeError(`crop ${crop} is larger than the image side ${side}`);
  const offset = Math.floor((side - crop) / 2);
  const rowBytes = crop * 3;
  const out = Buffer.allocUnsafe(crop * rowBytes);
  for (let row = 0; row < crop; row++) {
    const start = ((offset + row) * side + offset) * 3;
    prepared.copy(out, row * rowBytes, start, start + rowBytes);
  }
  return out;
}

/** A short, user-safe reason: sharp's messages name formats, never paths or internals. */
function describeSharpFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/pixel limit/i.test(message)) return 'the image has more pixels than allowed';
  if (/unsupported image format/i.test(message)) return 'not an image in a supported format';
  if (/truncated|premature end|corrupt|invalid|bad /i.test(message)) return 'the image is truncated or corrupt';
  return 'the image could not be decoded';
}
