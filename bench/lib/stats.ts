/** Quantile of an ascending array, linear between the closest ranks (NumPy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.ceil(position);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (position - below);
}

export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  /** Completed requests per second over the measured window. */
  throughput: number;
}

export function summarize(latencies: readonly number[], elapsedMillis: number): LatencySummary {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    throughput: (sorted.length * 1000) / elapsedMillis,
  };
}

/** The per-round summaries of one cell, reduced to their medians. */
export function medianOf(rounds: readonly LatencySummary[]): LatencySummary {
  return {
    count: rounds.reduce((sum, round) => sum + round.count, 0),
    p50: median(rounds.map((round) => round.p50)),
    p95: median(rounds.map((round) => round.p95)),
    throughput: median(rounds.map((round) => round.throughput)),
  };
}

/** Median over rounds of a ratio computed within each round (side by side, same conditions). */
export function pairedRatio<T>(a: readonly T[], b: readonly T[], value: (item: T) => number): number {
  const ratios = a.map((item, index) => value(item) / value(b[index]!));
  return median(ratios);
}
