import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { startTestServer, type TestServer } from './helpers/server';
import { multipart, sentimentCsv, SUBMIT, textInput } from './helpers/training';

/**
 * Issue 11: a store or work folder that is read-only or full during `submitTraining` answers
 * `STORE_UNAVAILABLE`, not `INTERNAL_SERVER_ERROR`. Real file systems: small tmpfs mounts,
 * remounted read-only or filled up. Mounting needs root (and the right to mount); without it
 * the tests are skipped, saying why.
 */

jest.setTimeout(30_000);

const codes = (response: { errors?: { extensions?: { code?: string } }[] }) =>
  response.errors?.map((error) => error.extensions?.code);

/** Why this process cannot mount a tmpfs, or `null` when it can. */
function cannotMount(): string | null {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const probe = mkdtempSync(path.join(tmpdir(), 'flash-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return null;
  } catch (error) {
    return `mount -t tmpfs failed: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const reason = cannotMount();
if (reason) {
  console.warn(`Skipping the read-only and full-disk tests: ${reason}`);
}
const describeMounted = reason ? describe.skip : describe;

describeMounted('submitTraining on storage that refuses writes', () => {
  let root: string;
  const mounts: string[] = [];

  /** A fresh tmpfs of `size` at `root/name`. */
  function mountTmpfs(name: string, size: string): string {
    const folder = path.join(root, name);
    mkdirSync(folder);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', folder]);
    mounts.push(folder);
    return folder;
  }
  const remount = (folder: string, mode: 'ro' | 'rw') => execFileSync('mount', ['-o', `remount,${mode}`, folder]);

  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), 'flash-storage-'));
  });

  afterAll(() => {
    for (const folder of mounts.reverse()) {
      try {
        execFileSync('umount', ['-l', folder]);
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true });
  });

  const submitCsv = (server: TestServer) =>
    multipart(server, SUBMIT, { input: textInput() }, [
      { path: 'variables.input.dataset', filename: 'reviews.csv', content: sentimentCsv(200) },
    ]);

  /** Nothing of the refused job is anywhere: no record, no queue, no staged upload. */
  function expectNothingStored(dataDir: string, workDir = path.join(dataDir, '.work')): void {
    const jobs = path.join(dataDir, 'training', 'jobs');
    expect(existsSync(jobs) ? readdirSync(jobs) : []).toEqual([]);
    expect(existsSync(path.join(dataDir, 'training', 'queue.json'))).toBe(false);
    const uploads = path.join(workDir, 'uploads');
    expect(existsSync(uploads) ? readdirSync(uploads) : []).toEqual([]);
  }

  async function withServer(dataDir: string, env: Record<string, string>, run: (server: TestServer) => Promise<void>) {
    const server = await startTestServer({ dataDir, env });
    try {
      await run(server);
      // The server keeps answering what needs no write.
      expect((await server.graphql('{ status { status } }')).data).toEqual({ status: { status: 'SLEEPING' } });
    } finally {
      await server.stop();
    }
  }

  it('answers STORE_UNAVAILABLE when the data folder (store and work folder) is read-only', async () => {
    const dataDir = mountTmpfs('read-only', '4m');
    await withServer(dataDir, {}, async (server) => {
      remount(dataDir, 'ro');
      try {
        const response = await submitCsv(server);
        expect(codes(response)).toEqual(['STORE_UNAVAILABLE']);
        expectNothingStored(dataDir);
      } finally {
        remount(dataDir, 'rw');
      }
    });
  });

  it('answers STORE_UNAVAILABLE when the work folder is full', async () => {
    const dataDir = mountTmpfs('full', '256k');
    await withServer(dataDir, {}, async (server) => {
      // Fill what is left, then let the upload's first writes find the disk full.
      const filler = path.join(dataDir, '.filler');
      try {
        for (let i = 0; ; i++) writeFileSync(`${filler}-${i}`, Buffer.alloc(4096, 1));
      } catch (error) {
        expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      const response = await submitCsv(server);
      expect(codes(response)).toEqual(['STORE_UNAVAILABLE']);
      for (const name of readdirSync(dataDir)) if (name.startsWith('.filler')) rmSync(path.join(dataDir, name));
      expectNothingStored(dataDir);
    });
  });

  it('answers STORE_UNAVAILABLE when only the store is read-only, the work folder being fine', async () => {
    const dataDir = mountTmpfs('store-only', '4m');
    const workDir = path.join(root, 'work');
    mkdirSync(workDir);
    await withServer(dataDir, { FLASH_WORK_DIR: workDir }, async (server) => {
      remount(dataDir, 'ro');
      try {
        const response = await submitCsv(server);
        expect(codes(response)).toEqual(['STORE_UNAVAILABLE']);
        expectNothingStored(dataDir, workDir);
      } finally {
        remount(dataDir, 'rw');
      }
    });
  });

  it('answers STORE_UNAVAILABLE when the store is full, the work folder being fine', async () => {
    const dataDir = mountTmpfs('store-full', '256k');
    const workDir = path.join(root, 'work-full');
    mkdirSync(workDir);
    await withServer(dataDir, { FLASH_WORK_DIR: workDir }, async (server) => {
      const filler = path.join(dataDir, '.filler');
      try {
        for (let i = 0; ; i++) writeFileSync(`${filler}-${i}`, Buffer.alloc(4096, 1));
      } catch (error) {
        expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      const response = await submitCsv(server);
      expect(codes(response)).toEqual(['STORE_UNAVAILABLE']);
      for (const name of readdirSync(dataDir)) if (name.startsWith('.filler')) rmSync(path.join(dataDir, name));
      expectNothingStored(dataDir, workDir);
    });
  });
});
