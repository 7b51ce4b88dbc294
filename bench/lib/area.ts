import type { TargetCheck } from './report';

/** What every area gets from `bench/main.ts`. */
export interface AreaContext {
  /** Rounds of every measurement; each reported figure is the median over them. */
  rounds: number;
  /** Fewer models, one round, shorter windows: checks that the benchmark runs. */
  quick: boolean;
  /** Train the models again even when `bench/.cache/models/` holds them. */
  retrain: boolean;
  /** A fresh temporary folder for this run, removed at the end. */
  scratch: string;
  /** Where CPU profiles go (`bench/.cache/profiles/`). */
  profiles: string;
  log(line: string): void;
}

export interface AreaOutput {
  title: string;
  markdown: string;
  targets: TargetCheck[];
}
