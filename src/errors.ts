import { GraphQLError } from 'graphql';

/**
 * Every error a client can see carries one of these codes in `extensions.code`. Clients and
 * tests rely on the code, never on the message text.
 */
export enum ErrorCode {
  BAD_USER_INPUT = 'BAD_USER_INPUT',
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  FORBIDDEN = 'FORBIDDEN',
  MODEL_NOT_FOUND = 'MODEL_NOT_FOUND',
  /** No training job is known under this token (never submitted, or its record was removed after `FLASH_JOB_RETENTION`). */
  JOB_NOT_FOUND = 'JOB_NOT_FOUND',
  MODEL_TRAINING = 'MODEL_TRAINING',
  /** The model existed and was deleted by cleanup after its time to live. */
  MODEL_EXPIRED = 'MODEL_EXPIRED',
  /** The model exists but cannot answer predictions (`extensions.reason` says why). */
  MODEL_NOT_SERVABLE = 'MODEL_NOT_SERVABLE',
  MAINTENANCE = 'MAINTENANCE',
  /** The training queue is full (or, with no queue, a job is running). */
  SERVER_BUSY = 'SERVER_BUSY',
  /** A WebSocket connection already runs as many operations as one connection may. */
  TOO_MANY_SUBSCRIPTIONS = 'TOO_MANY_SUBSCRIPTIONS',
  /** A platform document in the store does not match its schema. */
  DOCUMENT_INVALID = 'DOCUMENT_INVALID',
  /**
   * The object store could not be reached or refused the request, or the server's work folder
   * (where uploads are staged) is read-only or full.
   */
  STORE_UNAVAILABLE = 'STORE_UNAVAILABLE',
  INTERNAL_SERVER_ERROR = 'INTERNAL_SERVER_ERROR',

  // Raised by Apollo Server itself before any resolver runs; passed to clients unchanged.
  GRAPHQL_PARSE_FAILED = 'GRAPHQL_PARSE_FAILED',
  GRAPHQL_VALIDATION_FAILED = 'GRAPHQL_VALIDATION_FAILED',
  PERSISTED_QUERY_NOT_FOUND = 'PERSISTED_QUERY_NOT_FOUND',
  PERSISTED_QUERY_NOT_SUPPORTED = 'PERSISTED_QUERY_NOT_SUPPORTED',
  OPERATION_RESOLUTION_FAILURE = 'OPERATION_RESOLUTION_FAILURE',
  BAD_REQUEST = 'BAD_REQUEST',
  INTROSPECTION_DISABLED = 'INTROSPECTION_DISABLED',
}

/** One input field at fault and what is wrong with it, as a form shows it beside the field. */
export interface FieldProblem {
  /** Its path relative to the argument: `batchSize`, `reduceLrOnPlateau.minLr`, `classes[1].images[4]`. */
  field: string;
  message: string;
}

export interface AppErrorExtensions {
  code: ErrorCode;
  /** The argument or input field at fault, for `BAD_USER_INPUT`: the first of `fields`. */
  field?: string;
  /** For `BAD_USER_INPUT`: every input field at fault, in input order, `field` first. */
  fields?: FieldProblem[];
  /** The store document at fault, for `DOCUMENT_INVALID`. */
  document?: string;
  [key: string]: unknown;
}

/** Base of every error meant for clients: a `GraphQLError` with a typed, stable code. */
export class AppError extends GraphQLError {
  declare readonly extensions: AppErrorExtensions;

  constructor(message: string, extensions: AppErrorExtensions, options: { cause?: unknown } = {}) {
    super(message, { extensions: { ...extensions } });
    this.name = new.target.name;
    if (options.cause !== undefined) {
      Object.defineProperty(this, 'cause', { value: options.cause, enumerable: false });
    }
  }
}

export class BadUserInputError extends AppError {
  /**
   * One problem. With a `field`, `extensions.fields` lists it too, its message without a
   * leading `field: ` (the form shows it beside the field), so clients read one shape always.
   */
  constructor(message: string, field?: string, fields?: readonly FieldProblem[]) {
    const problems = fields ?? (field ? [{ field, message: withoutFieldPrefix(message, field) }] : []);
    super(message, {
      code: ErrorCode.BAD_USER_INPUT,
      ...(field ? { field } : {}),
      ...(problems.length > 0 ? { fields: [...problems] } : {}),
    });
  }

  /**
   * Several problems at once: `field` is the first one's, `fields` lists them all, and the
   * message names each (`batchSize: must be …; epochs: must be …`).
   */
  static of(problems: readonly FieldProblem[]): BadUserInputError {
    if (problems.length === 0) throw new RangeError('BadUserInputError.of needs at least one problem');
    const message = problems.map(({ field, message: text }) => `${field}: ${text}`).join('; ');
    return new BadUserInputError(message, problems[0]!.field, problems);
  }

  /** One error for several: their messages joined, `field` the first one's, `fields` all of theirs. */
  static merge(errors: readonly BadUserInputError[]): BadUserInputError {
    if (errors.length === 1) return errors[0]!;
    const problems = errors.flatMap((error) => error.problems);
    return new BadUserInputError(errors.map((error) => error.message).join('; '), problems[0]?.field, problems);
  }

  /** Its problems, to merge with others before throwing. */
  get problems(): FieldProblem[] {
    return this.extensions.fields ?? [];
  }
}

function withoutFieldPrefix(message: string, field: string): string {
  return message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
}

export class UnauthenticatedError extends AppError {
  constructor(message = 'This operation needs the admin key: send "Authorization: Bearer <key>".') {
    super(message, { code: ErrorCode.UNAUTHENTICATED });
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'The key sent is not allowed to perform this operation.') {
    super(message, { code: ErrorCode.FORBIDDEN });
  }
}

export class ModelNotFoundError extends AppError {
  constructor() {
    super('No model is deployed under this token.', { code: ErrorCode.MODEL_NOT_FOUND });
  }
}

export class JobNotFoundError extends AppError {
  constructor() {
    super('No training job is known under this token.', { code: ErrorCode.JOB_NOT_FOUND });
  }
}

export class ModelTrainingError extends AppError {
  constructor() {
    super('This model is still training; it can be used once it is deployed.', { code: ErrorCode.MODEL_TRAINING });
  }
}

export class MaintenanceError extends AppError {
  constructor() {
    super('The platform is in maintenance (dev mode); try again later.', { code: ErrorCode.MAINTENANCE });
  }
}

export class ServerBusyError extends AppError {
  constructor(message = 'The training server is busy; try again later.') {
    super(message, { code: ErrorCode.SERVER_BUSY });
  }
}

export class TooManySubscriptionsError extends AppError {
  constructor(max: number) {
    super(
      `This connection already runs ${max} subscriptions, the most one connection may; complete one before starting another.`,
      { code: ErrorCode.TOO_MANY_SUBSCRIPTIONS },
    );
  }
}

/**
 * A platform document failed validation. The message names the file and the key so an
 * operator can repair it; it contains no stored values.
 */
export class DocumentInvalidError extends AppError {
  /** Problems with every key spelled out, for the server log only. */
  declare readonly detail: string[];

  constructor(
    readonly document: string,
    problems: string[],
    { detail = problems }: { detail?: string[] } = {},
  ) {
    super(`Platform document ${document} is invalid: ${problems.join('; ')}`, {
      code: ErrorCode.DOCUMENT_INVALID,
      document,
    });
    Object.defineProperty(this, 'detail', { value: detail, enumerable: false });
  }
}

export class StoreUnavailableError extends AppError {
  constructor(cause: unknown) {
    super('The platform store is unavailable; try again shortly.', { code: ErrorCode.STORE_UNAVAILABLE }, { cause });
  }
}
