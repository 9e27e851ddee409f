/**
 * Units on disk (SPEC section 7): `{data}/units/{id}/` holds `status` (one JSON line in
 * receptor's shape), `stdin` (the payload) and `stdout` (the output). These files are
 * the source of truth for work units, as in receptor: a restarted server rebuilds
 * everything from them.
 *
 * `status` is replaced atomically (a temp file in the same directory, then rename), so
 * a reader in any process sees the old or the new JSON, never a torn mix, without the
 * lock file receptor needs for its in-place rewrites. Task executions share the
 * directory tree; their directories have no `status` file.
 */
import { closeSync, constants, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { mkdir, open, readdir, readFile, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";

/** receptor's states, by their numbers (the wire and the status file use the numbers). */
export const UNIT_STATE_NAMES = ["Pending", "Running", "Succeeded", "Failed", "Canceled"] as const;
export type UnitStateName = (typeof UNIT_STATE_NAMES)[number];

export const PENDING = 0;
export const RUNNING = 1;
export const SUCCEEDED = 2;
export const FAILED = 3;
export const CANCELED = 4;
export type UnitState = 0 | 1 | 2 | 3 | 4;

/** The status file's JSON, field for field (receptor's StatusFileData). */
export interface UnitStatus {
  State: UnitState;
  Detail: string;
  StdoutSize: number;
  WorkType: string;
  ExtraData: unknown;
}

/** Details with a meaning at restart (receptor writes the same words). */
export const WAITING_FOR_INPUT = "Waiting for Input Data";
export const STARTING_WORKER = "Starting Worker";

export function stateName(state: number): UnitStateName {
  return UNIT_STATE_NAMES[state] ?? "Pending";
}

/** Succeeded, Failed and Canceled units never change again (except by release). */
export function isFinalState(state: number): boolean {
  return state === SUCCEEDED || state === FAILED || state === CANCELED;
}

export interface UnitPaths {
  dir: string;
  status: string;
  stdin: string;
  stdout: string;
  /** Written by the process spawner when the command ends (`code signal`). */
  exit: string;
}

export function unitsRoot(dataDir: string): string {
  return join(dataDir, "units");
}

export function unitPaths(dataDir: string, id: string): UnitPaths {
  const dir = join(unitsRoot(dataDir), id);
  return {
    dir,
    status: join(dir, "status"),
    stdin: join(dir, "stdin"),
    stdout: join(dir, "stdout"),
    exit: join(dir, "exit"),
  };
}

/** The status as its file holds it: one compact JSON line in receptor's field order. */
export function formatStatus(status: UnitStatus): string {
  return (
    JSON.stringify({
      State: status.State,
      Detail: status.Detail,
      StdoutSize: status.StdoutSize,
      WorkType: status.WorkType,
      ExtraData: status.ExtraData ?? null,
    }) + "\n"
  );
}

/** Parses a status file; throws with what is wrong. */
export function parseStatus(text: string): UnitStatus {
  const value = JSON.parse(text) as Record<string, unknown>;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("the status is not a JSON object");
  }
  const state = value.State;
  if (typeof state !== "number" || !Number.isInteger(state) || state < 0 || state > 4) {
    throw new Error(`State must be 0 to 4, not ${JSON.stringify(state)}`);
  }
  if (typeof value.WorkType !== "string") throw new Error("WorkType must be a string");
  return {
    State: state as UnitState,
    Detail: typeof value.Detail === "string" ? value.Detail : "",
    StdoutSize: typeof value.StdoutSize === "number" ? value.StdoutSize : 0,
    WorkType: value.WorkType,
    ExtraData: value.ExtraData ?? null,
  };
}

let sequence = 0;

/**
 * Replaces `path` with `text` atomically: readers see the old or the new content, never
 * a mix (a temp file in the same directory, then rename).
 *
 * Synchronous on purpose: a status is a few hundred bytes in the page cache, and four
 * calls on the loop cost less than four trips through libuv's small thread pool, which
 * units running at once would otherwise queue on (the store's SQLite is synchronous
 * too), and successive writes land in the order they were made. Flushing to the disk
 * (syncToDisk) is the slow part; it runs off the loop.
 */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.${++sequence}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  let written = false;
  try {
    writeSync(fd, text);
    written = true;
  } finally {
    closeSync(fd);
    if (!written) rmSync(tmp, { force: true });
  }
  try {
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}

export function writeStatus(path: string, status: UnitStatus): void {
  writeFileAtomic(path, formatStatus(status));
}

/**
 * Flushes a file's data to the disk (fdatasync, on the thread pool): after it resolves,
 * a power loss cannot take the content back. A later replacement of `path` is flushed
 * instead, which is as good.
 */
export async function syncToDisk(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** The status in `path`; undefined when there is none; throws when it cannot be parsed. */
export async function readStatus(path: string): Promise<UnitStatus | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  return parseStatus(text);
}

/** Bytes in a file so far (0 when it does not exist yet). */
export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/**
 * Creates a new unit directory (0700) under an id from `newId`, retrying on the rare
 * id that is taken (by a unit or a task execution).
 */
export async function allocateUnitDir(
  dataDir: string,
  newId: () => string,
): Promise<{ id: string; paths: UnitPaths }> {
  await mkdir(unitsRoot(dataDir), { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    const id = newId();
    const paths = unitPaths(dataDir, id);
    try {
      await mkdir(paths.dir, { mode: 0o700 });
      return { id, paths };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 20) throw error;
    }
  }
}

/** Ids of the directories under units/ that hold a work unit (a `status` file). */
export async function listUnitIds(dataDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(unitsRoot(dataDir));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const ids: string[] = [];
  await Promise.all(
    names.map(async (name) => {
      const paths = unitPaths(dataDir, name);
      if (
        await stat(paths.status).then(
          (s) => s.isFile(),
          () => false,
        )
      ) {
        ids.push(name);
      }
    }),
  );
  return ids.sort();
}

/** Removes a status temp file a crash left behind (`status.<pid>.<n>.tmp`). */
export async function removeStaleTempFiles(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((n) => /^status\.\d+\.\d+\.tmp$/.test(n))
      .map((n) => unlink(join(dir, n)).catch(() => undefined)),
  );
}

/** Deletes a unit's directory (3 tries, as receptor: a file may be busy for a moment). */
export async function removeUnitDir(dir: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await rm(dir, { recursive: true, force: true });
      return;
    } catch (error) {
      if (attempt >= 3) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
