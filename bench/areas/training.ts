import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { imageInput, imageZip, sentimentCsv, SUBMIT, textInput } from '../../test/helpers/training';
import type { AreaContext, AreaOutput } from '../lib/area';
import { closeAll, Target } from '../lib/child';
import { PYTHON, REPO_ROOT } from '../lib/machine';
import { postJson, postMultipart } from '../lib/http';
import { ms, percent, ratio, table, type TargetCheck } from '../lib/report';
import { median } from '../lib/stats';

/**
 * Training on CPU, end to end: `submitTraining` (multipart) to `DEPLOYED` for a small image job
 * (mobilenet v2, 2 classes × 10 images of 48 px, 224 px crops, 2 epochs) and a small text job
 * (GRU, 24 rows, 3 epochs), split into stages from the client's clock, the job record's
 * timestamps, the `trainingProgress` events and the trainer process's start and exit (seen
 * by the server process of the benchmark).
 */

const execFileAsync = promisify(execFile);

interface TorchThreads {
  threads_default: number;
  cores: number;
  rows: { model: string; threads: number; batch: number; rounds: number[] }[];
}

const PROGRESS = `subscription($t: ID!) {
  trainingProgress(token: $t) { state epoch epochs metrics { epoch seconds } }
}`;
const JOB = `query($t: ID!) { trainingJob(token: $t) { state error submittedAt startedAt finishedAt history { epoch seconds } } }`;

const STAGES = [
  ['upload', 'submitTraining sent → answered: upload, dataset checks, staging in the store'],
  ['queue', 'answered → job started (PREPARING, the record\'s startedAt)'],
  ['preparation', 'PREPARING → trainer process spawned: training.json, decoding / tokenizing into the job folder'],
  ['trainer start', 'spawned → `started` event (TRAINING): Python, PyTorch import, data and model set up'],
  ['epochs', 'TRAINING → last epoch event'],
  ['export', 'last epoch → `exported` event (EXPORTING): TorchScript, ONNX, check'],
  ['trainer exit', 'EXPORTING → trainer process exited'],
  ['deploy', 'exited → DEPLOYED event: artifacts to the store, accuracy chart, inference.json, clean-up'],
] as const;
type Stage = (typeof STAGES)[number][0];

interface JobTiming {
  stages: Record<Stage, number>;
  total: number;
  /** Sum of the epochs' own `seconds`, as the trainer measured them, in ms. */
  epochCompute: number;
}

export async function trainingArea(ctx: AreaContext): Promise<AreaOutput> {
  const server = new Target('training server');
  try {
    const { url } = await server.call<{ url: string }>('server', {
      dataDir: path.join(ctx.scratch, 'training'),
      training: { device: 'cpu' },
    });
    const jobs = {
      image: {
        label: 'image: mobilenet v2, 2 × 10 images, 2 epochs',
        file: { filename: 'shapes.zip', content: new Blob([await imageZip({ red: 10, blue: 10 })]) },
        input: imageInput({ model: 'MOBILENET_V2', epochs: 2, batchSize: 4 }),
      },
      text: {
        label: 'text: GRU, 24 rows, 3 epochs',
        file: { filename: 'reviews.csv', content: new Blob([sentimentCsv(12)]) },
        input: textInput({ epochs: 3 }),
      },
    };
    const results: Record<keyof typeof jobs, JobTiming[]> = { image: [], text: [] };
    // Jobs take seconds each: at most 2 rounds.
    const rounds = Math.min(ctx.rounds, 2);
    for (let round = 0; round < rounds; round++) {
      for (const kind of ['image', 'text'] as const) {
        ctx.log(`training: round ${round + 1}/${rounds}, ${kind} job`);
        results[kind].push(await runJob(url, server, jobs[kind]));
      }
    }
    await closeAll([server]);
    ctx.log('training: PyTorch train steps at 1 thread and at every core (bench/torch_threads.py)');
    const { stdout } = await execFileAsync(
      PYTHON,
      [path.join('bench', 'torch_threads.py'), '--rounds', String(rounds), '--steps', ctx.quick ? '1' : '2'],
      { cwd: REPO_ROOT, timeout: 300_000 },
    );
    const threads = JSON.parse(stdout) as TorchThreads;
    return report(
      Object.fromEntries(Object.entries(jobs).map(([kind, job]) => [kind, { label: job.label, timings: results[kind as 'image' | 'text'] }])),
      threads,
      rounds,
    );
  } finally {
    await closeAll([server]);
  }
}

async function runJob(
  url: string,
  server: Target,
  job: { file: { filename: string; content: Blob }; input: Record<string, unknown> },
): Promise<JobTiming> {
  const noticesBefore = server.notices.length;
  const sent = Date.now();
  const submitted = await postMultipart<{ submitTraining: { token: string } }>(url, SUBMIT, { input: job.input }, [
    { path: 'variables.input.dataset', ...job.file },
  ]);
  const answered = Date.now();
  const { token } = submitted.submitTraining;

  const events = await progress(url, token);
  const { trainingJob: record } = await postJson<{
    trainingJob: { state: string; error: string | null; startedAt: string; history: { seconds: number }[] };
  }>(url, JOB, { t: token });
  if (record.state !== 'DEPLOYED') throw new Error(`training job ended ${record.state}: ${record.error}`);

  const notices = server.notices.slice(noticesBefore).filter((notice) => notice.command.includes(token));
  const spawned = notices.find((notice) => notice.notice === 'spawn')?.at ?? Number.NaN;
  const exited = notices.find((notice) => notice.notice === 'exit')?.at ?? Number.NaN;
  const first = (state: string) => events.find((event) => event.state === state)?.at ?? Number.NaN;
  const lastEpoch = Math.max(...events.filter((event) => event.metrics).map((event) => event.at));
  const started = Date.parse(record.startedAt);
  const deployed = first('DEPLOYED');
  return {
    stages: {
      upload: answered - sent,
      queue: Math.max(0, started - answered),
      preparation: spawned - Math.max(started, answered),
      'trainer start': first('TRAINING') - spawned,
      epochs: lastEpoch - first('TRAINING'),
      export: first('EXPORTING') - lastEpoch,
      'trainer exit': exited - first('EXPORTING'),
      deploy: deployed - exited,
    },
    total: deployed - sent,
    epochCompute: record.history.reduce((sum, epoch) => sum + epoch.seconds * 1000, 0),
  };
}

/** The (threads, batch) settings in the order the script ran them. */
function settingsOf(threads: TorchThreads): [number, number][] {
  const seen = new Map<string, [number, number]>();
  for (const row of threads.rows) seen.set(`${row.threads}/${row.batch}`, [row.threads, row.batch]);
  return [...seen.values()];
}

/** Every `trainingProgress` event with the time it arrived, until a final state. */
function progress(url: string, token: string): Promise<{ at: number; state: string; metrics: unknown }[]> {
  const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  const events: { at: number; state: string; metrics: unknown }[] = [];
  return new Promise<typeof events>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no final state for ${token} after 5 minutes`)), 300_000);
    const finish = (error?: Error) => {
      clearTimeout(timer);
      void client.dispose();
      if (error) reject(error);
      else resolve(events);
    };
    client.subscribe<{ trainingProgress: { state: string; metrics: unknown } }>(
      { query: PROGRESS, variables: { t: token } },
      {
        next: (value) => {
          const event = value.data?.trainingProgress;
          if (!event) return finish(new Error(JSON.stringify(value.errors)));
          events.push({ at: Date.now(), state: event.state, metrics: event.metrics });
          if (['DEPLOYED', 'FAILED', 'CANCELLED'].includes(event.state)) finish();
        },
        error: (error) => finish(error instanceof Error ? error : new Error(JSON.stringify(error))),
        complete: () => finish(),
      },
    );
  });
}

function report(jobs: Record<string, { label: string; timings: JobTiming[] }>, threads: TorchThreads, rounds: number): AreaOutput {
  const kinds = Object.keys(jobs);
  const stageMedian = (kind: string, stage: Stage) => median(jobs[kind]!.timings.map((timing) => timing.stages[stage]));
  const totalMedian = (kind: string) => median(jobs[kind]!.timings.map((timing) => timing.total));
  const shareMedian = (kind: string, stage: Stage) =>
    median(jobs[kind]!.timings.map((timing) => timing.stages[stage] / timing.total));
  const rows = STAGES.map(([stage, what]) => [
    stage,
    ...kinds.flatMap((kind) => [ms(stageMedian(kind, stage)), percent(shareMedian(kind, stage))]),
    what,
  ]);
  rows.push(['**total**', ...kinds.flatMap((kind) => [`**${ms(totalMedian(kind))}**`, '100 %']), 'submitTraining sent → DEPLOYED received']);
  const overheadRows = kinds.map((kind) => {
    const timings = jobs[kind]!.timings;
    const compute = median(timings.map((timing) => timing.epochCompute));
    const overhead = median(timings.map((timing) => (timing.total - timing.epochCompute) / timing.total));
    const factor = median(timings.map((timing) => timing.total / timing.epochCompute));
    return [jobs[kind]!.label, ms(compute), ms(totalMedian(kind)), percent(overhead), `${factor.toFixed(1)}×`];
  });
  const targets: TargetCheck[] = [
    {
      area: 'training',
      target: 'GPU: trainer throughput vs a plain PyTorch loop, Flash-sized job wall time',
      measured: 'needs a CUDA device: `npm run bench -- gpu` there',
      met: null,
    },
  ];
  const markdown = [
    `On this machine's CPU (\`FLASH_TRAINER_DEVICE=cpu\`), one job at a time on a fresh server, ${rounds} rounds; medians in ms and as a share of each job's total.`,
    '',
    table(['Stage', ...kinds.flatMap((kind) => [`${kind} ms`, 'share']), 'What'], rows, `l${'rr'.repeat(kinds.length)}l`),
    '',
    table(
      ['Job', 'Epochs, trainer-measured ms', 'Total ms', 'Not epochs', 'Total ÷ epochs'],
      overheadRows,
    ),
    '',
    `#### PyTorch on this CPU: threads and batch size (\`bench/torch_threads.py\`)`,
    '',
    `PyTorch starts with ${threads.threads_default} intra-op thread${threads.threads_default === 1 ? '' : 's'} here (\`torch.get_num_threads()\`) on ${threads.cores} cores, and the trainer keeps it. One Adam train step at 224 px from scratch, ms per image, median over ${rounds} rounds (each the median of its steps), with the lowest and highest round:`,
    '',
    table(
      ['Model', ...settingsOf(threads).map(([t, b]) => `${t} thread${t === 1 ? '' : 's'}, batch ${b}`), `${settingsOf(threads)[1]![0]} threads ÷ trainer now`, 'batch 16 ÷ batch 4'],
      [...new Set(threads.rows.map((row) => row.model))].map((model) => {
        const of = ([t, b]: [number, number]) => threads.rows.find((row) => row.model === model && row.threads === t && row.batch === b)!.rounds;
        const [now, cores, big] = settingsOf(threads) as [[number, number], [number, number], [number, number]];
        const versus = (a: number[], b: number[]) => median(a.map((value, i) => value / b[i]!));
        const spread = (values: number[]) => `${ms(median(values))} (${ms(Math.min(...values))}–${ms(Math.max(...values))})`;
        return [model, ...settingsOf(threads).map((setting) => spread(of(setting))), ratio(versus(of(cores), of(now))), ratio(versus(of(big), of(now)))];
      }),
    ),
    '',
    'PyTorch 1.13 sends a CPU convolution to oneDNN only if more than one thread runs, or the batch holds 16 or more, or the kernel is not 1 × 1 (`ConvParams::use_mkldnn`); mobilenet v2 is mostly 1 × 1 convolutions, so at 1 thread and small batches it takes the slow reference path. Two threads on a 2-vCPU box shared with other work are also erratic (an OpenMP barrier waits for the descheduled thread): compare the rounds.',
  ].join('\n');
  return { title: 'Training, submitTraining → DEPLOYED (CPU)', markdown, targets };
}
