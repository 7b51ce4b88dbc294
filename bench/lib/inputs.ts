import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import sharp from 'sharp';

import { CACHE_DIR } from './models';

/** A deterministic pseudo-random generator (mulberry32), so every run sends the same bytes. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The image the inference benchmarks send: a 640 × 480 JPEG (quality 85) of smooth gradients
 * with grain, the size of a typical web or webcam picture, so decoding costs what it would.
 */
export async function photoJpeg(): Promise<{ file: string; bytes: number; description: string }> {
  const width = 640;
  const height = 480;
  const file = path.join(CACHE_DIR, 'inputs', `photo-${width}x${height}.jpg`);
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    const next = random(1);
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const at = (y * width + x) * 3;
        const grain = (next() - 0.5) * 40;
        pixels[at] = clamp(255 * (x / width) + grain);
        pixels[at + 1] = clamp(128 + 100 * Math.sin((x + y) / 60) + grain);
        pixels[at + 2] = clamp(255 * (y / height) + grain);
      }
    }
    const jpeg = await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
    writeFileSync(file, jpeg);
  }
  const { size } = statSync(file);
  return { file, bytes: size, description: `${width} × ${height} JPEG, ${Math.round(size / 1024)} KiB` };
}

/** An incompressible PNG of `side` × `side` random pixels (about `side² × 3` bytes). */
export function noisePng(side: number, seed: number): Promise<Buffer> {
  const next = random(seed);
  const pixels = Buffer.alloc(side * side * 3);
  for (let i = 0; i < pixels.length; i += 4) {
    const value = (next() * 4294967296) >>> 0;
    pixels.writeUInt32LE(value, Math.min(i, pixels.length - 4));
  }
  return sharp(pixels, { raw: { width: side, height: side, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
}

/** The sentence the text benchmarks classify (14 tokens). */
export const REVIEW = 'A wonderful film, truly great: the acting was superb and I would happily see it again!';

function clamp(value: number): number {
  return Math.max(0, Math.min(255, Math.round(value)));
}
