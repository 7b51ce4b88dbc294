import { Presets, SingleBar } from 'cli-progress';

import type { TrainingProgressSubscription, TrainingState } from '../gql/graphql';
import { formatPercent, unreachable, type OutputStream } from './output';

export type TrainingEvent = TrainingProgressSubscription['trainingProgress'];

/** Where training progress is shown: a live bar on a terminal, one line per step elsewhere. */
export interface ProgressView {
  update(event: TrainingEvent): void;
  stop(): void;
}

export function progressView(stream: OutputStream, clock: () => number = Date.now): ProgressView {
  return stream.isTTY ? new BarView(stream, clock) : new LineView(stream, clock);
}

/**
 * Seconds until training ends, from the pace of the batches seen so far: known from the second
 * batch event on, long before the server's own estimate, which waits for a finished epoch.
 * Until then, and outside TRAINING, the server's estimate (or none).
 */
export class EtaEstimator {
  private first: { at: number; done: number } | undefined;

  constructor(private readonly clock: () => number = Date.now) {}

  next(event: TrainingEvent): number | null {
    if (event.state !== 'TRAINING') return null;
    const done = epochsDone(event);
    const at = this.clock();
    // Only batch events mark a known point inside an epoch; the first one seen is the start line.
    if (!this.first) {
      if (event.batch) this.first = { at, done };
      return event.etaSeconds;
    }
    const progress = done - this.first.done;
    if (progress <= 0 || at <= this.first.at) return event.etaSeconds;
    return Math.max(0, Math.round(((event.epochs - done) * (at - this.first.at)) / progress / 1000));
  }
}

/** The bar counts epochs, with the running epoch's batches as a fraction of one. */
class BarView implements ProgressView {
  private readonly bar: SingleBar;
  private readonly eta: EtaEstimator;
  private started = false;
  private valAccuracy: number | null = null;

  constructor(stream: OutputStream, clock: () => number) {
    this.eta = new EtaEstimator(clock);
    this.bar = new SingleBar(
      {
        stream,
        format: '{bar} {percentage}% | {state} | epoch {epoch}/{epochs} | batch {batch} | ETA {timeLeft} | val acc {valAccuracy}',
        barsize: 24,
      },
      Presets.shades_classic,
    );
  }

  update(event: TrainingEvent): void {
    this.valAccuracy = event.metrics?.valAccuracy ?? this.valAccuracy;
    const payload = {
      state: describePhase(event),
      epoch: event.batch?.epoch ?? event.epoch,
      epochs: event.epochs,
      batch: event.batch ? `${event.batch.batch}/${event.batch.batches}` : '-',
      timeLeft: formatSeconds(this.eta.next(event)), // not `eta`: cli-progress computes its own
      valAccuracy: formatPercent(this.valAccuracy),
    };
    if (this.started) {
      this.bar.update(epochsDone(event), payload);
    } else {
      this.bar.start(event.epochs, epochsDone(event), payload);
      this.started = true;
    }
    // cli-progress redraws at most every 100 ms and skips what changed in between: every event
    // gets its frame, so short phases (validating, exporting) show too. Events come at most
    // about once a second (the server's batch progress interval).
    this.bar.render();
  }

  stop(): void {
    if (this.started) this.bar.stop();
  }
}

/** For logs and pipes: a line when the state changes and one per finished epoch. */
class LineView implements ProgressView {
  private readonly eta: EtaEstimator;
  private state: TrainingState | null = null;

  constructor(
    private readonly stream: OutputStream,
    clock: () => number,
  ) {
    this.eta = new EtaEstimator(clock);
  }

  update(event: TrainingEvent): void {
    const eta = this.eta.next(event);
    if (event.state !== this.state) {
      this.state = event.state;
      this.stream.write(`${describeState(event)}${event.message ? `: ${event.message}` : ''}\n`);
    }
    const { metrics } = event;
    if (metrics) {
      this.stream.write(
        `epoch ${metrics.epoch}/${event.epochs}  train acc ${formatPercent(metrics.trainAccuracy)}  ` +
          `val acc ${formatPercent(metrics.valAccuracy)}  ${metrics.seconds.toFixed(1)}s  ETA ${formatSeconds(eta)}\n`,
      );
    }
  }

  stop(): void {}
}

/** Epochs done, with the running epoch's batches as a fraction of one. */
function epochsDone(event: TrainingEvent): number {
  return event.batch ? event.batch.epoch - 1 + event.batch.batch / event.batch.batches : event.epoch;
}

/**
 * The state, and inside TRAINING the trainer's phase as the events show it: the trainer always
 * reports an epoch's last batch and validates the epoch right after it, until the epoch's
 * metrics arrive; after the last epoch's metrics it exports the model (the server's EXPORTING
 * then stores it).
 */
function describePhase(event: TrainingEvent): string {
  if (event.state !== 'TRAINING') return describeState(event);
  if (event.batch) return event.batch.batch === event.batch.batches ? 'validating' : 'training';
  return event.epoch >= event.epochs ? 'exporting' : 'training';
}

function describeState(event: TrainingEvent): string {
  switch (event.state) {
    case 'QUEUED':
      return event.queuePosition ? `queued, ${event.queuePosition} job(s) ahead` : 'queued, next';
    case 'PREPARING':
    case 'TRAINING':
    case 'EXPORTING':
    case 'DEPLOYED':
    case 'FAILED':
    case 'CANCELLED':
    case 'DELETED':
      return event.state.toLowerCase();
    default:
      return unreachable(event.state);
  }
}

function formatSeconds(seconds: number | null): string {
  if (seconds === null) return '-';
  const minutes = Math.floor(seconds / 60);
  return minutes > 0 ? `${minutes}m${String(seconds % 60).padStart(2, '0')}s` : `${seconds}s`;
}
