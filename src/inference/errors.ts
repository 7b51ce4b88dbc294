import { AppError, ErrorCode } from '../errors';

/** Why a deployed model cannot be served; the value goes to clients as `extensions.reason`. */
export type NotServableReason =
  /** The entry names no `model_filename_onnx` (models of the original platform). */
  | 'NO_ONNX_MODEL'
  /** A text model whose vocabulary is a Python pickle (`.pkl`), which we never unpickle. */
  | 'LEGACY_METADATA'
  /** An artifact the entry names is not in the store. */
  | 'ARTIFACT_MISSING'
  /** An artifact is there but unusable: not an ONNX model, wrong inputs or outputs, bad metadata. */
  | 'ARTIFACT_INVALID';

const MESSAGES: Record<NotServableReason, string> = {
  NO_ONNX_MODEL: 'This model has no ONNX export, so it cannot be used for predictions; it can still be downloaded.',
  LEGACY_METADATA:
    'This text model was made by an earlier version of the platform and cannot be used for predictions; ' +
    'train it again.',
  ARTIFACT_MISSING: 'The files of this model are missing from the store; it cannot be used for predictions.',
  ARTIFACT_INVALID: 'The files of this model are damaged or in an unexpected form; it cannot be used for predictions.',
};

/**
 * A deployed model that exists but cannot answer predictions. The message is fixed per reason:
 * what onnxruntime or the store said stays in `cause` (for the log), never in the message.
 */
export class ModelNotServableError extends AppError {
  constructor(
    readonly reason: NotServableReason,
    options: { cause?: unknown } = {},
  ) {
    super(MESSAGES[reason], { code: ErrorCode.MODEL_NOT_SERVABLE, reason }, options);
  }
}
