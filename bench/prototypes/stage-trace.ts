import { Server } from 'node:http';
import { performance } from 'node:perf_hooks';

import { InferenceEngine } from '../../src/inference';
import { PredictionService } from '../../src/inference/prediction.service';
import { SessionHost } from '../../src/inference/session-host';
import { ModelService } from '../../src/models/model.service';

/**
 * Timestamps of one request's way through a Flash server, taken by wrapping the methods it
 * passes through (bench-only; nothing in src/ knows). Meant for one request at a time (one
 * client): marks go to the request in flight, so concurrent requests would mix.
 */

type Mark =
  | 'arrived'
  | 'resolver'
  | 'documents read'
  | 'upload read'
  | 'engine'
  | 'decoded'
  | 'to worker'
  | 'from worker'
  | 'engine done'
  | 'answered';

/** Consecutive marks, and what happens between them. */
export const SEGMENTS: readonly [from: Mark, to: Mark, what: string][] = [
  ['arrived', 'resolver', 'HTTP and multipart parsing, GraphQL parse, validation, argument conversion'],
  ['resolver', 'documents read', '`inference.json` (and `status.json`) read from the store, parsed and validated'],
  ['documents read', 'upload read', 'the upload read into a buffer'],
  ['upload read', 'engine', 'to the engine'],
  ['engine', 'decoded', 'decoding and cropping (sharp, libuv pool)'],
  ['decoded', 'to worker', 'coalescing (waiting for the run in flight, if any) and batch assembly'],
  ['to worker', 'from worker', 'worker thread: message, `session.run`, reply'],
  ['from worker', 'engine done', 'softmax and top-k'],
  ['engine done', 'answered', 'GraphQL result, serialisation, response written'],
];

let current: Partial<Record<Mark, number>> | null = null;
const finished: Partial<Record<Mark, number>>[] = [];
let installed = false;

const mark = (name: Mark) => {
  if (current && current[name] === undefined) current[name] = performance.now();
};

/** Methods the tracer looked for and did not find (src/ changed): their marks are missing. */
export const missing: string[] = [];

function wrap<T extends object>(prototype: T, method: string, before: Mark | null, after: Mark | null): void {
  const original = (prototype as Record<string, unknown>)[method] as ((...args: unknown[]) => unknown) | undefined;
  if (typeof original !== 'function') {
    missing.push(`${prototype.constructor.name}.${method}`);
    return;
  }
  (prototype as Record<string, unknown>)[method] = function traced(this: unknown, ...args: unknown[]) {
    if (before) mark(before);
    const result = original.apply(this, args);
    if (after && result instanceof Promise) return result.finally(() => mark(after));
    return result;
  };
}

export function installStageTrace(): void {
  if (installed) return;
  installed = true;
  const emit = Server.prototype.emit;
  Server.prototype.emit = function tracedEmit(this: Server, event: string | symbol, ...args: unknown[]) {
    if (event === 'request') {
      const record: Partial<Record<Mark, number>> = { arrived: performance.now() };
      current = record;
      const response = args[1] as { once(event: string, listener: () => void): void };
      response.once('finish', () => {
        record.answered = performance.now();
        if (record.resolver !== undefined) finished.push(record);
        if (current === record) current = null;
      });
    }
    return (emit as (this: Server, event: string | symbol, ...rest: unknown[]) => boolean).call(this, event, ...args);
  } as typeof Server.prototype.emit;
  // Whichever entry point the resolver calls marks the start (the first mark of a request wins).
  for (const method of ['classifyImage', 'classifyImages', 'classifyText', 'classifyTexts']) {
    if (method in PredictionService.prototype) wrap(PredictionService.prototype, method, 'resolver', null);
  }
  wrap(ModelService.prototype, 'deployed', null, 'documents read');
  wrap(PredictionService.prototype, 'readImage', null, 'upload read');
  wrap(InferenceEngine.prototype, 'classifyImages', 'engine', 'engine done');
  wrap(InferenceEngine.prototype, 'classifyTexts', 'engine', 'engine done');
  wrap(InferenceEngine.prototype, 'crop', null, 'decoded');
  wrap(SessionHost.prototype, 'run', 'to worker', 'from worker');
}

export function resetStageTrace(): void {
  finished.length = 0;
}

/** Median milliseconds of each segment over the requests since `resetStageTrace`. */
export function stageTrace(): {
  requests: number;
  segments: { from: Mark; to: Mark; what: string; millis: number }[];
  missing: string[];
} {
  const medianOf = (values: number[]) => {
    const sorted = values.sort((a, b) => a - b);
    if (sorted.length === 0) return Number.NaN;
    const middle = (sorted.length - 1) / 2;
    return (sorted[Math.floor(middle)]! + sorted[Math.ceil(middle)]!) / 2;
  };
  const segments = SEGMENTS.map(([from, to, what]) => {
    // A mark a request does not pass (no upload for texts) takes the previous one's time.
    const durations = finished.map((record) => {
      const at = (name: Mark): number | undefined => {
        const index = SEGMENTS.findIndex(([start]) => start === name);
        if (record[name] !== undefined) return record[name];
        return index > 0 ? at(SEGMENTS[index - 1]![0]) : undefined;
      };
      return (at(to) ?? Number.NaN) - (at(from) ?? Number.NaN);
    });
    return { from, to, what, millis: medianOf(durations.filter(Number.isFinite)) };
  });
  return { requests: finished.length, segments, missing };
}
