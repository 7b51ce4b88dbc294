import { createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Name of the file in the data folder that keeps a generated admin key (dot: never a store key). */
export const ADMIN_KEY_FILE = '.admin-key';

export interface AdminKeySource {
  key: string;
  /** `configured`: from `FLASH_ADMIN_KEY`; `generated`: created now; `stored`: read from the file. */
  origin: 'configured' | 'generated' | 'stored';
  /** The file that holds a generated key. */
  file: string | undefined;
}

/**
 * The configured key, or the one generated at a previous start, or a new one (256 random
 * bits) written to `<dataDir>/.admin-key` with mode 0600. `wx` makes creation exclusive, so two
 * servers starting at once on one folder end up with the same key.
 */
export async function resolveAdminKey(configured: string | undefined, dataDir: string): Promise<AdminKeySource> {
  if (configured) return { key: configured, origin: 'configured', file: undefined };
  const file = path.join(dataDir, ADMIN_KEY_FILE);
  await fs.mkdir(dataDir, { recursive: true });
  const generated = randomBytes(32).toString('base64url');
  try {
    await fs.writeFile(file, `${generated}\n`, { flag: 'wx', mode: 0o600 });
    return { key: generated, origin: 'generated', file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const stored = (await fs.readFile(file, 'utf8')).trim();
  if (stored.length < 16) throw new Error(`${file} does not hold a valid admin key; delete it to generate a new one`);
  return { key: stored, origin: 'stored', file };
}

/**
 * Checks presented credentials against the admin key in constant time: both sides are hashed
 * first, so neither the comparison nor an early length mismatch tells how much of a guess was
 * right.
 */
export class AdminKeyVerifier {
  private readonly digest: Buffer;

  constructor(key: string) {
    this.digest = sha256(key);
  }

  matches(presented: string): boolean {
    return timingSafeEqual(sha256(presented), this.digest);
  }
}

/** A key for one purpose derived from the admin key (HKDF-SHA256), so that one secret suffices. */
export function deriveKey(adminKey: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', adminKey, 'flash', purpose, 32));
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
