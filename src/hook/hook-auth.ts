/**
 * Authentication of job hook requests (SPEC section 9, seed 004): `X-Job-Id` names the
 * execution, `X-Job-Time` is the client's clock in ms since the epoch (a decimal
 * string), and `X-Job-Hash` = lowercase hex HMAC-SHA256(key = JOB_SECRET_KEY,
 * message = the X-Job-Time string).
 *
 * Beyond the seed's origin: the hash is compared in constant time, and a time outside
 * a bounded window around the server's clock is refused, so a captured header set
 * stops working after that window (and with the execution, since its key dies then).
 */
import { createHmac, timingSafeEqual, type KeyObject } from "node:crypto";
import { ColonyError } from "../core/errors.ts";

/** Default window: a request signed more than 5 minutes before or after now is refused. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60_000;

export class HookAuthError extends ColonyError {
  constructor(code: string, message: string, status: 400 | 403 | 404) {
    super(code, message, { status });
  }
}

/**
 * The X-Job-Hash a client sends: lowercase hex HMAC-SHA256(key, time). `key` may be the
 * JOB_SECRET_KEY string or that key prepared once as a KeyObject (hookSecret()), which
 * saves ~15 µs per request on a server verifying many.
 */
export function hookSignature(key: string | KeyObject, time: string): string {
  const secret = typeof key === "string" ? Buffer.from(key, "latin1") : key;
  return createHmac("sha256", secret).update(time, "latin1").digest("hex");
}

/** The three headers for a hook request signed now (for clients written in TypeScript). */
export function hookHeaders(jobId: string, key: string, now = Date.now()): Record<string, string> {
  const time = String(now);
  return { "X-Job-Id": jobId, "X-Job-Time": time, "X-Job-Hash": hookSignature(key, time) };
}

function header(headers: Record<string, string | string[] | undefined>, name: string) {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** X-Job-Id, or 404 when it is missing (the seed's service answers so). */
export function hookJobId(headers: Record<string, string | string[] | undefined>): string {
  const id = header(headers, "x-job-id");
  if (id === undefined || id.trim() === "") {
    throw new HookAuthError(
      "COLONY_HOOK_UNKNOWN_JOB",
      "X-Job-Id header required: send the JOB_ID of your process",
      404,
    );
  }
  return id.trim();
}

/**
 * Checks time and hash against `key` (the key of the id the caller already resolved).
 * 403 for a missing, stale or wrong signature.
 */
export function verifyHookSignature(
  headers: Record<string, string | string[] | undefined>,
  key: string | KeyObject,
  now: number,
  maxSkewMs = DEFAULT_MAX_CLOCK_SKEW_MS,
): void {
  const time = header(headers, "x-job-time");
  const hash = header(headers, "x-job-hash");
  if (time === undefined || hash === undefined) {
    throw new HookAuthError(
      "COLONY_HOOK_UNSIGNED",
      "X-Job-Time and X-Job-Hash headers required: sign the request with JOB_SECRET_KEY",
      403,
    );
  }
  if (!/^\d{1,16}$/.test(time)) {
    throw new HookAuthError(
      "COLONY_HOOK_BAD_TIME",
      "X-Job-Time must be the time in milliseconds since the epoch, as a decimal string",
      403,
    );
  }
  if (Math.abs(now - Number(time)) > maxSkewMs) {
    throw new HookAuthError(
      "COLONY_HOOK_STALE",
      `X-Job-Time is more than ${Math.round(maxSkewMs / 1000)}s away from the server's clock; ` +
        "sign each request when you send it (and keep the machine's clock in sync)",
      403,
    );
  }
  const expected = Buffer.from(hookSignature(key, time), "latin1");
  const given = Buffer.from(hash.toLowerCase(), "latin1");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new HookAuthError("COLONY_HOOK_BAD_HASH", "Invalid Job HMAC", 403);
  }
}
