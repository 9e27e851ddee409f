/**
 * Launchers start a task's process in its own process group with its output appended
 * to a file, and record how it ended in an exit file (`code signal`, see
 * formatExitFile). Two implementations share one interface:
 *
 * - a spawner launcher talks to a small long-lived co-process over one protocol:
 *   spawner.py (python3, which starts tasks with posix_spawn: no page-table copy, no
 *   interpreter code between fork and exec) or spawner.pl (Perl's fork and exec, for
 *   machines without python3). Either costs colony's event loop one written line,
 *   where Node's own spawn() forks the whole (large) Node process on the loop for 1-4
 *   ms. The spawner keeps recording exit files after colony dies, which is what
 *   re-attach reads.
 * - the Node launcher uses child_process in-process: the fallback when there is
 *   neither (or COLONY_SPAWNER=node). Exit files are written only while colony lives.
 */
import { spawn as spawnChild, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { availableParallelism, constants as osConstants } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ColonyError } from "../../core/errors.ts";
import { hasExited, readProcStat } from "../../core/proc-stat.ts";
import { EXECUTION_EXISTS } from "../../core/executor.ts";

export interface SpawnSpec {
  /** Unique among the launcher's running processes. */
  id: string;
  cwd: string;
  /** Opened O_APPEND|O_CREAT (0600) as both stdout and stderr. */
  outPath: string;
  /** A file fed to stdin; /dev/null when absent. */
  stdinPath?: string;
  /** Receives `code signal` atomically when the process ends. */
  exitPath: string;
  shell: string;
  /** Run as `shell -c script`. */
  script: string;
  /** The complete environment (nothing is inherited). */
  env: Record<string, string>;
  /**
   * The caller will call ack(id) once it has recorded the exit durably: a spawner then
   * writes the exit file only if the ack does not come (colony went away first, or
   * ACK_WAIT passed), which saves a file per task. Without it the file is written at once.
   */
  ack?: boolean;
}

export interface Spawned {
  pid: number;
  startTime?: number;
}

export interface ExitStatus {
  /** Exit code; null when a signal ended the process. */
  code: number | null;
  /** Signal name (SIGKILL...) when a signal ended the process. */
  signal: string | null;
}

export type LauncherKind = "python" | "perl" | "node";

export interface ProcessLauncher {
  readonly kind: LauncherKind;
  /**
   * Resolves once the process runs; its pid is also its process group id. `startTime`
   * is /proc/<pid>/stat field 22 where there is a /proc (Linux).
   */
  spawn(spec: SpawnSpec): Promise<Spawned>;
  /** Sends a signal to the process group of a running process; ignored when it ended. */
  kill(id: string, signal: NodeJS.Signals): void;
  /**
   * Resolves when the process ends. Rejects with COLONY_LAUNCHER_LOST when the launcher
   * can no longer observe it (the spawner died, or the launcher was closed); the
   * process may still be running then.
   */
  onExit(id: string): Promise<ExitStatus>;
  /** The exit of a process spawned with `ack` is recorded: its exit file is not needed. */
  ack?(id: string): void;
  /** Starts a co-process now rather than at the first spawn (it does not hold the event loop). */
  warm?(): void;
  /** Stops observing; running processes keep running (the spawner still records them). */
  close(): Promise<void>;
}

export const LAUNCHER_LOST = "COLONY_LAUNCHER_LOST";

/**
 * How long an ACK may wait for a SPAWN line to go with: far below the spawners' ACK_WAIT
 * (2 s), past which they write the exit file the ACK is there to spare.
 */
const ACK_DELAY_MS = 100;

export class LauncherError extends ColonyError {
  constructor(code: string, message: string) {
    super(code, message, { status: 500, retryable: true });
  }
}

/** spawn() of an id whose exit file already holds an exit: it ran before, under an earlier colony. */
function executionRan(id: string): LauncherError {
  return new LauncherError(EXECUTION_EXISTS, `${id}: its exit file shows it already ran`);
}

// ---- exit files -----------------------------------------------------------------------

const SIGNAL_NUMBERS = osConstants.signals as Record<string, number>;
const SIGNAL_NAMES = new Map(Object.entries(SIGNAL_NUMBERS).map(([name, n]) => [n, name]));

/** `code signal` with `-` for the absent one and the signal as its number: "0 -", "- 9". */
export function formatExitFile(status: ExitStatus): string {
  const sig = status.signal === null ? "-" : String(SIGNAL_NUMBERS[status.signal] ?? status.signal);
  return `${status.code ?? "-"} ${sig}\n`;
}

/** Parses an exit file; undefined when the text is not one. */
export function parseExitFile(text: string): ExitStatus | undefined {
  const m = /^(-|\d+) (-|\d+)\s*$/.exec(text);
  if (!m) return undefined;
  const code = m[1] === "-" ? null : Number(m[1]);
  const signal = m[2] === "-" ? null : (SIGNAL_NAMES.get(Number(m[2])) ?? `SIG${m[2]}`);
  return code === null && signal === null ? undefined : { code, signal };
}

async function writeExitFile(path: string, status: ExitStatus): Promise<void> {
  const tmp = `${path}.tmp.${process.pid}`;
  try {
    await writeFile(tmp, formatExitFile(status), { mode: 0o600 });
    await rename(tmp, path);
  } catch {
    await unlink(tmp).catch(() => undefined);
  }
}

// ---- /proc ------------------------------------------------------------------------------

export { readProcStat, type ProcStat } from "../../core/proc-stat.ts";

/**
 * The live process-group leader whose environment holds `name=value` (Linux; undefined
 * elsewhere, or when there is none): how a restarted colony finds a task an earlier
 * colony process started and died before recording. It reads every process's
 * environment it may, so it is for recovery only, never for a task's ordinary path.
 */
export async function findProcessByEnv(
  name: string,
  value: string,
): Promise<{ pid: number; startTime: number } | undefined> {
  if (process.platform !== "linux") return undefined;
  const entry = Buffer.from(`${name}=${value}\0`);
  let pids: string[];
  try {
    pids = await readdir("/proc");
  } catch {
    return undefined;
  }
  for (const name of pids) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    const stat = await readProcStat(pid);
    if (!stat || stat.pgrp !== pid || hasExited(stat)) continue;
    const env = await readFile(`/proc/${pid}/environ`).catch(() => undefined);
    if (!env) continue;
    const at = env.indexOf(entry);
    if (at === 0 || (at > 0 && env[at - 1] === 0)) return { pid, startTime: stat.startTime };
  }
  return undefined;
}

// ---- shared bookkeeping ---------------------------------------------------------------

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

function deferred<T>(): Deferred<T> {
  const d = Promise.withResolvers<T>();
  d.promise.catch(() => undefined); // a rejection nobody asked for is not an error
  return d;
}

function checkSpec(spec: SpawnSpec): void {
  // One pass, no copies: this runs for every task.
  let nul = [spec.id, spec.cwd, spec.outPath, spec.exitPath, spec.shell, spec.script].some((f) =>
    f.includes("\0"),
  );
  if (spec.stdinPath?.includes("\0")) nul = true;
  let badKey: string | undefined;
  for (const key in spec.env) {
    if (key.includes("\0") || spec.env[key]!.includes("\0")) nul = true;
    if (badKey === undefined && (key === "" || key.includes("="))) badKey = key;
  }
  if (nul) {
    throw new LauncherError(
      "COLONY_INVALID_SPAWN",
      `${spec.id}: NUL bytes cannot be passed to a process`,
    );
  }
  if (badKey !== undefined) {
    throw new LauncherError(
      "COLONY_INVALID_SPAWN",
      `${spec.id}: invalid environment name '${badKey}'`,
    );
  }
}

/** Exit promises by id, kept until both the exit happened and someone asked for it. */
class ExitBook {
  readonly #exits = new Map<string, { d: Deferred<ExitStatus>; asked: boolean; ended: boolean }>();
  #running = 0;

  add(id: string): void {
    this.#exits.set(id, { d: deferred(), asked: false, ended: false });
    this.#running++;
  }

  has(id: string): boolean {
    const e = this.#exits.get(id);
    return e !== undefined && !e.ended;
  }

  /** How many processes have not ended yet. */
  get running(): number {
    return this.#running;
  }

  wait(id: string): Promise<ExitStatus> {
    const e = this.#exits.get(id);
    if (!e) {
      return Promise.reject(
        new LauncherError(LAUNCHER_LOST, `no process '${id}' is known to this launcher`),
      );
    }
    e.asked = true;
    if (e.ended) this.#exits.delete(id);
    return e.d.promise;
  }

  settle(id: string, status: ExitStatus | Error): void {
    const e = this.#exits.get(id);
    if (!e || e.ended) return;
    if (status instanceof Error) e.d.reject(status);
    else e.d.resolve(status);
    e.ended = true;
    this.#running--;
    if (e.asked) this.#exits.delete(id);
  }

  settleAll(error: Error): void {
    for (const id of [...this.#exits.keys()]) this.settle(id, error);
  }

  /** Drops a process that never started. */
  forget(id: string): void {
    const e = this.#exits.get(id);
    if (e && !e.ended) this.#running--;
    this.#exits.delete(id);
  }
}

// ---- spawner launchers (Python, Perl) -------------------------------------------------

/** The co-process of each spawner launcher: its interpreter, the flags it runs with, its script. */
const SPAWNERS = {
  // -I: no PYTHON* variables or user site; -S: no site import (faster start).
  python: { program: "python3", flags: ["-I", "-S"], script: "spawner.py" },
  perl: { program: "perl", flags: [], script: "spawner.pl" },
} as const;
type SpawnerKind = keyof typeof SPAWNERS;

const NEEDS_ENCODING = /[%\t\r\n]/;

function encodeField(value: string): string {
  if (!NEEDS_ENCODING.test(value)) return value;
  return value.replace(
    /[%\t\r\n]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
}

function decodeField(value: string): string {
  return value.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
}

/** Where `program` is on PATH, or undefined. */
export function findProgram(
  program: string,
  path: string | undefined = process.env["PATH"],
): string | undefined {
  for (const dir of (path ?? "/usr/bin:/bin").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface SpawnerLauncher extends ProcessLauncher {
  /** The running spawner's pid (diagnostics and tests). */
  spawnerPid(): number | undefined;
  /** Every spawner's pid, for a pool (createSpawnerPool). */
  spawnerPids?(): Array<number | undefined>;
}
/** A launcher over spawner.py or spawner.pl; `program` defaults to the one on PATH. */
export function createSpawnerLauncher(kind: SpawnerKind, program?: string): SpawnerLauncher {
  const spawner = SPAWNERS[kind];
  const interpreter = program ?? findProgram(spawner.program) ?? spawner.program;
  const args = [...spawner.flags, fileURLToPath(new URL(`./${spawner.script}`, import.meta.url))];
  let child: ChildProcess | undefined;
  let closed = false;
  let stderrTail = "";
  let refd = true;
  const pending = new Map<string, Deferred<Spawned>>();
  const exits = new ExitBook();
  /**
   * ACK lines not written yet: they go with the next SPAWN line, in its write, or after
   * ACK_DELAY_MS. A write of their own woke the spawner once more per task.
   */
  let acks = "";
  let ackTimer: NodeJS.Timeout | undefined;
  const takeAcks = () => {
    const lines = acks;
    acks = "";
    return lines;
  };
  const flushAcks = () => {
    ackTimer = undefined;
    if (acks) child?.stdin!.write(takeAcks());
  };

  // The spawner holds Node's event loop open only while it has work colony waits for.
  function updateRef(): void {
    if (!child) return;
    const busy = pending.size > 0 || exits.running > 0;
    if (busy === refd) return;
    refd = busy;
    for (const h of [child, child.stdout, child.stderr] as { ref(): void; unref(): void }[]) {
      if (busy) h.ref();
      else h.unref();
    }
  }

  function onLine(line: string): void {
    const [op, rawId, a, b] = line.split("\t");
    if (rawId === undefined) return;
    const id = decodeField(rawId);
    if (op === "STARTED") {
      const d = pending.get(id);
      pending.delete(id);
      d?.resolve(b ? { pid: Number(a), startTime: Number(b) } : { pid: Number(a) });
    } else if (op === "ERROR") {
      const d = pending.get(id);
      pending.delete(id);
      exits.forget(id);
      d?.reject(new LauncherError("COLONY_SPAWN_FAILED", `${id}: ${decodeField(a ?? "")}`));
    } else if (op === "EXISTS") {
      const d = pending.get(id);
      pending.delete(id);
      exits.forget(id);
      d?.reject(executionRan(id));
    } else if (op === "EXIT") {
      const code = a === "-" || a === undefined ? null : Number(a);
      const signal =
        b === "-" || b === undefined ? null : (SIGNAL_NAMES.get(Number(b)) ?? `SIG${b}`);
      exits.settle(id, { code, signal });
    }
    updateRef();
  }

  function start(): ChildProcess {
    if (child) return child;
    const proc = spawnChild(interpreter, args, { stdio: ["pipe", "pipe", "pipe"] });
    child = proc;
    stderrTail = "";
    refd = true;
    let buf = "";
    proc.stdout!.setEncoding("utf8");
    proc.stdout!.on("data", (chunk: string) => {
      const lines = (buf + chunk).split("\n");
      buf = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    });
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-2000);
    });
    // EPIPE when the spawner is gone; 'exit' below reports that.
    proc.stdin!.on("error", () => undefined);
    const lost = (why: string) => {
      if (child !== proc) return;
      child = undefined;
      acks = ""; // meant for the spawner that is gone, not for the next one
      const detail = stderrTail.trim() ? `: ${stderrTail.trim()}` : "";
      const error = new LauncherError(
        LAUNCHER_LOST,
        `the colony spawner (${interpreter} ${args.join(" ")}, pid ${proc.pid ?? "?"}) ${why}${detail}; ` +
          "it is restarted on next use",
      );
      for (const d of pending.values()) d.reject(error);
      pending.clear();
      exits.settleAll(error);
    };
    proc.on("error", (err) => lost(`could not run (${err.message})`));
    proc.on("exit", (code, signal) =>
      lost(closed ? "was closed" : `exited unexpectedly (${signal ?? `code ${code}`})`),
    );
    return proc;
  }

  return {
    kind,
    spawnerPid: () => child?.pid,
    warm() {
      if (closed || child) return;
      start();
      updateRef(); // idle: unref'd until work comes
    },
    spawn(spec) {
      if (closed)
        return Promise.reject(
          new LauncherError("COLONY_LAUNCHER_CLOSED", "the launcher is closed"),
        );
      try {
        checkSpec(spec);
      } catch (err) {
        return Promise.reject(err);
      }
      if (pending.has(spec.id) || exits.has(spec.id)) {
        return Promise.reject(
          new LauncherError("COLONY_SPAWN_FAILED", `${spec.id}: a process with this id is running`),
        );
      }
      const proc = start();
      const d = deferred<Spawned>();
      pending.set(spec.id, d);
      exits.add(spec.id);
      let line = spec.ack ? "SPAWNACK" : "SPAWN";
      for (const field of [
        spec.id,
        spec.cwd,
        spec.outPath,
        spec.stdinPath ?? "",
        spec.exitPath,
        spec.shell,
        spec.script,
      ]) {
        line += "\t" + encodeField(field);
      }
      for (const key in spec.env) line += "\t" + encodeField(`${key}=${spec.env[key]}`);
      proc.stdin!.write(takeAcks() + line + "\n");
      updateRef();
      return d.promise;
    },
    kill(id, signal) {
      const n = SIGNAL_NUMBERS[signal];
      if (!child || n === undefined || !exits.has(id)) return;
      child.stdin!.write(`KILL\t${encodeField(id)}\t${n}\n`);
    },
    ack(id) {
      if (!child) return; // a new spawner never saw it; the old one wrote its file at EOF
      acks += `ACK\t${encodeField(id)}\n`;
      if (!ackTimer) {
        ackTimer = setTimeout(flushAcks, ACK_DELAY_MS);
        ackTimer.unref();
      }
    },
    onExit(id) {
      return exits.wait(id);
    },
    async close() {
      if (closed) return;
      closed = true;
      const proc = child;
      const error = new LauncherError(
        LAUNCHER_LOST,
        "the launcher was closed before the process ended",
      );
      for (const d of pending.values()) d.reject(error);
      pending.clear();
      exits.settleAll(error);
      if (!proc) return;
      clearTimeout(ackTimer);
      flushAcks(); // before EOF, which writes unacknowledged exits
      child = undefined;
      // EOF on its stdin: the spawner records its running children, then exits.
      proc.stdin!.end();
      proc.stdout!.destroy();
      proc.stderr!.destroy();
      proc.unref();
    },
  };
}

/**
 * Several spawners of one kind behind one launcher. A spawner starts one process at a
 * time: it makes the unit directory and output file, then waits in posix_spawn (or fork)
 * until the child has exec'd. Where creating a file costs the kernel real time (measured
 * on the development VM's ext4: ~0.5 ms per mkdir or new file, bench/README.md), one
 * spawner is the queue every task starting at once waits in; a second works on the other
 * core meanwhile. Each spawn goes to the spawner with the fewest starts outstanding; kill,
 * ack and onExit follow a process to the spawner that started it.
 */
export function createSpawnerPool(launchers: readonly SpawnerLauncher[]): SpawnerLauncher {
  if (launchers.length === 0) throw new Error("a spawner pool needs at least one spawner");
  const first = launchers[0]!;
  const starting = launchers.map(() => 0);
  /** The spawner of each process colony may still ask about, and whether it will ack. */
  const owners = new Map<string, { launcher: SpawnerLauncher; ack: boolean }>();
  return {
    kind: first.kind,
    spawnerPid: () => first.spawnerPid(),
    spawnerPids: () => launchers.map((l) => l.spawnerPid()),
    warm: () => launchers.forEach((l) => l.warm?.()),
    spawn(spec) {
      if (owners.has(spec.id)) {
        return Promise.reject(
          new LauncherError("COLONY_SPAWN_FAILED", `${spec.id}: a process with this id is running`),
        );
      }
      let i = 0;
      for (let j = 1; j < launchers.length; j++) if (starting[j]! < starting[i]!) i = j;
      const launcher = launchers[i]!;
      starting[i]!++;
      owners.set(spec.id, { launcher, ack: spec.ack === true });
      const started = launcher.spawn(spec);
      started.then(
        () => starting[i]!--,
        () => {
          starting[i]!--;
          owners.delete(spec.id);
        },
      );
      return started;
    },
    kill(id, signal) {
      owners.get(id)?.launcher.kill(id, signal);
    },
    ack(id) {
      const owner = owners.get(id);
      owners.delete(id);
      owner?.launcher.ack?.(id);
    },
    onExit(id) {
      const owner = owners.get(id);
      if (!owner) return first.onExit(id); // unknown: rejects as it would with one spawner
      const exit = owner.launcher.onExit(id);
      // Forgotten once the caller was told of its end, unless an ack is still to come
      // (a spawner that died takes no ack: its process is forgotten then too).
      const forget = () => void (owners.get(id) === owner && owners.delete(id));
      exit.then(owner.ack ? undefined : forget, forget);
      return exit;
    },
    async close() {
      await Promise.all(launchers.map((l) => l.close()));
    },
  };
}

/**
 * How many spawners a launcher runs: COLONY_SPAWNERS, else one per CPU up to 4. A start
 * keeps a spawner busy for 0.2-1.5 ms (more where new files are dear), so a few keep up
 * with hundreds of starts a second; more would only add idle processes. Spawners start
 * on first use: work that never starts two tasks at once only ever starts one.
 */
export function spawnerCount(value: string | undefined = process.env["COLONY_SPAWNERS"]): number {
  if (value === undefined || value === "") return Math.min(availableParallelism(), 4);
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new ColonyError(
      "COLONY_INVALID_CONFIG",
      `COLONY_SPAWNERS must be a whole number from 1 to 64, not '${value}'`,
      { status: 500 },
    );
  }
  return n;
}

// ---- Node launcher ---------------------------------------------------------------------

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

export function createNodeLauncher(): ProcessLauncher {
  const children = new Map<string, ChildProcess>();
  const killed = new Set<string>();
  const exits = new ExitBook();
  let closed = false;

  return {
    kind: "node",
    async spawn(spec) {
      if (closed) throw new LauncherError("COLONY_LAUNCHER_CLOSED", "the launcher is closed");
      checkSpec(spec);
      // Checked here for the same clear messages as the spawner (spawn says only ENOENT).
      if (!(await isDirectory(spec.cwd))) {
        throw new LauncherError(
          "COLONY_SPAWN_FAILED",
          `${spec.id}: working directory ${spec.cwd} does not exist`,
        );
      }
      if (children.has(spec.id)) {
        throw new LauncherError(
          "COLONY_SPAWN_FAILED",
          `${spec.id}: a process with this id is running`,
        );
      }
      if (((await stat(spec.exitPath).catch(() => undefined))?.size ?? 0) > 0) {
        throw executionRan(spec.id);
      }
      await mkdir(dirname(spec.outPath), { recursive: true, mode: 0o700 });
      const out = await open(
        spec.outPath,
        fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT,
        0o600,
      ).catch((err: Error) => {
        throw new LauncherError(
          "COLONY_SPAWN_FAILED",
          `${spec.id}: cannot open output file: ${err.message}`,
        );
      });
      let input: Awaited<ReturnType<typeof open>> | undefined;
      try {
        if (spec.stdinPath) input = await open(spec.stdinPath, "r");
      } catch (err) {
        await out.close();
        throw new LauncherError(
          "COLONY_SPAWN_FAILED",
          `${spec.id}: cannot open stdin file: ${(err as Error).message}`,
        );
      }
      let proc: ChildProcess;
      try {
        proc = spawnChild(spec.shell, ["-c", spec.script], {
          cwd: spec.cwd,
          env: spec.env,
          detached: true, // own process group (and session): kill(-pid) reaches the tree
          stdio: [input?.fd ?? "ignore", out.fd, out.fd],
        });
      } catch (err) {
        await Promise.all([out.close(), input?.close()]);
        throw new LauncherError("COLONY_SPAWN_FAILED", `${spec.id}: ${(err as Error).message}`);
      }
      // Listeners before any await: the process may end (or fail to start) meanwhile.
      const failed = new Promise<Error>((resolve) => proc.once("error", resolve));
      const pid = proc.pid;
      if (pid !== undefined) {
        children.set(spec.id, proc);
        exits.add(spec.id);
        proc.once("exit", (code, signal) => {
          children.delete(spec.id);
          if (killed.delete(spec.id)) {
            try {
              process.kill(-pid, "SIGKILL"); // leftovers of a cancelled task
            } catch {
              // the group is empty
            }
          }
          const status = { code, signal };
          void writeExitFile(spec.exitPath, status).then(() => exits.settle(spec.id, status));
        });
      }
      // The child has its own copies of the descriptors once spawn() returned.
      await Promise.all([out.close(), input?.close()]);
      if (pid === undefined) {
        throw new LauncherError("COLONY_SPAWN_FAILED", `${spec.id}: ${(await failed).message}`);
      }
      const startTime = (await readProcStat(pid))?.startTime;
      if (closed) proc.unref();
      return startTime === undefined ? { pid } : { pid, startTime };
    },
    kill(id, signal) {
      const proc = children.get(id);
      if (!proc?.pid) return;
      killed.add(id);
      try {
        process.kill(-proc.pid, signal);
      } catch {
        // already gone
      }
    },
    onExit(id) {
      return exits.wait(id);
    },
    async close() {
      if (closed) return;
      closed = true;
      // Running children keep running and their exit files are still written while
      // this process lives; they no longer keep it alive.
      for (const proc of children.values()) proc.unref();
      exits.settleAll(
        new LauncherError(LAUNCHER_LOST, "the launcher was closed before the process ended"),
      );
    },
  };
}

const pythonChecked = new Map<string, string | undefined>();

/** What the probe of a python runs: it fails where posix_spawn is missing (before 3.8). */
const PYTHON_PROBE = [
  ...SPAWNERS.python.flags,
  "-c",
  "import os, select, signal, sys; os.POSIX_SPAWN_DUP2; print(sys.executable)",
];

function pythonVerdict(python: string, status: number | null, stdout: string | undefined): void {
  const executable = stdout?.trim() ?? "";
  pythonChecked.set(python, status === 0 ? executable || python : undefined);
}

/**
 * The interpreter behind `python` if it starts and has posix_spawn (3.8 or later), else
 * undefined: checked once per path, ~20 ms. A version manager's shim on PATH (pyenv,
 * asdf) is a script that costs ~100 ms per start; the spawner is then started with the
 * interpreter the shim chose (`sys.executable`), not through the shim a second time.
 * createLauncherAsync runs the same check without blocking the event loop.
 */
function pythonRuns(python: string): string | undefined {
  if (!pythonChecked.has(python)) {
    const r = spawnSync(python, PYTHON_PROBE, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5000,
    });
    pythonVerdict(python, r.status, r.stdout);
  }
  return pythonChecked.get(python);
}

/** pythonRuns' check as a child process the event loop does not wait for. */
function probePython(python: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawnChild(python, PYTHON_PROBE, { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    const done = (status: number | null) => {
      clearTimeout(timer);
      if (!pythonChecked.has(python)) pythonVerdict(python, status, out);
      resolve();
    };
    child.once("error", () => done(null));
    child.once("close", (code) => done(code));
  });
}

/**
 * createLauncher without blocking the event loop: the python check (~20 ms, ~150 ms
 * through a pyenv shim, once per process) runs as a child process first. The shell
 * executor starts its launcher this way, at its first task.
 */
export async function createLauncherAsync(
  options: Parameters<typeof createLauncher>[0] = {},
): Promise<ProcessLauncher> {
  const choice = options.spawner ?? process.env["COLONY_SPAWNER"] ?? "auto";
  if (choice === "auto") {
    const python = findProgram(SPAWNERS.python.program, options.path);
    if (python && !pythonChecked.has(python)) await probePython(python);
  }
  return createLauncher(options);
}

/**
 * The Python spawner when python3 is on PATH, else the Perl one when perl is, else the
 * Node launcher; `spawner` (default from COLONY_SPAWNER: python, perl, node or auto)
 * forces one.
 */
export function createLauncher(
  options: {
    spawner?: string;
    /** Where to look (default $PATH). */
    path?: string;
    /** Spawner processes (default: spawnerCount(), from COLONY_SPAWNERS). */
    spawners?: number;
  } = {},
): ProcessLauncher {
  const choice = options.spawner ?? process.env["COLONY_SPAWNER"] ?? "auto";
  if (choice === "node") return createNodeLauncher();
  if (choice !== "python" && choice !== "perl" && choice !== "auto") {
    throw new ColonyError(
      "COLONY_INVALID_CONFIG",
      `COLONY_SPAWNER must be python, perl, node or auto, not '${choice}'`,
      { status: 500 },
    );
  }
  const spawners = options.spawners ?? spawnerCount();
  const kinds: SpawnerKind[] = choice === "auto" ? ["python", "perl"] : [choice];
  for (const kind of kinds) {
    const program = findProgram(SPAWNERS[kind].program, options.path);
    // auto only takes a python3 that runs (not a stub asking to install developer tools).
    const usable =
      program && choice === "auto" && kind === "python" ? pythonRuns(program) : program;
    if (usable) {
      if (spawners === 1) return createSpawnerLauncher(kind, usable);
      return createSpawnerPool(
        Array.from({ length: spawners }, () => createSpawnerLauncher(kind, usable)),
      );
    }
  }
  if (choice !== "auto") {
    throw new ColonyError(
      "COLONY_INVALID_CONFIG",
      `COLONY_SPAWNER=${choice} but no ${SPAWNERS[choice].program} is on PATH; ` +
        `install ${choice === "perl" ? "perl-base" : "python3"} or unset COLONY_SPAWNER`,
      { status: 500 },
    );
  }
  return createNodeLauncher();
}
