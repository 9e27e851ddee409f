/**
 * Runs one task execution through its executor: renders the task, builds its
 * environment, starts (or re-attaches after a restart), enforces the timeout, waits,
 * collects `::set-output` values and records the result — each step one store call.
 */
import { createReadStream, statSync } from "node:fs";
import { join } from "node:path";
import { FULL_DISK_BYTES, freeBytesLately } from "../core/disk.ts";
import { ColonyError, ExecutionExistsError, StoreError } from "../core/errors.ts";
import { isUnitId } from "../core/ids.ts";
import { unitsRoot } from "../units/unit-files.ts";
import type { ColonyEventBus } from "../core/events.ts";
import {
  completedResult,
  EXECUTION_EXISTS,
  NOT_STARTED,
  type ExecutionRequest,
  type ExecutionResult,
  type Executor,
  type ExecutorRegistry,
  type TaskDispatcher,
} from "../core/executor.ts";

/** The code of an executor's wait() rejected by close() (see shell-executor.ts). */
export const EXECUTOR_CLOSED = "COLONY_EXECUTOR_CLOSED";
/** A task that did not start because its job went back to the store (see HandOff). */
export const HANDED_BACK = "COLONY_HANDED_BACK";
import {
  taskByType,
  type JobDefinition,
  type TaskDefinition,
  type Variable,
} from "../core/job-definition.ts";
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import { SetOutputScanner } from "../core/outputs.ts";
import { renderTask, renderTemplate } from "../core/template.ts";
import type { Store, TaskFinish } from "../store/store.ts";
import type { BoundedSet } from "../core/bounded-set.ts";
import type { Semaphore } from "../core/semaphore.ts";

export interface TaskRunnerContext {
  store: Store;
  executors: ExecutorRegistry;
  /** Picks each task's executor: the built-in ant or a remote one (src/ants). Default: executors.get(method). */
  dispatch?: TaskDispatcher;
  events: ColonyEventBus;
  dataDir: string;
  /** The data dir's id, recorded on every execution this engine creates. */
  serverId?: string | undefined;
  slots: Semaphore;
  /** Adds per-execution environment (e.g. the job hook's JOB_* variables). */
  extraEnv?: (exec: TaskExecution, job: JobRequest) => Record<string, string>;
  /** Work around each execution: artifacts, the job hook's verdict (runtime/async-runtime.ts). */
  around?: TaskLifecycle;
  /** Results of executions the store failed to record, by execution id (the engine's). */
  unrecorded?: Map<string, ExecutionResult>;
  /**
   * READY executions this engine created and handed back to the store (HandOff) without
   * starting them: taken up again, they are known not to run anywhere (not inherited).
   */
  handedBackUnstarted?: BoundedSet<string>;
}

export type StopReason = "cancel" | "timeout";

/**
 * Steps that run with every execution and may be async; each returns undefined when it
 * has nothing to do, so tasks without artifacts or a hook pay nothing.
 */
export interface TaskLifecycle {
  /** Before the executor starts (or re-attaches): may set request.workDir, fetch dependencies. */
  beforeStart?(
    request: ExecutionRequest,
    execution: TaskExecution,
    job: JobRequest,
  ): Promise<void> | undefined;
  /** Once the result is classified, before it is recorded: may change `finish`. */
  beforeFinish?(
    request: ExecutionRequest,
    execution: TaskExecution,
    job: JobRequest,
    finish: TaskFinish,
  ): Promise<void> | undefined;
  /** Whether something besides the executor (the job hook's `logs`) appended to the output. */
  appendedOutput?(executionId: string): boolean;
}

export interface RunningTask {
  readonly execution: TaskExecution;
  stop(reason: StopReason): void;
  /**
   * When the task waits for an ant that nothing here serves: stops that wait and asks
   * HandOff again (the job may leave now that its other tasks ended). Else a no-op.
   */
  reconsider(): void;
  readonly done: Promise<TaskExecution>;
}

/** `{dataDir}/units` by data dir, joined once: path.join on every task cost ~0.5 KB and a µs. */
const unitsRoots = new Map<string, string>();

export function unitDir(dataDir: string, executionId: string): string {
  let root = unitsRoots.get(dataDir);
  if (root === undefined) {
    root = unitsRoot(dataDir);
    unitsRoots.set(dataDir, root);
  }
  // An execution id is a unit id (letters and digits): nothing for join() to normalize.
  return isUnitId(executionId) ? `${root}/${executionId}` : join(root, executionId);
}

function stringify(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/**
 * Template values, lowest precedence first: job variables, task variables, outputs, params.
 * A task variable's string value is itself a template, rendered against the job variables,
 * outputs and params (not against other task variables), so `body: '{{.Name}}'` sends the
 * request's `Name` to an HTTP task.
 */
export function templateValues(
  definition: JobDefinition,
  task: TaskDefinition,
  outputs: Record<string, unknown>,
  params: Record<string, unknown>,
): Record<string, unknown> {
  const base: Record<string, unknown> = {};
  for (const v of Object.values(definition.variables)) base[v.name] = v.value;
  Object.assign(base, outputs, params);
  const values: Record<string, unknown> = {};
  for (const v of Object.values(definition.variables)) values[v.name] = v.value;
  for (const v of Object.values(task.variables)) {
    values[v.name] =
      typeof v.value === "string" ? renderTemplate(v.value, base, `variables.${v.name}`) : v.value;
  }
  Object.assign(values, outputs, params);
  return values;
}

function requestVariables(
  definition: JobDefinition,
  task: TaskDefinition,
  values: Record<string, unknown>,
): Record<string, Variable> {
  const out: Record<string, Variable> = {};
  const secret = new Set(
    [...Object.values(definition.variables), ...Object.values(task.variables)]
      .filter((v) => v.secret)
      .map((v) => v.name),
  );
  for (const [name, value] of Object.entries(values))
    out[name] = { name, value, secret: secret.has(name) };
  return out;
}

/** Decides the recorded state of an execution from its executor result. */
export function classifyResult(
  task: TaskDefinition,
  result: ExecutionResult,
  stopped: StopReason | undefined,
): TaskFinish {
  const exitCode = result.exitCode ?? undefined;
  if (stopped === "timeout") {
    return {
      state: "FAILED",
      exitCode,
      errorCode: "COLONY_TASK_TIMEOUT",
      errorMessage: `timed out after ${task.timeoutMs}ms`,
    };
  }
  if (stopped === "cancel") return { state: "CANCELLED", exitCode, errorMessage: "cancelled" };
  const route = exitCode === undefined ? undefined : task.onExitCode[String(exitCode)];
  if (route === "COMPLETED" || route === "EXECUTING") return { state: "COMPLETED", exitCode };
  if (route === "FAILED") {
    return {
      state: "FAILED",
      exitCode,
      errorCode: "COLONY_EXIT_CODE_FAILED",
      errorMessage: `exit code ${exitCode} is mapped to FAILED`,
    };
  }
  if (completedResult(result)) return { state: "COMPLETED", exitCode };
  if (result.status === "EXECUTING") return { state: "COMPLETED", exitCode };
  return {
    state: "FAILED",
    exitCode,
    errorCode: result.errorCode ?? (result.error ? "COLONY_TASK_ERROR" : "COLONY_TASK_EXIT_CODE"),
    errorMessage:
      result.error ??
      (result.killed
        ? "killed"
        : exitCode === undefined
          ? "ended without an exit code"
          : `exited with code ${exitCode}`),
  };
}

/**
 * Why a task's output may be cut short: the disk holding it was full as the task ended
 * (a process writes its output straight to the file, so its "No space left on device"
 * went there too, and was lost). Undefined when there was room, or no way to tell.
 */
export function fullDiskNote(dir: string): string | undefined {
  const free = freeBytesLately(dir);
  if (free === undefined || free >= FULL_DISK_BYTES) return undefined;
  return (
    `the disk of ${dir} was full when the task ended (${free} bytes free): ` +
    `its output may be cut short; free some space and run it again`
  );
}

async function scanOutputs(path: string): Promise<Record<string, string>> {
  // statSync without throwing: ~4 µs, where fs.promises.stat costs more main-thread
  // time and, for executions that wrote no output file (FUNCTION), builds an error
  // with its stack trace on every task.
  const size = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
  if (size === 0) return {};
  const scanner = new SetOutputScanner();
  for await (const chunk of createReadStream(path)) scanner.push(chunk as Buffer);
  return scanner.result();
}

/** Records an execution's final state (default: the store's finishTask). */
export type RecordFinish = (execution: TaskExecution, finish: TaskFinish) => Promise<TaskExecution>;

/**
 * Asked before a READY task looks for an executor, with the task rendered: whether its
 * job goes back to the store instead of the task waiting here for an ant (the job
 * runner's decision, job-runner.ts). Undefined when it does not; a promise of whether
 * the store took it back. When it did, the task stays READY, unstarted, and its runner
 * ends with HANDED_BACK: the engine that claims the job next starts it.
 */
export type HandOff = (
  task: TaskDefinition,
  execution: TaskExecution,
) => Promise<boolean> | undefined;

/** Whether a task's work runs inside the colony process (nothing to re-attach to after a stop). */
function runsInColony(task: TaskDefinition): boolean {
  return task.method === "FUNCTION" || task.method.startsWith("HTTP_");
}

/**
 * Runs one execution to its recorded end. `inherited`: it was recorded before its job
 * runner started (an earlier process's), so a READY one may have been started already
 * (ExecutionRequest.mayHaveStarted).
 */
export function startTask(
  ctx: TaskRunnerContext,
  job: JobRequest,
  execution: TaskExecution,
  outputs: Record<string, unknown>,
  record: RecordFinish = (e, f) => ctx.store.finishTask(e.id, f),
  handOff?: HandOff,
  inherited = false,
): RunningTask {
  // Handed back by this engine before anything started it: nothing to look for.
  if (inherited && ctx.handedBackUnstarted?.delete(execution.id)) inherited = false;
  let stopped: StopReason | undefined;
  const stopSignal = new AbortController(); // ends a wait for an ant
  let started = false;
  /** Waiting for an ant (executorFor's promise), and whether reconsider() ended that wait. */
  let waiting = false;
  let reconsidering = false;
  let cancelStarted: (() => void) | undefined;
  /**
   * Stopped before it started here, though an earlier process recorded it READY and may
   * have started it: the executor only looks for that work (ExecutionRequest.adoptOnly),
   * to stop what it finds; nothing new starts.
   */
  const adopting = () => stopped !== undefined && inherited && execution.state === "READY";
  const definition = job.definition;
  const taskDef = taskByType(definition, execution.taskType);
  const emit = (exec: TaskExecution, error?: string) =>
    ctx.events.emit("task:state", {
      jobRequestId: exec.jobRequestId,
      taskType: exec.taskType,
      executionId: exec.id,
      state: exec.state,
      attempt: exec.attempt,
      method: exec.method,
      exitCode: exec.exitCode,
      error,
    });
  const finish = async (f: TaskFinish): Promise<TaskExecution> => {
    const done = await record(execution, f);
    emit(done, f.errorMessage);
    return done;
  };

  /** Records an executor result: its state, exit code and `::set-output` values. */
  const complete = async (
    task: TaskDefinition,
    request: ExecutionRequest,
    result: ExecutionResult,
  ): Promise<TaskExecution> => {
    const f = classifyResult(task, result, stopped);
    // An output file nobody wrote to has no ::set-output lines: no look for it (a stat
    // that cost ~9 µs of a FUNCTION job's ~140 µs).
    const unwritten = result.wroteOutput === false && !ctx.around?.appendedOutput?.(execution.id);
    const found = unwritten ? {} : await scanOutputs(`${request.unitDir}/stdout`);
    const context = { ...found, ...(result.context ?? {}) };
    if (Object.keys(context).length > 0) f.context = context;
    if (!unwritten) {
      const full = fullDiskNote(request.unitDir);
      if (full) f.errorMessage = f.errorMessage ? `${f.errorMessage}; ${full}` : full;
    }
    const after = ctx.around?.beforeFinish?.(request, execution, job, f);
    if (after) await after;
    return finish(f);
  };

  /** Records the result (durably, see finish), then lets the executor forget it. */
  const recordAndRelease = async (
    executor: Executor,
    task: TaskDefinition,
    request: ExecutionRequest,
    result: ExecutionResult,
  ): Promise<TaskExecution> => {
    let done: TaskExecution;
    try {
      done = await complete(task, request, result);
    } catch (error) {
      // Not recorded (the store failed): kept for when the engine drives the job again,
      // since the executor delivers a result once.
      ctx.unrecorded?.set(execution.id, result);
      throw error;
    }
    ctx.unrecorded?.delete(execution.id);
    executor.release?.(execution.id);
    return done;
  };

  const run = async (): Promise<TaskExecution> => {
    if (!taskDef) {
      return finish({
        state: "FAILED",
        errorCode: "COLONY_UNKNOWN_TASK",
        errorMessage: `the definition has no task ${execution.taskType}`,
      });
    }
    await ctx.slots.acquire();
    // The slot limits work running at once: it is given back as soon as the execution
    // ends, not after its result is recorded, so bookkeeping never idles a slot.
    let holding = true;
    const releaseSlot = () => {
      if (!holding) return;
      holding = false;
      ctx.dispatch?.finished?.(execution.id);
      ctx.slots.release();
    };
    try {
      // (One an earlier process started is re-attached below and then stopped: its
      // process may still run, and must not be left running unwatched. So may one it
      // recorded READY: see adopting.)
      if (stopped && execution.state === "READY" && !inherited)
        return await finish({ state: "CANCELLED", errorMessage: `${stopped} before start` });
      const values = templateValues(definition, taskDef, outputs, job.params);
      let task: TaskDefinition;
      try {
        task = renderTask(taskDef, values);
      } catch (error) {
        const e =
          error instanceof ColonyError ? error : new ColonyError("COLONY_TEMPLATE", String(error));
        return await finish({ state: "FAILED", errorCode: e.code, errorMessage: e.message });
      }
      let executor: Executor | undefined;
      for (;;) {
        if (adopting()) {
          // Where it may run: an agent that says it holds it (after a wait for agents to
          // come back), else this process's executor, which looks for it.
          const holder = await ctx.dispatch?.holderFor?.(execution);
          executor = holder ?? ctx.executors.get(task.method);
          break;
        }
        if (handOff && execution.state === "READY") {
          const leaving = handOff(task, execution);
          if (leaving && (await leaving)) {
            if (!inherited) ctx.handedBackUnstarted?.add(execution.id);
            throw new ColonyError(HANDED_BACK, `job ${job.id} went back to the store`);
          }
        }
        const found = ctx.dispatch
          ? ctx.dispatch.executorFor(
              task,
              execution,
              stopSignal.signal,
              inherited && execution.state === "READY",
            )
          : ctx.executors.get(task.method);
        if (!(found instanceof Promise)) {
          executor = found;
          break;
        }
        // No ant has room: the slot is for work that runs, so it is given back while the
        // task waits (a task waiting for an ant that never comes must not keep the
        // server's own tasks from running), and taken again once an ant took the task.
        releaseSlot();
        waiting = true;
        executor = await found;
        waiting = false;
        if (!executor && reconsidering && !stopped) {
          reconsidering = false; // released by reconsider(): ask HandOff again
          continue;
        }
        if (executor) {
          await ctx.slots.acquire();
          holding = true;
        }
        break;
      }
      if (stopped && execution.state === "READY" && !(adopting() && executor?.adopts))
        return await finish({ state: "CANCELLED", errorMessage: `${stopped} before start` });
      if (!executor) {
        return await finish({
          state: "FAILED",
          errorCode: "COLONY_NO_EXECUTOR",
          errorMessage: `no executor for method ${task.method} is available here (available: ${ctx.executors.methods().join(", ")})`,
        });
      }
      const env: Record<string, string> = {};
      for (const [name, value] of Object.entries(values)) {
        if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) env[name] = stringify(value);
      }
      Object.assign(env, task.environment, {
        COLONY_JOB_REQUEST_ID: String(job.id),
        COLONY_JOB_TYPE: job.jobType,
        COLONY_TASK_TYPE: task.taskType,
        COLONY_TASK_EXECUTION_ID: execution.id,
        COLONY_TASK_ATTEMPT: String(execution.attempt),
      });
      if (ctx.extraEnv) Object.assign(env, ctx.extraEnv(execution, job));
      const request: ExecutionRequest = {
        executionId: execution.id,
        method: task.method,
        task,
        env,
        variables: requestVariables(definition, taskDef, values),
        unitDir: unitDir(ctx.dataDir, execution.id),
        jobRequestId: job.id,
        jobType: job.jobType,
        jobAttempt: execution.jobAttempt,
        attempt: execution.attempt,
        ...(executor.release ? { willRelease: true } : {}),
        // Recorded READY by an earlier process, which may have started it before it died.
        ...(inherited && execution.state === "READY" ? { mayHaveStarted: true } : {}),
        ...(adopting() ? { adoptOnly: true } : {}),
        ...(executor.movesArtifacts ? { movesArtifacts: true } : {}),
      };
      const before = ctx.around?.beforeStart?.(request, execution, job);
      if (before) await before;

      // This engine drives the job again after the store failed to record how the
      // execution ended: that result, kept, is what happened.
      const kept = ctx.unrecorded?.get(execution.id);
      if (kept) {
        started = true;
        releaseSlot();
        return await recordAndRelease(executor, task, request, kept);
      }
      let startedAt = Date.now();
      if (execution.state === "READY") {
        // The executor may run it already: this engine started it and the store failed
        // to record that (the engine drives the job again), or an earlier colony process
        // started it and died before recording it. It goes on as started, with the
        // handle the executor found it by, if any.
        let handle: Record<string, unknown> | undefined;
        try {
          handle = await executor.start(request);
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (code === NOT_STARTED && request.adoptOnly) {
            releaseSlot();
            return await finish({ state: "CANCELLED", errorMessage: `${stopped} before start` });
          }
          if (code !== EXECUTION_EXISTS) throw error;
          if (error instanceof ExecutionExistsError) handle = error.handle;
        }
        started = true;
        emit(await ctx.store.markTaskExecuting(execution.id, handle ? { handle } : undefined));
      } else {
        // Re-attach after a restart: the executor recorded how to find the work. The
        // executor may know it already (this engine drives the job again after a store
        // failure stopped it while the execution ran): wait() follows it as before.
        const attached =
          execution.handle && executor.attach
            ? await executor.attach(request, execution.handle).catch((error: unknown) => {
                if ((error as { code?: unknown }).code === EXECUTION_EXISTS) return true;
                throw error;
              })
            : false;
        if (!attached) {
          // Gone: it may have ended while colony was away with its exit recorded, and
          // then wait() answers with that result (the executor contract of attach).
          const recorded = execution.handle
            ? await executor.wait(execution.id).catch(() => undefined)
            : undefined;
          if (recorded) return await recordAndRelease(executor, task, request, recorded);
          return await finish({
            state: "FAILED",
            errorCode: "COLONY_TASK_LOST",
            errorMessage: runsInColony(task)
              ? `it ran inside the colony process that stopped before it ended (a ${task.method} task does not outlive that process); set retry on the task to run it again after such a stop`
              : "its process ended while colony was not running and left no exit status",
          });
        }
        started = true;
        if (execution.state === "STARTED") emit(await ctx.store.markTaskExecuting(execution.id));
        startedAt = execution.startedAt?.getTime() ?? startedAt;
      }
      cancelStarted = () => void executor.cancel(execution.id).catch(() => undefined);
      if (stopped) cancelStarted();
      let timer: NodeJS.Timeout | undefined;
      if (task.timeoutMs !== undefined && task.timeoutMs > 0) {
        const left = Math.max(0, startedAt + task.timeoutMs - Date.now());
        timer = setTimeout(() => handle.stop("timeout"), left);
      }
      let result: ExecutionResult;
      try {
        result = await executor.wait(execution.id);
      } finally {
        if (timer) clearTimeout(timer);
        releaseSlot();
      }
      return await recordAndRelease(executor, task, request, result);
    } catch (error) {
      const e = error instanceof ColonyError ? error : undefined;
      // The engine is stopping and closed the executor under a running task: the task
      // goes on without us. Leave it unfinished so the next start re-attaches to it.
      // Likewise a task whose job went back to the store: the next claim starts it.
      // A store failure is not the task's: the job runner stops, and the engine drives
      // the job again once the store answers (the task may well be running).
      if (e?.code === EXECUTOR_CLOSED || e?.code === HANDED_BACK || error instanceof StoreError) {
        throw error;
      }
      return await finish({
        state: "FAILED",
        errorCode: e?.code ?? "COLONY_EXECUTOR_FAILURE",
        errorMessage: error instanceof Error ? error.message : String(error),
      });
    } finally {
      releaseSlot();
    }
  };

  const handle: RunningTask = {
    execution,
    stop(reason) {
      if (stopped) return;
      stopped = reason;
      stopSignal.abort();
      if (started && cancelStarted) cancelStarted();
    },
    reconsider() {
      if (!waiting || stopped || !handOff) return;
      reconsidering = ctx.dispatch?.release?.(execution.id) ?? false;
    },
    done: run(),
  };
  return handle;
}
