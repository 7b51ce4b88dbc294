import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { imageInput, SUBMIT } from '../../test/helpers/training';
import { zip } from '../../test/helpers/zip';
import type { AreaContext, AreaOutput } from '../lib/area';
import { closeAll, Target } from '../lib/child';
import { classifyImage, classifyText, postJson, postMultipart } from '../lib/http';
import { noisePng, photoJpeg, REVIEW } from '../lib/inputs';
import { closedLoop } from '../lib/load';
import { residentSet, resetPeak } from '../lib/machine';
import { type BenchModel, CACHE_DIR, deployAll, ensureModels } from '../lib/models';
import { mib, ratio, table, type TargetCheck } from '../lib/report';

/**
 * Memory of a Flash server process (main thread, inference worker and native memory together):
 * its resident set after 100 predictions and after 10,000 (text; and 100 vs 1,000 images),
 * and its peak resident set while `submitTraining` takes a ~100 MB ZIP of incompressible PNGs
 * and while the job is prepared from it.
 */

/** Growth allowed between 100 and 10,000 predictions, after a full collection. */
const GROWTH_BOUND = 1.1;
const CHECKPOINTS = { text: [100, 1_000, 3_000, 10_000], image: [100, 300, 1_000] } as const;

interface Reading {
  requests: number;
  rss: number;
  rssAfterGc: number;
  heapUsed: number;
  external: number;
}

export async function memoryArea(ctx: AreaContext): Promise<AreaOutput> {
  const models = await ensureModels(ctx.quick ? ['gru'] : ['gru', 'mobilenet v2'], { retrain: ctx.retrain, log: ctx.log });
  const dataDir = path.join(ctx.scratch, 'memory');
  await deployAll(dataDir, models);
  const predictions: { model: BenchModel; readings: Reading[] }[] = [];
  for (const model of models) predictions.push({ model, readings: await predictionMemory(model, dataDir, ctx) });
  const ingest = await ingestMemory(ctx);
  return report(predictions, ingest);
}

async function predictionMemory(model: BenchModel, dataDir: string, ctx: AreaContext): Promise<Reading[]> {
  const server = new Target(`memory ${model.arch}`, { exposeGc: true });
  try {
    const { url } = await server.call<{ url: string }>('server', { dataDir });
    const photo = model.kind === 'image' ? new Blob([readFileSync((await photoJpeg()).file)]) : null;
    const request = photo
      ? async () => void (await classifyImage(url, model.token, photo))
      : async () => void (await classifyText(url, model.token, REVIEW));
    const readings: Reading[] = [];
    let done = 0;
    const checkpoints = ctx.quick ? CHECKPOINTS[model.kind].slice(0, 2) : CHECKPOINTS[model.kind];
    for (const checkpoint of checkpoints) {
      ctx.log(`memory: ${model.arch}, predictions ${done} → ${checkpoint}`);
      const count = checkpoint - done;
      await closedLoop(request, { clients: 4, warmup: 0, minRequests: count, maxRequests: count, maxMillis: 0, capMillis: 600_000 });
      done = checkpoint;
      const { rss } = residentSet(server.pid);
      const usage = await server.call<NodeJS.MemoryUsage>('memory', { gc: true });
      readings.push({ requests: done, rss, rssAfterGc: usage.rss, heapUsed: usage.heapUsed, external: usage.external });
    }
    return readings;
  } finally {
    await closeAll([server]);
  }
}

interface Ingest {
  zipBytes: number;
  images: number;
  baseline: number;
  submitPeak: number;
  submitMillis: number;
  preparePeak: number;
  prepareMillis: number;
}

/** 10 classes × 31 PNGs of 320 × 320 random pixels (about 9.6 MiB a class, 100 MB in all), stored uncompressed. */
async function noiseZip(): Promise<{ file: string; images: number }> {
  const file = path.join(CACHE_DIR, 'inputs', 'noise-10x31-320px.zip');
  const images = 10 * 31;
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    const entries = [];
    for (let label = 0; label < 10; label++) {
      for (let i = 0; i < 31; i++) {
        entries.push({ name: `class${label}/${i}.png`, data: await noisePng(320, label * 100 + i + 1), method: 'store' as const });
      }
    }
    writeFileSync(file, zip(entries));
  }
  return { file, images };
}

async function ingestMemory(ctx: AreaContext): Promise<Ingest> {
  const { file, images } = await noiseZip();
  const bytes = readFileSync(file);
  const server = new Target('memory ingest', { exposeGc: true });
  try {
    const { url } = await server.call<{ url: string }>('server', {
      dataDir: path.join(ctx.scratch, 'ingest'),
      training: { device: 'cpu' },
    });
    await server.call('memory', { gc: true });
    const baseline = residentSet(server.pid).rss;
    resetPeak(server.pid);
    ctx.log(`memory: submitting a ${mib(bytes.length)} ZIP`);
    const started = performance.now();
    const { submitTraining } = await postMultipart<{ submitTraining: { token: string } }>(
      url,
      SUBMIT,
      { input: imageInput({ model: 'MOBILENET_V2', epochs: 1, batchSize: 16 }) },
      [{ path: 'variables.input.dataset', filename: 'noise.zip', content: new Blob([bytes]) }],
    );
    const submitMillis = performance.now() - started;
    const submitPeak = residentSet(server.pid).peak;

    // Preparation (decoding every image into the job folder) runs until the trainer reports TRAINING.
    resetPeak(server.pid);
    const preparing = performance.now();
    let state = '';
    while (!['TRAINING', 'EXPORTING', 'DEPLOYED', 'FAILED', 'CANCELLED'].includes(state)) {
      if (performance.now() - preparing > 180_000) throw new Error(`the ingest job is still ${state} after 3 minutes`);
      await sleep(100);
      state = (
        await postJson<{ trainingJob: { state: string } }>(url, `query($t: ID!) { trainingJob(token: $t) { state } }`, {
          t: submitTraining.token,
        })
      ).trainingJob.state;
    }
    const prepareMillis = performance.now() - preparing;
    const preparePeak = residentSet(server.pid).peak;
    await postJson(url, `mutation($t: ID!) { cancelTraining(token: $t) { state } }`, { t: submitTraining.token });
    return { zipBytes: bytes.length, images, baseline, submitPeak, submitMillis, preparePeak, prepareMillis };
  } finally {
    await closeAll([server]);
  }
}

function report(predictions: { model: BenchModel; readings: Reading[] }[], ingest: Ingest): AreaOutput {
  const targets: TargetCheck[] = [];
  const rows = predictions.flatMap(({ model, readings }) =>
    readings.map((reading, index) => [
      index === 0 ? model.arch : '',
      reading.requests.toLocaleString('en'),
      mib(reading.rss),
      mib(reading.rssAfterGc),
      mib(reading.heapUsed),
      mib(reading.external),
      ratio(reading.rssAfterGc / readings[0]!.rssAfterGc),
    ]),
  );
  for (const { model, readings } of predictions) {
    const first = readings[0]!;
    const last = readings.at(-1)!;
    const growth = last.rssAfterGc / first.rssAfterGc;
    targets.push({
      area: 'memory',
      target: `${model.arch}: RSS after ${last.requests.toLocaleString('en')} predictions ≤ ${GROWTH_BOUND}× after 100 (after GC)`,
      measured: `${ratio(growth)} (${mib(first.rssAfterGc)} → ${mib(last.rssAfterGc)}; without GC ${mib(first.rss)} → ${mib(last.rss)})`,
      met: growth <= GROWTH_BOUND,
    });
  }
  const submitExtra = ingest.submitPeak - ingest.baseline;
  const prepareExtra = ingest.preparePeak - ingest.baseline;
  targets.push({
    area: 'memory',
    target: 'peak RSS ingesting a ~100 MB image ZIP: reported (no bound set in the issue)',
    measured: `submit ${mib(ingest.submitPeak)} (+${mib(submitExtra)}, ${ratio(submitExtra / ingest.zipBytes)} the ZIP); preparation ${mib(ingest.preparePeak)}`,
    met: null,
  });
  const markdown = [
    'One server process per model, started with `--expose-gc`; predictions over GraphQL from 4 concurrent clients. RSS from `/proc/<pid>/status` before and after two full collections (`global.gc()`): the whole process, inference worker and onnxruntime included.',
    '',
    table(['Model', 'Predictions', 'RSS', 'RSS after GC', 'JS heap used', 'External', 'RSS after GC ÷ at 100'], rows),
    '',
    `#### Ingesting a ${mib(ingest.zipBytes)} ZIP (${ingest.images} PNGs of 320 × 320 random pixels, 10 classes, stored)`,
    '',
    table(
      ['Phase', 'Duration ms', 'Peak RSS', 'Above baseline', '÷ ZIP size'],
      [
        ['baseline (idle server, after GC)', '', mib(ingest.baseline), '', ''],
        ['submitTraining: upload, checks, staging', ingest.submitMillis.toFixed(0), mib(ingest.submitPeak), mib(submitExtra), ratio(submitExtra / ingest.zipBytes)],
        ['preparation: every image decoded into the job folder', ingest.prepareMillis.toFixed(0), mib(ingest.preparePeak), mib(prepareExtra), ratio(prepareExtra / ingest.zipBytes)],
      ],
    ),
    '',
    'Peak RSS is the kernel\'s high-water mark (`VmHWM`), reset before each phase (`/proc/<pid>/clear_refs`). The job is cancelled once it reaches TRAINING (the trainer is another process, not counted).',
  ].join('\n');
  return { title: 'Memory', markdown, targets };
}
