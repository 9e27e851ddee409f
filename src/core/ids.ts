import { randomFillSync } from "node:crypto";

/** The 62 characters of unit ids, in byte order (so that ids compare as their numbers). */
const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Random bytes drawn 4 KiB at a time: one system call per ~1,300 ids, not one per id. */
const pool = Buffer.alloc(4096);
let used = pool.length;

function randomByte(): number {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  return pool[used++]!;
}

/** How many ids one millisecond has room for: the three random characters. */
const PER_MS = 62 ** 3;
/** The clock part: milliseconds modulo 62^5 (it starts over every ~10.6 days). */
const CLOCK_SPAN = 62 ** 5;

/** Three random bytes below this are uniform modulo PER_MS (the tail is drawn again). */
const UNIFORM_BELOW = PER_MS * Math.floor(2 ** 24 / PER_MS);

/** The random part of one id: uniform below PER_MS. */
function randomPart(): number {
  for (;;) {
    const n = (randomByte() << 16) | (randomByte() << 8) | randomByte();
    if (n < UNIFORM_BELOW) return n % PER_MS;
  }
}

/** The millisecond of the last id and the random parts it used (no repeat within one). */
let lastMs = -1;
const usedThisMs = new Set<number>();

/**
 * Unit ids as receptor shows them, 8 characters of [A-Za-z0-9], made time-ordered: the
 * first five are the creation time (milliseconds, base 62, starting over every ~10.6
 * days), the last three random. Task executions and work units share this id space (one
 * concept, several views). Ids made one after another sort together, so the stores'
 * index on task ids takes them at its end instead of all over: on a store of 100k tasks,
 * a task's three writes took 1.4x less CPU than with eight random characters
 * (`npm run bench -- ids`; bench/README.md, "Unit ids").
 *
 * Within a process no two ids repeat (the random parts of one millisecond are
 * remembered); two processes making ids in the same millisecond clash with a chance of
 * one in 238,328 per pair, which the stores and the unit directories meet by drawing
 * again, as they did for random ids.
 */
export function newUnitId(): string {
  const ms = Date.now() % CLOCK_SPAN;
  if (ms !== lastMs) {
    lastMs = ms;
    usedThisMs.clear();
  }
  let low = randomPart();
  // Were all 238,328 of one millisecond taken (none comes near), this one would repeat
  // and its store draw again, rather than loop here.
  while (usedThisMs.has(low) && usedThisMs.size < PER_MS) low = randomPart();
  usedThisMs.add(low);
  let n = ms * PER_MS + low; // < 62^8 ~ 2.2e14: exact in a double
  let id = "";
  for (let i = 0; i < 8; i++) {
    id = DIGITS[n % 62]! + id;
    n = Math.floor(n / 62);
  }
  return id;
}

export function isUnitId(value: string): boolean {
  return /^[A-Za-z0-9]{8}$/.test(value);
}
