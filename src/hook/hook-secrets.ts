/**
 * Per-execution hook keys (SPEC section 9): every process colony starts gets its own
 * JOB_SECRET_KEY, HMAC-SHA256(master key, kind + ":" + id) in hex, where the master key
 * is derived from the data dir's secret key (core/secrets.ts) and never leaves the
 * server. A key works only while its execution runs: it is forgotten the moment the
 * execution ends, and a server never takes back the key of an execution that has ended
 * (the store says so), so a key that leaked afterwards opens nothing.
 *
 * Deriving rather than storing the key means a restarted server, which re-attaches to
 * processes still running, computes the key those processes already hold, and starting
 * a task writes and removes no key file (these were three synchronous file operations
 * per task on the event loop). Ids are never reused (random, checked unique), so no two
 * executions share a key.
 */
import { createHmac, createSecretKey, type KeyObject } from "node:crypto";

/** What a key is for: the caller the hook then sees. */
export interface HookHolder {
  /** JOB_ID: the unit id of a task execution, a /jobs process or a work unit. */
  jobId: string;
  kind: "task" | "process" | "unit";
  key: string;
  /**
   * `key` as a KeyObject, made on the first request that needs it (most executions never
   * call the hook): HMAC with a Buffer key costs ~20 µs, with this ~3 µs.
   */
  readonly secret: KeyObject;
  unitDir: string;
  /** Tasks: the job request and task they belong to. */
  jobRequestId?: number;
  jobType?: string;
  taskType?: string;
  attempt?: number;
  /** The task's `artifacts.expires_after`: the lifetime of the files it uploads. */
  artifactsExpireAfterMs?: number;
}

/** A JOB_SECRET_KEY as the HMAC key the hook verifies with (its latin1 bytes). */
export function hookSecret(key: string): KeyObject {
  return createSecretKey(Buffer.from(key, "latin1"));
}

/**
 * A holder as issued. A class, not an object literal with a `secret` getter: V8 makes
 * such a literal through the runtime (~0.8 µs), a class instance in ~0.05 µs.
 */
class IssuedHolder implements HookHolder {
  readonly jobId: string;
  readonly kind: HookHolder["kind"];
  readonly key: string;
  readonly unitDir: string;
  readonly jobRequestId?: number;
  readonly jobType?: string;
  readonly taskType?: string;
  readonly attempt?: number;
  readonly artifactsExpireAfterMs?: number;
  #secret: KeyObject | undefined;

  constructor(holder: Omit<HookHolder, "key" | "secret">, key: string) {
    this.jobId = holder.jobId;
    this.kind = holder.kind;
    this.key = key;
    this.unitDir = holder.unitDir;
    this.jobRequestId = holder.jobRequestId;
    this.jobType = holder.jobType;
    this.taskType = holder.taskType;
    this.attempt = holder.attempt;
    this.artifactsExpireAfterMs = holder.artifactsExpireAfterMs;
  }

  get secret(): KeyObject {
    return (this.#secret ??= hookSecret(this.key));
  }
}

export class HookSecrets {
  readonly #holders = new Map<string, HookHolder>();
  readonly #master: KeyObject;

  /** `masterKey`: at least 32 secret bytes, the same across restarts of one data dir. */
  constructor(masterKey: Buffer) {
    if (masterKey.length < 32) throw new Error("the hook master key must be at least 32 bytes");
    this.#master = createSecretKey(masterKey);
  }

  /** The key of `kind:jobId` (the same in every process that has this master key). */
  keyOf(jobId: string, kind: HookHolder["kind"]): string {
    return createHmac("sha256", this.#master).update(`${kind}:${jobId}`).digest("hex");
  }

  /**
   * Issues the key of `holder.jobId` to a process being started (or re-attached after a
   * restart): from here on a request signed with it is accepted, until revoke().
   */
  issue(holder: Omit<HookHolder, "key" | "secret">): string {
    const known = this.#holders.get(holder.jobId);
    if (known) return known.key;
    const key = this.keyOf(holder.jobId, holder.kind);
    this.#holders.set(holder.jobId, new IssuedHolder(holder, key));
    return key;
  }

  /** The live holder of `jobId`, if this process issued or loaded its key. */
  get(jobId: string): HookHolder | undefined {
    return this.#holders.get(jobId);
  }

  /**
   * After a restart: takes back the key of a still-running execution. The caller must
   * have checked that the execution has not ended.
   */
  load(holder: Omit<HookHolder, "key" | "secret">): HookHolder {
    this.issue(holder);
    return this.#holders.get(holder.jobId)!;
  }

  /** The execution ended: its key stops working now. */
  revoke(jobId: string): void {
    this.#holders.delete(jobId);
  }

  get size(): number {
    return this.#holders.size;
  }
}
