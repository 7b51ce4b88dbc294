/**
 * Writes the sample datasets the README's examples train on (run once; the files are
 * committed): `day-night.zip`, ten small landscape pictures per class (`day/`, `night/`), the
 * fewest a class may have by default; `reviews.csv` is written by hand.
 *
 *   node -r ts-node/register/transpile-only examples/datasets/generate.ts
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';

import sharp from 'sharp';

const SIDE = 96;
const PER_CLASS = 10;

/** A seeded generator, so that the pictures come out the same each run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A landscape: sky, a sun or a moon (and stars), clouds, two ranges of hills. */
function landscape(night: boolean, next: () => number): string {
  const pick = (low: number, high: number) => low + (high - low) * next();
  const hsl = (h: number, s: number, l: number) => `hsl(${h.toFixed(0)},${s.toFixed(0)}%,${l.toFixed(0)}%)`;
  const sky = night
    ? [hsl(pick(220, 245), pick(40, 60), pick(4, 10)), hsl(pick(215, 235), pick(35, 55), pick(16, 26))]
    : [hsl(pick(200, 215), pick(60, 80), pick(45, 58)), hsl(pick(190, 205), pick(55, 75), pick(75, 88))];
  const [x, y, r] = [pick(12, 84), pick(10, 34), pick(6, 11)];
  const light = night
    ? `<circle cx="${x}" cy="${y}" r="${r}" fill="#f2f0dc"/><circle cx="${x + r * 0.5}" cy="${y - r * 0.3}" r="${r}" fill="${sky[0]}" opacity="${pick(0, 0.9).toFixed(2)}"/>` +
      Array.from({ length: 18 }, () => `<circle cx="${pick(0, SIDE)}" cy="${pick(0, 55)}" r="${pick(0.3, 0.9)}" fill="#fff" opacity="${pick(0.4, 1).toFixed(2)}"/>`).join('')
    : `<circle cx="${x}" cy="${y}" r="${r * 1.9}" fill="#fff6c0" opacity="0.35" filter="url(#soft)"/><circle cx="${x}" cy="${y}" r="${r}" fill="#fff4b0"/>`;
  const clouds = Array.from({ length: night ? 1 : 3 }, () => {
    const [cx, cy, w] = [pick(0, SIDE), pick(12, 45), pick(12, 26)];
    return `<ellipse cx="${cx}" cy="${cy}" rx="${w}" ry="${w / 3}" fill="${night ? '#3a4258' : '#ffffff'}" opacity="${pick(0.5, 0.85).toFixed(2)}" filter="url(#soft)"/>`;
  }).join('');
  const hills = (base: number, lightness: number) => {
    const points = Array.from({ length: 7 }, (_, i) => `${(i * SIDE) / 6},${(base + pick(-9, 9)).toFixed(1)}`).join(' ');
    return `<polygon points="0,${SIDE} ${points} ${SIDE},${SIDE}" fill="${hsl(pick(85, 125), pick(30, 55), night ? lightness / 5 : lightness)}" filter="url(#edge)"/>`;
  };
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${SIDE}" height="${SIDE}">
    <defs>
      <linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${sky[0]}"/><stop offset="1" stop-color="${sky[1]}"/></linearGradient>
      <filter id="soft"><feGaussianBlur stdDeviation="2.5"/></filter>
      <filter id="edge"><feGaussianBlur stdDeviation="0.6"/></filter>
    </defs>
    <rect width="${SIDE}" height="${SIDE}" fill="url(#sky)"/>${light}${clouds}${hills(pick(58, 66), pick(32, 42))}${hills(pick(72, 80), pick(22, 30))}
  </svg>`;
}

/** Grain, as a camera's: noise added to every pixel. */
async function photo(svg: string, next: () => number): Promise<Buffer> {
  const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, Math.min(255, data[i]! + Math.round((next() - 0.5) * 14)));
  return sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }).jpeg({ quality: 82 }).toBuffer();
}

/** A ZIP of stored entries (JPEGs do not deflate). */
function zip(entries: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, data } of entries) {
    const fileName = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(fileName.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc32(data), 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(fileName.length, 28);
    central.writeUInt32LE((0o100644 * 0x10000) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, fileName, data);
    centrals.push(central, fileName);
    offset += local.length + fileName.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

async function main() {
  const next = random(2026);
  const entries = [];
  for (const label of ['day', 'night']) {
    for (let i = 1; i <= PER_CLASS; i++) {
      entries.push({ name: `${label}/${label}-${String(i).padStart(2, '0')}.jpg`, data: await photo(landscape(label === 'night', next), next) });
    }
  }
  writeFileSync(path.join(__dirname, 'day-night.zip'), zip(entries));
}

main();
