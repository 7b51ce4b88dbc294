import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const PYTHON = '/usr/bin/python3';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  onnxruntime: string;
  sharp: string;
  torch: string;
  commit: string;
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const family = /^cpu family\s*:\s*(\d+)$/m.exec(cpuinfo)?.[1];
  const modelNumber = /^model\s*:\s*(\d+)$/m.exec(cpuinfo)?.[1];
  const flags = /^flags\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.split(' ') ?? [];
  const simd = ['avx512f', 'avx512_vnni', 'avx512_bf16', 'avx2'].filter((flag) => flags.includes(flag)).join(', ');
  const osRelease = readFileSync('/etc/os-release', 'utf8');
  return {
    cpu: `${model} (family ${family ?? '?'}, model ${modelNumber ?? '?'}; ${simd || 'no AVX2'})`,
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1] ?? os.release(),
    node: process.version,
    onnxruntime: packageVersion('onnxruntime-node'),
    sharp: packageVersion('sharp'),
    torch: torchVersion(),
    commit: gitCommit(),
  };
}

function packageVersion(name: string): string {
  try {
    const file = path.join(REPO_ROOT, 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function torchVersion(): string {
  try {
    return execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    }).trim();
  } catch {
    return 'unavailable';
  }
}

/** The commit, with `+ uncommitted changes` when the tree differs from it. */
function gitCommit(): string {
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const commit = git('rev-parse', '--short=12', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return dirty ? `${commit} + uncommitted changes` : commit;
  } catch {
    return 'unknown';
  }
}

// --- CPU used by other processes --------------------------------------------------------

interface CpuSnapshot {
  busy: number;
  total: number;
  ours: number;
}

/** Jiffies of the whole machine, and of this process with every descendant (living or reaped). */
function cpuSnapshot(): CpuSnapshot {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already inside user)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait, ours: treeJiffies(process.pid) };
}

function processStat(pid: number): { ppid: number; jiffies: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the command: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    const at = (field: number) => Number(rest[field - 3]);
    return { ppid: at(4), jiffies: at(14) + at(15) + at(16) + at(17) };
  } catch {
    return null;
  }
}

function treeJiffies(root: number): number {
  const children = new Map<number, number[]>();
  const jiffies = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = processStat(pid);
    if (!stat) continue;
    jiffies.set(pid, stat.jiffies);
    children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), pid]);
  }
  let sum = 0;
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    sum += jiffies.get(pid) ?? 0;
    queue.push(...(children.get(pid) ?? []));
  }
  return sum;
}

/** Measures how much of the machine's CPU other processes used from now until `stop()`. */
export function backgroundMonitor(): { stop(): number } {
  const start = cpuSnapshot();
  return {
    stop() {
      const end = cpuSnapshot();
      const total = end.total - start.total;
      if (total <= 0) return 0;
      return Math.max(0, end.busy - start.busy - (end.ours - start.ours)) / total;
    },
  };
}

/**
 * Waits (at most `maxSeconds`) until other processes use less than `threshold` of the machine
 * over one second, so that an area does not start in the middle of someone's test run.
 * Returns the share seen last.
 */
export async function waitForQuiet(maxSeconds: number, threshold = 0.15, log: (line: string) => void = () => {}) {
  const deadline = Date.now() + maxSeconds * 1000;
  for (;;) {
    const monitor = backgroundMonitor();
    await sleep(1000);
    const share = monitor.stop();
    if (share < threshold) return share;
    if (Date.now() >= deadline) {
      log(`other processes still use ${(share * 100).toFixed(0)}% of the CPU; measuring anyway`);
      return share;
    }
    log(`other processes use ${(share * 100).toFixed(0)}% of the CPU; waiting for quiet`);
    await sleep(2000);
  }
}

/** Resident set of a process, and its peak since start (or since `resetPeak`), in bytes. */
export function residentSet(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s*(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** Resets the kernel's peak-RSS counter (`VmHWM`) of a process of ours. */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** CPU time a process has used so far (all its threads), in milliseconds. */
export function processCpuMillis(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100; // USER_HZ on Linux
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / ticksPerSecond;
}
