import { randomBytes } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * Unit ids as receptor makes them: 8 characters of [A-Za-z0-9]. Task executions and
 * work units share this id space (one concept, several views).
 */
export function newUnitId(): string {
  const bytes = randomBytes(16);
  let id = "";
  for (const byte of bytes) {
    // 248 = 4 * 62: reject the tail of the byte range so every character is equally likely.
    if (byte >= 248) continue;
    id += ALPHABET[byte % 62];
    if (id.length === 8) return id;
  }
  return id.length === 8 ? id : newUnitId();
}

export function isUnitId(value: string): boolean {
  return /^[A-Za-z0-9]{8}$/.test(value);
}
