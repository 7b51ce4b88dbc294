import DataLoader from 'dataloader';

import { InferenceEngine } from '../../src/inference';
import { SessionHost } from '../../src/inference/session-host';

/**
 * Prototype C, measured by the inference areas against the current coalescing: instead of every
 * batch waiting `batchWaitMillis` (2 ms) for company, a batch is dispatched at once (next turn
 * of the event loop) when no run is in flight on the worker thread, and otherwise waits for the
 * run in flight to end, gathering every input that arrives meanwhile ("natural batching"). The
 * worker runs one batch at a time anyway, so waiting for it costs nothing; an idle server adds
 * no delay. Bench-only: installed by patching the engine's prototype inside one target process.
 */

let inFlight = 0;
const waiting: (() => void)[] = [];
let installed = false;

export function installIdleBatching(): void {
  if (installed) return;
  installed = true;
  const run = SessionHost.prototype.run;
  SessionHost.prototype.run = function countedRun(this: SessionHost, ...args: Parameters<SessionHost['run']>) {
    inFlight++;
    return run.apply(this, args).finally(() => {
      inFlight--;
      for (const dispatch of waiting.splice(0)) dispatch();
    });
  };
  const engine = InferenceEngine.prototype as unknown as {
    batcher<Input>(this: { options: { maxBatchSize: number } }, run: (inputs: readonly Input[]) => Promise<Float32Array[]>): unknown;
  };
  engine.batcher = function idleBatcher<Input>(
    this: { options: { maxBatchSize: number } },
    runBatch: (inputs: readonly Input[]) => Promise<Float32Array[]>,
  ) {
    const loader = new DataLoader<Input, Float32Array>(runBatch, {
      cache: false,
      maxBatchSize: this.options.maxBatchSize,
      batchScheduleFn: (dispatch) => {
        if (inFlight === 0) setImmediate(dispatch);
        else waiting.push(dispatch);
      },
    });
    return { run: runBatch, loader };
  };
}
