import { Presets, SingleBar } from 'cli-progress';

import type { TrainingProgressSubscription, TrainingState } from '../gql/graphql';
import { formatPercent, unreachable, type OutputStream } from './output';

export type TrainingEvent = TrainingProgressSubscription['trainingProgress'];

/** Where training progress is shown: a live bar on a terminal, one line per step elsewhere. */
export interface ProgressView {
  update(event: TrainingEvent): void;
  stop(): void;
}

export function progressView(stream: OutputStream): ProgressView {
  return stream.isTTY ? new BarView(stream) : new LineView(stream);
}

/** The bar counts epochs, with the running epoch's batches as a fraction of one. */
class BarView implements ProgressView {
  private readonly bar: SingleBar;
  private started = false;
  private valAccuracy: number | null = null;

  constructor(stream: OutputStream) {
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
    const value = event.batch ? event.batch.epoch - 1 + event.batch.batch / event.batch.batches : event.epoch;
    const payload = {
      state: describeState(event),
      epoch: event.batch?.epoch ?? event.epoch,
      epochs: event.epochs,
      batch: event.batch ? `${event.batch.batch}/${event.batch.batches}` : '-',
      timeLeft: formatSeconds(event.etaSeconds), // not `eta`: cli-progress computes its own
      valAccuracy: formatPercent(this.valAccuracy),
    };
    if (this.started) {
      this.bar.update(value, payload);
    } else {
      this.bar.start(event.epochs, value, payload);
      this.started = true;
    }
  }

  stop(): void {
    if (this.started) this.bar.stop();
  }
}

/** For logs and pipes: a line when the state changes and one per finished epoch. */
class LineView implements ProgressView {
  private state: TrainingState | null = null;

  constructor(private readonly stream: OutputStream) {}

  update(event: TrainingEvent): void {
    if (event.state !== this.state) {
      this.state = event.state;
      this.stream.write(`${describeState(event)}${event.message ? `: ${event.message}` : ''}\n`);
    }
    const { metrics } = event;
    if (metrics) {
      this.stream.write(
        `epoch ${metrics.epoch}/${event.epochs}  train acc ${formatPercent(metrics.trainAccuracy)}  ` +
          `val acc ${formatPercent(metrics.valAccuracy)}  ${metrics.seconds.toFixed(1)}s  ETA ${formatSeconds(event.etaSeconds)}\n`,
      );
    }
  }

  stop(): void {}
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
