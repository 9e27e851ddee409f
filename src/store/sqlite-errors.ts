/**
 * SQLite failures as colony errors: the SQLite result code says what happened (disk
 * full, I/O error, corrupt file, locked...), the message says where and what to do.
 */
import { dirname } from "node:path";
import { FULL_DISK_BYTES, freeBytes } from "../core/disk.ts";
import { ColonyError, StoreError } from "../core/errors.ts";

export const BUSY_TIMEOUT_MS = 5000;

/**
 * Turns a node:sqlite failure into a StoreError saying what happened and what to do;
 * anything else (a ColonyError, a bug) is returned unchanged.
 */
export function sqliteFailure(error: unknown, path: string, what: string): unknown {
  if (error instanceof ColonyError) return error;
  const e = error as { code?: unknown; errcode?: unknown; message?: unknown };
  const at = `the store at ${path}`;
  if (e.code === "ERR_INVALID_STATE") {
    return new StoreError(`${at} is closed (while ${what}); open the store again`, error);
  }
  if (e.code !== "ERR_SQLITE_ERROR" || typeof e.errcode !== "number") return error;
  const detail = String(e.message);
  const primary = e.errcode & 0xff;
  switch (primary) {
    case 13: // SQLITE_FULL
      return new StoreError(`disk full while ${what} in ${at}; free space and retry`, error);
    case 10: {
      // SQLITE_IOERR. A full disk often shows as one (growing the -shm file, a short
      // write) rather than as SQLITE_FULL: say so when it is.
      const free = freeBytes(dirname(path));
      if (free !== undefined && free < FULL_DISK_BYTES) {
        return new StoreError(
          `disk full while ${what} in ${at} (${free} bytes free on its disk; SQLite: ${detail}); free space and retry`,
          error,
        );
      }
      return new StoreError(
        `I/O error while ${what} in ${at} (${detail}); check the disk and its file system`,
        error,
      );
    }
    case 11: // SQLITE_CORRUPT
    case 26: // SQLITE_NOTADB
      return new StoreError(
        `${at} is corrupt or not a SQLite database (${detail}); restore it from a backup ` +
          `or point the store at another file`,
        error,
      );
    case 14: // SQLITE_CANTOPEN
      return new StoreError(
        `cannot open ${at} (${detail}); check that its folder exists and is writable`,
        error,
      );
    case 8: // SQLITE_READONLY
    case 3: // SQLITE_PERM
    case 23: // SQLITE_AUTH
      return new StoreError(
        `${at} is not writable (${detail}) while ${what}; check the permissions of the file and its folder`,
        error,
      );
    case 5: // SQLITE_BUSY
    case 6: // SQLITE_LOCKED
      return new StoreError(
        `${at} stayed locked by another connection for over ${BUSY_TIMEOUT_MS / 1000}s while ` +
          `${what}; retry, or look for a stuck process holding the file`,
        error,
      );
    default:
      return new StoreError(`SQLite failed while ${what} in ${at}: ${detail}`, error);
  }
}
