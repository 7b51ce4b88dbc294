import { cpSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';

import type { AreaContext, AreaOutput } from '../lib/area';
import { closeAll, Target } from '../lib/child';
import { classifyText, postJson, STATUS } from '../lib/http';
import { REVIEW } from '../lib/inputs';
import { closedLoop, type LoadOptions } from '../lib/load';
import { processCpuMillis } from '../lib/machine';
import { deployAll, ensureModels } from '../lib/models';
import { profileTables, summarizeProfile } from '../lib/profile';
import { ms, rate, ratio, table, type TargetCheck } from '../lib/report';
import { type LatencySummary, median, medianOf, pairedRatio, summarize } from '../lib/stats';

/**
 * API overhead. `status` per second from N concurrent clients against a bare Apollo Server 5
 * on express 5 answering a constant, and against Flash as it is (the documents cached, each
 * request checks their version tag with a stat) and reading the store on every request (read,
 * parse and validate `status.json` and `cleanup.json`, as before the cache). Then
 * `classifyText` with `inference.json` holding 1 model and 50, the document every prediction
 * reads, which grows with the platform.
 */

const SERVERS = {
  bare: 'bare Apollo, constant',
  flash: 'Flash, documents cached (default)',
  uncached: 'Flash, store read per request',
} as const;
type ServerName = keyof typeof SERVERS;
const CLIENTS = [1, 16] as const;
/** `inference.json` sizes for the prediction measurement: a fresh platform and a busy one. */
const MODEL_COUNTS = [1, 50] as const;

interface Cell extends LatencySummary {
  /** Milliseconds of the server process's CPU (all threads) per request. */
  cpu: number;
}

export async function apiArea(ctx: AreaContext): Promise<AreaOutput> {
  const [gru] = await ensureModels(['gru'], { retrain: ctx.retrain, log: ctx.log });
  const dirs = new Map<number, string>();
  for (const count of MODEL_COUNTS) {
    const dir = path.join(ctx.scratch, `api-${count}-models`);
    await deployAll(dir, [gru!], count - 1);
    dirs.set(count, dir);
  }
  const copy = (count: number, name: string) => {
    const dir = path.join(ctx.scratch, `api-${name}`);
    cpSync(dirs.get(count)!, dir, { recursive: true });
    return dir;
  };

  const targets = new Map<string, Target>();
  const urls = new Map<string, string>();
  const start = async (key: string, op: 'bare' | 'server', args: Record<string, unknown> = {}) => {
    const target = new Target(`api ${key}`);
    targets.set(key, target);
    urls.set(key, (await target.call<{ url: string }>(op, args)).url);
  };
  try {
    await Promise.all([
      start('bare', 'bare'),
      start('flash', 'server', { dataDir: copy(1, 'flash') }),
      start('uncached', 'server', { dataDir: copy(1, 'uncached'), uncached: true }),
      start('flash-50', 'server', { dataDir: copy(50, 'flash-50') }),
      start('uncached-50', 'server', { dataDir: copy(50, 'uncached-50'), uncached: true }),
    ]);

    const window = (clients: number, minRequests: number): LoadOptions => ({
      clients,
      warmup: 50,
      minRequests,
      maxRequests: 50_000,
      maxMillis: ctx.quick ? 400 : 1_000,
    });
    const measure = async (key: string, clients: number, request: () => Promise<unknown>, minRequests = 100): Promise<Cell> => {
      const pid = targets.get(key)!.pid;
      const before = processCpuMillis(pid);
      const result = await closedLoop(async () => void (await request()), window(clients, minRequests));
      const cpu = (processCpuMillis(pid) - before) / result.latencies.length;
      return { ...summarize(result.latencies, result.elapsedMillis), cpu };
    };
    const status = (key: string) => () => postJson(urls.get(key)!, STATUS);
    const predict = (key: string, token: string) => () => classifyText(urls.get(key)!, token, REVIEW);

    const cells = new Map<string, Cell[]>();
    const add = (key: string, cell: Cell) => cells.set(key, [...(cells.get(key) ?? []), cell]);
    const predictionServers = ['flash', 'flash-50', 'uncached-50'] as const;
    // Warm-up: every server answers, every model is loaded.
    for (const name of Object.keys(SERVERS)) await measure(name, 4, status(name));
    for (const key of predictionServers) await measure(key, 4, predict(key, gru!.token), 20);

    for (let round = 0; round < ctx.rounds; round++) {
      ctx.log(`api: round ${round + 1}/${ctx.rounds}`);
      const names = Object.keys(SERVERS) as ServerName[];
      for (const clients of CLIENTS) {
        for (let i = 0; i < names.length; i++) {
          const name = names[(i + round) % names.length]!;
          add(`status|${name}|${clients}`, await measure(name, clients, status(name)));
        }
      }
      for (const clients of CLIENTS) {
        for (let i = 0; i < predictionServers.length; i++) {
          const key = predictionServers[(i + round) % predictionServers.length]!;
          add(`predict|${key}|${clients}`, await measure(key, clients, predict(key, gru!.token), 50));
        }
      }
    }

    // A profile of the server under `status` load (not in the figures above).
    mkdirSync(ctx.profiles, { recursive: true });
    const profile = path.join(ctx.profiles, 'api-status-16clients.cpuprofile');
    await targets.get('flash')!.call('profileStart');
    await measure('flash', 16, status('flash'));
    await targets.get('flash')!.call('profileStop', { file: profile });

    const sizes = MODEL_COUNTS.map((count) => statSync(path.join(dirs.get(count)!, 'inference.json')).size);
    return report(cells, profile, sizes, ctx);
  } finally {
    await closeAll([...targets.values()]);
  }
}

function report(cells: Map<string, Cell[]>, profile: string, sizes: number[], ctx: AreaContext): AreaOutput {
  const rounds = (key: string) => cells.get(key) ?? [];
  const cell = (key: string) => ({ ...medianOf(rounds(key)), cpu: median(rounds(key).map((c) => c.cpu)) });
  const paired = (a: string, b: string, value: (cell: Cell) => number) => pairedRatio(rounds(a), rounds(b), value);
  const qps = (c: Cell) => c.throughput;
  const cpu = (c: Cell) => c.cpu;
  const p50 = (c: Cell) => c.p50;

  const statusRows = (Object.keys(SERVERS) as ServerName[]).flatMap((name) =>
    CLIENTS.map((clients) => {
      const key = `status|${name}|${clients}`;
      const here = cell(key);
      return [
        clients === 1 ? SERVERS[name] : '',
        clients,
        rate(here.throughput),
        ms(here.p50),
        ms(here.p95),
        here.cpu.toFixed(2),
        name === 'bare' ? '1.00×' : ratio(paired(key, `status|bare|${clients}`, qps)),
        name === 'bare' ? '1.00×' : ratio(paired(key, `status|bare|${clients}`, cpu)),
        name === 'uncached' ? ratio(paired(`status|flash|${clients}`, key, qps)) : '',
      ];
    }),
  );
  const predictionNames = { flash: '1 model', 'flash-50': '50 models', 'uncached-50': '50 models, store read per request' };
  const predictRows = (Object.keys(predictionNames) as (keyof typeof predictionNames)[]).flatMap((key) =>
    CLIENTS.map((clients) => {
      const here = cell(`predict|${key}|${clients}`);
      return [
        clients === 1 ? predictionNames[key] : '',
        clients,
        ms(here.p50),
        ms(here.p95),
        rate(here.throughput),
        here.cpu.toFixed(2),
        key === 'flash' ? '1.00×' : ratio(paired(`predict|${key}|${clients}`, `predict|flash|${clients}`, p50)),
        key === 'flash' ? '1.00×' : ratio(paired(`predict|${key}|${clients}`, `predict|flash|${clients}`, qps)),
      ];
    }),
  );

  const targets: TargetCheck[] = [];
  const flashVsBare = paired('status|flash|16', 'status|bare|16', qps);
  const uncachedVsBare = paired('status|uncached|16', 'status|bare|16', qps);
  targets.push({
    area: 'api',
    target: '`status` per second vs a bare Apollo server (16 clients): no target set; the ratio is the figure',
    measured: `${ratio(flashVsBare)} (reading the store on every request ${ratio(uncachedVsBare)})`,
    met: null,
  });

  const summary = summarizeProfile(profile, 10);
  const sections = [
    `\`${STATUS}\` over HTTP from Node's fetch in the benchmark process (which shares the 2 cores with the server), ${ctx.rounds} rounds of windows of at least 1 s; every server in a process of its own with its own copy of the store. CPU ms/request: the server process's CPU time (all threads) over the window, divided by the requests it answered: the cost on the server, whatever the client's share.`,
    '',
    table(
      ['Server', 'Clients', 'req/s', 'p50 ms', 'p95 ms', 'CPU ms/req', 'req/s ÷ bare', 'CPU/req ÷ bare', 'cached ÷ uncached req/s'],
      statusRows,
    ),
    '',
    'Documents cached: `DocumentStore` keeps the parsed, validated `status.json`, `cleanup.json`, `inference.json` and queue, and each read checks the file\'s version tag with one `stat` (a conditional GET on S3). Store read per request: the same server with a store that never answers "unchanged" (`bench/lib/uncached-store.ts`), so every read opens, reads, parses and validates the document, as before the cache.',
    '',
    '#### `classifyText` (gru) as `inference.json` grows',
    '',
    `Each entry holds the model's accuracy chart as a base64 PNG, as deployed models do: \`inference.json\` is ${sizes
      .map((size, i) => `${(size / 1024).toFixed(0)} KiB with ${MODEL_COUNTS[i]} model${MODEL_COUNTS[i] === 1 ? '' : 's'}`)
      .join(' and ')} (the extra entries are copies of the first under other tokens). Every prediction reads it.`,
    '',
    table(['inference.json', 'Clients', 'p50 ms', 'p95 ms', 'req/s', 'CPU ms/req', 'p50 ÷ 1 model', 'req/s ÷ 1 model'], predictRows),
    '',
    `#### Server main thread, CPU profile of \`status\` at 16 clients`,
    '',
    `\`bench/.cache/profiles/${path.basename(profile)}\`: ${summary.busyMillis.toFixed(0)} ms busy, idle ${(summary.idleShare * 100).toFixed(0)} %.`,
    '',
    ...profileTables(summary),
  ];
  return { title: 'API overhead', markdown: sections.join('\n'), targets };
}
