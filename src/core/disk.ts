/**
 * How much room a disk has left, for errors that should say "the disk is full" when
 * that is why something failed (a task's output cut short, a store that cannot grow).
 */
import { randomBytes } from "node:crypto";
import { accessSync, constants, mkdirSync, readFileSync, statfsSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, join } from "node:path";
import { ColonyError } from "./errors.ts";

/** Under this many free bytes a disk counts as full. */
export const FULL_DISK_BYTES = 64 * 1024;

/** Whether this process is root (process.getuid() is a system call each time; it does not change). */
const ROOT = process.getuid?.() === 0;

/**
 * Free bytes on the disk of `dir` for this process: root writes into the blocks
 * reserved for it, anyone else stops at bavail. Undefined when it cannot be told.
 */
export function freeBytes(dir: string): number | undefined {
  try {
    const fs = statfsSync(dir);
    return Number(ROOT ? fs.bfree : fs.bavail) * Number(fs.bsize);
  } catch {
    return undefined;
  }
}

/** The fastest a disk is taken to fill: 1 GB/s, in bytes per ms. */
const FILL_BYTES_PER_MS = 1_000_000;
/** The oldest reading freeBytesLately() answers with. */
const LATELY_MS = 1000;
const readings = new Map<string, { at: number; until: number; free: number | undefined }>();

/**
 * freeBytes(dir), answered from a reading of another directory under the same parent
 * (unit dirs share `{data}/units`) while that reading still holds: taken less than a
 * second ago, and with room enough that the disk could not have filled since at 1 GB/s
 * (a disk near full is read every time). Every SHELL task's end asks (task-runner.ts,
 * fullDiskNote): a statfs each cost ~30 µs of the ~400 µs the event loop spends on a job.
 */
export function freeBytesLately(dir: string, now = performance.now()): number | undefined {
  const parent = dirname(dir);
  const last = readings.get(parent);
  if (last && now >= last.at && now < last.until) return last.free;
  const free = freeBytes(dir);
  const room = free === undefined ? 0 : free - FULL_DISK_BYTES;
  const until = now + Math.min(LATELY_MS, Math.max(0, room) / FILL_BYTES_PER_MS);
  if (readings.size >= 64 && !readings.has(parent)) readings.clear();
  readings.set(parent, { at: now, until, free });
  return free;
}

/** A data dir colony cannot create or write: which, why, and what to do. */
export class DataDirError extends ColonyError {
  constructor(message: string, cause?: unknown) {
    super("COLONY_DATA_DIR", message, { status: 500, cause });
  }
}

const WHY: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOTDIR: "a part of the path is a file, not a directory",
  ENOSPC: "no space left on the disk",
};

/**
 * Creates the data dir (0700) if it is missing and checks that this process can write
 * it, so that a bad one fails at once with what to do, not later with a stack trace.
 */
export function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    let user = "this user";
    try {
      user = `user ${userInfo().username}`;
    } catch {
      // no passwd entry: keep "this user"
    }
    throw new DataDirError(
      `cannot use ${dir} as the data dir: ${WHY[code] ?? (error as Error).message}${code && WHY[code] ? ` (${code})` : ""}; ` +
        `give a directory ${user} can write (--data-dir, $COLONY_DATA_DIR, data_dir in colony.yaml, or the library's dataDir)`,
      error,
    );
  }
}

const SERVER_ID_FILE = "server.id";

/**
 * The data dir's id, made on first use and kept in `{dataDir}/server.id`: task
 * executions record it, so that a server sharing the store with this one knows whose
 * data dir holds an execution's output. A restarted server keeps its id; a new data dir
 * gets a new one (ids are 16 random letters and digits).
 */
export function loadOrCreateServerId(dataDir: string): string {
  const path = join(dataDir, SERVER_ID_FILE);
  const read = () => readFileSync(path, "utf8").trim();
  try {
    return read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const id = randomBytes(12).toString("base64url").replace(/[-_]/g, "x").slice(0, 16);
  try {
    writeFileSync(path, `${id}\n`, { flag: "wx", mode: 0o644 });
    return id;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return read();
    throw error;
  }
}
