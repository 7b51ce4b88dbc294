import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

import { intraOpThreadsFor } from '../../src/inference';
import type { AreaContext, AreaOutput } from '../lib/area';
import { closeAll, Target } from '../lib/child';
import { classifyImage, classifyText, drainJson, drainMultipart } from '../lib/http';
import { photoJpeg, REVIEW } from '../lib/inputs';
import { closedLoop, type LoadOptions, type LoadResult } from '../lib/load';
import { type BenchModel, deployAll, ensureModels, IMAGE_ARCHS, TEXT_ARCHS } from '../lib/models';
import { profileTables, summarizeProfile } from '../lib/profile';
import { ms, rate, ratio, table, type TargetCheck } from '../lib/report';
import type { stageTrace } from '../prototypes/stage-trace';
import { type LatencySummary, median, medianOf, pairedRatio, summarize } from '../lib/stats';

/**
 * Inference, images (`kind: 'image'`) or texts: the same model measured four ways side by side,
 * in every round, at 1, 4 and 16 concurrent clients:
 *   GraphQL, coalescing on / off: the real server, `classifyImage` as a multipart upload
 *     (`classifyText` as JSON) from Node's fetch in this process;
 *   direct, coalescing on / off: `InferenceEngine.classifyImages` / `classifyTexts` in a
 *     process of its own, same options, same store, same preprocessing;
 * two other settings of the server at 1 and 16 clients (`FLASH_BATCH_WAIT_MS=2`, the old
 * fixed coalescing wait; `FLASH_INFERENCE_THREADS=2`); and, at 1 client, the original
 * platform's way (a new onnxruntime session per request) and the stages alone (decoding and
 * cropping; `session.run` on its own).
 */

const VARIANTS = ['graphql', 'graphql-off', 'direct', 'direct-off', 'graphql-wait', 'graphql-threads'] as const;
type Variant = (typeof VARIANTS)[number];
/** The other settings are measured at these client counts only. */
const SETTING_CLIENTS: readonly number[] = [1, 16];
const SETTINGS: readonly Variant[] = ['graphql-wait', 'graphql-threads'];
const CLIENTS = [1, 4, 16] as const;
/**
 * Measured at 1 client in a process of their own: sessions per request, and the stages alone
 * (`ort`: the engine's thread count for the kind; `ort-threads`: the other choice, as the
 * `graphql-threads` server; `ort-b4`, `ort-b16`: batches of 4 and 16 copies of the input).
 */
const ALONE = ['reload', 'reload-download', 'prepare', 'ort', 'ort-threads', 'ort-b4', 'ort-b16'] as const;
type Alone = (typeof ALONE)[number];
const BATCHES: Partial<Record<Alone, number>> = { 'ort-b4': 4, 'ort-b16': 16 };

type StageTrace = ReturnType<typeof stageTrace>;

interface Cell extends LatencySummary {
  /** Direct variants: inputs per `session.run` over the window. */
  batch?: number;
}

export async function inferenceArea(kind: 'image' | 'text', ctx: AreaContext): Promise<AreaOutput> {
  const archs = kind === 'image' ? (ctx.quick ? ['mobilenet v2' as const] : IMAGE_ARCHS) : ctx.quick ? ['gru' as const] : TEXT_ARCHS;
  const models = await ensureModels(archs, { retrain: ctx.retrain, log: ctx.log });
  const dataDir = path.join(ctx.scratch, `${kind}-models`);
  await deployAll(dataDir, models);
  const photo = kind === 'image' ? await photoJpeg() : null;
  const blob = photo ? new Blob([readFileSync(photo.file)]) : null;
  const input = photo ? { image: photo.file } : { text: REVIEW };

  // One process per way of serving; the servers get their own copy of the store.
  const folder = (name: string) => {
    const copy = path.join(ctx.scratch, `${kind}-${name}`);
    cpSync(dataDir, copy, { recursive: true });
    return copy;
  };
  // The thread count `auto` does not pick for this kind: 1 for images, every core for texts.
  const otherThreads = kind === 'image' ? 1 : availableParallelism();
  const targets: Record<Variant | 'alone' | 'floor', Target> = {
    graphql: new Target(`${kind} server, coalescing on`),
    'graphql-off': new Target(`${kind} server, coalescing off`),
    direct: new Target(`${kind} engine, coalescing on`),
    'direct-off': new Target(`${kind} engine, coalescing off`),
    'graphql-wait': new Target(`${kind} server, coalescing wait 2 ms`),
    'graphql-threads': new Target(`${kind} server, ${otherThreads} intra-op thread(s)`),
    alone: new Target(`${kind} per-request sessions and stages`),
    floor: new Target(`${kind} transport floor`),
  };
  try {
    const [on, off, wait, threads, floor] = await Promise.all([
      targets.graphql.call<{ url: string }>('server', { dataDir: folder('on'), trace: true }),
      targets['graphql-off'].call<{ url: string }>('server', { dataDir: folder('off'), env: { FLASH_BATCH_COALESCE: 'false' } }),
      targets['graphql-wait'].call<{ url: string }>('server', { dataDir: folder('wait'), env: { FLASH_BATCH_WAIT_MS: '2' } }),
      targets['graphql-threads'].call<{ url: string }>('server', { dataDir: folder('threads'), env: { FLASH_INFERENCE_THREADS: String(otherThreads) } }),
      targets.floor.call<{ url: string }>('bare'),
      targets.direct.call('engine', { dataDir, env: {} }),
      targets['direct-off'].call('engine', { dataDir, env: { FLASH_BATCH_COALESCE: 'false' } }),
    ]);
    const urls: Partial<Record<Variant, string>> = {
      graphql: on.url,
      'graphql-off': off.url,
      'graphql-wait': wait.url,
      'graphql-threads': threads.url,
    };
    const drain = floor.url.replace(/\/graphql$/, '/drain');
    const transportFloor = async (model: BenchModel) => {
      const request =
        kind === 'image'
          ? async () => void (await drainMultipart(drain, blob!))
          : async () => void (await drainJson(drain, model.token, REVIEW));
      const result = await closedLoop(request, { ...window(1), minRequests: 30 });
      return summarize(result.latencies, result.elapsedMillis);
    };

    const window = (clients: number): LoadOptions => ({
      clients,
      warmup: Math.max(4, clients),
      minRequests: Math.max(10, 2 * clients),
      maxRequests: 5_000,
      maxMillis: ctx.quick ? 400 : 600,
    });
    const run = async (variant: Variant, model: BenchModel, options: LoadOptions): Promise<Cell> => {
      const url = urls[variant];
      if (url) {
        const request =
          kind === 'image'
            ? async () => void (await classifyImage(url, model.token, blob!))
            : async () => void (await classifyText(url, model.token, REVIEW));
        const result = await closedLoop(request, options);
        return summarize(result.latencies, result.elapsedMillis);
      }
      const result = await targets[variant].call<LoadResult & { runs: number; inputs: number }>('load', {
        mode: 'engine',
        dataDir,
        token: model.token,
        input,
        options,
      });
      return { ...summarize(result.latencies, result.elapsedMillis), batch: result.inputs / Math.max(1, result.runs) };
    };
    const alone = async (mode: (typeof ALONE)[number], model: BenchModel) => {
      const reload = mode.startsWith('reload');
      const ort = mode.startsWith('ort');
      const batched = BATCHES[mode] !== undefined;
      const options: LoadOptions = {
        clients: 1,
        warmup: reload || batched ? 1 : 3,
        minRequests: batched ? 3 : reload ? 5 : 10,
        maxRequests: batched ? 3 : 1_000,
        maxMillis: ctx.quick ? 300 : 500,
      };
      const result = await targets.alone.call<LoadResult>('load', {
        mode: ort ? 'ort' : mode,
        batch: BATCHES[mode] ?? 1,
        ...(mode === 'ort-threads' ? { threads: otherThreads } : {}),
        dataDir,
        token: model.token,
        input,
        options,
      });
      return summarize(result.latencies, result.elapsedMillis);
    };

    // Warm-up: every process loads every model and runs it a few times.
    ctx.log(`${kind}: warming up ${models.map((model) => model.arch).join(', ')}`);
    for (const model of models) {
      for (const variant of VARIANTS) await run(variant, model, { ...window(4), minRequests: 8, maxMillis: 0 });
    }

    const cells = new Map<string, Cell[]>();
    const add = (key: string, cell: Cell) => cells.set(key, [...(cells.get(key) ?? []), cell]);
    for (let round = 0; round < ctx.rounds; round++) {
      for (const model of models) {
        ctx.log(`${kind}: round ${round + 1}/${ctx.rounds}, ${model.arch}`);
        for (const clients of CLIENTS) {
          // The order of the ways rotates from round to round, so none always goes first.
          for (let i = 0; i < VARIANTS.length; i++) {
            const variant = VARIANTS[(i + round) % VARIANTS.length]!;
            if (SETTINGS.includes(variant) && !SETTING_CLIENTS.includes(clients)) continue;
            add(`${variant}|${model.arch}|${clients}`, await run(variant, model, window(clients)));
          }
        }
        for (const mode of ALONE) {
          if (mode === 'prepare' && kind === 'text') continue; // tokenizing is inside the engine's figures
          add(`${mode}|${model.arch}|1`, await alone(mode, model));
        }
        add(`floor|${model.arch}|1`, await transportFloor(model));
      }
    }

    // Windows of GraphQL at 1 client with the server's stages timed (not in the figures above).
    const traces: { arch: string; trace: StageTrace }[] = [];
    for (const model of models) {
      await targets.graphql.call('traceReset');
      await run('graphql', model, { ...window(1), minRequests: 20 });
      traces.push({ arch: model.arch, trace: await targets.graphql.call<StageTrace>('traceRead') });
    }

    // One more window of GraphQL at 1 client, profiled, for the first model.
    const profiles: { arch: string; file: string }[] = [];
    for (const model of models.slice(0, 1)) {
      mkdirSync(ctx.profiles, { recursive: true });
      const file = path.join(ctx.profiles, `${kind}-${model.arch.replace(' ', '')}-graphql-1client.cpuprofile`);
      await targets.graphql.call('profileStart');
      await run('graphql', model, { ...window(1), minRequests: 50, maxMillis: 2_000 });
      await targets.graphql.call('profileStop', { file });
      profiles.push({ arch: model.arch, file });
    }

    return report(kind, models, cells, traces, profiles, photo?.description ?? `"${REVIEW}"`, otherThreads, ctx);
  } finally {
    await closeAll(Object.values(targets));
  }
}

function report(
  kind: 'image' | 'text',
  models: readonly BenchModel[],
  cells: Map<string, Cell[]>,
  traces: readonly { arch: string; trace: StageTrace }[],
  profiles: readonly { arch: string; file: string }[],
  inputDescription: string,
  otherThreads: number,
  ctx: AreaContext,
): AreaOutput {
  const threadsLabel = `${otherThreads} thread${otherThreads === 1 ? '' : 's'}`;
  const autoThreads = intraOpThreadsFor(kind === 'image' ? 'imageclassification' : 'textclassification', 'auto');
  const autoThreadsLabel = `${autoThreads} thread${autoThreads === 1 ? '' : 's'}`;
  const rounds = (variant: string, arch: string, clients: number) => cells.get(`${variant}|${arch}|${clients}`) ?? [];
  const cell = (variant: string, arch: string, clients: number): Cell => {
    const all = rounds(variant, arch, clients);
    const batches = all.flatMap((round) => (round.batch === undefined ? [] : [round.batch]));
    return { ...medianOf(all), ...(batches.length > 0 ? { batch: median(batches) } : {}) };
  };
  const paired = (a: string, b: string, arch: string, clients: number, value: (cell: Cell) => number) =>
    pairedRatio(rounds(a, arch, clients), rounds(b, arch, clients), value);
  const area = kind === 'image' ? 'inference' : 'text';
  const targets: TargetCheck[] = [];
  const p50 = (c: Cell) => c.p50;
  const p95 = (c: Cell) => c.p95;
  const throughput = (c: Cell) => c.throughput;

  const latencyRows = models.flatMap((model) =>
    CLIENTS.map((clients) => {
      const graphql = cell('graphql', model.arch, clients);
      const direct = cell('direct', model.arch, clients);
      return [
        clients === 1 ? model.arch : '',
        clients,
        ms(graphql.p50),
        ms(graphql.p95),
        rate(graphql.throughput),
        ms(direct.p50),
        ms(direct.p95),
        rate(direct.throughput),
        ratio(paired('graphql', 'direct', model.arch, clients, p50)),
        ratio(paired('graphql', 'direct', model.arch, clients, throughput)),
      ];
    }),
  );
  const coalescingRows = models.flatMap((model) =>
    CLIENTS.map((clients) => [
      clients === 1 ? model.arch : '',
      clients,
      `${rate(cell('graphql', model.arch, clients).throughput)} / ${rate(cell('graphql-off', model.arch, clients).throughput)}`,
      ratio(paired('graphql', 'graphql-off', model.arch, clients, throughput)),
      `${ms(cell('graphql', model.arch, clients).p95)} / ${ms(cell('graphql-off', model.arch, clients).p95)}`,
      ratio(paired('graphql', 'graphql-off', model.arch, clients, p95)),
      ratio(paired('direct', 'direct-off', model.arch, clients, throughput)),
      ratio(paired('direct', 'direct-off', model.arch, clients, p95)),
      (cell('direct', model.arch, clients).batch ?? Number.NaN).toFixed(1),
    ]),
  );
  const reloadRows = models.map((model) => [
    model.arch,
    ms(cell('reload', model.arch, 1).p50),
    ms(cell('reload-download', model.arch, 1).p50),
    ms(cell('graphql', model.arch, 1).p50),
    ms(cell('direct', model.arch, 1).p50),
    ratio(paired('reload', 'graphql', model.arch, 1, p50)),
    ratio(paired('reload-download', 'graphql', model.arch, 1, p50)),
    ratio(paired('reload', 'direct', model.arch, 1, p50)),
  ]);
  const stageRows = models.map((model) => {
    const graphql = cell('graphql', model.arch, 1).p50;
    const direct = cell('direct', model.arch, 1).p50;
    const prepare = cell('prepare', model.arch, 1).p50;
    const ort = cell('ort', model.arch, 1).p50;
    const floor = cell('floor', model.arch, 1).p50;
    return [
      model.arch,
      ...(kind === 'image' ? [ms(prepare)] : []),
      ms(ort),
      ms(direct),
      ms(graphql),
      ms(direct - ort - (kind === 'image' ? prepare : 0)),
      ms(graphql - direct),
      ms(floor),
      ms(graphql - direct - floor),
      ms(cell('graphql-off', model.arch, 1).p50 - cell('direct-off', model.arch, 1).p50),
    ];
  });
  const settingRows = models.flatMap((model) =>
    SETTING_CLIENTS.map((clients) => {
      const [on, wait, threads] = (['graphql', 'graphql-wait', 'graphql-threads'] as const).map((variant) => cell(variant, model.arch, clients));
      return [
        clients === 1 ? model.arch : '',
        clients,
        `${ms(on!.p50)} / ${ms(wait!.p50)} / ${ms(threads!.p50)}`,
        `${ms(on!.p95)} / ${ms(wait!.p95)} / ${ms(threads!.p95)}`,
        `${rate(on!.throughput)} / ${rate(wait!.throughput)} / ${rate(threads!.throughput)}`,
        ratio(paired('graphql-wait', 'graphql', model.arch, clients, p50)),
        ratio(paired('graphql-wait', 'graphql', model.arch, clients, throughput)),
        ratio(paired('graphql-threads', 'graphql', model.arch, clients, p50)),
        ratio(paired('graphql-threads', 'graphql', model.arch, clients, throughput)),
      ];
    }),
  );
  const perImage = (mode: Alone, arch: string) => cell(mode, arch, 1).p50 / (BATCHES[mode] ?? 1);
  const ortRows = models.map((model) => [
    model.arch,
    ms(perImage('ort', model.arch)),
    ms(perImage('ort-threads', model.arch)),
    ms(perImage('ort-b4', model.arch)),
    ms(perImage('ort-b16', model.arch)),
    ratio(paired('ort-threads', 'ort', model.arch, 1, p50)),
    ratio(pairedRatio(rounds('ort-b4', model.arch, 1), rounds('ort', model.arch, 1), (c) => c.p50) / 4),
    ratio(pairedRatio(rounds('ort-b16', model.arch, 1), rounds('ort', model.arch, 1), (c) => c.p50) / 16),
  ]);

  for (const model of models) {
    const ratios = CLIENTS.map((clients) => paired('graphql', 'direct', model.arch, clients, p50));
    targets.push({
      area,
      target: `${model.arch}: GraphQL p50 ≤ 1.15× direct (1 / 4 / 16 clients)`,
      measured: ratios.map(ratio).join(' / '),
      met: ratios.every((value) => value <= 1.15),
    });
  }
  const mobilenet = models.find((model) => model.arch === 'mobilenet v2');
  if (mobilenet) {
    const value = cell('graphql', mobilenet.arch, 1).p50;
    targets.push({
      area,
      target: 'mobilenet v2: GraphQL end-to-end p50 ≤ 15 ms at 1 client',
      measured: `${ms(value)} ms (direct ${ms(cell('direct', mobilenet.arch, 1).p50)} ms, model alone ${ms(
        cell('ort', mobilenet.arch, 1).p50,
      )} ms)`,
      met: value <= 15,
    });
  }
  for (const model of models) {
    const gain = paired('graphql', 'graphql-off', model.arch, 16, throughput);
    const tail = paired('graphql', 'graphql-off', model.arch, 16, p95);
    targets.push({
      area,
      target: `${model.arch}: coalescing ≥ 1.2× throughput at 16 clients, p95 ≤ 1.2× (GraphQL)`,
      measured: `throughput ${ratio(gain)}, p95 ${ratio(tail)}`,
      met: gain >= 1.2 && tail <= 1.2,
    });
  }
  for (const model of models) {
    const speedup = paired('reload', 'graphql', model.arch, 1, p50);
    targets.push({
      area,
      target: `${model.arch}: ≥ 20× faster than a session per request (p50, 1 client, GraphQL)`,
      measured: ratio(speedup),
      met: speedup >= 20,
    });
  }

  const name = kind === 'image' ? 'classifyImage (multipart upload)' : 'classifyText (JSON)';
  const trained = models
    .map((model) => `${model.arch} ${model.trainedSeconds === null ? 'reused from bench/.cache' : `trained in ${model.trainedSeconds.toFixed(0)} s`}`)
    .join(', ');
  const sections = [
    `Models trained by the trainer on CPU (${kind === 'image' ? '224 px, 2 classes, 1 epoch' : '2 classes, 2 epochs'}; ${trained}),` +
      ` served fp32 by onnxruntime with the server's defaults (${autoThreadsLabel} per session, as \`FLASH_INFERENCE_THREADS=auto\` gives ${kind} models; batches of at most 16, coalescing while the worker is busy).` +
      ` Input: ${inputDescription}. GraphQL: \`${name}\` on the real server; direct: \`InferenceEngine.${
        kind === 'image' ? 'classifyImages' : 'classifyTexts'
      }\` with the same options in its own process. ${ctx.rounds} rounds; each window warms up, then measures at least 10 and 2 × clients requests and at least 0.6 s; sessions per request and the stages alone: at least 0.5 s (3 runs for batches).`,
    '',
    '#### Latency and throughput (coalescing on, the default)',
    '',
    table(
      ['Model', 'Clients', 'GraphQL p50 ms', 'p95 ms', 'req/s', 'Direct p50 ms', 'p95 ms', 'req/s', 'GraphQL ÷ direct p50', 'GraphQL ÷ direct req/s'],
      latencyRows,
    ),
    '',
    '#### Coalescing on vs off',
    '',
    table(
      ['Model', 'Clients', 'GraphQL req/s on / off', 'on ÷ off', 'GraphQL p95 ms on / off', 'on ÷ off', 'Direct req/s on ÷ off', 'Direct p95 on ÷ off', 'Inputs per run (direct, on)'],
      coalescingRows,
    ),
    '',
    'On: the default, a batch goes at once when the worker is idle, else when its run in flight ends, with everything that arrived meanwhile (at most 16); off: `FLASH_BATCH_COALESCE=false`, each request runs alone.',
    '',
    '#### Other settings (GraphQL)',
    '',
    table(
      [
        'Model',
        'Clients',
        `p50 ms default / wait 2 ms / ${threadsLabel}`,
        'p95 ms',
        'req/s',
        'wait ÷ default p50',
        'wait ÷ default req/s',
        `${threadsLabel} ÷ default p50`,
        `${threadsLabel} ÷ default req/s`,
      ],
      settingRows,
    ),
    '',
    `Wait 2 ms: \`FLASH_BATCH_WAIT_MS=2\`, every batch made with the worker idle waits 2 ms for company (the coalescing of earlier versions); ${threadsLabel}: \`FLASH_INFERENCE_THREADS=${otherThreads}\` instead of \`auto\`.`,
    '',
    '#### Against the original: a new onnxruntime session for every request (1 client)',
    '',
    table(
      [
        'Model',
        'Session per request p50 ms',
        '+ store download p50 ms',
        'GraphQL p50 ms',
        'Direct p50 ms',
        'Per request ÷ GraphQL',
        '+ download ÷ GraphQL',
        'Per request ÷ direct',
      ],
      reloadRows,
    ),
    '',
    'Session per request: `InferenceSession.create` on the local ONNX file, the same preprocessing, `run`, `release`, with the engine\'s session options, on the main thread of a process of its own. + store download: copying the model out of the store first, as the engine\'s load does (the original fetched it from the bucket).',
    '',
    '#### Where the time goes at 1 client (p50, ms)',
    '',
    table(
      [
        'Model',
        ...(kind === 'image' ? ['Decode + crop alone'] : []),
        '`session.run` alone',
        'Direct',
        'GraphQL',
        'Engine overhead',
        'GraphQL − direct',
        'Transport floor',
        'GraphQL − direct − floor',
        'GraphQL − direct, coalescing off',
      ],
      stageRows,
    ),
    '',
    `Engine overhead: direct minus the stages alone (the worker thread hop, batch assembly, softmax). GraphQL − direct: HTTP, ${
      kind === 'image' ? 'multipart parsing, ' : ''
    }the GraphQL execution and the \`inference.json\` read of every request. Transport floor: the same ${
      kind === 'image' ? 'multipart' : 'JSON'
    } request from the same client to an express endpoint that only reads the body and answers \`{}\`-sized JSON (a process of its own): what any HTTP API would cost here.`,
    '',
    '#### onnxruntime alone: threads and batch size (ms per input, p50)',
    '',
    table(
      [
        'Model',
        `${autoThreadsLabel}, batch 1`,
        `${threadsLabel}, batch 1`,
        `${autoThreadsLabel}, batch 4`,
        `${autoThreadsLabel}, batch 16`,
        `${threadsLabel} ÷ ${autoThreadsLabel}`,
        'batch 4 ÷ batch 1',
        'batch 16 ÷ batch 1',
      ],
      ortRows,
    ),
    '',
    `\`session.run\` on this thread of a process of its own, same session options as the engine (${autoThreadsLabel} for ${kind} models, unless the column says otherwise); per input = the run's time ÷ batch size. Below 1.00× a batch (or the other thread count) is cheaper per input: for batches, the most coalescing can gain.`,
  ];
  if (traces.length > 0) {
    sections.push(
      '',
      '#### Inside the server at 1 client (coalescing on; p50 of each stage, ms)',
      '',
      table(
        ['Stage', ...traces.map(({ arch }) => arch), 'What'],
        traces[0]!.trace.segments.map((segment, index) => [
          `${segment.from} → ${segment.to}`,
          ...traces.map(({ trace }) => ms(trace.segments[index]!.millis)),
          segment.what,
        ]),
        `l${'r'.repeat(traces.length)}l`,
      ),
      '',
      `Timed in the server by wrapping the methods a request passes through (\`bench/prototypes/stage-trace.ts\`), ${traces
        .map(({ arch, trace }) => `${trace.requests} requests of ${arch}`)
        .join(', ')}. The client's own share (building the request, reading the answer) is the GraphQL p50 minus the sum.${
        traces[0]!.trace.missing.length > 0 ? ` Not found in src/ (their marks are missing): ${traces[0]!.trace.missing.join(', ')}.` : ''
      }`,
    );
  }
  for (const { arch, file } of profiles) {
    const summary = summarizeProfile(file, 10);
    sections.push(
      '',
      `#### Server main thread, CPU profile of GraphQL ${arch} at 1 client`,
      '',
      `\`${path.relative(path.resolve(ctx.profiles, '..', '..', '..'), file)}\`: ${summary.busyMillis.toFixed(0)} ms busy, idle ${(summary.idleShare * 100).toFixed(0)} % of the window (inference runs on the worker thread, not sampled here).`,
      '',
      ...profileTables(summary),
    );
  }
  return {
    title: kind === 'image' ? `Image inference (${models.map((m) => m.arch).join(', ')})` : `Text inference (${models.map((m) => m.arch).join(', ')})`,
    markdown: sections.join('\n'),
    targets,
  };
}
