/**
 * The SHELL executor: runs a task's before_script/script/after_script (shell-script.ts)
 * as one shell process in its own process group, started by a ProcessLauncher (the
 * Perl spawner by default), with stdout and stderr appended to `{unitDir}/stdout` and
 * the way it ended recorded in `{unitDir}/exit`.
 *
 * Because the exit file outlives colony, a restarted colony can attach to an execution
 * it started before: a recorded exit is the result; a live process (same pid and same
 * start time) is followed until its exit file appears. An execution an earlier colony
 * process started but died before recording (a start with `mayHaveStarted`) is followed
 * likewise: its exit file, or its process found by the COLONY_EXECUTION_ID in its
 * environment; it is started only when neither is there.
 */
import { mkdirSync, watch, type FSWatcher } from "node:fs";
import { access, constants, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { ExecutionExistsError, ExecutorError } from "../../core/errors.ts";
import {
  EXECUTION_EXISTS,
  UNKNOWN_EXECUTION,
  abandonNotStarted,
  type ExecutionHandle,
  type ExecutionRequest,
  type ExecutionResult,
  type Executor,
  type LogStreamRequest,
} from "../../core/executor.ts";
import {
  createLauncherAsync,
  findProcessByEnv,
  parseExitFile,
  readProcStat,
  type ExitStatus,
  type ProcessLauncher,
  type Spawned,
} from "./process-launcher.ts";
import { composeShellScript, defaultShell, isBash } from "./shell-script.ts";
import { FinishedRetention, logStreamOf, resultOf } from "../execution-table.ts";

export interface ShellExecutorOptions {
  /**
   * Default: createLauncherAsync() at the first task (the Python spawner, else the Perl
   * one, else Node's child_process).
   */
  launcher?: ProcessLauncher;
  /** SIGTERM, then SIGKILL this long after (default 10 s). */
  killGraceMs?: number;
  /** Default: /bin/bash if present, else /bin/sh. */
  shell?: string;
  /** Working directory of every task (default: this process's). */
  cwd?: string;
  /**
   * Where PATH, HOME, LANG, TERM, TMPDIR, USER and SHELL come from when the request's
   * env does not set them (default: this process's environment). Nothing else is
   * inherited.
   */
  inheritEnv?: Record<string, string | undefined>;
  /** How long a finished execution stays known (logStream, EXECUTION_EXISTS); default 10 min (of those whose result was taken, only the newest 100). */
  retainFinishedMs?: number;
  /**
   * Make the default launcher now, in the background, rather than at the first task (a
   * failure to make it is the first task's error, as without this).
   */
  warm?: boolean;
}

/** What `start` returns and `attach` takes back (stored with the task). */
export interface ShellExecutionHandle extends ExecutionHandle {
  pid: number;
  pgid: number;
  /** /proc/<pid>/stat field 22 (Linux): tells a live process from a reused pid. */
  startTime?: number;
  /**
   * Set only by the work units' recovery and by colony before 2026-11-25: the unit dir's
   * `exit` and `stdout` are where they always are, so `start` no longer repeats them in
   * every task's stored handle; `attach` takes them from the request's unit dir.
   */
  exitPath?: string;
  outPath?: string;
}

const INHERITED_ENV = ["PATH", "HOME", "LANG", "TERM", "TMPDIR", "USER", "SHELL"];
/** Longer scripts go to a file: one exec argument is limited to 128 KiB on Linux. */
const MAX_INLINE_SCRIPT = 64 * 1024;
/** A process found gone with no exit file is given this long for the file to appear. */
const EXIT_FILE_GRACE_MS = 1000;
/**
 * The same for an execution an earlier colony process started, whose process is not
 * found: its spawner writes the exit of a task colony did not acknowledge within 2 s.
 */
const ADOPTED_GRACE_MS = 3000;
/** Set on every process this executor starts: how a restarted colony finds it (adopt). */
export const EXECUTION_ENV = "COLONY_EXECUTION_ID";
const WATCH_INTERVAL_MS = 1000;

interface Execution {
  id: string;
  unitDir: string;
  outPath: string;
  exitPath: string;
  pid: number;
  startTime: number | undefined;
  /** False when followed through its files and pid (attached, or the spawner was lost). */
  viaLauncher: boolean;
  done: PromiseWithResolvers<ExecutionResult>;
  result?: ExecutionResult;
  finishedAt?: number;
  waiters: number;
  delivered: boolean;
  cancelled: boolean;
  killTimer?: NodeJS.Timeout;
  watcher?: FSWatcher;
  watchTimer?: NodeJS.Timeout;
  goneSince?: number;
}

function unknown(id: string): ExecutorError {
  return new ExecutorError(
    UNKNOWN_EXECUTION,
    `no execution '${id}' is running here (unknown, or it finished and its result was already delivered)`,
  );
}

function toResult(status: ExitStatus, killed: boolean): ExecutionResult {
  if (status.code !== null) return { exitCode: status.code, killed };
  return {
    exitCode: null,
    killed,
    error: `the process was killed by ${status.signal ?? "a signal"}`,
  };
}

async function readExitFile(path: string): Promise<ExitStatus | undefined> {
  try {
    return parseExitFile(await readFile(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** Whether `pid` is still the process we started (not a zombie, not a reused pid). */
async function isOurProcess(pid: number, startTime: number | undefined): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false; // ESRCH gone; EPERM another user's process under a reused pid
  }
  if (process.platform !== "linux") return true;
  const s = await readProcStat(pid);
  if (!s || s.state === "Z" || s.state === "X") return false;
  return startTime === undefined || s.startTime === startTime;
}

function quoteShell(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function isHandle(h: ExecutionHandle): h is ShellExecutionHandle {
  return (
    typeof h["pid"] === "number" &&
    Number.isInteger(h["pid"]) &&
    h["pid"] > 0 &&
    (h["exitPath"] === undefined || typeof h["exitPath"] === "string") &&
    (h["outPath"] === undefined || typeof h["outPath"] === "string") &&
    (h["pgid"] === undefined || typeof h["pgid"] === "number") &&
    (h["startTime"] === undefined || typeof h["startTime"] === "number")
  );
}

/**
 * Creates `dir` (0700) and says whether it was new. Synchronous on purpose: measured on
 * Node 24, a plain mkdirSync costs ~70 µs of the event loop, while fs.promises.mkdir
 * costs more main-thread time than that under load (and the recursive form ~4x more);
 * this is on every task's path. Parents are made only when missing.
 */
function ensureDir(dir: string): boolean {
  try {
    mkdirSync(dir, { mode: 0o700 });
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "ENOENT") throw error;
    mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
    return ensureDir(dir);
  }
}

const madeParents = new Set<string>();

function ensureParent(dir: string): void {
  const parent = dirname(dir);
  if (madeParents.has(parent)) return;
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  madeParents.add(parent);
}

export function createShellExecutor(options: ShellExecutorOptions = {}): Executor {
  const ownsLauncher = options.launcher === undefined;
  let launcher: ProcessLauncher | undefined = options.launcher;
  let launching: Promise<ProcessLauncher> | undefined;
  const getLauncher = async () =>
    launcher ?? (await (launching ??= createLauncherAsync().then((made) => (launcher = made))));
  if (options.warm) {
    void getLauncher().then(
      (made) => (closed ? undefined : made.warm?.()),
      () => undefined, // the first task reports it
    );
  }
  const killGraceMs = options.killGraceMs ?? 10_000;
  const shell = options.shell ?? defaultShell();
  const bash = isBash(shell);
  const cwd = options.cwd ?? process.cwd();
  const base = options.inheritEnv ?? process.env;
  const inherited: Record<string, string> = {};
  for (const k of INHERITED_ENV) if (base[k] !== undefined) inherited[k] = base[k];
  const retainMs = options.retainFinishedMs ?? 10 * 60_000;

  const executions = new Map<string, Execution>();
  let closed = false;

  const retention = new FinishedRetention(executions, retainMs);

  function assertOpen(): void {
    if (closed) throw new ExecutorError("COLONY_EXECUTOR_CLOSED", "the shell executor is closed");
  }

  function newExecution(
    id: string,
    unitDir: string,
    paths: { outPath: string; exitPath: string },
    pid: number,
    startTime: number | undefined,
    viaLauncher: boolean,
  ): Execution {
    const done = Promise.withResolvers<ExecutionResult>();
    done.promise.catch(() => undefined);
    return {
      id,
      unitDir,
      ...paths,
      pid,
      startTime,
      viaLauncher,
      done,
      waiters: 0,
      delivered: false,
      cancelled: false,
    };
  }

  function stopWatching(e: Execution): void {
    clearTimeout(e.killTimer);
    clearInterval(e.watchTimer);
    e.watcher?.close();
    e.killTimer = e.watchTimer = e.watcher = undefined;
  }

  function finish(e: Execution, result: ExecutionResult): void {
    if (e.result) return;
    stopWatching(e);
    retention.settle(e, result);
  }

  /**
   * Follows an execution through its exit file and pid (no launcher to tell us); pid 0:
   * no process known, only the exit file may still come.
   */
  function watchProcess(e: Execution, graceMs = EXIT_FILE_GRACE_MS): void {
    e.viaLauncher = false;
    const check = async (fromTimer: boolean) => {
      if (e.result || closed) return;
      const status = await readExitFile(e.exitPath);
      if (e.result || closed) return;
      if (status) return finish(e, toResult(status, e.cancelled));
      if (e.pid > 0 && (await isOurProcess(e.pid, e.startTime))) {
        e.goneSince = undefined;
        return;
      }
      e.goneSince ??= Date.now();
      if (fromTimer && Date.now() - e.goneSince >= graceMs) {
        const what =
          e.pid > 0
            ? `process ${e.pid} ended while colony was not watching it`
            : "an earlier colony process started it, no process of it is running now,";
        finish(e, {
          exitCode: null,
          killed: e.cancelled,
          error:
            `${what} and its exit status was not recorded in ${e.exitPath}; ` +
            `its output is in ${e.outPath}`,
          errorCode: "COLONY_EXIT_STATUS_LOST",
        });
      }
    };
    try {
      e.watcher = watch(e.unitDir, (_event, name) => {
        if (name === null || name === "exit") void check(false);
      }).on("error", () => undefined);
    } catch {
      // the timer alone still notices the exit within a second
    }
    e.watchTimer = setInterval(() => void check(true), WATCH_INTERVAL_MS);
    void check(false);
  }

  async function signal(e: Execution, sig: NodeJS.Signals): Promise<void> {
    if (e.result || (!e.viaLauncher && e.pid <= 0)) return;
    if (e.viaLauncher && launcher) return launcher.kill(e.id, sig);
    // Not our child: make sure the pid is still the process we started.
    if (!(await isOurProcess(e.pid, e.startTime))) return;
    try {
      process.kill(-e.pid, sig);
    } catch {
      // the group is gone
    }
  }

  function terminate(e: Execution): void {
    e.cancelled = true;
    void signal(e, "SIGTERM");
    e.killTimer = setTimeout(() => void signal(e, "SIGKILL"), killGraceMs);
    e.killTimer.unref();
  }

  /** How start() answers for an execution: the handle it returned. */
  const handleOf = (e: Execution): ShellExecutionHandle => ({
    pid: e.pid,
    pgid: e.pid,
    ...(e.startTime === undefined ? {} : { startTime: e.startTime }),
  });

  /**
   * Follows an execution an earlier colony process started instead of starting it twice:
   * its recorded exit, else its process (found by EXECUTION_ENV); else, when `expectExit`
   * (its spawner said it ran), its exit file if that comes within ADOPTED_GRACE_MS.
   * Answers what start() throws (wait() then gives the execution's result), or undefined
   * when there is nothing to follow.
   */
  async function adopt(
    e: Execution,
    expectExit: boolean,
  ): Promise<ExecutionExistsError | undefined> {
    const message =
      `execution '${e.id}' was started by an earlier colony process (its files are in ` +
      `${e.unitDir}); it is followed, not started again`;
    const status = await readExitFile(e.exitPath);
    if (status) {
      finish(e, toResult(status, e.cancelled));
      return new ExecutionExistsError(message);
    }
    const found = await findProcessByEnv(EXECUTION_ENV, e.id);
    if (found) {
      e.pid = found.pid;
      e.startTime = found.startTime;
      watchProcess(e);
      if (e.cancelled) terminate(e);
      return new ExecutionExistsError(message, handleOf(e));
    }
    if (!expectExit) return undefined;
    watchProcess(e, ADOPTED_GRACE_MS);
    return new ExecutionExistsError(message);
  }

  async function start(request: ExecutionRequest): Promise<ShellExecutionHandle> {
    assertOpen();
    const id = request.executionId;
    const known = executions.get(id);
    if (known) {
      throw new ExecutionExistsError(
        `execution '${id}' was already started; start a new attempt under a new execution id`,
        known.pid > 0 && !known.result ? handleOf(known) : undefined,
      );
    }
    const unitDir = request.unitDir;
    // Not join(): the unit dir is a path colony made (unitDir() in task-runner.ts), and
    // the spawner and the output followers take the file by any spelling of its path.
    const outPath = `${unitDir}/stdout`;
    const exitPath = `${unitDir}/exit`;
    // Reserve the id while starting so a concurrent start of it fails too.
    const reserved = newExecution(id, unitDir, { outPath, exitPath }, 0, undefined, true);
    executions.set(id, reserved);
    if (request.mayHaveStarted) {
      const earlier = await adopt(reserved, false);
      if (earlier) throw earlier;
      if (request.adoptOnly) abandonNotStarted(executions, id, reserved.done);
    }
    let spawned: Spawned;
    try {
      // The launcher makes the unit dir (the Perl spawner off this event loop) and
      // refuses an id whose exit file shows an earlier colony process already ran it;
      // only the unit dir's parent is made here, once per parent.
      ensureParent(unitDir);
      let script = composeShellScript(request.task, { bash });
      if (Buffer.byteLength(script) > MAX_INLINE_SCRIPT) {
        ensureDir(unitDir);
        const file = join(unitDir, "script.sh");
        await writeFile(file, script, { mode: 0o600 });
        script = `. ${quoteShell(file)}`;
      }
      spawned = await (
        await getLauncher()
      ).spawn({
        id,
        cwd: request.workDir ?? cwd,
        outPath,
        exitPath,
        ...(request.stdinPath === undefined ? {} : { stdinPath: request.stdinPath }),
        shell,
        script,
        env: { ...inherited, ...request.env, [EXECUTION_ENV]: id },
        ...(request.willRelease ? { ack: true } : {}),
      });
    } catch (caught) {
      if ((caught as { code?: unknown }).code === EXECUTION_EXISTS) {
        throw (await adopt(reserved, true))!; // the exit file the spawner saw, or soon its own
      }
      executions.delete(id);
      reserved.done.reject(caught as Error); // a wait() made while it was starting
      throw caught;
    }
    const { pid } = spawned;
    const e = reserved;
    e.pid = pid;
    e.startTime = spawned.startTime;
    const active = launcher!;
    active.onExit(id).then(
      (status) => finish(e, toResult(status, e.cancelled)),
      () => {
        // The spawner died (or the launcher closed): the process may live on.
        if (!closed && !e.result && launcher === active) watchProcess(e);
      },
    );
    if (e.cancelled) terminate(e); // cancelled while starting
    return handleOf(e);
  }

  function wait(id: string): Promise<ExecutionResult> {
    return resultOf(executions.get(id), () => unknown(id));
  }

  return {
    methods: ["SHELL"],
    adopts: true,

    async isInstalled() {
      try {
        await access(shell, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    },

    start,
    wait,

    release(id) {
      // Only a launcher that still runs this execution's spawner can skip its exit file.
      const e = executions.get(id);
      if (e?.viaLauncher && launcher) launcher.ack?.(id);
    },

    async run(request) {
      await start(request);
      return wait(request.executionId);
    },

    async cancel(id) {
      const e = executions.get(id);
      if (!e || e.result) throw unknown(id);
      if (e.cancelled) return;
      if (e.pid === 0) {
        e.cancelled = true; // still starting: start() signals it once it runs
        return;
      }
      terminate(e);
    },

    async logStream(request: LogStreamRequest): Promise<Readable> {
      const e = executions.get(request.executionId);
      if (!e) throw unknown(request.executionId);
      return logStreamOf(e, request);
    },

    async attach(request, handle) {
      assertOpen();
      const id = request.executionId;
      if (executions.has(id)) {
        throw new ExecutorError(EXECUTION_EXISTS, `execution '${id}' is already known here`);
      }
      if (!isHandle(handle)) {
        throw new ExecutorError(
          "COLONY_INVALID_HANDLE",
          `execution '${id}': the handle is not one the shell executor returned (needs a pid)`,
        );
      }
      const paths = {
        outPath: handle.outPath ?? `${request.unitDir}/stdout`,
        exitPath: handle.exitPath ?? `${request.unitDir}/exit`,
      };
      const e = newExecution(id, request.unitDir, paths, handle.pid, handle.startTime, false);
      const recorded = async () => {
        const status = await readExitFile(paths.exitPath);
        if (!status) return false;
        executions.set(id, e);
        finish(e, toResult(status, false));
        return true;
      };
      if (await recorded()) return false;
      if (!(await isOurProcess(handle.pid, handle.startTime))) {
        await recorded(); // it may have ended (and been recorded) just now
        return false;
      }
      executions.set(id, e);
      watchProcess(e);
      return true;
    },

    async close(closeOptions) {
      if (closed) return;
      const running = [...executions.values()].filter((e) => !e.result && e.pid !== 0);
      if (closeOptions?.killRunning) {
        for (const e of running) if (!e.cancelled) terminate(e);
        const deadline = new Promise((resolve) => setTimeout(resolve, killGraceMs + 2000).unref());
        await Promise.race([Promise.all(running.map((e) => e.done.promise)), deadline]);
      }
      closed = true;
      retention.close();
      for (const e of executions.values()) {
        stopWatching(e);
        if (!e.result) {
          e.done.reject(
            new ExecutorError(
              "COLONY_EXECUTOR_CLOSED",
              `the shell executor was closed while execution '${e.id}' was running; ` +
                "attach to it again with its handle",
            ),
          );
        }
      }
      // A launcher still being made (its python check) is closed once it exists.
      const made = launcher ?? (await launching?.catch(() => undefined));
      if (ownsLauncher) await made?.close();
    },
  };
}
