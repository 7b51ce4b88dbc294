import {
  type DocumentReader,
  type EpochRecord,
  type DocumentStore,
  INFERENCE,
  type InferenceEntry,
  parseCreated,
  STATUS,
  type TaskTypeValue,
} from '../documents';
import { ModelNotFoundError, ModelTrainingError } from '../errors';

/** A deployed model as the platform presents it; accuracy is always a fraction in 0..1. */
export interface Model {
  token: string;
  taskType: TaskTypeValue;
  accuracy: number;
  /** Base64 image of the accuracy chart. */
  accuracyPlot: string;
  downloadable: boolean;
  /** Class names in output order; `null` for text models, whose labels live in their metadata. */
  classes: string[] | null;
  createdAt: Date;
  /** Per-epoch metrics of its training; empty for models deployed by the original platform. */
  history: EpochRecord[];
}

/** The models in `inference.json`: what the original "check" endpoint answered. */
export class ModelService {
  constructor(private readonly documents: DocumentStore) {}

  /**
   * The model deployed under `token`. A token that names the job training right now answers
   * `MODEL_TRAINING`; any other unknown token `MODEL_NOT_FOUND`.
   */
  async get(token: string, reader: DocumentReader = this.documents): Promise<Model> {
    const inference = await reader.read(INFERENCE);
    if (Object.hasOwn(inference, token)) return toModel(token, inference[token] as InferenceEntry);
    // Only an unknown token needs status.json: a broken status must not hide deployed models.
    const status = await reader.read(STATUS);
    if (status.status === 'active' && status.token !== '' && status.token === token) throw new ModelTrainingError();
    throw new ModelNotFoundError();
  }

  /** Every deployed model, newest first. */
  async list(reader: DocumentReader = this.documents): Promise<Model[]> {
    const inference = await reader.read(INFERENCE);
    return Object.entries(inference)
      .map(([token, entry]) => toModel(token, entry))
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || a.token.localeCompare(b.token));
  }
}

function toModel(token: string, entry: InferenceEntry): Model {
  return {
    token,
    taskType: entry.task_type,
    accuracy: normalizeAccuracy(entry.accuracy),
    accuracyPlot: entry.accuracy_plot,
    downloadable: entry.downloadable,
    classes: entry.classes ?? null,
    // The schema has already checked that `created` parses.
    createdAt: parseCreated(entry.created) as Date,
    history: entry.history ?? [],
  };
}

/**
 * Existing buckets store accuracy both as a percentage (96.67) and as a fraction (0.667).
 * Values above 1 can only be percentages; 1 and below are read as fractions.
 */
export function normalizeAccuracy(stored: number): number {
  return stored > 1 ? stored / 100 : stored;
}
