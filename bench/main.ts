/**
 * `npm run bench [-- AREA... --quick --rounds N --retrain --no-write --wait-quiet S]`
 *
 * Runs the benchmark areas in order and inserts one section into BENCHMARKS.md: the machine,
 * the commit, the versions, the command, and each area's tables and targets. Bounded in
 * requests and time; loopback only; not part of `npm test`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { apiArea } from './areas/api';
import { gpuArea } from './areas/gpu';
import { inferenceArea } from './areas/inference';
import { memoryArea } from './areas/memory';
import { trainingArea } from './areas/training';
import type { AreaContext, AreaOutput } from './lib/area';
import { backgroundMonitor, machineInfo, waitForQuiet } from './lib/machine';
import { CACHE_DIR } from './lib/models';
import { type AreaReport, BENCHMARKS_FILE, renderRun, writeRun } from './lib/report';

const AREAS: Record<string, { about: string; run(ctx: AreaContext): Promise<AreaOutput> }> = {
  inference: {
    about: 'image models (mobilenet v2, resnet18, resnet34): GraphQL vs direct, coalescing, a session per request',
    run: (ctx) => inferenceArea('image', ctx),
  },
  text: { about: 'text models (lstm, gru), the same measurements', run: (ctx) => inferenceArea('text', ctx) },
  api: { about: '`status` per second against a bare Apollo server, with and without the document cache', run: apiArea },
  training: { about: 'submitTraining → DEPLOYED on CPU, split into stages', run: trainingArea },
  memory: { about: 'RSS after 100 vs 10,000 predictions; peak RSS ingesting a 100 MB ZIP', run: memoryArea },
  gpu: { about: 'python3 -m trainer.bench when CUDA is available (skipped otherwise)', run: gpuArea },
};

const USAGE = `npm run bench [-- [AREA...] [options]]

Areas (default: all, in this order):
${Object.entries(AREAS)
  .map(([name, area]) => `  ${name.padEnd(10)} ${area.about}`)
  .join('\n')}

Options:
  --rounds N      rounds per measurement; figures are medians over them (default 3, --quick 1)
  --quick         one round, mobilenet v2 / gru only, short windows: checks the benchmark runs
  --retrain       train the models again instead of reusing bench/.cache/models
  --wait-quiet S  wait up to S seconds for other processes to leave the CPU before each area (default 120)
  --no-write      print the section instead of inserting it into BENCHMARKS.md
  --help          this text`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      retrain: { type: 'boolean', default: false },
      'wait-quiet': { type: 'string', default: '120' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const areas = positionals.length > 0 ? positionals : Object.keys(AREAS);
  const unknown = areas.filter((area) => !AREAS[area]);
  if (unknown.length > 0) {
    console.error(`Unknown area ${unknown.join(', ')}\n\n${USAGE}`);
    process.exit(2);
  }
  const rounds = values.rounds ? Number(values.rounds) : values.quick ? 1 : 3;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    console.error('--rounds must be an integer from 1 to 20');
    process.exit(2);
  }
  const waitQuiet = Number(values['wait-quiet']);

  const started = new Date();
  const clock = performance.now();
  const log = (line: string) => console.error(`[bench ${((performance.now() - clock) / 1000).toFixed(0).padStart(4)} s] ${line}`);
  const command = ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');
  const machine = machineInfo();
  const scratch = mkdtempSync(path.join(tmpdir(), 'flash-bench-'));
  const ctx: AreaContext = {
    rounds,
    quick: values.quick,
    retrain: values.retrain,
    scratch,
    profiles: path.join(CACHE_DIR, 'profiles'),
    log,
  };
  const reports: AreaReport[] = [];
  try {
    for (const area of areas) {
      await waitForQuiet(waitQuiet, 0.15, log);
      log(`${area}: starting`);
      const areaClock = performance.now();
      const monitor = backgroundMonitor();
      const output = await AREAS[area]!.run(ctx);
      const background = monitor.stop();
      const seconds = (performance.now() - areaClock) / 1000;
      log(`${area}: done in ${seconds.toFixed(0)} s (other processes used ${(background * 100).toFixed(0)} % of the CPU)`);
      reports.push({ area, ...output, background, seconds });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  const section = renderRun({ machine, command, started, seconds: (performance.now() - clock) / 1000, reports });
  if (values['no-write']) {
    console.log(section);
  } else {
    writeRun(section);
    log(`wrote a section to ${BENCHMARKS_FILE}`);
  }
  for (const check of reports.flatMap((report) => report.targets)) {
    log(`${check.met === null ? 'n/a   ' : check.met ? 'met   ' : 'MISSED'} ${check.target}: ${check.measured}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
