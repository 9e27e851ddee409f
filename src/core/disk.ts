/**
 * How much room a disk has left, for errors that should say "the disk is full" when
 * that is why something failed (a task's output cut short, a store that cannot grow).
 */
import { statfsSync } from "node:fs";

/** Under this many free bytes a disk counts as full. */
export const FULL_DISK_BYTES = 64 * 1024;

/**
 * Free bytes on the disk of `dir` for this process: root writes into the blocks
 * reserved for it, anyone else stops at bavail. Undefined when it cannot be told.
 */
export function freeBytes(dir: string): number | undefined {
  try {
    const fs = statfsSync(dir);
    return Number(process.getuid?.() === 0 ? fs.bfree : fs.bavail) * Number(fs.bsize);
  } catch {
    return undefined;
  }
}
