import { parentPort } from 'node:worker_threads';

import { InferenceSession, Tensor } from 'onnxruntime-node';

import { UnreachableCaseError } from '../unreachable';
import type { LoadResult, WireTensor, WireValueMetadata, WorkerRequest, WorkerResponse } from './protocol';

/**
 * The onnxruntime worker thread. onnxruntime-node 1.30's `session.run` is not asynchronous: it
 * defers the native call with `setImmediate` and then runs the whole inference synchronously on
 * the calling thread (microsoft/onnxruntime#19611, #26968). Called on the main thread, a 300 ms
 * batch would stall every other request for 300 ms. Here it stalls only this thread; the main
 * thread talks to it by messages (`session-host.ts`).
 *
 * Requests are handled one at a time in arrival order: a run occupies this thread until it
 * ends, so runs of all models are serialised here (with `intraOpNumThreads` cores each).
 */

if (!parentPort) throw new Error('session.worker.ts must run in a worker thread');
const port = parentPort;

const sessions = new Map<number, InferenceSession>();
let nextSession = 1;

port.on('message', (request: WorkerRequest) => {
  if (request.op === 'shutdown') {
    void shutdown();
    return;
  }
  handle(request).then(
    ({ result, transfer }) => reply({ id: request.id, ok: true, result }, transfer),
    (error: unknown) =>
      reply({ id: request.id, ok: false, message: error instanceof Error ? error.message : String(error) }, []),
  );
});

function reply(response: WorkerResponse, transfer: ArrayBuffer[]): void {
  port.postMessage(response, transfer);
}

interface Handled {
  result: LoadResult | WireTensor | null;
  transfer: ArrayBuffer[];
}

async function shutdown(): Promise<void> {
  await Promise.all([...sessions.values()].map((session) => session.release().catch(() => undefined)));
  sessions.clear();
  port.close(); // nothing else keeps this thread alive: it exits
}

async function handle(request: Exclude<WorkerRequest, { op: 'shutdown' }>): Promise<Handled> {
  switch (request.op) {
    case 'load': {
      const session = await InferenceSession.create(request.file, request.options);
      const id = nextSession++;
      sessions.set(id, session);
      const result = { session: id, inputs: wire(session.inputMetadata), outputs: wire(session.outputMetadata) };
      return { result, transfer: [] };
    }
    case 'run': {
      const session = sessions.get(request.session);
      if (!session) throw new Error(`no session ${request.session}`);
      const feeds: Record<string, Tensor> = {};
      for (const [name, tensor] of Object.entries(request.feeds)) {
        feeds[name] = new Tensor(tensor.type, tensor.data, tensor.dims);
      }
      const outputs = await session.run(feeds, [request.fetch]);
      const output = outputs[request.fetch];
      if (!output || output.type !== 'float32') throw new Error(`output ${request.fetch} is missing or not float32`);
      // A copy the engine owns outright, so its buffer can be transferred.
      const data = Float32Array.from(output.data as Float32Array);
      return { result: { type: 'float32', data, dims: [...output.dims] }, transfer: [data.buffer] };
    }
    case 'release': {
      const session = sessions.get(request.session);
      sessions.delete(request.session);
      await session?.release();
      return { result: null, transfer: [] };
    }
    default:
      throw new UnreachableCaseError(request);
  }
}

function wire(metadata: readonly InferenceSession.ValueMetadata[]): WireValueMetadata[] {
  return metadata.map((value) =>
    value.isTensor
      ? { name: value.name, isTensor: true, type: value.type, shape: [...value.shape] }
      : { name: value.name, isTensor: false },
  );
}
