import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipSpec {
  name: string;
  data?: Buffer | string;
  method?: 'store' | 'deflate';
  /** Unix mode written into the external attributes. Default: a regular file or folder. */
  mode?: number;
  encrypted?: boolean;
  /** Uncompressed size written in the headers, when it should lie. */
  declaredSize?: number;
  /** Compressed bytes written instead of `data` deflated, to corrupt an entry. */
  body?: Buffer;
  /** CRC-32 written in the headers instead of the data's. */
  crc?: number;
  /**
   * Index of an earlier spec whose local header and data this entry's central directory record
   * points at (overlapping entries): it writes no data of its own, only its name.
   */
  sharesDataWith?: number;
}

/** A minimal ZIP writer, so that tests can also write what no honest zipper would. */
export function zip(specs: readonly ZipSpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  const written: { offset: number; method: number; crc: number; compressed: number; size: number }[] = [];
  let offset = 0;
  for (const spec of specs) {
    const name = Buffer.from(spec.name, 'utf8');
    const data = Buffer.from(spec.data ?? '');
    const flags = 0x800 | (spec.encrypted ? 1 : 0);
    const mode = spec.mode ?? (spec.name.endsWith('/') ? 0o40755 : 0o100644);
    const shared = spec.sharesDataWith === undefined ? undefined : written[spec.sharesDataWith];
    const method = shared?.method ?? (spec.method === 'store' ? 0 : 8);
    const body = spec.body ?? (method === 8 ? deflateRawSync(data) : data);
    const entry = shared ?? {
      offset,
      method,
      crc: spec.crc ?? crc32(data),
      compressed: body.length,
      size: spec.declaredSize ?? data.length,
    };
    written.push(entry);
    const { crc, size } = entry;

    if (!shared) {
      const local = Buffer.alloc(30);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(20, 4);
      local.writeUInt16LE(flags, 6);
      local.writeUInt16LE(method, 8);
      local.writeUInt32LE(crc, 14);
      local.writeUInt32LE(body.length, 18);
      local.writeUInt32LE(size, 22);
      local.writeUInt16LE(name.length, 26);
      locals.push(local, name, body);
    }

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(entry.compressed, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode * 0x10000) >>> 0, 38);
    central.writeUInt32LE(entry.offset, 42);
    centrals.push(central, name);
    if (!shared) offset += 30 + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(specs.length, 8);
  end.writeUInt16LE(specs.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
