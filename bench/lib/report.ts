import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { MachineInfo } from './machine';
import { REPO_ROOT } from './machine';

export const BENCHMARKS_FILE = path.join(REPO_ROOT, 'BENCHMARKS.md');
const MARKER = '<!-- runs: newest first; `npm run bench` inserts a section below this line -->';

export interface TargetCheck {
  area: string;
  target: string;
  measured: string;
  /** `null`: could not be measured in this run (say why in `measured`). */
  met: boolean | null;
}

export interface AreaReport {
  area: string;
  title: string;
  markdown: string;
  targets: TargetCheck[];
  /** Share of the machine's CPU other processes used while the area ran. */
  background: number;
  seconds: number;
}

export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[], align?: string): string {
  const alignment = align ?? headers.map((_, i) => (i === 0 ? 'l' : 'r')).join('');
  const rule = [...alignment].map((a) => (a === 'r' ? '---:' : a === 'c' ? ':---:' : '---'));
  return [
    `| ${headers.join(' | ')} |`,
    `| ${rule.join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(String).join(' | ')} |`),
  ].join('\n');
}

export const ms = (value: number) => (Number.isFinite(value) ? (value >= 100 ? value.toFixed(0) : value.toFixed(1)) : '–');
export const rate = (value: number) => (Number.isFinite(value) ? (value >= 100 ? value.toFixed(0) : value.toFixed(1)) : '–');
export const ratio = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)}×` : '–');
export const percent = (value: number) => (Number.isFinite(value) ? `${(value * 100).toFixed(0)} %` : '–');
export const mib = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(0)} MiB` : '–');
export const verdict = (met: boolean | null) => (met === null ? 'not measured' : met ? '**met**' : '**missed**');

export function renderRun(options: {
  machine: MachineInfo;
  command: string;
  started: Date;
  seconds: number;
  reports: readonly AreaReport[];
}): string {
  const { machine, command, started, seconds, reports } = options;
  const targets = reports.flatMap((report) => report.targets);
  const lines = [
    `## ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC: \`${command}\``,
    '',
    table(
      ['', ''],
      [
        ['Machine', `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}`],
        ['Commit', `\`${machine.commit}\``],
        ['Versions', `Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}, sharp ${machine.sharp}, torch ${machine.torch}`],
        ['Command', `\`${command}\` (${Math.round(seconds)} s: ${reports.map((report) => `${report.area} ${Math.round(report.seconds)} s`).join(', ')})`],
        [
          'Other processes',
          reports.map((report) => `${report.area} ${percent(report.background)}`).join(', ') +
            ' of the machine\'s CPU while each area ran (other sessions\' tests share this box)',
        ],
      ],
      'll',
    ),
    '',
  ];
  if (targets.length > 0) {
    lines.push(
      '### Targets',
      '',
      table(
        ['Area', 'Target', 'Measured', 'Verdict'],
        targets.map((check) => [check.area, check.target, check.measured, verdict(check.met)]),
        'lllc',
      ),
      '',
    );
  }
  for (const report of reports) lines.push(`### ${report.title}`, '', report.markdown.trim(), '');
  return lines.join('\n');
}

const HEADER = `# Benchmarks

Written by \`npm run bench\` (the code is in \`bench/\`); not part of \`npm test\`. Every figure
is a median over rounds measured side by side in the same run, on loopback, with every process
under test started fresh by the run (\`bench/target.ts\`) and the load generated from another
process with Node's fetch. Compare figures within one section; across sections only the ratios.

\`\`\`sh
npm run bench                      # every area (about 11 minutes on 2 cores; --quick about 3)
npm run bench -- inference text    # some areas: inference, text, api, training, memory, gpu
npm run bench -- inference --quick # one round, mobilenet v2 / gru only: checks the benchmark runs
npm run bench -- --help            # every option
\`\`\`

${MARKER}
`;

/** Inserts `section` as the newest run, keeping the older ones. */
export function writeRun(section: string): void {
  const current = existsSync(BENCHMARKS_FILE) ? readFileSync(BENCHMARKS_FILE, 'utf8') : HEADER;
  const at = current.indexOf(MARKER);
  const next =
    at < 0
      ? `${current.trimEnd()}\n\n${MARKER}\n\n${section}`
      : `${current.slice(0, at + MARKER.length)}\n\n${section.trimEnd()}\n${current.slice(at + MARKER.length).replace(/^\n+/, '\n')}`;
  writeFileSync(BENCHMARKS_FILE, next.endsWith('\n') ? next : `${next}\n`);
}
