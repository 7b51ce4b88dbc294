/**
 * Messages between the engine (main thread) and the onnxruntime worker thread
 * (`session.worker.ts`). Typed arrays travel by transfer, so batches are not copied twice.
 */

export type TensorType = 'uint8' | 'int64' | 'float32';

export interface WireTensor {
  type: TensorType;
  data: Uint8Array | BigInt64Array | Float32Array;
  dims: number[];
}

/** onnxruntime's `ValueMetadata`, as structured clone carries it. */
export type WireValueMetadata =
  | { name: string; isTensor: false }
  | { name: string; isTensor: true; type: string; shape: readonly (number | string)[] };

/** The session options the engine sets explicitly (onnxruntime's `SessionOptions` subset). */
export interface WireSessionOptions {
  intraOpNumThreads: number;
  interOpNumThreads: number;
  executionMode: 'sequential' | 'parallel';
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  enableCpuMemArena: boolean;
  logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  /** Session configuration entries, nested by the dots of their keys (all values strings). */
  extra: { session: { intra_op: { allow_spinning: '0' | '1' } } };
}

export type WorkerRequest =
  | { id: number; op: 'load'; file: string; options: WireSessionOptions }
  | { id: number; op: 'run'; session: number; feeds: Record<string, WireTensor>; fetch: string }
  | { id: number; op: 'release'; session: number }
  /** Release every session and exit; sent by `close` once no request is pending. */
  | { id: number; op: 'shutdown' };

export interface LoadResult {
  session: number;
  inputs: WireValueMetadata[];
  outputs: WireValueMetadata[];
}

export type WorkerResponse =
  | { id: number; ok: true; result: LoadResult | WireTensor | null }
  | { id: number; ok: false; message: string };
