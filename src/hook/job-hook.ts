/**
 * The job hook (SPEC section 9, seed 004): what a running process may tell colony
 * about itself and the files it may move, authenticated per execution.
 *
 * - Keys: hook-secrets.ts issues one per execution when its environment is built
 *   (job-env.ts says which processes get one) and revokes it when the execution ends.
 * - Reports (`POST {JOB_HOOK}/status`): `status`, `statusDetails` and `errorMessage` are
 *   recorded on the task execution (the API and `colony jobs show` show them), `logs`
 *   lines are appended to its output, `results` are merged into its context (template
 *   values for later tasks). A report of `ERROR` fails the task even when its process
 *   then exits 0 (see verdict()).
 * - Files: uploads and downloads go through the artifact service, scoped to what the
 *   execution may touch: its own JOB_ID and its job request (downloads: also the other
 *   executions of that request).
 */
import { appendFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type {
  ArtifactService,
  DownloadAnswer,
  UploadAnswer,
} from "../artifacts/artifact-service.ts";
import { ColonyError, NotFoundError, ValidationError } from "../core/errors.ts";
import type { ColonyEventBus } from "../core/events.ts";
import { HOOK_STATUSES, hookStatusOf, isHookStatus, type HookStatus } from "../core/hook-report.ts";
import { isUnitId } from "../core/ids.ts";
import { taskByType, type Method } from "../core/job-definition.ts";
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import { isFinal, type State } from "../core/states.ts";
import type { Store } from "../store/store.ts";
import {
  DEFAULT_MAX_CLOCK_SKEW_MS,
  HookAuthError,
  hookJobId,
  verifyHookSignature,
} from "./hook-auth.ts";
import { HookSecrets, type HookHolder } from "./hook-secrets.ts";
import { jobHookEnv } from "./job-env.ts";

/** Methods whose executions are processes (somewhere) that get the JOB_* variables. */
const PROCESS_METHODS: ReadonlySet<Method> = new Set([
  "SHELL",
  "DOCKER",
  "KUBERNETES",
  "WORK",
  "WEBSOCKET",
]);

export interface JobHookOptions {
  store: Store;
  events: ColonyEventBus;
  artifacts: ArtifactService;
  /** JOB_ORCHESTRATOR: the node id. */
  orchestrator: string;
  /** The data dir: a unit's output is `{dataDir}/units/{id}/stdout`. */
  dataDir: string;
  /** Secret (≥ 32 bytes, stable across restarts) every JOB_SECRET_KEY is derived from. */
  keyMaster: Buffer;
  maxClockSkewMs?: number;
  /** Most `logs` lines one report may carry (default 1000, as webda keeps). */
  maxLogLines?: number;
  now?: () => number;
}

/** A report's body (seed 004); other fields (webda's `agent`...) are accepted and ignored. */
export interface HookReportBody {
  status?: unknown;
  errorMessage?: unknown;
  statusDetails?: unknown;
  results?: unknown;
  logs?: unknown;
}

/** What a report answers: the action, never its key, logs or status details. */
export interface HookActionView {
  uuid: string;
  type: HookHolder["kind"];
  status: HookStatus;
  errorMessage?: string;
  results: Record<string, unknown>;
  _lastJobUpdate: number | null;
  job?: {
    jobRequestId: number;
    jobType?: string;
    taskType?: string;
    attempt?: number;
    state: State;
  };
}

/** Reports of processes that are not task executions (/jobs, work units): kept in memory. */
interface ProcessReport {
  status?: HookStatus;
  statusDetails?: unknown;
  errorMessage?: string;
  results: Record<string, unknown>;
  updatedAt?: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class JobHook {
  readonly secrets: HookSecrets;
  readonly artifacts: ArtifactService;
  readonly #o: Required<Omit<JobHookOptions, "artifacts">>;
  #baseUrl: () => string | undefined = () => undefined;
  /** Last reported status (and ERROR message) of task executions this process saw. */
  readonly #verdicts = new Map<string, { status?: HookStatus; errorMessage?: string }>();
  readonly #processes = new Map<string, ProcessReport>();
  /** Running task executions whose output this hook appended `logs` lines to. */
  readonly #appended = new Set<string>();
  readonly #onTask: (e: { executionId: string; state: State }) => void;

  constructor(options: JobHookOptions) {
    this.#o = {
      maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS,
      maxLogLines: 1000,
      now: Date.now,
      ...options,
    };
    this.artifacts = options.artifacts;
    this.secrets = new HookSecrets(options.keyMaster);
    this.#onTask = (e) => {
      if (!isFinal(e.state)) return;
      this.secrets.revoke(e.executionId);
      this.#verdicts.delete(e.executionId);
      this.#appended.delete(e.executionId);
    };
    options.events.on("task:state", this.#onTask);
  }

  /**
   * Where processes reach this server (a URL, or a function read on every use: the
   * server's URL is known only once it listens). No JOB_* variables until it is set.
   */
  useBaseUrl(source: string | (() => string | undefined)): void {
    this.#baseUrl = typeof source === "string" ? () => source : source;
  }

  get baseUrl(): string | undefined {
    return this.#baseUrl()?.replace(/\/+$/, "");
  }

  /** JOB_HOOK: `<base URL>/async`. */
  get hookUrl(): string | undefined {
    const base = this.baseUrl;
    return base === undefined ? undefined : `${base}/async`;
  }

  #unitDir(id: string): string {
    return join(this.#o.dataDir, "units", id);
  }

  // -- environments -----------------------------------------------------------------------

  /** The engine's extraEnv: JOB_* for executions that are processes, once a URL is known. */
  readonly taskEnv = (exec: TaskExecution, job: JobRequest): Record<string, string> => {
    const hookUrl = this.hookUrl;
    if (hookUrl === undefined || !PROCESS_METHODS.has(exec.method)) return {};
    const key = this.secrets.issue(this.#taskHolder(exec, job));
    return jobHookEnv({ jobId: exec.id, key, hookUrl, orchestrator: this.#o.orchestrator });
  };

  /**
   * JOB_* for a process that is not a task execution (a /jobs process, a work unit).
   * Call again when re-attaching after a restart (the key is the same); call release()
   * when it ends.
   */
  processEnv(
    unitId: string,
    unitDir: string,
    kind: "process" | "unit" = "process",
  ): Record<string, string> {
    const hookUrl = this.hookUrl;
    if (hookUrl === undefined) return {};
    const key = this.secrets.issue({ jobId: unitId, kind, unitDir });
    if (!this.#processes.has(unitId)) this.#processes.set(unitId, { results: {} });
    return jobHookEnv({ jobId: unitId, key, hookUrl, orchestrator: this.#o.orchestrator });
  }

  /** The process ended: its key stops working. */
  release(unitId: string): void {
    this.secrets.revoke(unitId);
    this.#processes.delete(unitId);
  }

  // -- authentication ---------------------------------------------------------------------

  /**
   * Who sent the request: 404 for a missing or unknown X-Job-Id (or an execution that
   * ended), 403 for a missing, stale or wrong signature.
   */
  async caller(headers: Record<string, string | string[] | undefined>): Promise<HookHolder> {
    const jobId = hookJobId(headers);
    const holder = this.secrets.get(jobId) ?? (await this.#reload(jobId));
    if (!holder) {
      throw new HookAuthError(
        "COLONY_HOOK_UNKNOWN_JOB",
        `no running job '${jobId.slice(0, 64)}': unknown, or it has ended (its key died with it)`,
        404,
      );
    }
    verifyHookSignature(headers, holder.secret, this.#o.now(), this.#o.maxClockSkewMs);
    return holder;
  }

  /** After a restart: a task execution still running gets back the key it holds. */
  async #reload(jobId: string): Promise<HookHolder | undefined> {
    if (!isUnitId(jobId)) return undefined;
    const exec = await this.#o.store.getTaskExecution(jobId);
    if (!exec || isFinal(exec.state) || !PROCESS_METHODS.has(exec.method)) return undefined;
    const job = await this.#o.store.getJobRequest(exec.jobRequestId);
    return this.secrets.load(this.#taskHolder(exec, job));
  }

  /** The holder of a task execution's key (`job` when known). */
  #taskHolder(
    exec: TaskExecution,
    job: JobRequest | undefined,
  ): Omit<HookHolder, "key" | "secret"> {
    const expires = job && taskByType(job.definition, exec.taskType)?.artifacts?.expiresAfterMs;
    return {
      jobId: exec.id,
      kind: "task",
      unitDir: this.#unitDir(exec.id),
      jobRequestId: exec.jobRequestId,
      ...(job ? { jobType: job.jobType } : {}),
      taskType: exec.taskType,
      attempt: exec.attempt,
      ...(expires === undefined ? {} : { artifactsExpireAfterMs: expires }),
    };
  }

  // -- reports ----------------------------------------------------------------------------

  /** POST {JOB_HOOK}/status (and POST {JOB_HOOK}). */
  async report(caller: HookHolder, body: HookReportBody | undefined): Promise<HookActionView> {
    const b = body ?? {};
    if (b.status !== undefined && b.status !== null && !isHookStatus(b.status)) {
      throw new ValidationError(
        `body.status: '${String(b.status)}' is not one of ${HOOK_STATUSES.join(", ")}`,
      );
    }
    const status = isHookStatus(b.status) ? b.status : undefined;
    if (
      b.errorMessage !== undefined &&
      b.errorMessage !== null &&
      typeof b.errorMessage !== "string"
    ) {
      throw new ValidationError("body.errorMessage: must be a string");
    }
    const errorMessage =
      typeof b.errorMessage === "string" && b.errorMessage !== "" ? b.errorMessage : undefined;
    if (b.results !== undefined && b.results !== null && !isPlainObject(b.results)) {
      throw new ValidationError(
        "body.results: must be an object (its keys become values for later tasks)",
      );
    }
    const results =
      isPlainObject(b.results) && Object.keys(b.results).length > 0 ? b.results : undefined;
    let logs: string[] = [];
    if (b.logs !== undefined && b.logs !== null) {
      if (!Array.isArray(b.logs) || b.logs.some((l) => typeof l !== "string")) {
        throw new ValidationError("body.logs: must be a list of strings");
      }
      logs = b.logs as string[];
      if (logs.length > this.#o.maxLogLines) logs = logs.slice(-this.#o.maxLogLines);
    }
    if (logs.length > 0) {
      const text = logs.map((line) => (line.endsWith("\n") ? line : `${line}\n`)).join("");
      if (caller.kind === "task") this.#appended.add(caller.jobId);
      if (!(caller.kind === "task" && this.#outputSink?.(caller.jobId, Buffer.from(text)))) {
        // A task whose process runs elsewhere (a WEBSOCKET worker) may have no output here yet.
        await mkdir(caller.unitDir, { recursive: true, mode: 0o700 });
        await appendFile(join(caller.unitDir, "stdout"), text, { mode: 0o600 });
      }
    }
    const statusDetails = b.statusDetails ?? undefined;
    if (caller.kind !== "task")
      return this.#reportProcess(caller, { status, errorMessage, statusDetails, results });

    const store = this.#o.store;
    try {
      if (results) await store.mergeTaskContext(caller.jobId, results);
      const exec = await store.asyncActions.recordHookReport(
        caller.jobId,
        { status, errorMessage, statusDetails },
        new Date(this.#o.now()),
      );
      if (status !== undefined)
        this.#verdicts.set(caller.jobId, { status, ...(errorMessage ? { errorMessage } : {}) });
      return this.#taskAction(caller, exec);
    } catch (error) {
      // It ended between the key check and the write: the same answer as after its end.
      if (error instanceof ColonyError && (error.status === 409 || error.status === 404)) {
        this.secrets.revoke(caller.jobId);
        throw new HookAuthError("COLONY_HOOK_UNKNOWN_JOB", `job '${caller.jobId}' has ended`, 404);
      }
      throw error;
    }
  }

  #reportProcess(
    caller: HookHolder,
    r: {
      status?: HookStatus;
      errorMessage?: string;
      statusDetails?: unknown;
      results?: Record<string, unknown>;
    },
  ): HookActionView {
    const report = this.#processes.get(caller.jobId) ?? { results: {} };
    if (r.status) report.status = r.status;
    if (r.errorMessage) report.errorMessage = r.errorMessage;
    if (r.statusDetails !== undefined) report.statusDetails = r.statusDetails;
    if (r.results) Object.assign(report.results, r.results);
    report.updatedAt = this.#o.now();
    this.#processes.set(caller.jobId, report);
    return {
      uuid: caller.jobId,
      type: caller.kind,
      status: report.status ?? "RUNNING",
      ...(report.errorMessage ? { errorMessage: report.errorMessage } : {}),
      results: report.results,
      _lastJobUpdate: report.updatedAt,
    };
  }

  #taskAction(caller: HookHolder, exec: TaskExecution): HookActionView {
    const errorMessage = exec.hook?.errorMessage;
    return {
      uuid: exec.id,
      type: "task",
      status: hookStatusOf(exec.state, exec.hook?.status),
      ...(errorMessage ? { errorMessage } : {}),
      results: exec.context,
      _lastJobUpdate: exec.hook?.updatedAt.getTime() ?? null,
      job: {
        jobRequestId: exec.jobRequestId,
        ...(caller.jobType ? { jobType: caller.jobType } : {}),
        taskType: exec.taskType,
        attempt: exec.attempt,
        state: exec.state,
      },
    };
  }

  /**
   * Whether the process of a task reported ERROR last (its message, or a default): the
   * task then fails even if the process exits 0. `recorded` is the report stored with the
   * execution, for one re-attached after a restart.
   */
  verdict(executionId: string, recorded?: TaskExecution["hook"]): string | undefined {
    const last = this.#verdicts.get(executionId) ?? recorded;
    if (last?.status !== "ERROR") return undefined;
    return last.errorMessage ?? "the process reported ERROR through the job hook";
  }

  #outputSink: ((executionId: string, bytes: Buffer) => boolean) | undefined;

  /**
   * Where `logs` of a task go when its output has another writer: a task on a `colony
   * ant` agent, whose output streams in by byte offsets (AntRegistry.appendLogs). The
   * sink answers false for any other task, whose logs are appended here.
   */
  useOutputSink(sink: (executionId: string, bytes: Buffer) => boolean): void {
    this.#outputSink = sink;
  }

  /** Whether this hook appended `logs` lines to the output of a running task execution. */
  appendedOutput(executionId: string): boolean {
    return this.#appended.has(executionId);
  }

  // -- files ------------------------------------------------------------------------------

  /** The uuids the caller may touch: its own JOB_ID and job request (downloads: its siblings too). */
  async #checkScope(caller: HookHolder, uuid: string, reading: boolean): Promise<void> {
    if (uuid === caller.jobId) return;
    if (caller.jobRequestId !== undefined) {
      if (uuid === String(caller.jobRequestId)) return;
      if (reading && isUnitId(uuid)) {
        const other = await this.#o.store.getTaskExecution(uuid);
        if (other?.jobRequestId === caller.jobRequestId) return;
      }
    }
    throw new ColonyError(
      "COLONY_HOOK_FORBIDDEN",
      `job '${caller.jobId}' may not ${reading ? "read" : "write"} files of '${uuid.slice(0, 64)}'; ` +
        `use its own JOB_ID${caller.jobRequestId !== undefined ? ` or its job request id ${caller.jobRequestId}` : ""}`,
      { status: 403 },
    );
  }

  /** PUT {JOB_HOOK}/upload/{store}/{uuid}/{property}. */
  async upload(
    caller: HookHolder,
    target: { store: string; uuid: string; property: string },
    body: { hash?: unknown; challenge?: unknown; metadata?: unknown } | undefined,
  ): Promise<UploadAnswer> {
    if (typeof body?.hash !== "string" || typeof body.challenge !== "string") {
      throw new ValidationError(
        "body: hash and challenge are required (md5 of the content, md5 of 'WEBDA' + content)",
      );
    }
    await this.#checkScope(caller, target.uuid, false);
    const metadata = isPlainObject(body.metadata) ? body.metadata : {};
    return this.artifacts.announce(
      { ...target, hash: body.hash, challenge: body.challenge, metadata },
      {
        ...(caller.jobRequestId !== undefined ? { jobRequestId: caller.jobRequestId } : {}),
        ...(caller.kind === "task" ? { taskExecutionId: caller.jobId } : {}),
        ...(caller.taskType !== undefined ? { taskType: caller.taskType } : {}),
        ...(caller.artifactsExpireAfterMs !== undefined
          ? { expiresAfterMs: caller.artifactsExpireAfterMs }
          : {}),
      },
      this.baseUrl ?? "",
    );
  }

  /** GET {JOB_HOOK}/download/{store}/{uuid}/{property}/{index}. */
  async download(
    caller: HookHolder,
    target: { store: string; uuid: string; property: string; index: string },
  ): Promise<DownloadAnswer> {
    if (!/^\d{1,9}$/.test(target.index)) {
      throw new NotFoundError(
        "artifact",
        `${target.store}/${target.uuid}/${target.property}/${target.index}`,
      );
    }
    await this.#checkScope(caller, target.uuid, true);
    return this.artifacts.locate(
      target.store,
      target.uuid,
      target.property,
      Number(target.index),
      this.baseUrl ?? "",
    );
  }

  /** The bytes of an announced upload (its URL is the capability). */
  receiveUpload(uploadId: string, body: Readable, contentType?: string) {
    return this.artifacts.receive(uploadId, body, contentType);
  }

  close(): void {
    this.#o.events.off("task:state", this.#onTask);
  }
}
