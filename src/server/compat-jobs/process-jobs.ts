/**
 * The process-jobs service behind /jobs (SPEC section 8, seed 003): each job is one
 * `bash -c <command>` run by the SHELL executor as its own unit ({data}/units/{unitId},
 * output in its `stdout` file), so it gets the executor's process group, exit file and
 * re-attach for free.
 *
 * State lives in the store and moves only by its two guarded transitions
 * (created -> started, started -> stopped). Whoever stops a started job first (the API,
 * the timeout, a server shutdown, the process's own exit) writes the reason; the others
 * find the job already stopped and change nothing. Stopping sends SIGTERM to the
 * process group, then SIGKILL after the grace.
 *
 * A restart loses nothing it can know: a job still running after a crash is re-attached
 * (its timeout still counts from its start), one whose exit was recorded while colony
 * was down gets that exit as its reason, and one that left no trace is stopped with
 * `Service Shutdown`, never left `started` forever.
 */
import { existsSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
  ColonyError,
  IllegalTransitionError,
  NotFoundError,
  ValidationError,
} from "../../core/errors.ts";
import type { ExecutionRequest, ExecutionResult, Executor } from "../../core/executor.ts";
import { newUnitId } from "../../core/ids.ts";
import { taskDefinition, type TaskDefinition } from "../../core/job-definition.ts";
import { followFile, notifyDone } from "../../core/output-follow.ts";
import {
  REASON_API,
  REASON_SERVICE_SHUTDOWN,
  REASON_TIMEOUT,
  finishedReason,
  formatProcessJobId,
  type ProcessJob,
  type ProcessJobStop,
  type ProcessJobTarget,
} from "../../core/process-job.ts";
import { parseExitFile } from "../../executors/shell/process-launcher.ts";
import { defaultShell } from "../../executors/shell/shell-script.ts";
import type { Store } from "../../store/store.ts";

export interface ProcessJobServiceOptions {
  store: Store;
  /** The SHELL executor. */
  executor: Executor;
  dataDir: string;
  nodeId: string;
  defaultTimeoutMs: number;
  /** SIGTERM, then SIGKILL to the process group this long after. */
  stopGraceMs: number;
  /** The shell that runs `-c <command>` (default /bin/bash, else /bin/sh). */
  shell?: string;
  /** `logs` in GET /jobs/{id} holds at most the last this many bytes (default 1 MiB). */
  logsLimitBytes?: number;
  /** The job hook's JOB_* variables for each process, and the end of their key (hook/job-hook.ts). */
  jobHook?: {
    processEnv(unitId: string, unitDir: string, kind: "process"): Record<string, string>;
    release(unitId: string): void;
  };
  warn?: (message: string) => void;
}

/** What GET /jobs/{id} shows. */
export interface ProcessJobView {
  id: string;
  command: string;
  status: ProcessJob["status"];
  logs: string;
  reasonForExit: string;
}

export interface LogsSnapshot {
  text: string;
  /** Bytes before `text` that were left out (the whole output is at /jobs/{id}/logs). */
  omittedBytes: number;
}

/** A job whose process this server runs (or is starting). */
interface Live {
  id: number;
  unitId: string;
  outPath: string;
  /** executor.start was called: cancel now reaches the process. */
  launched: boolean;
  stopRequested: boolean;
  pgid?: number;
  ended: boolean;
  done: PromiseWithResolvers<void>;
  timeout?: NodeJS.Timeout;
  killTimer?: NodeJS.Timeout;
}

const DEFAULT_LOGS_LIMIT = 1024 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Ended jobs stay in memory this long so followers that poll see the end. */
const KEEP_ENDED_MS = 60_000;

/** 422: the job is not in a status the requested change can start from. */
export class WrongTransitionError extends ColonyError {
  constructor(id: string, from: string, to: ProcessJobTarget) {
    const allowed =
      to === "started" ? "only a created job can be started" : "only a started job can be stopped";
    super("COLONY_WRONG_TRANSITION", `job ${id} is ${from}; ${allowed}`, {
      status: 422,
      details: { from, to },
    });
  }
}

function quoteShell(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export class ProcessJobService {
  readonly #o: Required<Omit<ProcessJobServiceOptions, "warn" | "jobHook">> &
    Pick<ProcessJobServiceOptions, "warn" | "jobHook">;
  readonly #live = new Map<number, Live>();
  /** Open log streams and the file each follows (woken at shutdown to see the end). */
  readonly #followers = new Map<Readable, string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #closing = false;

  constructor(options: ProcessJobServiceOptions) {
    this.#o = {
      shell: defaultShell(),
      logsLimitBytes: DEFAULT_LOGS_LIMIT,
      ...options,
    };
  }

  // -- queries ----------------------------------------------------------------------

  async get(id: number): Promise<ProcessJob> {
    const job = await this.#o.store.getProcessJob(id);
    if (!job)
      throw new NotFoundError("process_job", formatProcessJobId(id), "create one with POST /jobs");
    return job;
  }

  async view(job: ProcessJob): Promise<{ view: ProcessJobView; omittedBytes: number }> {
    const logs = await this.logsSnapshot(job);
    return {
      view: {
        id: formatProcessJobId(job.id),
        command: job.command,
        status: job.status,
        logs: logs.text,
        reasonForExit: job.reasonForExit,
      },
      omittedBytes: logs.omittedBytes,
    };
  }

  #outPath(unitId: string): string {
    return join(this.#o.dataDir, "units", unitId, "stdout");
  }

  /** The output so far, at most the last logsLimitBytes bytes (cut at a UTF-8 boundary). */
  async logsSnapshot(job: ProcessJob): Promise<LogsSnapshot> {
    let fh;
    try {
      fh = await open(this.#outPath(job.unitId), "r");
    } catch {
      return { text: "", omittedBytes: 0 }; // not started, or it ran on another node
    }
    try {
      const { size } = await fh.stat();
      const limit = this.#o.logsLimitBytes;
      let from = Math.max(0, size - limit);
      const buf = Buffer.alloc(size - from);
      const { bytesRead } = await fh.read(buf, 0, buf.length, from);
      let bytes = buf.subarray(0, bytesRead);
      if (from > 0) {
        // Do not start in the middle of a character: skip continuation bytes.
        let skip = 0;
        while (skip < bytes.length && skip < 4 && (bytes[skip]! & 0xc0) === 0x80) skip++;
        bytes = bytes.subarray(skip);
        from += skip;
      }
      return { text: bytes.toString("utf8"), omittedBytes: from };
    } finally {
      await fh.close();
    }
  }

  /**
   * The output from byte 0; with `follow`, stays open until the process ends (a job not
   * started yet is waited for). Every follower shares the file's one watch.
   */
  followLogs(job: ProcessJob, follow: boolean): Readable {
    const initiallyCreated = job.status === "created";
    let sawLive = false;
    const done = () => {
      const live = this.#live.get(job.id);
      if (live) {
        sawLive = true;
        return live.ended;
      }
      // A job not started yet is waited for, unless the server is going away.
      return !initiallyCreated || sawLive || this.#closing;
    };
    const path = this.#outPath(job.unitId);
    // Nothing written yet (not started, or it ran on another node): nothing to answer.
    if (!follow && !existsSync(path)) return Readable.from([]);
    const stream = followFile(path, { follow, done });
    this.#followers.set(stream, path);
    stream.once("close", () => this.#followers.delete(stream));
    return stream;
  }

  // -- changes ----------------------------------------------------------------------

  async create(input: {
    command: string;
    timeoutMs?: number;
    createdBy?: string;
  }): Promise<ProcessJob> {
    if (input.command.trim() === "") {
      throw new ValidationError(
        'body.command: is empty; send the command to run, e.g. {"command": "ls -lah"}',
      );
    }
    return this.#o.store.createProcessJob({
      command: input.command,
      timeoutMs: input.timeoutMs ?? this.#o.defaultTimeoutMs,
      unitId: newUnitId(),
      nodeId: this.#o.nodeId,
      ...(input.createdBy === undefined ? {} : { createdBy: input.createdBy }),
    });
  }

  /** PUT /jobs/{id} {"status": ...}. */
  async setStatus(id: number, target: ProcessJobTarget): Promise<ProcessJob> {
    return target === "started" ? this.#start(id) : this.#stopByApi(id);
  }

  #wrongTransition(error: unknown, id: number, to: ProcessJobTarget): unknown {
    if (error instanceof IllegalTransitionError) {
      const from = String(error.details?.from ?? "in another status");
      return new WrongTransitionError(formatProcessJobId(id), from, to);
    }
    return error;
  }

  async #start(id: number): Promise<ProcessJob> {
    if (this.#closing) throw this.#shuttingDown();
    if (this.#live.has(id)) {
      const job = await this.get(id);
      throw new WrongTransitionError(formatProcessJobId(id), job.status, "started");
    }
    // Registered before the store says `started`, so a follower never sees a started
    // job that is not (yet) live here and ends early.
    const live: Live = {
      id,
      unitId: "",
      outPath: "",
      launched: false,
      stopRequested: false,
      ended: false,
      done: Promise.withResolvers<void>(),
    };
    this.#live.set(id, live);
    let job: ProcessJob;
    try {
      job = await this.#o.store.startProcessJob(id, this.#o.nodeId);
    } catch (error) {
      if (this.#live.get(id) === live) this.#live.delete(id);
      throw this.#wrongTransition(error, id, "started");
    }
    live.unitId = job.unitId;
    live.outPath = this.#outPath(job.unitId);
    const request = this.#request(job);
    let handle: Record<string, unknown>;
    try {
      const starting = this.#o.executor.start(request);
      live.launched = true;
      if (live.stopRequested) this.#kill(live);
      handle = await starting;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const stopped = await this.#stop(
        id,
        { reasonForExit: `process finished with error: ${message}` },
        job,
      );
      this.#ended(live);
      return stopped;
    }
    if (typeof handle.pgid === "number") live.pgid = handle.pgid;
    this.#watch(live, job);
    await this.#o.store.setProcessJobHandle(id, handle).catch((error: unknown) => {
      this.#o.warn?.(
        `process job ${formatProcessJobId(id)}: recording its handle failed: ${String(error)}`,
      );
    });
    if (this.#closing) void this.#stopForShutdown(live);
    return job;
  }

  async #stopByApi(id: number): Promise<ProcessJob> {
    const current = await this.get(id);
    if (current.status === "started" && current.nodeId !== this.#o.nodeId) {
      throw new ColonyError(
        "COLONY_WRONG_NODE",
        `job ${formatProcessJobId(id)} runs on node '${current.nodeId}'; send the request to that server`,
        { status: 409 },
      );
    }
    let job: ProcessJob;
    try {
      job = await this.#o.store.stopProcessJob(id, { reasonForExit: REASON_API });
    } catch (error) {
      throw this.#wrongTransition(error, id, "stopped");
    }
    const live = this.#live.get(id);
    if (live && !live.ended) {
      this.#kill(live);
      // Answer once the process is gone, so the answer's logs are complete.
      await Promise.race([live.done.promise, sleep(this.#o.stopGraceMs + 2000)]);
    }
    return job;
  }

  /** started -> stopped unless someone stopped it first; returns the job as stored. */
  async #stop(id: number, stop: ProcessJobStop, fallback?: ProcessJob): Promise<ProcessJob> {
    try {
      return await this.#o.store.stopProcessJob(id, stop);
    } catch (error) {
      if (error instanceof IllegalTransitionError)
        return (await this.#o.store.getProcessJob(id)) ?? fallback!;
      throw error;
    }
  }

  #request(job: ProcessJob): ExecutionRequest {
    const task: TaskDefinition = taskDefinition("process-job", {
      // exec: the job's process is `bash -c <command>` itself, with bash's own exit
      // status and signal handling (no `set -e`, no traps of the task wrapper).
      script: [`exec ${quoteShell(this.#o.shell)} -c ${quoteShell(job.command)}`],
    });
    return {
      executionId: job.unitId,
      method: "SHELL",
      task,
      env: {
        COLONY_PROCESS_JOB_ID: formatProcessJobId(job.id),
        ...this.#o.jobHook?.processEnv(
          job.unitId,
          join(this.#o.dataDir, "units", job.unitId),
          "process",
        ),
      },
      variables: {},
      unitDir: join(this.#o.dataDir, "units", job.unitId),
    };
  }

  /** Follows a running process: its end, and its timeout counted from its start. */
  #watch(live: Live, job: ProcessJob): void {
    const deadline = (job.startedAt?.getTime() ?? Date.now()) + job.timeoutMs;
    // Timers longer than about 24.8 days fire at once in Node: wait in steps.
    const arm = () => {
      const left = deadline - Date.now();
      live.timeout =
        left > MAX_TIMER_MS
          ? setTimeout(arm, MAX_TIMER_MS)
          : setTimeout(() => void this.#onTimeout(live), Math.max(0, left));
      live.timeout.unref();
    };
    arm();
    this.#o.executor.wait(live.unitId).then(
      (result) => this.#onExit(live, result),
      (error: unknown) => {
        // The executor closed under it: the process may live on; a restart re-attaches.
        this.#o.warn?.(
          `process job ${formatProcessJobId(live.id)}: lost track of its process: ${String(error)}`,
        );
        this.#ended(live);
      },
    );
  }

  async #onTimeout(live: Live): Promise<void> {
    if (live.ended) return;
    try {
      await this.#o.store.stopProcessJob(live.id, { reasonForExit: REASON_TIMEOUT });
    } catch (error) {
      // Stopped by someone else first, who also stops the process.
      if (error instanceof IllegalTransitionError) return;
      this.#o.warn?.(
        `process job ${formatProcessJobId(live.id)}: recording its timeout failed: ${String(error)}`,
      );
    }
    this.#kill(live);
  }

  async #onExit(live: Live, result: ExecutionResult): Promise<void> {
    let signal: string | null | undefined;
    if (result.exitCode === null) {
      const exitPath = join(this.#o.dataDir, "units", live.unitId, "exit");
      const text = await readFile(exitPath, "utf8").catch(() => "");
      signal = parseExitFile(text)?.signal;
    }
    const stop: ProcessJobStop = { reasonForExit: finishedReason(result, signal) };
    if (result.exitCode !== null) stop.exitCode = result.exitCode;
    // Recorded before followers are told the end, so a follower's next GET agrees.
    await this.#stop(live.id, stop).catch((error: unknown) => {
      this.#o.warn?.(
        `process job ${formatProcessJobId(live.id)}: recording its end failed: ${String(error)}`,
      );
    });
    this.#ended(live);
  }

  #ended(live: Live): void {
    if (live.ended) return;
    live.ended = true;
    if (live.unitId) this.#o.jobHook?.release(live.unitId);
    clearTimeout(live.timeout);
    clearTimeout(live.killTimer);
    if (live.outPath) notifyDone(live.outPath);
    live.done.resolve();
    const forget = setTimeout(() => {
      this.#timers.delete(forget);
      if (this.#live.get(live.id) === live) this.#live.delete(live.id);
    }, KEEP_ENDED_MS);
    forget.unref();
    this.#timers.add(forget);
  }

  /** SIGTERM now (the executor), SIGKILL to the group after stopGraceMs. */
  #kill(live: Live): void {
    live.stopRequested = true;
    if (!live.launched || live.ended) return; // #start kills it once launched
    this.#o.executor.cancel(live.unitId).catch(() => undefined);
    if (live.killTimer === undefined) {
      live.killTimer = setTimeout(() => {
        if (live.ended || live.pgid === undefined) return;
        try {
          process.kill(-live.pgid, "SIGKILL");
        } catch {
          // the group is gone already
        }
      }, this.#o.stopGraceMs);
      live.killTimer.unref();
    }
  }

  #shuttingDown(): ColonyError {
    return new ColonyError(
      "COLONY_SHUTTING_DOWN",
      "the server is shutting down; start the job again once it is back",
      {
        status: 503,
        retryable: true,
      },
    );
  }

  // -- server lifecycle ---------------------------------------------------------------

  /**
   * After a restart: takes back this node's started jobs. A live process is re-attached;
   * a recorded exit becomes the reason; no trace at all is `Service Shutdown`.
   */
  async recover(): Promise<void> {
    const started = await this.#o.store.listProcessJobs({
      nodeId: this.#o.nodeId,
      status: "started",
    });
    for (const job of started) {
      try {
        await this.#recoverOne(job);
      } catch (error) {
        this.#o.warn?.(
          `process job ${formatProcessJobId(job.id)}: recovery failed: ${String(error)}`,
        );
        await this.#stop(job.id, { reasonForExit: REASON_SERVICE_SHUTDOWN }, job);
      }
    }
  }

  async #recoverOne(job: ProcessJob): Promise<void> {
    const executor = this.#o.executor;
    if (!job.handle || !executor.attach) {
      await this.#stop(job.id, { reasonForExit: REASON_SERVICE_SHUTDOWN }, job);
      return;
    }
    const request = this.#request(job);
    const live: Live = {
      id: job.id,
      unitId: job.unitId,
      outPath: this.#outPath(job.unitId),
      launched: true,
      stopRequested: false,
      ended: false,
      done: Promise.withResolvers<void>(),
      ...(typeof job.handle.pgid === "number" ? { pgid: job.handle.pgid } : {}),
    };
    if (await executor.attach(request, job.handle)) {
      this.#live.set(job.id, live);
      this.#watch(live, job);
      return;
    }
    // Gone: its exit was recorded while colony was down (wait answers it), or not.
    let result: ExecutionResult | undefined;
    try {
      result = await executor.wait(job.unitId);
    } catch {
      result = undefined;
    }
    if (result) await this.#onExit(live, result);
    else await this.#stop(job.id, { reasonForExit: REASON_SERVICE_SHUTDOWN }, job);
  }

  /**
   * Graceful stop: every job this server runs is stopped with `Service Shutdown`
   * (SIGTERM, SIGKILL after the grace) and waited for, so its followers get all of its
   * output and end; followers of jobs never started are ended.
   */
  async shutdown(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const running = [...this.#live.values()].filter((l) => !l.ended);
    await Promise.all(running.map((live) => this.#stopForShutdown(live)));
    await Promise.race([
      Promise.all(running.map((l) => l.done.promise)),
      sleep(this.#o.stopGraceMs + 2000),
    ]);
    // Followers of jobs never started see the end now (the others saw their process end).
    for (const path of new Set(this.#followers.values())) notifyDone(path);
    for (const live of this.#live.values()) {
      clearTimeout(live.timeout);
      clearTimeout(live.killTimer);
    }
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  async #stopForShutdown(live: Live): Promise<void> {
    try {
      await this.#o.store.stopProcessJob(live.id, { reasonForExit: REASON_SERVICE_SHUTDOWN });
    } catch (error) {
      if (!(error instanceof IllegalTransitionError)) {
        this.#o.warn?.(
          `process job ${formatProcessJobId(live.id)}: recording its shutdown failed: ${String(error)}`,
        );
      }
    }
    this.#kill(live);
  }
}
