import type { Logger } from 'pino';

import {
  type DocumentReader,
  type DocumentStore,
  type EpochRecord,
  INFERENCE,
  type InferenceDocument,
  isWellFormedToken,
  type InferenceEntry,
  jobRecordDocument,
  parseCreated,
  STATUS,
  type TaskTypeValue,
} from '../documents';
import { AppError, ErrorCode, ModelNotFoundError, ModelTrainingError } from '../errors';
import type { PlatformPubSub } from '../events/pubsub';
import { tokenId, tokenLogger } from '../observability/token-id';
import type { ObjectStore } from '../store';
import { TextClassNames } from './text-classes';

/** A deployed model as the platform presents it; accuracy is always a fraction in 0..1. */
export interface Model {
  token: string;
  taskType: TaskTypeValue;
  accuracy: number;
  /** Base64 image of the accuracy chart. */
  accuracyPlot: string;
  downloadable: boolean;
  /**
   * Class names in output order, as `inference.json` has them; `null` for text models, whose
   * labels live in their metadata file (`ModelService.classes` reads it).
   */
  classes: string[] | null;
  createdAt: Date;
  /** When cleanup deletes it; `null` for pinned models. */
  expiresAt: Date | null;
  /** Per-epoch metrics of its training; empty for models deployed by the original platform. */
  history: EpochRecord[];
}

/** A model's entry in `inference.json`, with its token. */
export interface DeployedModel {
  token: string;
  entry: InferenceEntry;
}

export class ModelExpiredError extends AppError {
  constructor() {
    super('This model has expired and was deleted.', { code: ErrorCode.MODEL_EXPIRED });
  }
}

export interface ModelPolicy {
  /** Models live this long after their creation, in milliseconds. */
  ttlMillis: number;
  pinnedTokens: ReadonlySet<string>;
}

/**
 * Where a model's files may live. A key an entry names elsewhere (a hand-edited entry pointing
 * at `training/queue.json`, say) is never served nor deleted.
 */
export function isModelFileKey(key: string | undefined): key is string {
  return typeof key === 'string' && (key.startsWith('imageclassification/') || key.startsWith('textclassification/'));
}

/** The models in `inference.json`: looking them up, their expiry, and their deletion. */
export class ModelService {
  private readonly textClasses: TextClassNames;

  constructor(
    private readonly documents: DocumentStore,
    private readonly store: ObjectStore,
    private readonly pubsub: PlatformPubSub,
    private readonly policy: ModelPolicy,
    private readonly logger: Logger,
  ) {
    this.textClasses = new TextClassNames(store, logger);
  }

  /**
   * The model's class names in output order: its entry's (image models), else a text model's
   * metadata file's; `null` when neither has them.
   */
  async classes(model: Pick<Model, 'token' | 'classes'>, reader: DocumentReader = this.documents): Promise<string[] | null> {
    if (model.classes) return model.classes;
    const inference = await reader.read(INFERENCE);
    const entry = Object.hasOwn(inference, model.token) ? inference[model.token] : undefined;
    if (!entry || entry.task_type !== 'textclassification') return null;
    return entry.classes ?? this.textClasses.of(model.token, entry);
  }

  /**
   * The model deployed under `token`. Unknown tokens answer `MODEL_TRAINING` while the job of
   * that token trains, `MODEL_EXPIRED` once cleanup deleted it, else `MODEL_NOT_FOUND`.
   */
  async get(token: string, reader: DocumentReader = this.documents): Promise<Model> {
    return this.toModel(await this.deployed(token, reader));
  }

  /** The `inference.json` entry of `token`, with the same errors as `get`. */
  async deployed(token: string, reader: DocumentReader = this.documents): Promise<DeployedModel> {
    const inference = await reader.read(INFERENCE);
    if (Object.hasOwn(inference, token)) return { token, entry: inference[token] as InferenceEntry };
    // Only an unknown token needs more documents: a broken status must not hide deployed models.
    const status = await reader.read(STATUS);
    if (status.status === 'active' && status.token !== '' && status.token === token) throw new ModelTrainingError();
    if (!isWellFormedToken(token)) throw new ModelNotFoundError();
    const record = await this.documents.snapshot(jobRecordDocument(token)).catch(() => null);
    if (record?.value.expired_at) throw new ModelExpiredError();
    throw new ModelNotFoundError();
  }

  /** Every deployed model, newest first. */
  async list(reader: DocumentReader = this.documents): Promise<Model[]> {
    const inference = await reader.read(INFERENCE);
    return Object.entries(inference)
      .map(([token, entry]) => this.toModel({ token, entry }))
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || a.token.localeCompare(b.token));
  }

  /** Deletes the model and its files; its job, if this platform trained it, shows `DELETED` from then on. */
  async delete(token: string): Promise<void> {
    const { entry } = await this.deployed(token);
    const removed = await this.remove([token], () => true);
    if (removed.length > 0) {
      const now = new Date().toISOString();
      await this.documents
        .update(jobRecordDocument(token), (record) => ({ ...record, deleted_at: now }))
        .catch(() => undefined); // models of the original platform have no job record
    }
    this.logger.info({ tokenId: tokenId(token), task_type: entry.task_type }, 'Model deleted');
  }

  /**
   * Deletes every model past its time to live, except pinned ones; returns their tokens. The
   * expiry is decided again inside the compare-and-swap, so an entry deployed meanwhile is
   * never lost and never deleted before its time.
   */
  async expire(now = new Date()): Promise<string[]> {
    const inference = await this.documents.read(INFERENCE);
    const candidates = Object.keys(inference).filter((token) => this.isExpired(token, inference, now));
    if (candidates.length === 0) return [];
    const removed = await this.remove(candidates, (token, current) => this.isExpired(token, current, now));
    await Promise.all(
      removed.map((token) =>
        this.documents
          .update(jobRecordDocument(token), (record) => ({ ...record, expired_at: now.toISOString() }))
          .catch(() => undefined), // models of the original platform have no job record
      ),
    );
    return removed;
  }

  expiresAt(token: string, created: Date): Date | null {
    return this.policy.pinnedTokens.has(token) ? null : new Date(created.getTime() + this.policy.ttlMillis);
  }

  /**
   * Removes entries from `inference.json` (the commit point), then their files, then tells
   * subscribers (the inference engine drops its sessions). Returns the tokens removed.
   */
  private async remove(
    tokens: string[],
    stillRemove: (token: string, current: InferenceDocument) => boolean,
  ): Promise<string[]> {
    const removed: DeployedModel[] = [];
    await this.documents.update(INFERENCE, (current) => {
      removed.length = 0;
      const next = { ...current };
      for (const token of tokens) {
        const entry = current[token];
        if (!entry || !Object.hasOwn(current, token) || !stillRemove(token, current)) continue;
        removed.push({ token, entry });
        delete next[token];
      }
      return next;
    });
    for (const { token, entry } of removed) {
      const files = [entry.model_filename, entry.model_filename_onnx, entry.metadata_filename].filter(isModelFileKey);
      await Promise.all(
        files.map((key) =>
          this.store.delete(key).catch((error: unknown) => tokenLogger(this.logger, token).warn({ err: error }, 'Could not delete a model file')),
        ),
      );
      this.textClasses.forget(token);
      this.pubsub.publish('MODEL_REMOVED', token);
    }
    return removed.map(({ token }) => token);
  }

  private isExpired(token: string, inference: InferenceDocument, now: Date): boolean {
    const entry = inference[token];
    if (!entry || !Object.hasOwn(inference, token)) return false;
    const expiresAt = this.expiresAt(token, parseCreated(entry.created) as Date);
    return expiresAt !== null && expiresAt.getTime() <= now.getTime();
  }

  private toModel({ token, entry }: DeployedModel): Model {
    const createdAt = parseCreated(entry.created) as Date; // the schema has checked that it parses
    return {
      token,
      taskType: entry.task_type,
      accuracy: normalizeAccuracy(entry.accuracy),
      accuracyPlot: entry.accuracy_plot,
      downloadable: entry.downloadable,
      classes: entry.classes ?? null,
      createdAt,
      expiresAt: this.expiresAt(token, createdAt),
      history: entry.history ?? [],
    };
  }
}

/**
 * Existing buckets store accuracy both as a percentage (96.67) and as a fraction (0.667).
 * Values above 1 can only be percentages; 1 and below are read as fractions.
 */
export function normalizeAccuracy(stored: number): number {
  return stored > 1 ? stored / 100 : stored;
}
