/**
 * The unit manager: every work unit of this node, from submission to release (SPEC
 * section 7). The unit files are the source of truth (unit-files.ts); the manager keeps
 * a copy of each status in memory and writes every change through atomically.
 *
 * - Local units run their work type's command with the SHELL executor (the Perl
 *   spawner: own process group, output straight to `stdout`, exit status to `exit`),
 *   so a command outlives the server and is re-attached by the next start.
 * - Remote units (work type `remote`) are driven by remote-work.ts.
 * - Restarts: Running units are re-attached, or failed with the reason when their
 *   process died unrecorded; Pending units whose payload was complete are started (or
 *   re-submitted: the peer dedups), the others fail with the reason. Never Running
 *   forever.
 * - Retention: finished units older than `retentionMs` are released.
 */
import type { KeyObject } from "node:crypto";
import { constants } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { constants as osConstants } from "node:os";
import { pipeline } from "node:stream/promises";
import { taskDefinition } from "../core/job-definition.ts";
import { Writable, type Readable } from "node:stream";
import { parseDuration } from "../core/duration.ts";
import {
  ColonyError,
  ExecutionExistsError,
  NotFoundError,
  ValidationError,
} from "../core/errors.ts";
import type { ExecutionRequest, ExecutionResult, Executor } from "../core/executor.ts";
import { newUnitId } from "../core/ids.ts";
import { followFile, notifyDone } from "../core/output-follow.ts";
import { isSealed, openValue, sealValue } from "../core/secrets.ts";
import type { PeerClient } from "./peer-client.ts";
import {
  isRemoteExtraData,
  NO_EXPIRATION,
  RemoteWork,
  type RemoteExtraData,
  type RemoteHost,
  type StatusChange,
} from "./remote-work.ts";
import {
  allocateUnitDir,
  CANCELED,
  FAILED,
  fileSize,
  isFinalState,
  listUnitIds,
  PENDING,
  readStatus,
  removeStaleTempFiles,
  removeUnitDir,
  RUNNING,
  STARTING_WORKER,
  SUCCEEDED,
  syncToDisk,
  unitPaths,
  WAITING_FOR_INPUT,
  writeFileAtomic,
  writeStatus,
  type UnitPaths,
  type UnitState,
  type UnitStatus,
} from "./unit-files.ts";
import type { UnitSnapshot } from "./unit-model.ts";
import { combinedParams, commandArgv, execLine, type WorkType } from "./work-types.ts";
import { signWork, verifyWork } from "./work-signing.ts";

export const REMOTE_WORK_TYPE = "remote";
const ORIGIN_FILE = "origin";

/** An unknown unit id (receptor's words, so clients that match them keep working). */
export class UnknownUnitError extends NotFoundError {
  constructor(id: string) {
    super("unit", id, "list units with 'work list' or GET /api/units");
    this.message = `unknown work unit ${id}`;
  }
}

export class UnitRequestError extends ColonyError {
  constructor(message: string, status = 400) {
    super("COLONY_UNIT_REQUEST", message, { status });
  }
}

/** Task executions, as units (provided by the server, which has the store). */
export interface TaskUnitSource {
  get(id: string): Promise<UnitSnapshot | undefined>;
  output(id: string, options: { offset: number; follow: boolean }): Promise<Readable>;
}

export interface SubmitInput {
  workType: string;
  /** Undefined, "", "localhost" or this node's id: here; else a peer's node id. */
  node?: string;
  params?: Record<string, string>;
  ttl?: string;
  signWork?: boolean;
  tlsClient?: string;
  signature?: string;
  /** Idempotency key of a peer's remote unit. */
  origin?: string;
}

export interface UnitManagerOptions {
  nodeId: string;
  dataDir: string;
  workTypes: ReadonlyMap<string, WorkType>;
  peers: ReadonlyMap<string, PeerClient>;
  /** The SHELL executor (shared with the engine: one spawner). */
  executor: Executor;
  /** Key that seals secret_* params on disk. */
  secretKey: Buffer;
  signing?: { key: KeyObject; expirationMs: number };
  verificationKey?: KeyObject;
  remote?: { pollMs?: number; retryMinMs?: number; retryMaxMs?: number };
  /** Release finished units older than this (0: keep them). */
  retentionMs?: number;
  /** How long a cancel waits for the process to end (the executor's kill grace + 2 s). */
  cancelWaitMs?: number;
  taskUnits?: TaskUnitSource;
  log?: (message: string) => void;
  /** Told of every state or detail change, and of releases (live views). */
  onChange?: (unit: UnitSnapshot, what: "state" | "released") => void;
}

interface Unit {
  readonly id: string;
  readonly paths: UnitPaths;
  status: UnitStatus;
  createdAt: Date;
  updatedAt: Date;
  origin?: string;
  released: boolean;
  /** Resolves when the unit is final (or released). */
  readonly settled: PromiseWithResolvers<void>;
  remote?: RemoteWork;
  /** The process is being started (a cancel must wait for its pid). */
  starting?: Promise<unknown>;
}

interface CommandExtraData {
  Pid: number;
  Params: string;
  StartTime?: number;
  /** secret_* params as environment variables (SECRET_*), sealed; never in views. */
  SecretEnv?: Record<string, string>;
}

const DEFAULT_REMOTE = { pollMs: 1000, retryMinMs: 1000, retryMaxMs: 60_000 };
const SIZE_INTERVAL_MS = 1000;

export class UnitManager {
  readonly nodeId: string;
  readonly #o: UnitManagerOptions;
  readonly #units = new Map<string, Unit>();
  readonly #origins = new Map<string, string>();
  readonly #timing: { pollMs: number; retryMinMs: number; retryMaxMs: number };
  #timer: NodeJS.Timeout | undefined;
  #lastSweep = 0;
  #closed = false;
  #log: (message: string) => void;

  constructor(options: UnitManagerOptions) {
    this.#o = options;
    this.nodeId = options.nodeId;
    this.#timing = { ...DEFAULT_REMOTE, ...options.remote };
    this.#log = options.log ?? (() => undefined);
  }

  get workTypes(): ReadonlyMap<string, WorkType> {
    return this.#o.workTypes;
  }

  get peers(): ReadonlyMap<string, PeerClient> {
    return this.#o.peers;
  }

  // -- lifecycle ----------------------------------------------------------------------

  /** Loads every unit from disk and recovers the unfinished ones. */
  async open(): Promise<void> {
    const ids = await listUnitIds(this.#o.dataDir);
    await Promise.all(ids.map((id) => this.#load(id)));
    this.#timer = setInterval(() => void this.#tick(), SIZE_INTERVAL_MS);
    this.#timer.unref();
    void this.#sweep();
  }

  /** Stops watching; running commands keep running and are re-attached by the next start. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const unit of this.#units.values()) unit.remote?.stop();
    for (const peer of this.#o.peers.values()) peer.close();
  }

  // -- submit -------------------------------------------------------------------------

  /** Is `node` this node? */
  isLocal(node: string | undefined): boolean {
    return (
      node === undefined ||
      node === "" ||
      node.toLowerCase() === "localhost" ||
      node === this.nodeId
    );
  }

  /**
   * Checks a submission and creates its unit, Pending "Waiting for Input Data".
   * `trusted` callers (the Unix control socket) skip signature checks, as in receptor.
   * Returns an existing unit when `origin` was seen before (a peer's retry).
   */
  async create(
    input: SubmitInput,
    options: { trusted: boolean },
  ): Promise<{ id: string; duplicate: boolean }> {
    this.#assertOpen();
    if (input.origin !== undefined) {
      const seen = this.#origins.get(input.origin);
      if (seen && this.#units.has(seen)) return { id: seen, duplicate: true };
    }
    const params = input.params ?? {};
    let status: UnitStatus;
    if (this.isLocal(input.node)) {
      const workType = this.#o.workTypes.get(input.workType);
      if (!workType) {
        const known = [...this.#o.workTypes.keys()];
        throw new NotFoundError(
          "work_type",
          input.workType,
          known.length
            ? `this node (${this.nodeId}) has ${known.join(", ")}`
            : `this node (${this.nodeId}) has none: add work_types to its colony.yaml (docs/units.md)`,
        );
      }
      if (input.ttl) {
        throw new UnitRequestError("ttl option is intended for remote work only");
      }
      const secrets: Record<string, string> = {};
      for (const [key, value] of Object.entries(params)) {
        if (/^secret_[A-Za-z0-9_]+$/i.test(key)) {
          // Given to the command as an environment variable; sealed on disk.
          secrets[key.toUpperCase()] = sealValue(value, this.#o.secretKey);
        } else if (key !== "params") {
          throw new UnitRequestError(
            `work type ${workType.name} takes the runtime parameter 'params' and secret_* parameters; '${key}' is neither`,
          );
        }
      }
      if ((params.params ?? "") !== "" && !workType.allowRuntimeParams) {
        throw new UnitRequestError(
          `extra params provided but not allowed: work type ${workType.name} has allow_runtime_params false`,
        );
      }
      if (workType.verifySignature && !options.trusted) {
        verifyWork(input.signature, this.#o.verificationKey!, this.nodeId);
      }
      status = {
        State: PENDING,
        Detail: WAITING_FOR_INPUT,
        StdoutSize: 0,
        WorkType: workType.name,
        ExtraData: {
          Pid: 0,
          Params: combinedParams(workType, params.params),
          ...(Object.keys(secrets).length > 0 ? { SecretEnv: secrets } : {}),
        },
      };
    } else {
      const node = input.node!;
      const peer = this.#o.peers.get(node);
      if (!peer) {
        const known = [...this.#o.peers.keys()];
        throw new UnitRequestError(
          `unknown node '${node}': this node (${this.nodeId}) has ${known.length ? `peers ${known.join(", ")}` : "no peers"}; add it under peers in the config`,
          404,
        );
      }
      const hasSecrets = Object.keys(params).some((k) => k.toLowerCase().startsWith("secret_"));
      if (hasSecrets && !peer.secure) {
        throw new UnitRequestError(
          `cannot send secrets over a non-TLS connection: peer ${node} is ${peer.url.origin}; use an https URL`,
        );
      }
      if (input.signWork && !this.#o.signing) {
        throw new UnitRequestError(
          "signed work needs a private key: set work_signing.private_key in this node's config",
        );
      }
      let expiration = NO_EXPIRATION;
      if (input.ttl) {
        const ms = parseDuration(input.ttl);
        if (ms === undefined || ms <= 0) {
          throw new UnitRequestError(
            `ttl '${input.ttl}' is not a duration; valid examples include '1.5h', '30m', '30m10s'`,
          );
        }
        expiration = new Date(Date.now() + ms).toISOString();
      }
      const sealed: Record<string, string> = {};
      for (const [k, v] of Object.entries(params)) {
        sealed[k] = k.toLowerCase().startsWith("secret_") ? sealValue(v, this.#o.secretKey) : v;
      }
      const extra: RemoteExtraData = {
        RemoteNode: node,
        RemoteWorkType: input.workType,
        RemoteParams: sealed,
        RemoteUnitID: "",
        RemoteStarted: false,
        LocalCancelled: false,
        LocalReleased: false,
        SignWork: input.signWork ?? false,
        TLSClient: input.tlsClient ?? "",
        Expiration: expiration,
      };
      status = {
        State: PENDING,
        Detail: WAITING_FOR_INPUT,
        StdoutSize: 0,
        WorkType: REMOTE_WORK_TYPE,
        ExtraData: extra,
      };
    }
    const { id, paths } = await allocateUnitDir(this.#o.dataDir, newUnitId);
    if (input.origin !== undefined) {
      writeFileAtomic(`${paths.dir}/${ORIGIN_FILE}`, input.origin + "\n");
      this.#origins.set(input.origin, id);
    }
    // Not durable yet: nothing was accepted until the payload is in (receiveStdin).
    writeStatus(paths.status, status);
    const now = new Date();
    const unit = this.#register(id, paths, status, now);
    unit.updatedAt = now;
    if (input.origin !== undefined) unit.origin = input.origin;
    return { id, duplicate: false };
  }

  /**
   * Writes the payload to the unit's `stdin` (durably) and marks it "Starting Worker".
   * A failure fails the unit with "Error reading input data".
   */
  async receiveStdin(
    id: string,
    source: AsyncIterable<Buffer> | Buffer | undefined,
  ): Promise<void> {
    const unit = this.#get(id);
    const fh = await open(
      unit.paths.stdin,
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
      0o600,
    );
    try {
      if (Buffer.isBuffer(source)) {
        await fh.write(source);
      } else if (source !== undefined) {
        await pipeline(source, fileSink(fh));
      }
      await fh.datasync();
    } catch (error) {
      await fh.close().catch(() => undefined);
      await this.#update(
        unit,
        { state: FAILED, detail: `Error reading input data: ${(error as Error).message}` },
        true,
      );
      throw error;
    }
    await fh.close();
    if (unit.status.State !== PENDING) return; // cancelled while the payload came in
    // Not written: the start that follows writes (and flushes) the next state before the
    // client hears "Job Started"; until then nothing was accepted.
    unit.status = { ...unit.status, Detail: STARTING_WORKER };
  }

  /** Starts a unit whose payload is complete: "Job Started" or "Job Submitted". */
  async startUnit(id: string): Promise<"Job Started" | "Job Submitted"> {
    const unit = this.#get(id);
    if (unit.status.State !== PENDING) {
      if (unit.status.State === CANCELED) {
        throw new UnitRequestError(`unit ${id} was cancelled before it started`, 409);
      }
      return "Job Started"; // already started (a duplicate submission)
    }
    if (unit.status.WorkType === REMOTE_WORK_TYPE) {
      return this.#remoteOf(unit).firstStart();
    }
    await this.#startCommand(unit);
    return "Job Started";
  }

  // -- queries ------------------------------------------------------------------------

  /** Work units, newest first. */
  list(): UnitSnapshot[] {
    return [...this.#units.values()]
      .filter((u) => !u.released)
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? -1 : 1))
      .map((u) => this.#snapshot(u));
  }

  has(id: string): boolean {
    const unit = this.#units.get(id);
    return unit !== undefined && !unit.released;
  }

  /** A work unit or (when a task source is wired) a task execution. */
  async find(id: string): Promise<UnitSnapshot> {
    const unit = this.#units.get(id);
    if (unit && !unit.released) return this.#snapshot(unit, await this.#liveSize(unit));
    const task = await this.#o.taskUnits?.get(id);
    if (task) return task;
    throw new UnknownUnitError(id);
  }

  /** Whether requests about this unit need a signature from untrusted callers. */
  requiresSignature(id: string): boolean {
    const unit = this.#units.get(id);
    if (!unit) return false;
    if (isRemoteExtraData(unit.status.ExtraData)) return false;
    return this.#o.workTypes.get(unit.status.WorkType)?.verifySignature ?? false;
  }

  /** Refuses an untrusted request about a signed unit without a good signature. */
  checkSignature(id: string, signature: string | undefined, trusted: boolean): void {
    if (trusted || !this.requiresSignature(id)) return;
    verifyWork(signature, this.#o.verificationKey!, this.nodeId);
  }

  /**
   * The unit's output from `offset`; with `follow`, open until the unit is final and
   * every byte is out (receptor's `work results` always follows).
   */
  async results(id: string, options: { offset: number; follow: boolean }): Promise<Readable> {
    const unit = this.#units.get(id);
    if (!unit || unit.released) {
      if (this.#o.taskUnits && (await this.#o.taskUnits.get(id))) {
        return this.#o.taskUnits.output(id, options);
      }
      throw new UnknownUnitError(id);
    }
    return followFile(unit.paths.stdout, {
      offset: options.offset,
      follow: options.follow,
      done: () => unit.released || isFinalState(unit.status.State),
    });
  }

  /** Resolves when the unit is final (or released); for tests and the CLI. */
  async waitFinal(id: string): Promise<UnitSnapshot | undefined> {
    const unit = this.#get(id);
    await unit.settled.promise;
    return unit.released ? undefined : this.#snapshot(unit);
  }

  // -- cancel and release ---------------------------------------------------------------

  /** `work cancel`: stops the unit; "cancel pending" for a remote unit whose peer is down. */
  async cancel(id: string): Promise<"cancelled" | "cancel pending"> {
    const unit = this.#units.get(id);
    if (!unit || unit.released) throw await this.#notFoundOrTask(id, "cancel");
    if (unit.status.WorkType === REMOTE_WORK_TYPE) return this.#remoteOf(unit).cancel();
    await this.#cancelCommand(unit);
    return "cancelled";
  }

  /**
   * `work release` / `work force-release`: cancels, then deletes the unit's files. A
   * remote unit whose peer is unreachable is "release pending" (force: deleted here).
   */
  async release(id: string, force: boolean): Promise<"released" | "release pending"> {
    const unit = this.#units.get(id);
    if (!unit || unit.released) throw await this.#notFoundOrTask(id, "release");
    if (unit.status.WorkType === REMOTE_WORK_TYPE) return this.#remoteOf(unit).release(force);
    await this.#cancelCommand(unit);
    await this.#remove(unit);
    return "released";
  }

  async #notFoundOrTask(id: string, verb: string): Promise<Error> {
    const task = await this.#o.taskUnits?.get(id);
    if (!task) return new UnknownUnitError(id);
    return new UnitRequestError(
      `unit ${id} is a task execution of job request ${task.jobRequestId}; ${verb} it with its job: colony jobs ${verb === "release" ? "cancel" : verb} ${task.jobRequestId}`,
      409,
    );
  }

  // -- command units ------------------------------------------------------------------

  #request(unit: Unit): ExecutionRequest {
    const extra = unit.status.ExtraData as Partial<CommandExtraData> | null;
    const workType = this.#o.workTypes.get(unit.status.WorkType);
    const params = extra?.Params ?? workType?.params ?? "";
    const script = workType ? [execLine(commandArgv(workType, params))] : [];
    return {
      executionId: unit.id,
      method: "SHELL",
      task: taskDefinition(unit.status.WorkType, { script }),
      env: this.#openSecretEnv(extra?.SecretEnv),
      variables: {},
      unitDir: unit.paths.dir,
      stdinPath: unit.paths.stdin,
    };
  }

  /** `mayHaveStarted`: recovering a unit an earlier server may have started (see #recover). */
  async #startCommand(unit: Unit, mayHaveStarted = false): Promise<void> {
    const request = this.#request(unit);
    if (mayHaveStarted) request.mayHaveStarted = true;
    const starting = this.#o.executor.start(request);
    unit.starting = starting.catch(() => undefined);
    let handle: Record<string, unknown> | undefined;
    try {
      handle = await starting;
    } catch (error) {
      // An earlier server started it and stopped before recording that: the executor
      // follows that process (found again by `handle`, when it can say) to its result.
      if (!(error instanceof ExecutionExistsError)) {
        await this.#finish(unit, FAILED, `Error starting worker: ${(error as Error).message}`);
        throw error;
      }
      handle = error.handle;
    } finally {
      unit.starting = undefined;
    }
    if (!handle) {
      this.#awaitCommand(unit);
      return;
    }
    const pid = Number(handle.pid);
    const startTime = typeof handle.startTime === "number" ? handle.startTime : undefined;
    const previous = unit.status.ExtraData as Partial<CommandExtraData> | null;
    if (unit.status.State === PENDING) {
      await this.#update(
        unit,
        {
          state: RUNNING,
          detail: `Running: PID ${pid}`,
          extra: {
            Pid: pid,
            Params: previous?.Params ?? "",
            ...(startTime === undefined ? {} : { StartTime: startTime }),
            ...(previous?.SecretEnv ? { SecretEnv: previous.SecretEnv } : {}),
          },
        },
        true, // the acceptance: on disk before the client hears "Job Started"
      );
    }
    this.#awaitCommand(unit);
  }

  #awaitCommand(unit: Unit): void {
    this.#o.executor.wait(unit.id).then(
      (result) => this.#finishCommand(unit, result),
      (error: unknown) => {
        if (this.#closed) return; // left to the next start, which re-attaches
        return this.#finish(unit, FAILED, `Lost track of the process: ${(error as Error).message}`);
      },
    );
  }

  async #finishCommand(unit: Unit, result: ExecutionResult): Promise<void> {
    if (result.killed || unit.status.State === CANCELED) {
      return this.#finish(unit, CANCELED, "Canceled");
    }
    if (result.exitCode === 0) return this.#finish(unit, SUCCEEDED, "exit status 0");
    if (result.exitCode !== null) {
      return this.#finish(unit, FAILED, `exit status ${result.exitCode}`);
    }
    if (result.errorCode === "COLONY_EXIT_STATUS_LOST") {
      return this.#finish(unit, FAILED, `Failed to restart: ${result.error}`);
    }
    const signal = /SIG[A-Z0-9]+/.exec(result.error ?? "")?.[0];
    return this.#finish(
      unit,
      FAILED,
      signal ? `signal: ${GO_SIGNAL_NAMES[signal] ?? signal}` : (result.error ?? "Failed"),
    );
  }

  async #cancelCommand(unit: Unit): Promise<void> {
    if (isFinalState(unit.status.State)) return;
    if (unit.starting) await unit.starting;
    if (unit.status.State === PENDING && !unit.starting) {
      // Not started (payload still arriving, or waiting): it never will be.
      await this.#finish(unit, CANCELED, "Canceled");
      return;
    }
    await this.#update(unit, { detail: "Canceling" }, false);
    try {
      await this.#o.executor.cancel(unit.id);
    } catch {
      // it ended meanwhile: its result is on the way
    }
    const waitMs = this.#o.cancelWaitMs ?? 12_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      unit.settled.promise,
      new Promise((resolve) => (timer = setTimeout(resolve, waitMs))),
    ]);
    clearTimeout(timer);
  }

  // -- loading and recovery -------------------------------------------------------------

  async #load(id: string): Promise<void> {
    const paths = unitPaths(this.#o.dataDir, id);
    await removeStaleTempFiles(paths.dir);
    let status: UnitStatus;
    try {
      status = (await readStatus(paths.status))!;
    } catch (error) {
      status = {
        State: FAILED,
        Detail: `Failed to restart: the status file cannot be read (${(error as Error).message})`,
        StdoutSize: await fileSize(paths.stdout),
        WorkType: "unknown",
        ExtraData: null,
      };
      writeStatus(paths.status, status);
    }
    const info = await stat(paths.dir);
    const created = info.birthtimeMs > 0 ? info.birthtime : info.mtime;
    const unit = this.#register(id, paths, status, created);
    unit.updatedAt = (await stat(paths.status)).mtime;
    const origin = await readFile(`${paths.dir}/${ORIGIN_FILE}`, "utf8").catch(() => undefined);
    if (origin) {
      unit.origin = origin.trim();
      this.#origins.set(unit.origin, id);
    }
    try {
      await this.#recover(unit);
    } catch (error) {
      this.#log(`unit ${id}: recovery failed: ${(error as Error).message}`);
      if (!isFinalState(unit.status.State)) {
        await this.#finish(unit, FAILED, `Failed to restart: ${(error as Error).message}`);
      }
    }
  }

  async #recover(unit: Unit): Promise<void> {
    const s = unit.status;
    if (s.WorkType === REMOTE_WORK_TYPE) {
      if (!isRemoteExtraData(s.ExtraData)) {
        if (!isFinalState(s.State)) {
          await this.#finish(
            unit,
            FAILED,
            "Failed to restart: the remote unit's ExtraData is unreadable",
          );
        }
        return;
      }
      if (isFinalState(s.State) && !s.ExtraData.LocalReleased) return;
      if (s.State === PENDING && s.Detail === WAITING_FOR_INPUT) {
        await this.#finish(
          unit,
          FAILED,
          "Pending at restart: the payload was not completely received",
        );
        return;
      }
      if (!this.#o.peers.has(s.ExtraData.RemoteNode)) {
        if (!isFinalState(s.State)) {
          await this.#finish(
            unit,
            FAILED,
            `Failed to restart: node ${s.ExtraData.RemoteNode} is no longer among the peers`,
          );
        }
        return;
      }
      this.#remoteOf(unit).resume();
      return;
    }
    if (isFinalState(s.State)) return;
    const workType = this.#o.workTypes.get(s.WorkType);
    const extra = s.ExtraData as Partial<CommandExtraData> | null;
    if (s.State === PENDING) {
      if (s.Detail === WAITING_FOR_INPUT) {
        await this.#finish(
          unit,
          FAILED,
          "Pending at restart: the payload was not completely received",
        );
        return;
      }
      // The payload was complete; it may even have been started just before the stop.
      if (await this.#finishFromExitFile(unit)) return;
      if (!workType) {
        await this.#finish(unit, FAILED, `Failed to restart: unknown work type ${s.WorkType}`);
        return;
      }
      await this.#startCommand(unit, true);
      return;
    }
    // Running: re-attach to the process, which outlived the previous server.
    const pid = extra?.Pid ?? 0;
    if (!pid) {
      if (!(await this.#finishFromExitFile(unit))) {
        await this.#finish(unit, FAILED, "Failed to restart: no process id was recorded");
      }
      return;
    }
    const handle = {
      pid,
      pgid: pid,
      ...(extra?.StartTime === undefined ? {} : { startTime: extra.StartTime }),
      exitPath: unit.paths.exit,
      outPath: unit.paths.stdout,
    };
    const attach = this.#o.executor.attach;
    if (!attach) {
      await this.#finish(unit, FAILED, "Failed to restart: the executor cannot re-attach");
      return;
    }
    const alive = await attach.call(this.#o.executor, this.#request(unit), handle);
    if (alive) {
      this.#awaitCommand(unit);
      return;
    }
    // Gone: its exit file says how it ended, if the spawner could write one.
    if (await this.#finishFromExitFile(unit)) return;
    await this.#finish(
      unit,
      FAILED,
      `Failed to restart: process ${pid} ended while colony was down and its exit status was not recorded`,
    );
  }

  /** Finishes a unit from the spawner's exit file; false when there is none. */
  async #finishFromExitFile(unit: Unit): Promise<boolean> {
    const text = await readFile(unit.paths.exit, "utf8").catch(() => undefined);
    const m = text === undefined ? null : /^(-|\d+) (-|\d+)\s*$/.exec(text);
    if (!m) return false;
    if (m[1] !== "-") {
      const code = Number(m[1]);
      await this.#finish(unit, code === 0 ? SUCCEEDED : FAILED, `exit status ${code}`);
    } else {
      const name = SIGNALS_BY_NUMBER[Number(m[2])];
      await this.#finish(
        unit,
        FAILED,
        `signal: ${GO_SIGNAL_NAMES[name ?? ""] ?? `signal ${m[2]}`}`,
      );
    }
    return true;
  }

  // -- state ------------------------------------------------------------------------------

  #register(id: string, paths: UnitPaths, status: UnitStatus, createdAt: Date): Unit {
    const unit: Unit = {
      id,
      paths,
      status,
      createdAt,
      updatedAt: createdAt,
      released: false,
      settled: Promise.withResolvers<void>(),
    };
    if (isFinalState(status.State)) unit.settled.resolve();
    this.#units.set(id, unit);
    return unit;
  }

  #get(id: string): Unit {
    const unit = this.#units.get(id);
    if (!unit || unit.released) throw new UnknownUnitError(id);
    return unit;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new ColonyError("COLONY_SHUTTING_DOWN", "this node is shutting down; try again", {
        status: 503,
        retryable: true,
      });
    }
  }

  /**
   * Applies a change in memory and writes the status file through (synchronously, so
   * writes land in the order of the changes). Write failures are logged, not thrown,
   * unless `throwOnFailure` (where a client waits for the answer).
   */
  #update(
    unit: Unit,
    change: StatusChange | CommandChange,
    durable: boolean,
    options: { throwOnFailure?: boolean } = {},
  ): Promise<void> {
    if (unit.released) return Promise.resolve();
    const s = unit.status;
    const next: UnitStatus = {
      State: change.state ?? s.State,
      Detail: change.detail ?? s.Detail,
      StdoutSize: change.stdoutSize ?? s.StdoutSize,
      WorkType: s.WorkType,
      ExtraData:
        change.extra === undefined
          ? s.ExtraData
          : change.extra === null
            ? null
            : { ...(s.ExtraData as object | null), ...change.extra },
    };
    if (
      !durable &&
      next.State === s.State &&
      next.Detail === s.Detail &&
      next.StdoutSize === s.StdoutSize &&
      change.extra === undefined
    ) {
      return Promise.resolve();
    }
    unit.status = next;
    unit.updatedAt = new Date();
    if (next.State !== s.State || next.Detail !== s.Detail) this.#notify(unit, "state");
    try {
      writeStatus(unit.paths.status, next);
    } catch (error) {
      // A full or failing disk: said loudly; the in-memory state goes on.
      this.#log(`unit ${unit.id}: cannot write its status: ${(error as Error).message}`);
      if (options.throwOnFailure) throw error;
      return Promise.resolve();
    }
    if (!durable) return Promise.resolve();
    const synced = syncToDisk(unit.paths.status);
    if (options.throwOnFailure) return synced;
    return synced.catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return; // released meanwhile
      this.#log(`unit ${unit.id}: cannot flush its status: ${(error as Error).message}`);
    });
  }

  async #finish(unit: Unit, state: UnitState, detail: string, size?: number): Promise<void> {
    if (isFinalState(unit.status.State)) return;
    const stdoutSize = size ?? (await fileSize(unit.paths.stdout));
    if (isFinalState(unit.status.State)) return; // finished by someone else meanwhile
    const command = unit.status.WorkType !== REMOTE_WORK_TYPE;
    // Written now; flushed to the disk in the background (nobody waits for that).
    void this.#update(
      unit,
      { state, detail, stdoutSize, ...(command ? { extra: null } : {}) },
      true,
    );
    unit.settled.resolve();
    notifyDone(unit.paths.stdout);
  }

  async #remove(unit: Unit): Promise<void> {
    unit.remote?.stop();
    unit.released = true;
    await removeUnitDir(unit.paths.dir);
    this.#units.delete(unit.id);
    if (unit.origin) this.#origins.delete(unit.origin);
    this.#notify(unit, "released");
    unit.settled.resolve();
    notifyDone(unit.paths.stdout);
  }

  #notify(unit: Unit, what: "state" | "released"): void {
    const listener = this.#o.onChange;
    if (!listener) return;
    try {
      listener(this.#snapshot(unit), what);
    } catch (error) {
      this.#log(`unit ${unit.id}: a change listener failed: ${(error as Error).message}`);
    }
  }

  async #liveSize(unit: Unit): Promise<number> {
    if (unit.status.State === RUNNING && unit.status.WorkType !== REMOTE_WORK_TYPE) {
      return fileSize(unit.paths.stdout);
    }
    return unit.status.StdoutSize;
  }

  #snapshot(unit: Unit, stdoutSize = unit.status.StdoutSize): UnitSnapshot {
    const s = unit.status;
    const remote = isRemoteExtraData(s.ExtraData) ? s.ExtraData : undefined;
    return {
      id: unit.id,
      kind: "work",
      state: s.State,
      detail: s.Detail,
      stdoutSize,
      workType: s.WorkType,
      extraData: remote ? redactRemote(remote) : redactCommand(s.ExtraData),
      node: remote ? remote.RemoteNode : this.nodeId,
      createdAt: unit.createdAt,
      updatedAt: unit.updatedAt,
    };
  }

  #remoteOf(unit: Unit): RemoteWork {
    if (unit.remote) return unit.remote;
    const extra = unit.status.ExtraData as RemoteExtraData;
    const peer = this.#o.peers.get(extra.RemoteNode);
    if (!peer) throw new UnitRequestError(`node ${extra.RemoteNode} is not among the peers`);
    const host: RemoteHost = {
      unitId: unit.id,
      nodeId: this.nodeId,
      paths: unit.paths,
      status: () => unit.status,
      extra: () => unit.status.ExtraData as RemoteExtraData,
      update: (change, durable = false) => this.#update(unit, change, durable),
      finish: (state, detail, size) => this.#finish(unit, state, detail, size),
      remove: () => this.#remove(unit),
      params: () => this.#openParams(unit),
      signature: () => {
        const signing = this.#o.signing;
        if (!signing || !(unit.status.ExtraData as RemoteExtraData).SignWork) return undefined;
        return signWork(signing.key, extra.RemoteNode, signing.expirationMs);
      },
      log: this.#log,
    };
    unit.remote = new RemoteWork(host, peer, this.#timing, unit.status.StdoutSize);
    return unit.remote;
  }

  #openSecretEnv(sealed: Record<string, string> | undefined): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(sealed ?? {})) {
      env[k] = String(openValue(v, this.#o.secretKey, `param ${k.toLowerCase()}`));
    }
    return env;
  }

  #openParams(unit: Unit): Record<string, string> {
    const extra = unit.status.ExtraData as RemoteExtraData;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(extra.RemoteParams)) {
      out[k] = isSealed(v) ? String(openValue(v, this.#o.secretKey, `param ${k}`)) : v;
    }
    return out;
  }

  // -- background -----------------------------------------------------------------------

  async #tick(): Promise<void> {
    if (this.#closed) return;
    // StdoutSize of running commands, as receptor's runner keeps it (here: each second).
    for (const unit of this.#units.values()) {
      if (unit.status.State !== RUNNING || unit.status.WorkType === REMOTE_WORK_TYPE) continue;
      const size = await fileSize(unit.paths.stdout);
      if (size !== unit.status.StdoutSize) void this.#update(unit, { stdoutSize: size }, false);
    }
    const retention = this.#o.retentionMs ?? 0;
    if (retention > 0 && Date.now() - this.#lastSweep > Math.min(retention / 10, 600_000)) {
      await this.#sweep();
    }
  }

  /** Releases finished units whose last change is older than the retention. */
  async #sweep(): Promise<void> {
    this.#lastSweep = Date.now();
    const retention = this.#o.retentionMs ?? 0;
    if (retention <= 0 || this.#closed) return;
    const before = Date.now() - retention;
    for (const unit of [...this.#units.values()]) {
      if (unit.released || !isFinalState(unit.status.State)) continue;
      if (unit.updatedAt.getTime() > before) continue;
      try {
        const result = await this.release(unit.id, false);
        this.#log(`unit ${unit.id}: ${result} (finished more than the retention ago)`);
      } catch (error) {
        this.#log(`unit ${unit.id}: retention release failed: ${(error as Error).message}`);
      }
    }
  }
}

interface CommandChange {
  state?: UnitState;
  detail?: string;
  stdoutSize?: number;
  extra?: Partial<CommandExtraData> | null;
}

/** Remote ExtraData as views show it: secret params removed (receptor does the same). */
function redactRemote(extra: RemoteExtraData): RemoteExtraData {
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(extra.RemoteParams)) {
    if (!k.toLowerCase().startsWith("secret_")) params[k] = v;
  }
  return { ...extra, RemoteParams: params };
}

function redactCommand(extra: unknown): unknown {
  if (typeof extra !== "object" || extra === null || !("SecretEnv" in extra)) return extra;
  const { SecretEnv: _secrets, ...rest } = extra as CommandExtraData;
  return rest;
}

function fileSink(fh: Awaited<ReturnType<typeof open>>): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      fh.write(chunk).then(
        () => callback(),
        (error: Error) => callback(error),
      );
    },
  });
}

/** Go's names for signals in ProcessState.String() ("signal: killed"). */
const GO_SIGNAL_NAMES: Record<string, string> = {
  SIGKILL: "killed",
  SIGTERM: "terminated",
  SIGINT: "interrupt",
  SIGHUP: "hangup",
  SIGQUIT: "quit",
  SIGABRT: "aborted",
  SIGSEGV: "segmentation fault",
  SIGPIPE: "broken pipe",
  SIGBUS: "bus error",
  SIGUSR1: "user defined signal 1",
  SIGUSR2: "user defined signal 2",
};

const SIGNALS_BY_NUMBER: Record<number, string> = Object.fromEntries(
  Object.entries(osConstants.signals).map(([name, n]) => [n, name]),
);

export function parseSubmitParams(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ValidationError("params must be an object of strings");
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new ValidationError(`params.${k} must be a string`);
    out[k] = v;
  }
  return out;
}
