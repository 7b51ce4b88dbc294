import { BadUserInputError } from '../errors';

export interface LabelProbability {
  label: string;
  /** Softmax probability in [0, 1]; the probabilities of all classes sum to 1. */
  probability: number;
}

/** A model's answer for one input: the most probable class, and the `topK` most probable. */
export interface Prediction extends LabelProbability {
  /** Sorted by probability, highest first (ties in class order); `top[0]` is `label`. */
  top: LabelProbability[];
}

/** Classes listed in `top` when the caller gives no `topK` (fewer if the model has fewer). */
export const DEFAULT_TOP_K = 5;

/** `topK` as given (an integer in 1..classes), or the default; anything else is the caller's mistake. */
export function resolveTopK(topK: number | undefined, classes: number): number {
  if (topK === undefined) return Math.min(DEFAULT_TOP_K, classes);
  if (!Number.isInteger(topK) || topK < 1 || topK > classes) {
    throw new BadUserInputError(
      `topK must be a whole number from 1 to ${classes}, the number of classes of this model.`,
      'topK',
    );
  }
  return topK;
}

/** Softmax of one row of logits (in float64, shifted by the maximum so large logits cannot overflow). */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const exps = Array.from(logits, (value) => Math.exp(value - max));
  const sum = exps.reduce((total, value) => total + value, 0);
  return exps.map((value) => value / sum);
}

export function toPrediction(logits: ArrayLike<number>, classes: readonly string[], topK: number): Prediction {
  const probabilities = softmax(logits);
  if (!probabilities.every(Number.isFinite)) throw new Error('The model returned logits that are not finite');
  const ranked = probabilities
    .map((probability, index) => ({ label: classes[index]!, probability, index }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, topK)
    .map(({ label, probability }) => ({ label, probability }));
  const best = ranked[0]!;
  return { label: best.label, probability: best.probability, top: ranked };
}
