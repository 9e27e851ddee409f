/**
 * The one error base class of colony. Every failure a user can see has a stable string
 * `code` (documented in docs/errors.md), the HTTP status an API answers with, and whether
 * trying again later can succeed. Messages say what happened and what to do next.
 */
export class ColonyError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: string,
    message: string,
    options: {
      status?: number;
      retryable?: boolean;
      cause?: unknown;
      details?: Record<string, unknown>;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? 500;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }

  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** A position in a source document (1-based line and column). */
export interface SourcePosition {
  line: number;
  column: number;
}

/** A job definition (YAML or JSON) that cannot be accepted; carries where and what to fix. */
export class DefinitionError extends ColonyError {
  readonly path: string;
  readonly position: SourcePosition | undefined;
  /** What is wrong, without where (the message is where, then this). */
  readonly reason: string;

  constructor(message: string, path: string, position?: SourcePosition) {
    const where = position ? `line ${position.line}, column ${position.column}` : undefined;
    const prefix = [where, path ? `at ${path}` : undefined].filter(Boolean).join(" ");
    super("COLONY_INVALID_DEFINITION", prefix ? `${prefix}: ${message}` : message, {
      status: 400,
      details: { path, ...(position ?? {}) },
    });
    this.path = path;
    this.position = position;
    this.reason = message;
  }
}

export class ValidationError extends ColonyError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("COLONY_VALIDATION", message, { status: 400, details });
  }
}

export class NotFoundError extends ColonyError {
  constructor(what: string, id: string | number, hint?: string) {
    super(
      `COLONY_UNKNOWN_${what.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}`,
      `no ${what.replace(/_/g, " ")} '${id}'${hint ? `; ${hint}` : ""}`,
      { status: 404 },
    );
  }
}

export class IllegalTransitionError extends ColonyError {
  constructor(kind: string, id: string | number, from: string, to: string) {
    super("COLONY_ILLEGAL_TRANSITION", `${kind} ${id} cannot move from ${from} to ${to}`, {
      status: 409,
      details: { from, to },
    });
  }
}

export class ConflictError extends ColonyError {
  constructor(message: string) {
    super("COLONY_CONFLICT", message, { status: 409 });
  }
}

/** The store could not do what was asked (disk full, connection lost...). Never swallowed. */
export class StoreError extends ColonyError {
  constructor(message: string, cause?: unknown) {
    super("COLONY_STORE_FAILURE", message, { status: 503, retryable: true, cause });
  }
}

/** An executor-level failure (start of an existing execution, wait of an unknown one...). */
export class ExecutorError extends ColonyError {
  constructor(
    code: string,
    message: string,
    options: { retryable?: boolean; cause?: unknown } = {},
  ) {
    super(code, message, { status: 409, ...options });
  }
}

/**
 * start() of an execution that was started before (COLONY_EXECUTION_EXISTS). When the
 * executor follows that execution now (an earlier colony process started it, or this
 * one did and could not record it), its wait() answers the execution's result, and
 * `handle`, when set, finds the execution again after a restart as start()'s would have.
 */
export class ExecutionExistsError extends ExecutorError {
  readonly handle: Record<string, unknown> | undefined;

  constructor(message: string, handle?: Record<string, unknown>) {
    super("COLONY_EXECUTION_EXISTS", message);
    this.handle = handle;
  }
}
