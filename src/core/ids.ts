import { randomFillSync } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** Random bytes drawn 4 KiB at a time: one system call per ~450 ids, not one per id. */
const pool = Buffer.alloc(4096);
let used = pool.length;

function randomByte(): number {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  return pool[used++]!;
}

/**
 * Unit ids as receptor makes them: 8 characters of [A-Za-z0-9]. Task executions and
 * work units share this id space (one concept, several views).
 */
export function newUnitId(): string {
  let id = "";
  while (id.length < 8) {
    const byte = randomByte();
    // 248 = 4 * 62: reject the tail of the byte range so every character is equally likely.
    if (byte < 248) id += ALPHABET[byte % 62];
  }
  return id;
}

export function isUnitId(value: string): boolean {
  return /^[A-Za-z0-9]{8}$/.test(value);
}
