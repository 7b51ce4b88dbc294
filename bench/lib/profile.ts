import { readFileSync } from 'node:fs';
import path from 'node:path';

import { REPO_ROOT } from './machine';
import { table } from './report';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  /** Sampled milliseconds, idle excluded. */
  busyMillis: number;
  /** Of the whole recording, the share the main thread was idle. */
  idleShare: number;
  /** Self time by package (`node_modules/<name>`), Flash folder, or V8/Node category. */
  byOwner: { owner: string; millis: number; share: number }[];
  /** Self time by function. */
  byFunction: { name: string; owner: string; millis: number; share: number }[];
}

/** Self time of a V8 CPU profile (`.cpuprofile`), by owner and by function. */
export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  // The profiler's own start and stop (inspector calls) are not the server's work.
  const excluded = new Set<number>();
  const exclude = (id: number) => {
    excluded.add(id);
    for (const child of nodes.get(id)?.children ?? []) exclude(child);
  };
  for (const node of profile.nodes) if (node.callFrame.url === 'node:inspector') exclude(node.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    if (!excluded.has(id)) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000);
  });
  let idle = 0;
  let total = 0;
  const owners = new Map<string, number>();
  const functions = new Map<string, { owner: string; millis: number }>();
  for (const [id, millis] of self) {
    const frame = nodes.get(id)!.callFrame;
    total += millis;
    if (frame.functionName === '(idle)') {
      idle += millis;
      continue;
    }
    const owner = ownerOf(frame.url, frame.functionName);
    owners.set(owner, (owners.get(owner) ?? 0) + millis);
    const name = `${frame.functionName || '(anonymous)'} ${frame.url ? `${path.basename(frame.url)}:${frame.lineNumber + 1}` : ''}`.trim();
    const entry = functions.get(name) ?? { owner, millis: 0 };
    entry.millis += millis;
    functions.set(name, entry);
  }
  const busy = total - idle;
  return {
    busyMillis: busy,
    idleShare: total > 0 ? idle / total : 0,
    byOwner: [...owners.entries()]
      .map(([owner, millis]) => ({ owner, millis, share: millis / busy }))
      .sort((a, b) => b.millis - a.millis)
      .slice(0, top),
    byFunction: [...functions.entries()]
      .map(([name, { owner, millis }]) => ({ name, owner, millis, share: millis / busy }))
      .sort((a, b) => b.millis - a.millis)
      .slice(0, top),
  };
}

function ownerOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const file = url.replace(/^file:\/\//, '');
  const modules = file.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const [first, second] = file.slice(modules + 'node_modules/'.length).split('/');
    return first?.startsWith('@') ? `${first}/${second}` : (first ?? file);
  }
  if (file.startsWith('node:')) return 'node internals';
  if (file.startsWith(REPO_ROOT)) {
    const relative = path.relative(REPO_ROOT, file).split(path.sep);
    return `flash ${relative.slice(0, Math.min(2, relative.length - 1)).join('/')}/`;
  }
  return file;
}

/** The two tables every profile section shows: self time by owner, and by function. */
export function profileTables(summary: ProfileSummary): string[] {
  const share = (value: number) => `${(value * 100).toFixed(0)} %`;
  return [
    table(
      ['Self time by owner', 'ms', 'share'],
      summary.byOwner.map((entry) => [entry.owner, entry.millis.toFixed(0), share(entry.share)]),
    ),
    '',
    table(
      ['Self time by function', 'owner', 'ms', 'share'],
      summary.byFunction.map((entry) => [`\`${entry.name}\``, entry.owner, entry.millis.toFixed(0), share(entry.share)]),
      'llrr',
    ),
  ];
}
